"""Synthetic face videos with known events, and a small cohort with a planted score.

Every frame is the public-domain NASA portrait of astronaut Eileen Collins shipped with
scikit-image (``skimage.data.astronaut()``), animated by piecewise-affine warps of its
68 landmarks: blinks and long eye closures, brow raise and furrow, mouth opening and
smile, head motion and lighting changes. A ground-truth JSON says which event happens in
which region at which frames, with what intensity, frame by frame.

In a cohort each participant has a score on a 0–63 scale (like BDI-II) that is a
function of eye-closure behaviour alone: the fraction of time the eyes are held closed
in long closures (score = 63 × fraction / 0.45, capped). Blinks, mouth, smile and brow
events are distractors drawn independently of the score. A model trained on the cohort
can only do well by looking at the eyes, which is what the explanation tests check.

Example:
    >>> import expresso_xai as ex
    >>> sample = ex.samples.render(ex.samples.SampleSpec(seed=3, seconds=1, score=40))
    >>> sample.frames.shape, sample.truth["fps"]
    ((25, 192, 192, 3), 25.0)
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FACE_PROVENANCE = (
    "skimage.data.astronaut(): portrait of astronaut Eileen Collins, NASA photograph "
    "(public domain, https://commons.wikimedia.org/wiki/File:Eileen_Collins.jpg), as "
    "shipped in scikit-image's data directory."
)
#: Closed-eye fraction of time that maps to the top of the score scale.
MAX_CLOSED_FRACTION = 0.45
SCORE_MAX = 63.0
GENERATOR_VERSION = 1

_FACE_CROP = (slice(20, 250), slice(110, 340))  # rows, cols of the astronaut image

#: Events and the regions they move.
EVENT_REGIONS = {
    "blink": ["right_eye", "left_eye"],
    "long_closure": ["right_eye", "left_eye"],
    "brow_raise": ["right_brow", "left_brow", "forehead"],
    "brow_furrow": ["right_brow", "left_brow"],
    "mouth_open": ["mouth", "jaw"],
    "smile": ["mouth", "right_cheek", "left_cheek"],
    "lighting": ["global"],
}
#: OpenFace action units each event drives (for the synthetic OpenFace CSV).
EVENT_ACTION_UNITS = {
    "eye_closure": ["AU45"], "brow_raise": ["AU01", "AU02"], "brow_furrow": ["AU04"],
    "mouth_open": ["AU25", "AU26"], "smile": ["AU06", "AU12"],
}
OPENFACE_AUS_R = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
                  "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45"]
OPENFACE_AUS_C = OPENFACE_AUS_R[:-1] + ["AU28", "AU45"]


@functools.lru_cache(maxsize=1)
def base_face() -> tuple[np.ndarray, np.ndarray]:
    """The portrait crop ``(230, 230, 3)`` uint8 RGB and its ``(68, 2)`` landmarks.

    Landmarks are found once with dlib's 68-point model (deterministic).
    """
    import cv2
    from skimage import data

    from .faces.landmarkers import DlibLandmarker

    image = np.ascontiguousarray(data.astronaut()[_FACE_CROP])
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    marker = DlibLandmarker()
    detections = marker.detect(gray)
    if not detections:  # pragma: no cover - the portrait is a clear frontal face
        raise RuntimeError("dlib found no face in the sample portrait")
    landmarks = marker.fit(gray, detections[0].box).astype(np.float64)
    return image, landmarks


@dataclass
class SampleSpec:
    """What one synthetic video shows.

    Attributes:
        seed: seeds every random choice (same spec, same pixels).
        seconds, fps, size: duration, frame rate and square frame side in pixels.
        score: 0–63 severity; sets the time spent in long eye closures. ``None``: no long
            closures.
        blink_rate, mouth_rate, smile_rate, raise_rate, furrow_rate: distractor events
            per minute, independent of the score.
        head_motion: amplitude scale of the smooth head motion (0 disables it).
        lighting_change: add one lighting change (``None``: decided by the seed).
        face_scale: size of the face relative to the default framing.
        name: participant or sample name written in the ground truth.
    """

    seed: int = 0
    seconds: float = 10.0
    fps: float = 25.0
    size: int = 192
    score: float | None = None
    blink_rate: float = 15.0
    mouth_rate: float = 10.0
    smile_rate: float = 4.0
    raise_rate: float = 5.0
    furrow_rate: float = 3.0
    head_motion: float = 1.0
    lighting_change: bool | None = None
    face_scale: float = 1.0
    noise: float = 2.0
    name: str = "sample"
    canvas: tuple[int, int] | None = None  # (height, width) to place the face in a larger frame


@dataclass
class Sample:
    """A rendered sample: frames ``(T, H, W, 3)`` uint8 RGB, true landmarks and truth."""

    frames: np.ndarray
    landmarks: np.ndarray
    truth: dict = field(default_factory=dict)

    def to_video(self):
        from .video import Video

        return Video(self.frames, float(self.truth["fps"]), source=self.truth.get("name"))


# --- event scheduling ---------------------------------------------------------------


def _place_events(rng, n_frames, rate_per_min, fps, duration_range, busy=None):
    """Random non-overlapping ``(start, end)`` frame intervals at a Poisson rate."""
    expected = rate_per_min * n_frames / fps / 60.0
    count = rng.poisson(expected) if expected > 0 else 0
    busy = np.zeros(n_frames, bool) if busy is None else busy
    events = []
    for _ in range(count * 4):
        if len(events) >= count:
            break
        length = int(round(rng.uniform(*duration_range) * fps))
        length = max(2, min(length, n_frames))
        start = int(rng.integers(0, max(1, n_frames - length + 1)))
        if busy[max(0, start - 3) : start + length + 3].any():
            continue
        busy[start : start + length] = True
        events.append((start, start + length))
    return sorted(events)


def _profile(n_frames, start, end, peak, ramp):
    """Intensity over frames: ramps of ``ramp`` frames up to ``peak`` and down."""
    t = np.arange(n_frames, dtype=np.float64)
    rise = np.clip((t - start + 1) / max(ramp, 1), 0, 1)
    fall = np.clip((end - t) / max(ramp, 1), 0, 1)
    return peak * np.minimum(rise, fall) * ((t >= start) & (t < end))


def _schedule(spec: SampleSpec, rng, n_frames: int):
    fps = spec.fps
    tracks = {k: np.zeros(n_frames) for k in ("eye_closure", "brow_raise", "brow_furrow", "mouth_open", "smile")}
    tracks["lighting"] = np.ones(n_frames)
    events = []
    busy_eyes = np.zeros(n_frames, bool)
    closed_target = 0.0 if spec.score is None else MAX_CLOSED_FRACTION * np.clip(spec.score, 0, SCORE_MAX) / SCORE_MAX
    # Long closures first, until their held time reaches the target fraction.
    held = 0
    attempts = 0
    while held < closed_target * n_frames and attempts < 400:
        attempts += 1
        length = int(round(rng.uniform(0.6, 2.0) * fps))
        length = min(length, int(np.ceil(closed_target * n_frames - held)) + 4, n_frames)
        length = min(max(length, int(0.5 * fps)), n_frames)
        start = int(rng.integers(0, max(1, n_frames - length + 1)))
        if busy_eyes[max(0, start - 4) : start + length + 4].any():
            continue
        busy_eyes[start : start + length] = True
        peak = float(rng.uniform(0.92, 1.0))
        tracks["eye_closure"] = np.maximum(tracks["eye_closure"], _profile(n_frames, start, start + length, peak, 3))
        events.append({"type": "long_closure", "start": start, "end": start + length, "intensity": round(peak, 3)})
        held += length
    for start, end in _place_events(rng, n_frames, spec.blink_rate, fps, (0.16, 0.28), busy_eyes):
        peak = float(rng.uniform(0.85, 1.0))
        tracks["eye_closure"] = np.maximum(tracks["eye_closure"], _profile(n_frames, start, end, peak, (end - start) / 2))
        events.append({"type": "blink", "start": start, "end": end, "intensity": round(peak, 3)})
    for kind, rate, durations, peaks in (
        ("mouth_open", spec.mouth_rate, (0.3, 1.5), (0.4, 1.0)),
        ("smile", spec.smile_rate, (1.0, 3.0), (0.5, 1.0)),
        ("brow_raise", spec.raise_rate, (0.5, 1.5), (0.5, 1.0)),
        ("brow_furrow", spec.furrow_rate, (0.5, 1.5), (0.5, 1.0)),
    ):
        for start, end in _place_events(rng, n_frames, rate, fps, durations):
            peak = float(rng.uniform(*peaks))
            tracks[kind] = np.maximum(tracks[kind], _profile(n_frames, start, end, peak, 4))
            events.append({"type": kind, "start": start, "end": end, "intensity": round(peak, 3)})
    lighting = spec.lighting_change if spec.lighting_change is not None else bool(rng.random() < 0.5)
    if lighting and n_frames > 20:
        length = int(rng.integers(n_frames // 4, n_frames // 2 + 1))
        start = int(rng.integers(0, n_frames - length + 1))
        gain = float(rng.uniform(0.7, 0.85))
        dip = _profile(n_frames, start, start + length, 1.0, 8)
        tracks["lighting"] = 1.0 - (1.0 - gain) * dip
        events.append({"type": "lighting", "start": start, "end": start + length, "intensity": round(1 - gain, 3)})
    for event in events:
        event["regions"] = EVENT_REGIONS[event["type"]]
    events.sort(key=lambda e: (e["start"], e["type"]))
    return tracks, events


# --- geometry -----------------------------------------------------------------------


def _deform(base: np.ndarray, iod: float, up: np.ndarray, across: np.ndarray, k: dict) -> np.ndarray:
    """Landmarks with the expression of one frame (``k``: track values at that frame)."""
    L = base.copy()
    closure = k["eye_closure"]
    for upper, lower in (((37, 41), (38, 40)), ((43, 47), (44, 46))):
        for u, l in (upper, lower):
            gap = base[l] - base[u]
            L[u] = base[u] + 0.78 * closure * gap
            L[l] = base[l] - 0.20 * closure * gap
    raise_ = k["brow_raise"]
    L[17:27] += -up * 0.13 * iod * raise_
    L[[37, 38, 43, 44]] += -up * 0.02 * iod * raise_ * (1 - closure)
    furrow = k["brow_furrow"]
    for i, w in zip(range(17, 27), (0.2, 0.5, 0.8, 1.0, 1.0, 1.0, 1.0, 0.8, 0.5, 0.2)):
        L[i] += up * 0.06 * iod * furrow * w
    L[[19, 20, 21]] += across * 0.04 * iod * furrow
    L[[22, 23, 24]] -= across * 0.04 * iod * furrow
    smile = k["smile"]
    L[48] += (-across * 0.07 - up * -0.06) * iod * smile
    L[54] += (across * 0.07 - up * -0.06) * iod * smile
    L[[49, 59, 60]] += (-across * 0.035 + up * 0.03) * iod * smile
    L[[53, 55, 64]] += (across * 0.035 + up * 0.03) * iod * smile
    opening = k["mouth_open"]
    down = -up
    for i, w in zip(range(55, 60), (0.8, 1.0, 1.0, 1.0, 0.8)):
        L[i] += down * 0.30 * iod * opening * w
    L[[65, 66, 67]] += down * 0.28 * iod * opening
    for i, w in zip(range(4, 13), (0.2, 0.5, 0.75, 0.9, 1.0, 0.9, 0.75, 0.5, 0.2)):
        L[i] += down * 0.22 * iod * opening * w
    return L


def _affine_matrices(src_tri: np.ndarray, dst_tri: np.ndarray) -> np.ndarray:
    """``(K, 2, 3)`` affine maps taking each dst triangle onto its src triangle."""
    ones = np.ones((len(dst_tri), 3, 1))
    dst_h = np.concatenate([dst_tri, ones], axis=2)  # (K, 3, 3)
    # Solve dst_h @ M^T = src for each triangle; near-degenerate ones fall back to lstsq.
    matrices = np.empty((len(dst_tri), 2, 3))
    det = np.linalg.det(dst_h)
    good = np.abs(det) > 1e-6
    if good.any():
        matrices[good] = np.linalg.solve(dst_h[good], src_tri[good]).transpose(0, 2, 1)
    for i in np.nonzero(~good)[0]:
        matrices[i] = np.linalg.lstsq(dst_h[i], src_tri[i], rcond=None)[0].T
    return matrices


def _warp(image, src_points, dst_points, triangles, out_shape):
    """Piecewise-affine warp: output pixels in each dst triangle sample the src triangle."""
    import cv2

    ids = np.zeros(out_shape, np.int32)
    scale = 16
    areas = []
    for k, tri in enumerate(triangles):
        polygon = np.round(dst_points[tri] * scale).astype(np.int32).reshape(-1, 1, 2)
        areas.append(abs(cv2.contourArea(dst_points[tri].astype(np.float32))))
        if areas[-1] > 1e-3:
            cv2.fillConvexPoly(ids, polygon, k + 1, lineType=cv2.LINE_8, shift=4)
    matrices = _affine_matrices(src_points[triangles], dst_points[triangles])
    matrices = np.concatenate([np.zeros((1, 2, 3)), matrices])
    matrices[0] = [[1, 0, 0], [0, 1, 0]]
    ys, xs = np.mgrid[0 : out_shape[0], 0 : out_shape[1]].astype(np.float64)
    m = matrices[ids]
    map_x = (m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2]).astype(np.float32)
    map_y = (m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2]).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _head_motion(rng, n_frames, fps, amplitude):
    """Smooth random rotation (deg), translation (fraction of size) and scale."""
    t = np.arange(n_frames) / fps
    out = {}
    for key, amp in (("angle", 3.0), ("dx", 0.03), ("dy", 0.025), ("scale", 0.025)):
        signal = np.zeros(n_frames)
        for _ in range(3):
            freq = rng.uniform(0.05, 0.4)
            signal += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
        out[key] = amplitude * amp * signal / 2.0
    return out


# --- rendering ----------------------------------------------------------------------


def render(spec: SampleSpec, progress: bool = False) -> Sample:
    """Render the frames, true landmarks and ground truth of one synthetic video.

    Deterministic: the same spec gives the same pixels.

    Example:
        >>> import expresso_xai as ex
        >>> sample = ex.samples.render(ex.samples.SampleSpec(seed=1, seconds=2, score=63))
        >>> sample.landmarks.shape, sample.truth["score"] > 30
        ((50, 68, 2), True)
    """
    import cv2
    from scipy.spatial import Delaunay
    from tqdm.auto import tqdm

    rng = np.random.default_rng(spec.seed)
    image, base = base_face()
    n_frames = int(round(spec.seconds * spec.fps))
    if n_frames < 1:
        raise ValueError("a sample needs at least one frame")
    tracks, events = _schedule(spec, rng, n_frames)
    motion = _head_motion(rng, n_frames, spec.fps, spec.head_motion)

    # Participant identity: small changes of face shape and skin tone.
    iod = float(np.linalg.norm(base[45] - base[36]))
    up = (base[27] - base[8]) / np.linalg.norm(base[27] - base[8])
    across = (base[45] - base[36]) / iod
    identity = base.copy()
    identity[36:48] += np.where(np.arange(36, 48)[:, None] < 42, -1, 1) * across * rng.normal(0, 0.02) * iod
    identity[0:17] += (np.arange(17)[:, None] - 8) / 8 * across * rng.normal(0, 0.03) * iod
    identity[48:68] += (identity[48:68] - identity[48:68].mean(0)) * rng.normal(0, 0.05)
    tone = 1.0 + rng.normal(0, 0.06, size=3)

    height, width = spec.canvas if spec.canvas else (spec.size, spec.size)
    side = min(height, width) if spec.canvas is None else spec.size
    face_scale = spec.face_scale * side / image.shape[0]
    centre_out = np.array([width / 2.0, height / 2.0]) + rng.normal(0, 0.02, 2) * side
    centre_in = np.array([image.shape[1] / 2.0, image.shape[0] / 2.0])

    # Control points: landmarks plus a ring and a frame of fixed points.
    ring = [centre_in + 1.6 * r * np.array([np.cos(a), np.sin(a)])
            for r in (image.shape[0] * 0.42,) for a in np.linspace(0, 2 * np.pi, 16, endpoint=False)]
    span = 4.0 * max(height, width) / face_scale
    frame_pts = [centre_in + span * np.array(p) for p in
                 [(-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0)]]
    fixed = np.array(ring + frame_pts)
    src_points = np.concatenate([base, fixed])
    triangles = Delaunay(src_points).simplices

    frames = np.empty((n_frames, height, width, 3), np.uint8)
    true_landmarks = np.empty((n_frames, 68, 2), np.float32)
    xs = np.linspace(-1, 1, width)[None, :, None]
    side_light = rng.uniform(-0.12, 0.12)
    for t in tqdm(range(n_frames), desc=spec.name, disable=not progress, leave=False):
        k = {name: track[t] for name, track in tracks.items()}
        expression = _deform(identity, iod, up, across, k)
        angle = np.deg2rad(motion["angle"][t])
        scale = face_scale * (1 + motion["scale"][t])
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        offset = centre_out + np.array([motion["dx"][t] * side, motion["dy"][t] * side])
        to_out = lambda p: (p - centre_in) @ rotation.T + offset  # noqa: E731
        dst_points = to_out(np.concatenate([expression, fixed]))
        frame = _warp(image, src_points, dst_points, triangles, (height, width)).astype(np.float32)
        dst_landmarks = dst_points[:68]
        # Closed lids show a lash line; an open mouth shows its dark inside.
        for first in (36, 42):
            closure = k["eye_closure"]
            if closure > 0.6:
                lid = dst_landmarks[[first, first + 1, first + 2, first + 3]]
                shade = np.zeros((height, width), np.uint8)
                cv2.polylines(shade, [np.round(lid * 16).astype(np.int32).reshape(-1, 1, 2)], False, 255,
                              thickness=max(1, int(round(scale * 2))), lineType=cv2.LINE_AA, shift=4)
                weight = (shade[..., None] / 255.0) * min(1.0, (closure - 0.6) / 0.3) * 0.6
                frame = frame * (1 - weight) + np.array([60, 35, 30]) * weight
        if k["mouth_open"] > 0.15:
            inner = dst_landmarks[60:68]
            shade = np.zeros((height, width), np.uint8)
            cv2.fillPoly(shade, [np.round(inner * 16).astype(np.int32).reshape(-1, 1, 2)], 255,
                         lineType=cv2.LINE_AA, shift=4)
            weight = (shade[..., None] / 255.0) * min(1.0, k["mouth_open"] * 1.5) * 0.75
            frame = frame * (1 - weight) + np.array([45, 20, 25]) * weight
        light = k["lighting"] * (1.0 + side_light * xs)
        frame = frame * tone * light + rng.normal(0, spec.noise, frame.shape)
        frames[t] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
        true_landmarks[t] = dst_landmarks

    closed = tracks["eye_closure"] >= 0.5
    long_frames = np.zeros(n_frames, bool)
    for event in events:
        if event["type"] == "long_closure":
            long_frames[event["start"] : event["end"]] = True
    closed_fraction = float((closed & long_frames).mean())
    score = None if spec.score is None else float(min(SCORE_MAX, round(SCORE_MAX * closed_fraction / MAX_CLOSED_FRACTION, 2)))
    truth = {
        "generator": "expresso_xai.samples",
        "generator_version": GENERATOR_VERSION,
        "name": spec.name,
        "spec": asdict(spec),
        "fps": float(spec.fps),
        "n_frames": n_frames,
        "frame_size": [height, width],
        "score": score,
        "closed_fraction": round(closed_fraction, 4),
        "score_rule": f"score = min(63, 63 * closed_fraction / {MAX_CLOSED_FRACTION}); closed_fraction = "
                      "share of frames inside long closures with eye_closure >= 0.5",
        "face_image": FACE_PROVENANCE,
        "events": events,
        "tracks": {name: [round(float(v), 3) for v in track] for name, track in tracks.items()},
        "eye_closed": closed.astype(int).tolist(),
    }
    return Sample(frames, true_landmarks, truth)


def write_video(frames: np.ndarray, path: str | Path, fps: float) -> Path:
    """Encode ``(T, H, W, 3)`` RGB frames as MPEG-4 (``.mp4``, codec mp4v) or MJPG (``.avi``)."""
    import cv2

    from .errors import VideoReadError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), fourcc, float(fps), (width, height))
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
    with path.open("w", newline="") as handle:
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
    """Write ``NAME.mp4``, ``NAME.json`` (ground truth) and ``NAME.openface.csv``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or sample.truth["name"]
    paths = {
        "video": write_video(sample.frames, out_dir / f"{name}.mp4", sample.truth["fps"]),
        "truth": out_dir / f"{name}.json",
        "openface": write_openface_csv(sample, out_dir / f"{name}.openface.csv"),
    }
    paths["truth"].write_text(json.dumps(sample.truth, indent=1))
    return paths


