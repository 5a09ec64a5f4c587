"""One task of a cohort run: explain one participant's video and write its group to the
store. It runs wherever the run sends it (this process, a ``LocalCluster`` worker, a
worker of a remote scheduler) and returns only a small status record: the cube goes to
the store, never back through the scheduler.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import CohortError, ExpressoError
from .manifest import Entry
from .store import CohortStore

log = logging.getLogger(__name__)

#: ``explain`` arguments a cohort run passes on, as its settings record them (the rest of
#: a run's ``**explain_options`` are per-method option dicts).
ENGINE_OPTIONS = ("target", "regions", "clip_length", "stride", "keep_pixels", "device", "batch_size", "seed",
                  "clips_per_batch", "autocast")

_MODELS: dict = {}  # a worker process loads a model given by name once


@contextmanager
def torch_threads(count: int):
    """Run torch on ``count`` threads inside the block (the result's last bits depend on
    it, so every run of a cohort uses the same count, wherever it runs)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_model(model, settings: dict):
    """The model object: ``model`` itself, or, given by name or path, loaded once per
    process; either way its weights must be those the run recorded."""
    from ..explain.plan import as_video_model
    from ..models import load

    if isinstance(model, (str, Path)):
        if str(model) not in _MODELS:
            _MODELS[str(model)] = load(str(model))
        model = _MODELS[str(model)]
    model = as_video_model(model)
    if model.weights_hash() != settings["model_hash"]:
        raise CohortError(f"the model loaded on this worker ({model.name}) has other weights than the run's "
                          f"(sha256 {model.weights_hash()[:12]}... vs {settings['model_hash'][:12]}...); load the "
                          "weights from a file, or pass the model object instead of its name")
    return model


def participant_inputs(entry: Entry, track: bool = False):
    """The video to explain (its path: it is streamed, never held whole), its face track
    and its action units (``None`` when the manifest has no OpenFace CSV): from the CSV
    when the manifest gives one (its rows checked against the frame count the file
    announces here, and against the frames decoded by the run), else tracked as the
    video streams, here with ``track=True`` or by ``explain``. Missing files are reported
    before any decoding."""
    from ..faces.openface import read_openface_for
    from ..video import load_video

    if not entry.video.exists():
        raise CohortError(f"{entry.video}: the video does not exist")
    if entry.openface is None:
        if not track:
            return entry.video, None, None
        from ..faces import track_faces

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # frames without a face are in the track
            return entry.video, track_faces(entry.video, progress=False), None
    if not entry.openface.exists():
        raise CohortError(f"{entry.openface}: the OpenFace CSV does not exist")
    first_frame = load_video(entry.video, max_frames=1)  # the frame size and announced length
    faces, action_units = read_openface_for(entry.openface, first_frame, streamed=True)
    return entry.video, faces, action_units


def _action_units(cube, faces, action_units):
    """The participant's action-unit series on the cube's frames: OpenFace's intensities,
    or landmark proxies (:func:`expresso_xai.faces.proxies.landmark_action_units`)."""
    if action_units is not None:
        return action_units.values.astype(np.float32), list(action_units.au.values), "openface"
    from ..faces.proxies import landmark_action_units

    proxies = landmark_action_units(faces)
    return proxies.values.astype(np.float32), list(proxies.au.values), "landmarks"


def with_action_units(cube, entry: Entry, faces, action_units):
    """The cube with the participant's ``au_intensity(time, au)`` and its manifest row."""
    values, names, source = _action_units(cube, faces, action_units)
    cube = cube.assign_coords(au=np.array(names, dtype=str))
    cube["au_intensity"] = (("time", "au"), values)
    cube["au_intensity"].attrs = {"long_name": "action-unit intensity", "au_source": source}
    cube.attrs.update({"au_source": source, "participant": entry.participant,
                       "cohort_record": json.dumps(entry.record())})
    return cube


def summary(cube) -> dict:
    """What :func:`expresso_xai.cohort.open` reads of a participant without opening its
    cube: the participant-level prediction (the mean of the clips' predictions, as the
    reference study's "clustered" metrics), frames, duration, face fraction and region areas."""
    face = cube.face_found.values.astype(bool)
    areas = cube.region_area.values[face].mean(axis=0) if face.any() else np.zeros(cube.sizes["region"])
    fps = float(cube.attrs.get("video_fps", 25.0))
    return {
        "prediction": float(np.mean(cube.clip_prediction.values)) if "clip_prediction" in cube else float("nan"),
        "n_frames": int(cube.sizes["time"]),
        "duration": float(cube.sizes["time"] / fps),
        "fps": fps,
        "face_fraction": float(face.mean()),
        "region_area": {str(r): float(a) for r, a in zip(cube.region.values, areas)},
        "au_source": cube.attrs.get("au_source", ""),
    }


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _explain_entry(entry: Entry, model, settings: dict, store: CohortStore) -> bool:
    from ..cube import write_zarr_group
    from ..explain import explain

    video, faces, action_units = participant_inputs(entry, track=True)
    options = {key: settings[key] for key in ENGINE_OPTIONS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-frame warnings go into the cube, not the worker's log
        cube = explain(model, video, faces=faces, methods=settings["methods"], progress=False,
                       **options, **settings["method_options"])
    cube = with_action_units(cube, entry, faces, action_units)
    marker = {**entry.record(), **summary(cube)}
    return store.write(entry.participant, lambda folder: write_zarr_group(cube, folder), marker)


def attempt(entry: Entry, cohort: CohortStore, settings: dict, work) -> dict:
    """Run ``work()`` (which returns the status) for a participant as a task does: never
    raises for a problem with this participant's files or video, but returns
    ``status="failed"`` with the reason, so the run goes on."""
    started = time.perf_counter()
    record = {"participant": entry.participant, "status": "done", "reason": "",
              "worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        if entry.participant in cohort.finished():
            record["status"] = "present"
        else:
            with torch_threads(settings["torch_threads"]), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # per-frame warnings go into the cube, not the worker's log
                record["status"] = work()
    except ExpressoError as exc:
        record.update(status="failed", reason=" ".join(str(exc).split()))
    except Exception as exc:  # noqa: BLE001 - one participant's bug must not end the cohort
        log.info("participant %s failed", entry.participant, exc_info=True)
        record.update(status="failed", reason=f"{type(exc).__name__}: {' '.join(str(exc).split())}")
    record.update(seconds=time.perf_counter() - started, peak_rss_mb=_peak_rss_mb())
    return record


def explain_participant(entry: Entry, model, settings: dict, store: str) -> dict:
    """Explain one participant and write it to the store (a Dask task; also run in-process
    by a sequential run). Never raises for a problem with this participant's files or
    video: it returns ``status="failed"`` with the reason, so the run goes on.

    Returns:
        ``{participant, status ("done", "failed" or "present": written by another attempt),
        reason, seconds, worker, peak_rss_mb}``.
    """
    cohort = CohortStore(store)

    def work():
        written = _explain_entry(entry, resolve_model(model, settings), settings, cohort)
        return "done" if written else "present"

    return attempt(entry, cohort, settings, work)
