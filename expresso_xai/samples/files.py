"""Samples on disk: the video, ground-truth JSON and synthetic OpenFace CSV of a sample,
the shipped samples (found, or regenerated when missing), synthetic cohorts with their
manifest, and a sample's truth as the ground truth of the localisation metrics
(:func:`truth_mask`)."""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..files import atomic_path
from .animate import render
from .spec import EVENT_REGIONS, SCORE_MAX, Sample, SampleSpec

log = logging.getLogger(__name__)

#: OpenFace action units each event drives (for the synthetic OpenFace CSV).
EVENT_ACTION_UNITS = {
    "eye_closure": ["AU45"], "brow_raise": ["AU01", "AU02"], "brow_furrow": ["AU04"],
    "mouth_open": ["AU25", "AU26"], "smile": ["AU06", "AU12"],
}
OPENFACE_AUS_R = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
                  "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45"]
OPENFACE_AUS_C = OPENFACE_AUS_R[:-1] + ["AU28", "AU45"]


def write_video(frames: np.ndarray, path: str | Path, fps: float) -> Path:
    """Encode ``(T, H, W, 3)`` RGB frames as MPEG-4 (``.mp4``, codec mp4v) or MJPG (``.avi``)."""
    import cv2

    from ..errors import VideoReadError

    path = Path(path)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    height, width = frames.shape[1:3]
    with atomic_path(path) as partial:
        writer = cv2.VideoWriter(str(partial), fourcc, float(fps), (width, height))
        if not writer.isOpened():
            raise VideoReadError(f"{path}: OpenCV cannot open a video writer for this file type")
        try:
            for frame in frames:
                writer.write(np.ascontiguousarray(frame[..., ::-1]))
        finally:
            writer.release()
    return path


