"""Following one face through a video: detect every few frames, track in between.

Detection is the slow part of landmarking (dlib's HOG detector takes ~17 ms on a
640×480 frame, fitting 68 points in a known box under 1 ms). So the detector runs every
``detect_every`` frames, and in between the face box is carried forward by pyramidal
Lucas–Kanade optical flow of the landmarks, then the landmarks are fitted afresh in it.
Tracking hands back to the detector as soon as it degrades: too few landmarks tracked
consistently forward and backward, the fitted shape drifting from the flowed one, or one
landmark group (eyes, brows, nose, mouth, jaw) losing track on its own.

One subject is followed (``expresso_xai.faces.subject``): another face is never taken
for it. While it is out of view the detector backs off (:class:`_Search`) and bisects
back to the exact frame where it returns.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import FaceTrackError, NoFaceWarning, OtherFacesWarning
from ..video import Video, stream_video
from .facetrack import QUALITY_GROUPS, STABLE_POINTS, FaceTrack
from .landmarkers import Detection, Landmarker, default_landmarker
from .subject import CONTINUITY_MISMATCH, Signature, SubjectMemory, check_subject, overlap, pick_first

log = logging.getLogger(__name__)


_LK_PARAMS = dict(winSize=(15, 15), maxLevel=2)
#: The fastest a face is taken to move, in its inter-ocular distances per frame (12 per
#: second at 25 fps): a face found again farther from where the subject was is not it.
MAX_SPEED = 0.5
#: A tracked frame where a landmark group's quality falls below this is fitted again in a
#: detector's box (the tracked box came from flow that the occluder disturbed).
REFIT_QUALITY = 0.5
#: How far (in inter-ocular distances) a fitted landmark may be from where optical flow
#: carried it and still count as tracked: frame-to-frame fitting noise is ~1-2%.
GROUP_AGREEMENT = 0.06


def _frame_of_reference(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre of the stable points and inter-ocular distance of one ``(68, 2)`` shape."""
    centre = landmarks[STABLE_POINTS].mean(axis=0)
    scale = float(np.linalg.norm(landmarks[36] - landmarks[45]))
    return centre, max(scale, 1.0)


class _Frame(NamedTuple):
    """What the tracker says about one frame."""

    landmarks: np.ndarray | None  # None: no face
    score: float = 0.0
    box: tuple[float, ...] = (np.nan,) * 4
    detected: bool = False
    n_faces: int = 0
    track_id: int = -1
    quality: np.ndarray | None = None  # per group of QUALITY_GROUPS; None: not measured


class _Flow(NamedTuple):
    """The previous frame's landmarks flowed into a window of the next frame."""

    origin: np.ndarray  # the window's top-left corner in the frame
    gray: np.ndarray  # the window, grayscale
    previous: np.ndarray  # (68, 2) previous landmarks, in the window
    flowed: np.ndarray  # (68, 2) where they flowed, in the window
    consistent: np.ndarray  # (68,) tracked forward and back to where they started
    scale: float  # previous inter-ocular distance

    def at(self, points) -> np.ndarray:
        """Where ``points`` flowed, in frame pixels."""
        return self.flowed[points] + self.origin

    def quality(self, landmarks: np.ndarray) -> np.ndarray:
        """Per group: the fraction of its points flowed consistently to within
        ``GROUP_AGREEMENT`` IODs of where the landmarks were fitted."""
        agree = np.linalg.norm(landmarks - self.at(slice(None)), axis=1) < GROUP_AGREEMENT * self.scale
        ok = self.consistent & agree
        return np.array([ok[list(points)].mean() for points in QUALITY_GROUPS.values()], dtype=np.float32)


@dataclass
class _Probe:
    """One detector run on a frame and the subject among its faces (``chosen``), if any."""

    gray: np.ndarray
    detections: list[Detection]
    chosen: Detection | None = None
    landmarks: np.ndarray | None = None
    continued: bool = False  # the subject followed on from the previous frame


