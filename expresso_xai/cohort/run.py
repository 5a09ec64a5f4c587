"""Running a cohort: every participant of a manifest explained on Dask, each task
writing its own participant to the store.

With no client, the run starts a ``LocalCluster`` of worker processes (one per core, one
torch thread each) and closes it at the end; with ``client=`` (a ``distributed.Client``
or a scheduler's address) it submits to that cluster, so the same call scales from a
laptop to many machines whose workers see the store's folder. ``client="sequential"``
runs the same tasks one after the other in this process, without Dask.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..errors import CohortError
from .manifest import Entry, read_manifest
from .store import CohortStore, changed, is_store
from . import slices
from .task import ENGINE_OPTIONS, explain_participant

log = logging.getLogger(__name__)

#: the batch size when "auto" cannot be timed on a probe input (a model that needs the
#: clip's landmarks, as multi-stream models do)
FALLBACK_BATCH_SIZE = 8
#: Worker processes keep OpenMP and BLAS to one thread each, as torch is (no oversubscription).
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@dataclass
class CohortRun:
    """What a run did, participant by participant.

    Attributes:
        store: the store's path.
        table: a DataFrame, one row per manifest participant: ``status`` ("done" computed
            now, "present" already in the store, "failed"), ``reason`` (why it failed),
            ``seconds`` and ``worker`` (for those computed now; a video run in slices
            lists every process that took part, comma-separated), ``peak_rss_mb`` (the
            peak memory of the process that ran it, the largest for a sliced video).
        dashboard: the Dask dashboard's address, when the cluster had one.
    """

    store: Path
    table: pd.DataFrame
    dashboard: str | None = None
    settings: dict = field(default_factory=dict)

    @property
    def failed(self) -> pd.DataFrame:
        return self.table[self.table.status == "failed"]

    def counts(self) -> dict[str, int]:
        return {status: int((self.table.status == status).sum()) for status in ("done", "present", "failed")}

    def __repr__(self) -> str:
        counts = self.counts()
        lines = [f"cohort store {self.store}: {counts['done']} explained now, {counts['present']} already there, "
                 f"{counts['failed']} failed"]
        lines += [f"  failed {row.participant}: {row.reason}" for row in self.failed.itertuples()]
        return "\n".join(lines)


def _split_options(explain_options: dict) -> tuple[dict, dict]:
    from ..explain import METHODS

    engine = {key: value for key, value in explain_options.items() if key in ENGINE_OPTIONS}
    methods = {key: value for key, value in explain_options.items() if key not in ENGINE_OPTIONS}
    unknown = sorted(key for key in methods if key not in METHODS)
    if unknown:
        raise CohortError(f"unknown option(s) {unknown}: a cohort run takes {', '.join(ENGINE_OPTIONS)} and "
                          f"per-method option dicts ({', '.join(sorted(METHODS))})")
    return engine, methods


def _batch_size(engine: dict, store: str | Path, resume: bool, model, torch_threads: int) -> int:
    """The run's one batch size: the one given; else, resuming, the store's; else timed
    here once, on the model's input at the tasks' thread count. Picking it per task would
    vary with each worker's load, and the last bits of batched results with it."""
    from ..explain.engine import fastest_batch

    wanted = engine.get("batch_size", "auto")
    if wanted != "auto":
        return wanted
    cohort = CohortStore(store)  # its path has '~' expanded, as is_store needs
    stored = cohort.settings.get("batch_size") if resume and is_store(cohort.path) else None
    if isinstance(stored, int):
        return stored
    import torch

    threads, training = torch.get_num_threads(), model.module.training
    device = engine.get("device", "cpu")
    torch.set_num_threads(torch_threads)
    model.module.eval().to(device)  # timing forwards must not move batch-norm statistics
    try:
        return int(fastest_batch(model, model.probe_input(device=device)))
    except Exception as exc:  # noqa: BLE001 - a model that needs a clip's landmarks (multi-stream)
        log.info("could not time batch sizes for %s (%s); using %d", model.name, exc, FALLBACK_BATCH_SIZE)
        return FALLBACK_BATCH_SIZE
    finally:
        torch.set_num_threads(threads)
        model.module.train(training)


def _model_ref(model):
    """``(object, what to send to the workers)``: a model given by name is loaded here
    for its hash and checks, and sent as the object when it pickles (a randomly
    initialised zoo model differs on every load), else by name."""
    from ..explain.plan import as_video_model
    from ..models import load

    import cloudpickle  # what Dask sends objects with (classes defined in functions included)

    loaded = as_video_model(load(str(model)) if isinstance(model, (str, Path)) else model)
    try:
        cloudpickle.dumps(loaded)
        return loaded, loaded
    except Exception:  # noqa: BLE001 - e.g. a module holding a lambda: send its name instead
        if isinstance(model, (str, Path)):
            return loaded, str(model)
        raise CohortError(f"the model {loaded.name} cannot be sent to Dask workers (it does not pickle); "
                          "pass the name or path it loads from instead") from None