def write_openface_csv(sample: Sample, path: str | Path) -> Path:
    """Write what OpenFace 2.0 FeatureExtraction would report for a sample: its true
    landmarks and action units driven by its events (AU45 by eye closure, AU01/AU02 by
    brow raise, AU04 by furrow, AU25/AU26 by mouth opening, AU06/AU12 by smile), in
    OpenFace's column layout, spaces after commas included."""
    truth = sample.truth
    tracks = {k: np.asarray(v) for k, v in truth["tracks"].items()}
    n = truth["n_frames"]
    fps = truth["fps"]
    intensity = {au: np.zeros(n) for au in OPENFACE_AUS_R}
    for track, units in EVENT_ACTION_UNITS.items():
        for au in units:
            intensity[au] = np.clip(5.0 * tracks[track], 0, 5)
    header = (["frame", "face_id", "timestamp", "confidence", "success"]
              + [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
              + [f"{au}_r" for au in OPENFACE_AUS_R] + [f"{au}_c" for au in OPENFACE_AUS_C])
    path = Path(path)
    with atomic_path(path) as partial, partial.open("w", newline="") as handle:
        handle.write(", ".join(header) + "\n")
        for t in range(n):
            row = [str(t + 1), "0", f"{t / fps:.3f}", "0.98", "1"]
            row += [f"{v:.1f}" for v in sample.landmarks[t, :, 0]]
            row += [f"{v:.1f}" for v in sample.landmarks[t, :, 1]]
            row += [f"{intensity[au][t]:.2f}" for au in OPENFACE_AUS_R]
            row += [str(int(intensity.get(au, np.zeros(n))[t] >= 1.0)) for au in OPENFACE_AUS_C]
            handle.write(", ".join(row) + "\n")
    return path


def write_sample(sample: Sample, out_dir: str | Path, name: str | None = None) -> dict[str, Path]:
    """Write ``NAME.mp4``, ``NAME.json`` (ground truth) and ``NAME.openface.csv``.

    Example:
        >>> import tempfile, expresso_xai as ex
        >>> sample = ex.samples.render(ex.samples.SampleSpec(seconds=0.4, name="short"))
        >>> {kind: path.name for kind, path in ex.samples.write_sample(sample, tempfile.mkdtemp()).items()}
        {'video': 'short.mp4', 'truth': 'short.json', 'openface': 'short.openface.csv'}
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or sample.truth["name"]
    paths = {
        "video": write_video(sample.frames, out_dir / f"{name}.mp4", sample.truth["fps"]),
        "truth": out_dir / f"{name}.json",
        "openface": write_openface_csv(sample, out_dir / f"{name}.openface.csv"),
    }
    with atomic_path(paths["truth"]) as partial:
        partial.write_text(json.dumps(sample.truth, indent=1))
    return paths


#: The samples shipped in ``data_samples/`` and how to regenerate them.
SHIPPED = {
    "participant_low": SampleSpec(seed=11, seconds=10, score=6, name="participant_low"),
    "participant_mid": SampleSpec(seed=12, seconds=10, score=30, name="participant_mid"),
    "participant_high": SampleSpec(seed=13, seconds=10, score=58, name="participant_high"),
}
_SUFFIX = {"video": ".mp4", "truth": ".json", "openface": ".openface.csv"}


def samples_dir() -> Path:
    """Where shipped samples are: ``$EXPRESSO_XAI_SAMPLES``, the repository's
    ``data_samples/``, or a cache directory they are regenerated into."""
    env = os.environ.get("EXPRESSO_XAI_SAMPLES")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2] / "data_samples"
    if repo.is_dir():
        return repo
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "expresso-xai" / "samples"


def sample_path(name: str = "participant_low", kind: str = "video") -> Path:
    """Path of a shipped sample's ``"video"``, ``"truth"`` JSON or ``"openface"`` CSV.

    Regenerated deterministically when missing (e.g. in an installed package without the
    repository's ``data_samples/``).

    Example:
        >>> import expresso_xai as ex
        >>> ex.samples.sample_path("participant_high").name
        'participant_high.mp4'
    """
    if name not in SHIPPED:
        raise KeyError(f"no sample {name!r}; shipped samples: {sorted(SHIPPED)}")
    if kind not in _SUFFIX:
        raise KeyError(f"kind must be one of {sorted(_SUFFIX)}")
    path = samples_dir() / f"{name}{_SUFFIX[kind]}"
    if not path.exists():
        log.info("regenerating sample %s into %s", name, path.parent)
        write_sample(render(SHIPPED[name]), path.parent, name)
    return path


def load_truth(path_or_name: str | Path) -> dict:
    """The ground-truth JSON of a sample (by shipped name or path).

    Example:
        >>> import expresso_xai as ex
        >>> ex.samples.load_truth("participant_high")["spec"]["score"]
        58
    """
    from ..errors import EvaluationError

    path = sample_path(str(path_or_name), "truth") if str(path_or_name) in SHIPPED else Path(path_or_name)
    try:
        truth = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EvaluationError(f"{path}: no such ground-truth file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{path}: not a sample's ground-truth JSON file ({exc})") from None
    if not isinstance(truth, dict):
        raise EvaluationError(f"{path}: not a sample's ground truth (a JSON object with events and fps)")
    return truth


#: The events that carry a sample's planted score: the score is the time held in long
#: eye closures (:mod:`.events`); blinks and the other events are distractors.
SCORE_EVENTS = ("long_closure",)


def _event_types(events, truth: dict, source: str) -> tuple[str, ...]:
    """The event types ``truth_mask`` marks: the score's events by default."""
    if events is None:
        return SCORE_EVENTS
    types = (events,) if isinstance(events, str) else tuple(events)
    known = set(EVENT_REGIONS) | {str(event["type"]) for event in truth["events"]}
    unknown = [kind for kind in types if kind not in known]
    if unknown or not types:
        from ..errors import EvaluationError

        raise EvaluationError(f"{source}: no event type {unknown[0] if unknown else '(none given)'!r}; "
                              f"event types: {sorted(known)}")
    return types


def truth_mask(path_or_name: str | Path, cube, events=None):
    """Where a sample's planted signal is, as the ground truth of the localisation metrics:
    a boolean ``DataArray(time, region)`` on the cube's frames and regions, ``True`` for
    each region an event moves during the event's frames.

    Args:
        path_or_name: the sample's ground-truth JSON (a path, or a shipped sample's name).
        cube: the attribution cube of the sample's video (or of part of it: its ``time``
            coordinate holds the video's frame indices; events outside it are left out).
        events: the event types to mark; ``None``: ``SCORE_EVENTS``, the long eye
            closures that carry the score. E.g. ``["smile"]`` or ``["blink",
            "long_closure"]``. A ``"global"`` event (lighting) marks every region.

    Raises:
        EvaluationError: the JSON is for another video (another frame rate, or fewer
            frames than the cube's video; the message names both), or an event type
            is unknown.

    Example:
        >>> import numpy as np, expresso_xai as ex
        >>> from expresso_xai.cube import make_cube
        >>> from expresso_xai.regions import PARTITION_REGIONS
        >>> cube = make_cube(np.zeros((1, 250, 12)), explainers=["saliency"], time=np.arange(250),
        ...                  seconds=np.arange(250) / 25, regions=list(PARTITION_REGIONS),
        ...                  region_area=np.ones((250, 12)), face_found=np.ones(250, bool), prediction=0.0)
        >>> truth = ex.samples.truth_mask("participant_high", cube)
        >>> truth.sel(time=70).values.nonzero()[0].tolist(), int(truth.any("region").sum())
        ([0, 1], 108)
    """
    from ..evaluate.truth import blank_truth, check_truth_video

    source = str(path_or_name)
    truth = load_truth(path_or_name)
    check_truth_video(cube, int(truth["n_frames"]), float(truth["fps"]), source)
    types = _event_types(events, truth, source)
    mask = blank_truth(cube)
    frames = cube.time.values
    regions = [str(region) for region in cube.region.values]
    for event in truth["events"]:
        if event["type"] not in types:
            continue
        inside = frames[(frames >= int(event["start"])) & (frames < int(event["end"]))]
        named = regions if "global" in event["regions"] else [r for r in event["regions"] if r in regions]
        mask.loc[{"time": inside, "region": named}] = True
    mask.attrs = {"source": source, "events": ",".join(types)}
    return mask


def make_cohort(
    out_dir: str | Path,
    n_participants: int = 24,
    seconds: float = 10.0,
    size: int = 192,
    seed: int = 0,
    splits: tuple[float, float, float] = (0.6, 0.2, 0.2),
    progress: bool = True,
) -> Path:
    """Generate a synthetic cohort and its ``manifest.csv`` (video, participant, score, split,
    openface: the synthetic OpenFace CSV with the true landmarks and action units).

    Scores are spread evenly over 0–63 and shuffled; each participant's score is planted
    in long eye closures, everything else is independent of it. Participants already
    written are kept, so an interrupted run resumes where it stopped.

    Example:
        >>> import tempfile, expresso_xai as ex
        >>> manifest = ex.samples.make_cohort(tempfile.mkdtemp(), n_participants=2, seconds=1, progress=False)
        >>> manifest.read_text().splitlines()[0]
        'video,participant,score,split,openface'
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    targets = np.linspace(0, SCORE_MAX, n_participants)
    rng.shuffle(targets)
    n_train = int(round(splits[0] * n_participants))
    n_val = int(round(splits[1] * n_participants))
    split_of = ["train"] * n_train + ["val"] * n_val + ["test"] * (n_participants - n_train - n_val)
    rows = []
    for i in tqdm(range(n_participants), desc="cohort", unit="participant", disable=not progress):
        name = f"p{i:03d}"
        spec = SampleSpec(seed=seed * 100_003 + i, seconds=seconds, size=size, score=float(targets[i]),
                          face_scale=float(rng.uniform(0.95, 1.1)), name=name)
        truth_path = out_dir / f"{name}.json"
        truth = None
        if all((out_dir / f"{name}{suffix}").exists() for suffix in _SUFFIX.values()):
            truth = json.loads(truth_path.read_text())
            if truth.get("spec") != json.loads(json.dumps(asdict(spec))):
                truth = None  # written with other settings: make it again
        if truth is None:
            write_sample(render(spec), out_dir, name)
            truth = json.loads(truth_path.read_text())
        rows.append({"video": f"{name}.mp4", "participant": name, "score": truth["score"], "split": split_of[i],
                     "openface": f"{name}.openface.csv"})
    manifest = out_dir / "manifest.csv"
    with atomic_path(manifest) as partial, partial.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["video", "participant", "score", "split", "openface"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