# --- shipped samples and cohorts ----------------------------------------------------

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
    repo = Path(__file__).resolve().parents[1] / "data_samples"
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
    """The ground-truth JSON of a sample (by shipped name or path)."""
    path = sample_path(str(path_or_name), "truth") if str(path_or_name) in SHIPPED else Path(path_or_name)
    return json.loads(Path(path).read_text())


def make_cohort(
    out_dir: str | Path,
    n_participants: int = 24,
    seconds: float = 10.0,
    size: int = 192,
    seed: int = 0,
    splits: tuple[float, float, float] = (0.6, 0.2, 0.2),
    progress: bool = True,
) -> Path:
    """Generate a synthetic cohort and its ``manifest.csv`` (video, participant, score, split).

    Scores are spread evenly over 0–63 and shuffled; each participant's score is planted
    in long eye closures, everything else is independent of it. Participants already
    written are kept, so an interrupted run resumes where it stopped.

    Example:
        >>> import tempfile, expresso_xai as ex
        >>> manifest = ex.samples.make_cohort(tempfile.mkdtemp(), n_participants=2, seconds=1, progress=False)
        >>> manifest.read_text().splitlines()[0]
        'video,participant,score,split'
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
        rows.append({"video": f"{name}.mp4", "participant": name, "score": truth["score"], "split": split_of[i]})
    manifest = out_dir / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["video", "participant", "score", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