def run_settings(model, methods, engine: dict, method_options: dict, torch_threads: int,
                 slice_frames: int | None = None) -> dict:
    """Everything that decides a participant's cube, checked now (before any work) with
    the engine's own checks; a store records it and a resumed run must match it."""
    from .. import __version__
    from ..explain.plan import plan_explain

    plan = plan_explain(model, list(methods), method_options, **engine)
    if plan.pixel_store is not None:
        raise CohortError(f"keep_pixels={engine['keep_pixels']!r}: a cohort keeps each participant's pixel maps "
                          "in its own store (keep_pixels=True); a path is for one video")
    if not isinstance(torch_threads, int) or isinstance(torch_threads, bool) or torch_threads < 1:
        raise CohortError(f"torch_threads must be a whole number of at least 1, got {torch_threads!r}")
    if slice_frames is not None and (not isinstance(slice_frames, int) or isinstance(slice_frames, bool)
                                     or slice_frames < 2 * plan.stride):
        raise CohortError(f"slice_frames must be None or a whole number of at least two strides "
                          f"({2 * plan.stride} frames), got {slice_frames!r}")
    if slice_frames is not None and plan.keep_pixels:
        raise CohortError("slice_frames does not go with keep_pixels: each slice would hold the whole video's "
                          "pixel maps; explain long videos with pixels one per task (slice_frames=None)")
    import json

    import torch

    settings = {
        "model_name": plan.model.name,
        "model_hash": plan.model.weights_hash(),
        "methods": list(plan.methods),
        "method_options": {name: method.params() for name, method in plan.methods.items()},
        # every engine option, given or not, as the plan resolved it: a store written with
        # the defaults resumes under the same values spelled out (the CLI passes them all)
        "target": plan.target, "regions": plan.scheme.name, "clip_length": plan.clip_length, "stride": plan.stride,
        "keep_pixels": plan.keep_pixels, "device": str(plan.device), "batch_size": engine["batch_size"],
        "seed": plan.seed, "clips_per_batch": plan.clips_per_batch, "autocast": plan.autocast or False,
        "torch_threads": torch_threads,
        "slice_frames": slice_frames,
        "versions": {"expresso_xai": __version__, "torch": torch.__version__},
    }
    return json.loads(json.dumps(settings))  # as the store gives it back (lists, not tuples)


def _check_records(entries: list[Entry], finished: dict[str, dict], store: CohortStore) -> None:
    """A participant already in the store must be the manifest's participant."""
    for entry in entries:
        marker = finished.get(entry.participant)
        if marker is None:
            continue
        record = entry.record()
        differences = changed({key: marker.get(key) for key in record}, record)
        if differences:
            raise CohortError(f"{store.path}: participant {entry.participant} (manifest row {entry.row}) was "
                              f"explained with another row: {'; '.join(differences)}. Start again "
                              "(resume=False, --restart) or use another store")


# --- executing the tasks --------------------------------------------------------------


