"""A long video in slices: its clips split into runs of whole clips, one task each, so
the workers of a cluster share one long interview instead of one of them taking it all.

Three kinds of task per sliced participant, chained by Dask (or run in order by a
sequential run): :func:`prepare` reads or tracks the face track and the action units
once and saves them beside the store; each :func:`explain_slice` explains its clips
with the engine's own clip step and saves its running totals (the state a checkpoint
holds); :func:`merge` adds the slices' totals up in the order of the video, makes the
cube as ``explain`` does and writes the participant like any other.

The totals of a frame are sums over the clips covering it. With the default clips
(``stride`` at least half the clip length) no frame is covered by more than two clips
except at the very end of the video, slices start on clip boundaries and are added in
order, so a sliced participant equals, bit for bit, the same participant explained
whole. With more overlap the sums are grouped differently and may differ in the last
bit; the run records ``slice_frames`` with its settings, so a store never mixes both.
Everything in between is kept in ``.NAME.slices/`` inside the store: a slice finished
by a stopped run is not computed again.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import CohortError
from .manifest import Entry
from .store import CohortStore

#: a slice file's fingerprint names the run's settings, the participant and its clips
_INPUTS = "inputs.npz"


def clip_ranges(n_frames: int, clip_length: int, stride: int, slice_frames: int) -> list[tuple[int, int | None]]:
    """Clip index ranges ``[first, stop)`` of about ``slice_frames`` frames each, the last
    one open (``None``: to the end of the video, whatever its header said).

    Example:
        >>> clip_ranges(100, 16, 8, 40)
        [(0, 5), (5, None)]
        >>> clip_ranges(30, 16, 8, 40)
        [(0, None)]
    """
    n_clips = max(1, -(-max(n_frames - clip_length, 0) // stride) + 1)
    per_slice = max(2, slice_frames // stride)
    starts = list(range(0, n_clips, per_slice))
    if len(starts) > 1 and n_clips - starts[-1] < 3:
        # the clip aligned to the video's end can make a third covering clip there: the
        # last slice holds all three, so their sum is grouped as in the whole run
        starts.pop()
    return [(start, stop) for start, stop in zip(starts, starts[1:] + [None])]


def folder_of(store: CohortStore, participant: str) -> Path:
    return store.path / f".{participant}.slices"


def _files(entry: Entry) -> dict:
    """The participant's files as they are now (size and modification time): slices saved
    from other files are not used."""
    found = {}
    for path in (entry.video, entry.openface):
        if path is not None and Path(path).exists():
            stat = Path(path).stat()
            found[str(path)] = [stat.st_size, stat.st_mtime_ns]
    return found


def _fingerprint(entry: Entry, settings: dict, first: int | None = None, stop: int | None = None) -> str:
    return json.dumps({"settings": settings, "participant": entry.record(), "files": _files(entry),
                       "clips": [first, stop]}, sort_keys=True, default=str)


def _stored_fingerprint(path: Path) -> str | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            return str(stored["fingerprint"])
    except (OSError, ValueError, KeyError):
        return None


def _save_inputs(path: Path, faces, action_units, fingerprint: str) -> None:
    from ..files import atomic_path

    arrays = {**faces.to_arrays(), "source": np.asarray(faces.source or ""), "landmarker": np.asarray(faces.landmarker),
              "fingerprint": np.asarray(fingerprint)}
    if action_units is not None:
        arrays["au_values"] = np.asarray(action_units.values, dtype=np.float32)
        arrays["au_names"] = np.asarray([str(a) for a in action_units.au.values])
    with atomic_path(path) as partial:
        with open(partial, "wb") as handle:
            np.savez(handle, **arrays)


def _load_inputs(path: Path):
    import xarray as xr

    from ..faces import FaceTrack

    with np.load(path, allow_pickle=False) as stored:
        faces = FaceTrack.from_arrays(stored, source=str(stored["source"]) or None,
                                      landmarker=str(stored["landmarker"]))
        action_units = None
        if "au_values" in stored.files:
            action_units = xr.DataArray(stored["au_values"], dims=("time", "au"),
                                        coords={"au": stored["au_names"].astype(str)})
    return faces, action_units


def prepare(entry: Entry, settings: dict, store: str) -> dict:
    """The face track and action units of a sliced participant, read or tracked once.

    Returns ``{"status": "ready"}``, or a failed record as
    :func:`~expresso_xai.cohort.task.explain_participant` gives.
    """
    from .task import attempt, participant_inputs

    cohort = CohortStore(store)
    path = folder_of(cohort, entry.participant) / _INPUTS

    def work():
        fingerprint = _fingerprint(entry, settings)
        if not path.exists() or _stored_fingerprint(path) != fingerprint:
            shutil.rmtree(path.parent, ignore_errors=True)  # slices of other inputs or settings
            path.parent.mkdir()
            video, faces, action_units = participant_inputs(entry, track=True)
            _save_inputs(path, faces, action_units, fingerprint)
        return "ready"

    return attempt(entry, cohort, settings, work)


def _engine(entry: Entry, model, settings: dict, faces):
    from ..explain.engine import VideoSource, _crop_for, new_state
    from ..explain.plan import plan_explain
    from .task import ENGINE_OPTIONS

    options = {key: settings[key] for key in ENGINE_OPTIONS}
    plan = plan_explain(model, settings["methods"], settings["method_options"], **options)
    source = VideoSource.open(entry.video, faces, progress=False)
    crop = _crop_for(plan.model, faces, None)
    return plan, source, crop, lambda: new_state(plan, len(faces))


def explain_slice(entry: Entry, model, settings: dict, store: str, first: int, stop: int | None,
                  ready: dict) -> dict:
    """Explain clips ``[first, stop)`` of a participant and save their running totals."""
    from ..clips import iter_clips
    from ..explain.clip import run_methods
    from ..explain.engine import _prepare, clip_input
    from .task import attempt, resolve_model

    if ready.get("status") == "failed":
        return ready
    cohort = CohortStore(store)
    folder = folder_of(cohort, entry.participant)
    path, fingerprint = folder / f"clips_{first}.npz", _fingerprint(entry, settings, first, stop)

    def work():
        faces, _ = _load_inputs(folder / _INPUTS)
        plan, source, crop, empty = _engine(entry, resolve_model(model, settings), settings, faces)
        state = empty()
        if state.load(path, fingerprint):
            return "sliced"
        state.done = first  # the clip step seeds stochastic methods by the clip's index
        for index, clip in enumerate(iter_clips(entry.video, plan.clip_length, plan.stride)):
            if stop is not None and index >= stop:
                break
            if index >= first:
                positions = clip.indices - source.first_frame
                ctx = _prepare(plan, state, clip_input(plan, clip, positions, faces, crop))
                state.add(ctx, run_methods(ctx, plan.methods), positions)
        state.save(path, fingerprint)
        return "sliced"

    return attempt(entry, cohort, settings, work)


def merge(entry: Entry, model, settings: dict, store: str, ranges: list, *slices: dict) -> dict:
    """Add the slices' totals up in order, make the cube and write the participant."""
    from ..cube import write_zarr_group
    from ..explain.engine import to_cube
    from .task import attempt, resolve_model, summary, with_action_units

    failed = [record for record in slices if record.get("status") == "failed"]
    if failed:
        return failed[0]
    cohort = CohortStore(store)
    folder = folder_of(cohort, entry.participant)

    def work():
        faces, action_units = _load_inputs(folder / _INPUTS)
        plan, source, crop, empty = _engine(entry, resolve_model(model, settings), settings, faces)
        merged = empty()
        for first, stop in ranges:
            part = empty()
            if not part.load(folder / f"clips_{first}.npz", _fingerprint(entry, settings, first, stop)):
                raise CohortError(f"{entry.participant}: the slice from clip {first} is missing; run again")
            merged.absorb(part)
        for _ in source.clips(plan, merged):  # hashes every frame, explains none
            raise CohortError(f"{entry.participant}: the slices do not cover the video's clips; run again")
        cube = with_action_units(to_cube(plan, source, crop, merged), entry, faces, action_units)
        written = cohort.write(entry.participant, lambda group: write_zarr_group(cube, group),
                               {**entry.record(), **summary(cube)})
        shutil.rmtree(folder, ignore_errors=True)
        return "done" if written else "present"

    started = time.perf_counter()
    record = attempt(entry, cohort, settings, work)
    record["seconds"] = (time.perf_counter() - started) + sum(r.get("seconds", 0.0) for r in slices)
    # the processes that took part: the slices' workers and the merge's, in order of first use
    record["worker"] = ",".join(dict.fromkeys(r["worker"] for r in (*slices, record) if r.get("worker")))
    record["peak_rss_mb"] = max((r["peak_rss_mb"] for r in (*slices, record) if r.get("peak_rss_mb") is not None),
                                default=record.get("peak_rss_mb"))
    return record
