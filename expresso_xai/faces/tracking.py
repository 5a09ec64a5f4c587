"""Following one face through a video: detect every few frames, track in between.

Detection is the slow part of landmarking (dlib's HOG detector takes ~17 ms on a
640×480 frame, fitting 68 points in a known box under 1 ms). So the detector runs every
``detect_every`` frames, and in between the face box is carried forward by pyramidal
Lucas–Kanade optical flow of the landmarks, then the landmarks are fitted afresh in it.
Tracking hands back to the detector as soon as it degrades: too few landmarks tracked
consistently forward and backward, or the fitted shape drifting from the flowed one.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from ..errors import NoFaceWarning
from ..video import Video, stream_video
from .facetrack import STABLE_POINTS, FaceTrack
from .landmarkers import Detection, Landmarker, default_landmarker

log = logging.getLogger(__name__)


_LK_PARAMS = dict(winSize=(15, 15), maxLevel=2)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _frame_of_reference(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre of the stable points and inter-ocular distance of one ``(68, 2)`` shape."""
    centre = landmarks[STABLE_POINTS].mean(axis=0)
    scale = float(np.linalg.norm(landmarks[36] - landmarks[45]))
    return centre, max(scale, 1.0)


class _Tracker:
    """State of one face track across frames (and across streamed chunks)."""

    def __init__(self, landmarker: Landmarker, detect_every: int, min_tracked: float, max_drift: float):
        import cv2

        self._cv2 = cv2
        self.landmarker = landmarker
        self.detect_every = max(1, int(detect_every))
        self.min_tracked = min_tracked
        self.max_drift = max_drift
        self.prev_frame: np.ndarray | None = None
        self.prev_landmarks: np.ndarray | None = None
        self.last_box: tuple[float, ...] | None = None  # identity memory, survives loss
        self.box_in_face_frame: np.ndarray | None = None  # detector box relative to the shape
        self.since_detect = 0
        self.last_score = 0.0
        self.last_n_faces = 0

    def _choose(self, detections: list[Detection]) -> Detection:
        if self.last_box is not None:
            best = max(detections, key=lambda d: _iou(d.box, self.last_box))
            if _iou(best.box, self.last_box) > 0.2:
                return best
        return max(detections, key=lambda d: d.area)

    def _detect(self, gray: np.ndarray):
        detections = self.landmarker.detect(gray)
        self.last_n_faces = len(detections)
        self.since_detect = 0
        if not detections:
            self.prev_landmarks = None
            return None
        chosen = self._choose(detections)
        landmarks = np.asarray(self.landmarker.fit(gray, chosen.box), dtype=np.float32)
        centre, scale = _frame_of_reference(landmarks)
        box = np.asarray(chosen.box, dtype=np.float64)
        self.box_in_face_frame = (box - np.tile(centre, 2)) / scale
        self.last_score = chosen.score
        self.last_box = chosen.box
        return landmarks, chosen.score, chosen.box, True

    def _roi(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """Window around the previous face, generous enough for motion and the fit."""
        _, scale = _frame_of_reference(self.prev_landmarks)
        low = self.prev_landmarks.min(axis=0) - scale
        high = self.prev_landmarks.max(axis=0) + scale
        x0, y0 = max(0, int(low[0])), max(0, int(low[1]))
        x1, y1 = min(shape[1], int(np.ceil(high[0])) + 1), min(shape[0], int(np.ceil(high[1])) + 1)
        return x0, y0, x1, y1

    def _track(self, frame: np.ndarray):
        cv2 = self._cv2
        # Flow and fit run on a window around the face: pyramids of the whole frame
        # would cost more than the detector saves.
        x0, y0, x1, y1 = self._roi(frame.shape)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        origin = np.array([x0, y0], dtype=np.float32)
        previous_gray = _gray(self.prev_frame[y0:y1, x0:x1])
        gray = _gray(frame[y0:y1, x0:x1])
        # Only the points that keep still under expressions are flowed: cheaper, and a
        # closing eyelid does not read as the head moving.
        previous = (self.prev_landmarks[STABLE_POINTS] - origin).reshape(-1, 1, 2).astype(np.float32)
        flowed, status, _ = cv2.calcOpticalFlowPyrLK(previous_gray, gray, previous, None, **_LK_PARAMS)
        if flowed is None:
            return None
        back, status_back, _ = cv2.calcOpticalFlowPyrLK(gray, previous_gray, flowed, None, **_LK_PARAMS)
        centre, scale = _frame_of_reference(self.prev_landmarks)
        fb_error = np.linalg.norm((back - previous).reshape(-1, 2), axis=1)
        good = (status.ravel() == 1) & (status_back.ravel() == 1) & (fb_error < max(1.0, 0.02 * scale))
        tracked_fraction = float(good.mean())
        if tracked_fraction < self.min_tracked:
            return None
        shift = np.median((flowed - previous).reshape(-1, 2)[good], axis=0)
        box = np.tile(centre + shift, 2) + self.box_in_face_frame * scale
        height, width = frame.shape[:2]
        margin = 0.25 * scale
        if box[0] < -margin or box[1] < -margin or box[2] > width + margin or box[3] > height + margin:
            return None  # leaving the frame: let the detector decide
        local_box = tuple(float(v) for v in box - np.tile(origin, 2))
        landmarks = np.asarray(self.landmarker.fit(gray, local_box), dtype=np.float32)
        drift = np.median(np.linalg.norm(landmarks[STABLE_POINTS] - flowed.reshape(-1, 2), axis=1)) / scale
        if drift > self.max_drift:
            return None
        self.last_box = tuple(float(v) for v in box)
        return landmarks + origin, self.last_score * tracked_fraction, self.last_box, False

    def step(self, frame: np.ndarray):
        """Landmarks of the next ``(H, W, 3)`` RGB frame, or ``None`` without a face."""
        result = None
        if self.prev_landmarks is not None and self.since_detect + 1 < self.detect_every:
            result = self._track(frame)
            if result is not None:
                self.since_detect += 1
        if result is None:
            result = self._detect(_gray(frame))
        self.prev_frame = frame
        self.prev_landmarks = None if result is None else result[0]
        return result


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def track_faces(
    video: Video | str | Path,
    landmarker: Landmarker | None = None,
    detect_every: int = 15,
    *,
    min_tracked: float = 0.6,
    max_drift: float = 0.08,
    progress: bool = True,
    chunk_size: int = 256,
) -> FaceTrack:
    """Find one face's 68 landmarks in every frame of a video.

    The detector runs on the first frame and then every ``detect_every`` frames; in
    between the face is tracked by optical flow and its landmarks fitted again in every
    frame (``detect_every=1`` detects in every frame). Tracking hands back to the
    detector early when fewer than ``min_tracked`` of the landmarks are tracked
    consistently forward and backward, or when the fitted landmarks drift more than
    ``max_drift`` inter-ocular distances from the flowed ones.

    Where several faces appear, one identity is followed: the largest face at the start,
    then at each detection the face overlapping most with the one being followed
    (the largest again if none overlaps, e.g. after the face was lost). ``n_faces`` records
    how many faces each detection saw.

    Args:
        video: a :class:`~expresso_xai.Video`, or a path, which is streamed in chunks of
            ``chunk_size`` frames so long videos never sit in memory.
        landmarker: any :class:`~expresso_xai.faces.Landmarker`; default dlib's 68 points.
        detect_every: detector period in frames.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`FaceTrack` in source pixel coordinates. Frames without a face have
        ``face_found=False`` and NaN landmarks; a :class:`NoFaceWarning` says how many.

    Example:
        >>> import expresso_xai as ex
        >>> video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=30)
        >>> faces = ex.track_faces(video, progress=False)
        >>> int(faces.face_found.sum()), int(faces.detected.sum())
        (30, 2)
    """
    from tqdm.auto import tqdm

    landmarker = landmarker if landmarker is not None else default_landmarker()
    tracker = _Tracker(landmarker, detect_every, min_tracked, max_drift)
    if isinstance(video, Video):
        chunks = [video]
        total = video.n_frames
        source = video.source
    else:
        chunks = stream_video(video, chunk_size=chunk_size)
        total = None
        source = str(video)

    landmarks, found, confidence, boxes, n_faces, detected = [], [], [], [], [], []
    frame_size = None
    bar = tqdm(total=total, desc="landmarks", unit="frame", disable=not progress, leave=False)
    try:
        for chunk in chunks:
            if bar.total is None and chunk.n_frames_expected:
                bar.total = chunk.n_frames_expected
            frame_size = (chunk.height, chunk.width)
            for frame in chunk.frames:
                result = tracker.step(frame)
                if result is None:
                    landmarks.append(np.full((68, 2), np.nan, np.float32))
                    found.append(False)
                    confidence.append(0.0)
                    boxes.append((np.nan,) * 4)
                    detected.append(True)
                else:
                    shape, score, box, was_detected = result
                    landmarks.append(shape)
                    found.append(True)
                    confidence.append(score)
                    boxes.append(box)
                    detected.append(was_detected)
                n_faces.append(tracker.last_n_faces)
                bar.update(1)
    finally:
        bar.close()

    track = FaceTrack(
        np.stack(landmarks),
        np.array(found),
        np.array(confidence),
        np.array(boxes, dtype=np.float32),
        np.array(n_faces),
        frame_size,
        np.array(detected),
        source=source,
        landmarker=getattr(landmarker, "name", type(landmarker).__name__),
    )
    missing = int((~track.face_found).sum())
    if missing:
        warnings.warn(
            f"no face in {missing} of {len(track)} frames of {source or 'the video'}"
            + (" (none at all)" if missing == len(track) else ""),
            NoFaceWarning,
            stacklevel=2,
        )
    return track