class _Progress:
    """One bar over the videos, with done / running / failed (tqdm: terminal and notebook)."""

    def __init__(self, total: int, enabled: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="cohort", unit="video", disable=not enabled)
        self.counts = {"done": 0, "running": 0, "failed": 0}

    def running(self, count: int) -> None:
        self.counts["running"] = count
        self.bar.set_postfix(self.counts, refresh=True)

    def finished(self, record: dict) -> None:
        self.counts["failed" if record["status"] == "failed" else "done"] += 1
        self.bar.set_postfix(self.counts, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _tasks(entry: Entry, model, settings: dict, store: str, ranges, call):
    """The task(s) of one participant through ``call(function, *args)``: one explanation,
    or for a sliced video the face track once, its slices, and their merge."""
    if not ranges:
        return call(explain_participant, entry, model, settings, store)
    ready = call(slices.prepare, entry, settings, store)
    parts = [call(slices.explain_slice, entry, model, settings, store, first, stop, ready) for first, stop in ranges]
    return call(slices.merge, entry, model, settings, store, ranges, *parts)


def _sequential(todo: list[Entry], model, settings: dict, store: str, progress: _Progress, plan: dict):
    for entry in todo:
        progress.running(1)
        record = _tasks(entry, model, settings, store, plan.get(entry.participant), lambda f, *args: f(*args))
        progress.finished(record)
        yield record


def _slice_plan(todo: list[Entry], settings: dict) -> dict:
    """``{participant: clip ranges}`` for the videos longer than ``slice_frames`` (their
    headers' frame count; one that cannot be read is left to its task to report)."""
    from ..video import load_video

    plan = {}
    if not settings.get("slice_frames"):
        return plan
    for entry in todo:
        try:
            n_frames = load_video(entry.video, max_frames=1).n_frames_expected
        except Exception:  # noqa: BLE001 - the task reports what is wrong with the file
            continue
        if n_frames and n_frames > settings["slice_frames"]:
            ranges = slices.clip_ranges(n_frames, settings["clip_length"], settings["stride"], settings["slice_frames"])
            if len(ranges) > 1:
                plan[entry.participant] = ranges
    return plan


@contextmanager
def _dask_client(client, workers: int | None):
    """The client to submit to: the one given, one connected to a scheduler's address,
    or a new ``LocalCluster`` of processes (closed on the way out)."""
    import dask
    from distributed import Client, LocalCluster

    if client is not None and not isinstance(client, str):
        yield client
        return
    if isinstance(client, str):
        with Client(client, timeout="20s") as connected:
            yield connected
        return
    try:
        import bokeh  # noqa: F401 - the dashboard needs it

        dashboard = ":0"
    except ImportError:
        dashboard = None
    n_workers = workers or os.cpu_count() or 1
    # Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536 (and sets it here too):
    # measured, explanations then cost about 1.6x the CPU; a worker peaks ~17 MB higher without it
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, env=_ONE_THREAD,
                                   dashboard_address=dashboard, silence_logs=logging.CRITICAL)
    except RuntimeError as exc:
        raise CohortError(f"could not start a local Dask cluster of {n_workers} worker process(es) ({exc}). "
                          "Called from a script? Its workers are new processes that import the script: put "
                          "the call under `if __name__ == \"__main__\":`") from None
    with cluster, Client(cluster) as local:
        yield local


@contextmanager
def _quiet_client_logs():
    """Dask's client logs a traceback when its scheduler goes away, before the error the
    run raises about it: one clear message is enough."""
    import distributed  # noqa: F401 - importing it sets its loggers' levels: quieten after

    logger = logging.getLogger("distributed.client")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _lost(entry: Entry, exc: BaseException) -> dict:
    """A task that Dask itself gave up on (its workers kept dying, or it was cancelled)."""
    return {"participant": entry.participant, "status": "failed", "seconds": float("nan"), "worker": "",
            "reason": f"the task did not complete on the cluster ({type(exc).__name__}: {exc})",
            "peak_rss_mb": float("nan")}


def _on_dask(todo: list[Entry], model, settings: dict, store: str, progress: _Progress, client, plan: dict):
    from distributed import as_completed

    model_arg = model if isinstance(model, str) else client.scatter(model, broadcast=True, hash=False)
    mine = set()

    def submit(function, *args):
        future = client.submit(function, *args, pure=False,
                               key=f"expresso-xai-{function.__name__}-{args[0].participant}-{os.urandom(4).hex()}")
        mine.add(future.key)
        return future

    futures = {_tasks(entry, model_arg, settings, store, plan.get(entry.participant), submit): entry
               for entry in todo}
    for future in as_completed(list(futures)):
        entry = futures.pop(future)
        try:
            record = future.result()
        except Exception as exc:  # noqa: BLE001 - KilledWorker, CancelledError: report, go on
            record = _lost(entry, exc)
        future.release()
        progress.finished(record)
        busy = sum(key in mine for keys in client.processing().values() for key in keys)
        progress.running(busy)
        yield record