class _Tracker:
    """State of one face track across frames (and across streamed chunks)."""

    #: the subject's signature is taken again every this many detections while followed
    REMEMBER_EVERY = 4

    def __init__(self, landmarker: Landmarker, detect_every: int, min_tracked: float, max_drift: float,
                 subject="largest"):
        import cv2

        self._cv2 = cv2
        self.landmarker = landmarker
        self.detect_every = max(1, int(detect_every))
        self.min_tracked = min_tracked
        self.max_drift = max_drift
        self.subject = subject
        self.memory = SubjectMemory()
        self.prev_frame: np.ndarray | None = None
        self.prev_landmarks: np.ndarray | None = None
        self.last_box: tuple[float, ...] | None = None
        self.box_in_face_frame: np.ndarray | None = None  # detector box relative to the shape
        self.since_detect = 0
        self.detections_followed = 0
        self.last_score = 0.0
        self.last_n_faces = 0
        self.track_id = -1
        self.index = 0  # of the next frame to step
        self.last_seen: tuple[int, np.ndarray, float] | None = None  # frame, centre, IOD

    def _fit(self, gray: np.ndarray, detection: Detection) -> np.ndarray:
        return np.asarray(self.landmarker.fit(gray, detection.box), dtype=np.float32)

    def probe(self, frame: np.ndarray, ahead: int = 0) -> _Probe:
        """Run the detector on a frame (``ahead`` of the next one to step) and find the
        subject among its faces, without changing the tracker's state (the search probes
        frames out of order)."""
        gray = _gray(frame)
        detections = list(self.landmarker.detect(gray))
        if self.prev_landmarks is not None and detections:
            best = max(detections, key=lambda d: overlap(d.box, self.last_box))
            if overlap(best.box, self.last_box) > 0.2:
                landmarks = self._fit(gray, best)
                # A cut to another person in the same place overlaps too: a face that
                # looks clearly unlike the subject does not continue it.
                if self.memory.mismatch(Signature.of(frame, landmarks), looks_only=True) < CONTINUITY_MISMATCH:
                    return _Probe(gray, detections, best, landmarks, continued=True)
        if not self.memory.known:
            chosen = pick_first(detections, self.subject)
            return _Probe(gray, detections, chosen, None if chosen is None else self._fit(gray, chosen))
        # Lost: a face is the subject again only if it matches what the subject looked
        # like; the cheap parts of the signature first, the face descriptor for the rest.
        best, best_landmarks, best_mismatch = None, None, 1.0
        for detection in detections:
            landmarks = self._fit(gray, detection)
            if not self._reachable(landmarks, ahead):
                continue
            if self.memory.mismatch(Signature.of(frame, landmarks)) >= best_mismatch:
                continue
            mismatch = self.memory.mismatch(Signature.of(frame, landmarks, self.landmarker))
            if mismatch < best_mismatch:
                best, best_landmarks, best_mismatch = detection, landmarks, mismatch
        return _Probe(gray, detections, best, best_landmarks)

    def _reachable(self, landmarks: np.ndarray, ahead: int) -> bool:
        """Whether the subject, last seen where and when it was, can be at ``landmarks``
        in the frame ``ahead`` of the next one: a look-alike across the room one frame
        after a loss is not the subject (a reflection, a twin, a poster)."""
        if self.last_seen is None:
            return True
        seen_at, centre, scale = self.last_seen
        frames = self.index + ahead - seen_at
        return bool(np.linalg.norm(_frame_of_reference(landmarks)[0] - centre) <= MAX_SPEED * scale * frames)

    def _detect(self, frame: np.ndarray, probe: _Probe | None = None) -> _Frame:
        probe = probe if probe is not None else self.probe(frame)
        self.last_n_faces = len(probe.detections)
        self.since_detect = 0
        if probe.chosen is None:
            return _Frame(None, detected=True, n_faces=self.last_n_faces)
        if not probe.continued:
            self.track_id += 1
            self.detections_followed = 0
        if self.detections_followed % self.REMEMBER_EVERY == 0:
            if probe.continued:
                self.memory.remember(Signature.of(frame, probe.landmarks))
            else:  # a stretch's first sighting: its face descriptor, if ever needed
                self.memory.remember(Signature.later(frame, probe.landmarks, self.landmarker), stretch_start=True)
        self.detections_followed += 1
        centre, scale = _frame_of_reference(probe.landmarks)
        box = np.asarray(probe.chosen.box, dtype=np.float64)
        self.box_in_face_frame = (box - np.tile(centre, 2)) / scale
        self.last_score = probe.chosen.score
        self.last_box = probe.chosen.box
        return _Frame(probe.landmarks, probe.chosen.score, probe.chosen.box, True, self.last_n_faces, self.track_id)

    def _roi(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """Window around the previous face, generous enough for motion and the fit."""
        _, scale = _frame_of_reference(self.prev_landmarks)
        low = self.prev_landmarks.min(axis=0) - scale
        high = self.prev_landmarks.max(axis=0) + scale
        x0, y0 = max(0, int(low[0])), max(0, int(low[1]))
        x1, y1 = min(shape[1], int(np.ceil(high[0])) + 1), min(shape[0], int(np.ceil(high[1])) + 1)
        return x0, y0, x1, y1

    def _flow(self, frame: np.ndarray) -> _Flow | None:
        """The previous frame's landmarks carried into ``frame`` by optical flow."""
        cv2 = self._cv2
        # Flow and fit run on a window around the face: pyramids of the whole frame
        # would cost more than the detector saves.
        x0, y0, x1, y1 = self._roi(frame.shape)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        origin = np.array([x0, y0], dtype=np.float32)
        previous_gray = _gray(self.prev_frame[y0:y1, x0:x1])
        gray = _gray(frame[y0:y1, x0:x1])
        previous = (self.prev_landmarks - origin).reshape(-1, 1, 2).astype(np.float32)
        flowed, status, _ = cv2.calcOpticalFlowPyrLK(previous_gray, gray, previous, None, **_LK_PARAMS)
        if flowed is None:
            return None
        back, status_back, _ = cv2.calcOpticalFlowPyrLK(gray, previous_gray, flowed, None, **_LK_PARAMS)
        _, scale = _frame_of_reference(self.prev_landmarks)
        fb_error = np.linalg.norm((back - previous).reshape(-1, 2), axis=1)
        consistent = (status.ravel() == 1) & (status_back.ravel() == 1) & (fb_error < max(1.0, 0.02 * scale))
        return _Flow(origin, gray, previous.reshape(-1, 2), flowed.reshape(-1, 2), consistent, scale)

    def _track(self, frame: np.ndarray) -> tuple[_Frame, _Flow] | None:
        flow = self._flow(frame)
        if flow is None:
            return None
        # Only the points that keep still under expressions move the box: a closing
        # eyelid or an opening mouth does not read as the head moving.
        good = flow.consistent[STABLE_POINTS]
        tracked_fraction = float(good.mean())
        if tracked_fraction < self.min_tracked:
            return None
        shift = np.median((flow.flowed - flow.previous)[STABLE_POINTS][good], axis=0)
        centre, scale = _frame_of_reference(self.prev_landmarks)
        box = np.tile(centre + shift, 2) + self.box_in_face_frame * scale
        height, width = frame.shape[:2]
        margin = 0.25 * scale
        if box[0] < -margin or box[1] < -margin or box[2] > width + margin or box[3] > height + margin:
            return None  # leaving the frame: let the detector decide
        local_box = tuple(float(v) for v in box - np.tile(flow.origin, 2))
        landmarks = np.asarray(self.landmarker.fit(flow.gray, local_box), dtype=np.float32) + flow.origin
        drift = np.median(np.linalg.norm(landmarks[STABLE_POINTS] - flow.at(STABLE_POINTS), axis=1)) / scale
        if drift > self.max_drift:
            return None
        quality = flow.quality(landmarks)
        if quality.min() < REFIT_QUALITY:
            return None  # a group lost track: fit it afresh in the detector's box
        self.last_box = tuple(float(v) for v in box)
        return _Frame(landmarks, self.last_score * tracked_fraction, self.last_box, False,
                      self.last_n_faces, self.track_id, quality), flow

    def step(self, frame: np.ndarray, probe: _Probe | None = None) -> _Frame:
        """The next ``(H, W, 3)`` RGB frame: tracked, or detected (with ``probe``, the
        detector's run on it already made)."""
        result, flow = None, None
        if probe is None and self.prev_landmarks is not None and self.since_detect + 1 < self.detect_every:
            tracked = self._track(frame)
            if tracked is not None:
                (result, flow), self.since_detect = tracked, self.since_detect + 1
        if result is None:
            result = self._detect(frame, probe)
            if result.landmarks is not None and self.prev_landmarks is not None and probe is None:
                flow = self._flow(frame)
        if flow is not None and result.quality is None:
            result = result._replace(quality=flow.quality(result.landmarks))
        self.prev_frame = frame
        self.prev_landmarks = result.landmarks
        if result.landmarks is not None:
            self.last_seen = (self.index, *_frame_of_reference(result.landmarks))
        self.index += 1
        return result


class _Search:
    """Frames in order through the tracker, with a detector that backs off while the
    subject is out of view.

    While the subject is followed every frame goes to :meth:`_Tracker.step`. Once it is
    lost, frames wait here and the detector runs on every ``gap``-th one, the gap doubling
    up to ``max_gap``; when it finds the subject, bisection over the frames waiting since
    the last run finds the first one where it does, and tracking starts there. At most
    ``max_gap`` frames wait, across streamed chunks. The bisection is exact when the subject,
    once in view, stays in view until the run that found it (it can miss a face that comes
    and goes within fewer than ``gap`` frames).
    """

    def __init__(self, tracker: _Tracker, max_gap: int):
        self.tracker = tracker
        self.max_gap = max(1, int(max_gap))
        self.gap = 1
        self.waiting: deque[np.ndarray] = deque()
        self.searching = True

    def push(self, frame: np.ndarray) -> list[_Frame]:
        """Results of the frames that are settled once ``frame`` is in (maybe none)."""
        self.waiting.append(frame)
        return self._advance(final=False)

    def finish(self) -> list[_Frame]:
        """Results of the frames still waiting at the end of the video."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> list[_Frame]:
        settled = []
        while self.waiting:
            if not self.searching:
                settled.append(self._step(self.waiting.popleft()))
            elif len(self.waiting) >= self.gap or final:
                settled.extend(self._search(min(self.gap, len(self.waiting))))
            else:
                break
        return settled

    def _step(self, frame: np.ndarray, probe: _Probe | None = None) -> _Frame:
        result = self.tracker.step(frame, probe)
        if result.landmarks is None:
            self.searching, self.gap = True, 1
        return result

    def _search(self, count: int) -> list[_Frame]:
        """Run the detector on the ``count``-th waiting frame; if the subject is there,
        bisect back to the first waiting frame where it is."""
        probes = {count - 1: self.tracker.probe(self.waiting[count - 1], count - 1)}
        if probes[count - 1].chosen is None:
            self.gap = min(2 * self.gap, self.max_gap)
            return self._absent(count, probes)
        absent, present = -1, count - 1
        while present - absent > 1:
            middle = (absent + present) // 2
            probes[middle] = self.tracker.probe(self.waiting[middle], middle)
            if probes[middle].chosen is None:
                absent = middle
            else:
                present = middle
        settled = self._absent(present, probes)
        self.searching, self.gap = False, 1
        settled.append(self._step(self.waiting.popleft(), probes[present]))
        return settled

    def _absent(self, count: int, probes: dict[int, _Probe]) -> list[_Frame]:
        """The first ``count`` waiting frames, without the subject."""
        settled = []
        for position in range(count):
            self.tracker.prev_frame = self.waiting.popleft()
            self.tracker.index += 1
            probe = probes.get(position)
            if probe is not None:
                self.tracker.last_n_faces = len(probe.detections)
            settled.append(_Frame(None, detected=probe is not None, n_faces=self.tracker.last_n_faces))
        return settled


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def track_faces(
    video: Video | str | Path,
    landmarker: Landmarker | None = None,
    detect_every: int = 15,
    *,
    subject="largest",
    max_search_gap: int | None = None,
    min_tracked: float = 0.6,
    max_drift: float = 0.08,
    progress: bool = True,
    chunk_size: int = 32,
) -> FaceTrack:
    """Find one face's 68 landmarks in every frame of a video.

    The detector runs on the first frame and then every ``detect_every`` frames; in
    between the face is tracked by optical flow and its landmarks fitted again in every
    frame (``detect_every=1`` detects in every frame). Tracking hands back to the
    detector early when fewer than ``min_tracked`` of the landmarks are tracked
    consistently forward and backward, or when the fitted landmarks drift more than
    ``max_drift`` inter-ocular distances from the flowed ones. Each landmark group (eyes,
    brows, nose, mouth, jaw) is also judged on its own: ``landmark_quality`` is the share
    of its points carried consistently by optical flow and agreeing with the fit, and a
    tracked frame where a group falls below 0.5 (a hand over the mouth) is fitted again in
    the detector's box. It also dips briefly where a group changes appearance fast (a
    mouth opening).

    One subject is followed: the face ``subject`` names at the first detection. Every
    later detection continues it only where it overlaps the face followed in the frame
    before. When the subject leaves the view its frames have ``face_found=False``; a face
    found afterwards is taken as the subject only if it is within reach of where the
    subject was last seen (half an inter-ocular distance per frame since) and matches its
    signature
    (face proportions, skin chromaticity and, with dlib, a face descriptor: see
    ``expresso_xai.faces.subject``), and its frames start a new ``track_id``. Other faces
    are never followed instead; an :class:`~expresso_xai.errors.OtherFacesWarning` says
    when there were any. ``n_faces`` records how many faces each detection saw.

    While no subject is in view the detector backs off: it runs on every 2nd, 4th, ...
    frame up to every ``max_search_gap``-th, and when it finds the subject again it
    bisects back over the frames it skipped to the first one showing it.

    Args:
        video: a :class:`~expresso_xai.Video`, or a path, which is streamed in chunks of
            ``chunk_size`` frames so long videos never sit in memory (32: the results do not
            depend on it, and 256 frames of a 640x480 video are 236 MB).
        landmarker: any :class:`~expresso_xai.faces.Landmarker`; default dlib's 68 points.
        detect_every: detector period in frames.
        subject: ``"largest"`` (default), the index of a face counted from the left (0 is
            the leftmost), or a box ``(x0, y0, x1, y1)``: the face overlapping it most. If
            the first frames with faces cannot say (fewer faces than the index, none on the
            box), the first frame that can does.
        max_search_gap: the longest detector period while no subject is in view; default
            ``detect_every`` (so ``detect_every=1`` detects in every frame).
        progress: show a tqdm progress bar.

    Returns:
        A :class:`FaceTrack` in source pixel coordinates. Frames without a face have
        ``face_found=False`` and NaN landmarks; a :class:`NoFaceWarning` says how many.

    Example:
        >>> import expresso_xai as ex
        >>> video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=30)
        >>> faces = ex.track_faces(video, progress=False)
        >>> int(faces.face_found.sum()), int(faces.detected.sum()), int(faces.track_id.max())
        (30, 2, 0)
    """
    subject = check_subject(subject)
    detect_every = _period(detect_every, "detect_every")
    max_search_gap = detect_every if max_search_gap is None else _period(max_search_gap, "max_search_gap")
    landmarker = landmarker if landmarker is not None else default_landmarker()
    tracker = _Tracker(landmarker, detect_every, min_tracked, max_drift, subject)
    if isinstance(video, Video):
        chunks, total, source = [video], video.n_frames, video.source
    else:
        chunks, total, source = stream_video(video, chunk_size=chunk_size), None, str(video)
    frames, frame_size = _run(_Search(tracker, max_search_gap), chunks, total, progress)
    track = FaceTrack(
        np.stack([np.full((68, 2), np.nan, np.float32) if f.landmarks is None else f.landmarks for f in frames]),
        np.array([f.landmarks is not None for f in frames]),
        np.array([f.score for f in frames]),
        np.array([f.box for f in frames], dtype=np.float32),
        np.array([f.n_faces for f in frames]),
        frame_size,
        np.array([f.detected for f in frames]),
        source=source,
        landmarker=getattr(landmarker, "name", type(landmarker).__name__),
        track_id=np.array([f.track_id for f in frames]),
        landmark_quality=np.stack([np.full(len(QUALITY_GROUPS), np.nan) if f.quality is None else f.quality
                                   for f in frames]) if frames else None,
    )
    _warn_faces(track, subject, source or "the video")
    return track


def _period(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise FaceTrackError(f"{name}={value!r}: give a whole number of frames, 1 or more")
    return int(value)


def _run(search: _Search, chunks, total: int | None, progress: bool) -> tuple[list[_Frame], tuple[int, int]]:
    """Every frame of the chunks through the search, in order; and the frame size."""
    from tqdm.auto import tqdm

    settled: list[_Frame] = []
    frame_size = None
    bar = tqdm(total=total, desc="landmarks", unit="frame", disable=not progress, leave=False)
    try:
        for chunk in chunks:
            if bar.total is None and chunk.n_frames_expected:
                bar.total = chunk.n_frames_expected
            frame_size = (chunk.height, chunk.width)
            for frame in chunk.frames:
                done = search.push(frame)
                settled.extend(done)
                bar.update(len(done))
        settled.extend(search.finish())
    finally:
        bar.close()
    return settled, frame_size


def _warn_faces(track: FaceTrack, subject, source: str) -> None:
    """Say how many frames have no face, and whether faces other than the subject were seen."""
    others = np.where(track.face_found, track.n_faces - 1, track.n_faces)
    if others.any():
        warnings.warn(
            f"faces other than the subject in {int((others > 0).sum())} of {len(track)} frames of {source} "
            f"(up to {int(track.n_faces.max())} faces at once): only the subject (subject={subject!r} at its "
            "first detection) is followed, and its frames out of view have no face",
            OtherFacesWarning, stacklevel=3)
    missing = int((~track.face_found).sum())
    if missing:
        warnings.warn(
            f"no face in {missing} of {len(track)} frames of {source}"
            + (" (none at all)" if missing == len(track) else ""),
            NoFaceWarning,
            stacklevel=3,
        )
