"""When things happen in a synthetic video: the long eye closures that carry the score,
the distractor events drawn independently of it, the head motion, and the ground truth
that records them frame by frame."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from .spec import EVENT_REGIONS, FACE_PROVENANCE, GENERATOR_VERSION, MAX_CLOSED_FRACTION, SCORE_MAX, SampleSpec

#: Distractor events: kind, the track it drives, the spec's rate field, duration range (s),
#: peak intensity range, ramp in frames (``None``: half the event, a blink's quick close-open).
_DISTRACTORS = (
    ("blink", "eye_closure", "blink_rate", (0.16, 0.28), (0.85, 1.0), None),
    ("mouth_open", "mouth_open", "mouth_rate", (0.3, 1.5), (0.4, 1.0), 4),
    ("smile", "smile", "smile_rate", (1.0, 3.0), (0.5, 1.0), 4),
    ("brow_raise", "brow_raise", "raise_rate", (0.5, 1.5), (0.5, 1.0), 4),
    ("brow_furrow", "brow_furrow", "furrow_rate", (0.5, 1.5), (0.5, 1.0), 4),
)


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


def _event(kind: str, start: int, end: int, intensity: float) -> dict:
    return {"type": kind, "start": start, "end": end, "intensity": round(intensity, 3)}


def _long_closures(spec: SampleSpec, rng, n_frames: int, tracks: dict, busy_eyes: np.ndarray) -> list[dict]:
    """Long eye closures, placed until their held time reaches the score's fraction."""
    fps = spec.fps
    closed_target = 0.0 if spec.score is None else MAX_CLOSED_FRACTION * np.clip(spec.score, 0, SCORE_MAX) / SCORE_MAX
    events = []
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
        events.append(_event("long_closure", start, start + length, peak))
        held += length
    return events


def _distractors(spec: SampleSpec, rng, n_frames: int, tracks: dict, busy_eyes: np.ndarray) -> list[dict]:
    """Blinks (kept clear of the long closures), mouth, smile and brow events."""
    events = []
    for kind, track, rate, durations, peaks, ramp in _DISTRACTORS:
        busy = busy_eyes if kind == "blink" else None
        for start, end in _place_events(rng, n_frames, getattr(spec, rate), spec.fps, durations, busy):
            peak = float(rng.uniform(*peaks))
            profile = _profile(n_frames, start, end, peak, (end - start) / 2 if ramp is None else ramp)
            tracks[track] = np.maximum(tracks[track], profile)
            events.append(_event(kind, start, end, peak))
    return events


def _lighting(spec: SampleSpec, rng, n_frames: int, tracks: dict) -> list[dict]:
    """At most one dip of the light, over a quarter to a half of the video."""
    lighting = spec.lighting_change if spec.lighting_change is not None else bool(rng.random() < 0.5)
    if not (lighting and n_frames > 20):
        return []
    length = int(rng.integers(n_frames // 4, n_frames // 2 + 1))
    start = int(rng.integers(0, n_frames - length + 1))
    gain = float(rng.uniform(0.7, 0.85))
    dip = _profile(n_frames, start, start + length, 1.0, 8)
    tracks["lighting"] = 1.0 - (1.0 - gain) * dip
    return [_event("lighting", start, start + length, 1 - gain)]


def schedule(spec: SampleSpec, rng: np.random.Generator, n_frames: int) -> tuple[dict, list[dict]]:
    """The intensity track of each expression over frames (and the lighting gain), and
    the events sorted by start, each with the regions it moves.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.samples import SampleSpec
        >>> from expresso_xai.samples.events import schedule
        >>> tracks, events = schedule(SampleSpec(score=63), np.random.default_rng(0), 250)
        >>> sorted(tracks), {e["type"] for e in events} >= {"long_closure"}
        (['brow_furrow', 'brow_raise', 'eye_closure', 'lighting', 'mouth_open', 'smile'], True)
    """
    tracks = {k: np.zeros(n_frames) for k in ("eye_closure", "brow_raise", "brow_furrow", "mouth_open", "smile")}
    tracks["lighting"] = np.ones(n_frames)
    busy_eyes = np.zeros(n_frames, bool)
    events = _long_closures(spec, rng, n_frames, tracks, busy_eyes)
    events += _distractors(spec, rng, n_frames, tracks, busy_eyes)
    events += _lighting(spec, rng, n_frames, tracks)
    for event in events:
        event["regions"] = EVENT_REGIONS[event["type"]]
    events.sort(key=lambda e: (e["start"], e["type"]))
    return tracks, events


def head_motion(rng: np.random.Generator, n_frames: int, fps: float, amplitude: float) -> dict[str, np.ndarray]:
    """Smooth random rotation (deg), translation (fraction of size) and scale per frame.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.samples.events import head_motion
        >>> motion = head_motion(np.random.default_rng(0), 50, 25.0, amplitude=1.0)
        >>> sorted(motion), motion["angle"].shape
        (['angle', 'dx', 'dy', 'scale'], (50,))
    """
    t = np.arange(n_frames) / fps
    out = {}
    for key, amp in (("angle", 3.0), ("dx", 0.03), ("dy", 0.025), ("scale", 0.025)):
        signal = np.zeros(n_frames)
        for _ in range(3):
            freq = rng.uniform(0.05, 0.4)
            signal += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
        out[key] = amplitude * amp * signal / 2.0
    return out


def ground_truth(spec: SampleSpec, tracks: dict, events: list[dict], frame_size: tuple[int, int]) -> dict:
    """The ground-truth record of a rendered video: its score by the planted rule, its
    events and every track frame by frame, the spec and the face's provenance.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.samples import SampleSpec
        >>> from expresso_xai.samples.events import ground_truth, schedule
        >>> spec = SampleSpec(score=63, seconds=4)
        >>> truth = ground_truth(spec, *schedule(spec, np.random.default_rng(0), 100), (192, 192))
        >>> truth["n_frames"], truth["score"] > 50
        (100, True)
    """
    n_frames = len(tracks["eye_closure"])
    closed = tracks["eye_closure"] >= 0.5
    long_frames = np.zeros(n_frames, bool)
    for event in events:
        if event["type"] == "long_closure":
            long_frames[event["start"] : event["end"]] = True
    closed_fraction = float((closed & long_frames).mean())
    score = None
    if spec.score is not None:
        score = float(min(SCORE_MAX, round(SCORE_MAX * closed_fraction / MAX_CLOSED_FRACTION, 2)))
    return {
        "generator": "expresso_xai.samples",
        "generator_version": GENERATOR_VERSION,
        "name": spec.name,
        "spec": asdict(spec),
        "fps": float(spec.fps),
        "n_frames": n_frames,
        "frame_size": list(frame_size),
        "score": score,
        "closed_fraction": round(closed_fraction, 4),
        "score_rule": f"score = min(63, 63 * closed_fraction / {MAX_CLOSED_FRACTION}); closed_fraction = "
                      "share of frames inside long closures with eye_closure >= 0.5",
        "face_image": FACE_PROVENANCE,
        "events": events,
        "tracks": {name: [round(float(v), 3) for v in track] for name, track in tracks.items()},
        "eye_closed": closed.astype(int).tolist(),
    }