def run(manifest: str | Path, model, methods: Iterable[str] = ("gradcam", "integrated_gradients", "occlusion"),
        store: str | Path = "cohort.zarr", client: Any = None, workers: int | None = None, resume: bool = True,
        progress: bool = True, torch_threads: int = 1, slice_frames: int | None = None,
        **explain_options) -> CohortRun:
    """Explain every participant of a manifest into a cohort store, on Dask.

    Args:
        manifest: a CSV with ``participant, video, score[, openface][, split]`` (see
            :func:`~expresso_xai.cohort.read_manifest`); relative paths resolve against
            its folder.
        model: a :class:`~expresso_xai.models.VideoModel`, an ``nn.Module``, or a name or
            path :func:`expresso_xai.models.load` takes.
        methods: the explanation methods, as for :func:`expresso_xai.explain`.
        store: the cohort store (a Zarr folder) the tasks write to; every worker must see it.
        client: ``None`` (a ``LocalCluster`` of ``workers`` processes, one per core by
            default), a ``distributed.Client``, a scheduler address (``"tcp://host:8786"``)
            or ``"sequential"`` (this process, no Dask).
        resume: keep the participants already in the store and compute only the others
            (the store's settings must equal this run's); ``False`` starts the store again.
        slice_frames: explain a video longer than this many frames in slices of about as
            many, one task each (see ``expresso_xai.cohort.slices``), so that the
            workers share a long interview; ``None`` (default): one task per video.
        torch_threads: torch threads per task (the last bits of a cube depend on it; one
            per worker process uses the cores best).
        **explain_options: ``target``, ``regions``, ``clip_length``, ``stride``,
            ``keep_pixels``, ``device``, ``batch_size`` (``"auto"``: timed once here and
            recorded, so every participant batches the same way), ``seed``,
            ``clips_per_batch`` and ``autocast`` (the GPU path, as for
            :func:`expresso_xai.explain`), and per-method option dicts such as
            ``occlusion={"window": 8}``.

    Returns:
        A :class:`CohortRun`: one row per participant, with why any failed. A missing or
        unreadable video, a video without a face or a bad OpenFace CSV fails that
        participant only; the run goes on with the others.

    Raises:
        CohortError: a bad manifest or option, or a store written with other settings
            (the differences are named) or another row for a participant already there.

    Example:
        >>> import tempfile, expresso_xai as ex
        >>> folder = tempfile.mkdtemp()
        >>> manifest = ex.samples.make_cohort(folder, n_participants=2, seconds=0.8, progress=False)
        >>> done = ex.cohort.run(manifest, "demo", methods=["gradcam"], store=f"{folder}/cohort.zarr",
        ...                      client="sequential", progress=False)
        >>> done.counts()
        {'done': 2, 'present': 0, 'failed': 0}
    """
    entries = read_manifest(manifest)
    engine, method_options = _split_options(explain_options)
    loaded, model_arg = _model_ref(model)
    engine["batch_size"] = _batch_size(engine, store, resume, loaded, torch_threads)
    settings = run_settings(loaded, methods, engine, method_options, torch_threads, slice_frames)
    cohort = CohortStore.create(store, settings, resume=resume)
    cohort.lock()
    try:
        return _run_locked(entries, cohort, settings, model_arg, client, workers, progress)
    finally:
        cohort.unlock()


def _run_locked(entries, cohort: CohortStore, settings: dict, model_arg, client, workers, progress) -> CohortRun:
    removed = cohort.remove_partials()
    if removed:
        log.info("%s: removed %d participant(s) left half-written by a stopped run", cohort.path, removed)
    finished = cohort.finished()
    for folder in cohort.path.glob(".*.slices"):  # left by a run stopped after its participant was written
        if folder.name[1:-len(".slices")] in finished:
            shutil.rmtree(folder, ignore_errors=True)
    _check_records(entries, finished, cohort)
    todo = [entry for entry in entries if entry.participant not in finished]
    records = {name: {"participant": name, "status": "present", "reason": ""}
               for name in finished if name in {e.participant for e in entries}}
    bar, dashboard = _Progress(len(todo), progress), None
    sliced = _slice_plan(todo, settings)
    try:
        if todo and client == "sequential":
            records.update((r["participant"], r) for r in _sequential(todo, model_arg, settings, str(cohort.path), bar,
                                                                               sliced))
        elif todo:
            with _quiet_client_logs(), _dask_client(client, workers) as dask_client:
                dashboard = getattr(dask_client, "dashboard_link", None)
                if dashboard and progress:
                    bar.bar.write(f"Dask dashboard: {dashboard}", file=sys.stderr)
                try:
                    records.update((r["participant"], r) for r in
                                   _on_dask(todo, model_arg, settings, str(cohort.path), bar, dask_client,
                                                            sliced))
                except OSError as exc:  # the scheduler went away (CommClosedError, connect timeouts)
                    finished_now = len(cohort.finished())
                    raise CohortError(f"lost the Dask scheduler ({' '.join(str(exc).split())}); the "
                                      f"{finished_now} participant(s) finished are in {cohort.path}: run the "
                                      "same command again to compute the others") from None
    finally:
        bar.close()
        failures = [r for r in records.values() if r["status"] == "failed"]
        cohort.write_failures([{"participant": r["participant"], "reason": r["reason"]} for r in failures])
    table = pd.DataFrame([records[e.participant] for e in entries if e.participant in records])
    return CohortRun(store=cohort.path, table=table, dashboard=dashboard, settings=settings)
