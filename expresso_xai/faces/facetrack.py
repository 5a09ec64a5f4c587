"""The :class:`FaceTrack` type: one face's 68 landmarks through a video.

Landmarks follow the iBUG 68-point scheme. Left and right are the **subject's**: points
36–41 are the subject's right eye (on the image's left in a frontal, unmirrored view).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..errors import FaceTrackError, NoFaceError

#: iBUG 68-point groups, subject's left/right.
LANDMARK_GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose_bridge": tuple(range(27, 31)),
    "nose_bottom": tuple(range(31, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "outer_lip": tuple(range(48, 60)),
    "inner_lip": tuple(range(60, 68)),
}

#: The groups whose tracking is judged on its own (``FaceTrack.landmark_quality``): each
#: can lose track alone, as the mouth under a hand.
QUALITY_GROUPS: dict[str, tuple[int, ...]] = {
    "eyes": tuple(range(36, 48)),
    "brows": tuple(range(17, 27)),
    "nose": tuple(range(27, 36)),
    "mouth": tuple(range(48, 68)),
    "jaw": tuple(range(0, 17)),
}

#: Points that stay put when the face changes expression: eye corners and nose.
STABLE_POINTS: np.ndarray = np.array([27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])

#: Index permutation that maps the landmarks of a face to those of its mirror image.
MIRROR_PERMUTATION: np.ndarray = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nose bottom
    + [45, 44, 43, 42, 47, 46]  # right eye <- left eye
    + [39, 38, 37, 36, 41, 40]  # left eye <- right eye
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lip
)


def eye_aspect_ratio(landmarks: np.ndarray, eye: str = "right") -> np.ndarray:
    """Eye aspect ratio (Soukupová & Čech 2016) of ``(..., 68, 2)`` landmarks.

    About 0.25–0.35 for an open eye, falling towards 0 as it closes.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.faces import eye_aspect_ratio
        >>> pts = np.zeros((68, 2)); pts[36:42] = [[0, 0], [1, -1], [2, -1], [3, 0], [2, 1], [1, 1]]
        >>> round(float(eye_aspect_ratio(pts, "right")), 3)
        0.667
    """
    first = {"right": 36, "left": 42}[eye]
    p = np.asarray(landmarks, dtype=np.float64)[..., first : first + 6, :]
    vertical = np.linalg.norm(p[..., 1, :] - p[..., 5, :], axis=-1) + np.linalg.norm(
        p[..., 2, :] - p[..., 4, :], axis=-1
    )
    horizontal = np.linalg.norm(p[..., 0, :] - p[..., 3, :], axis=-1)
    return vertical / (2.0 * horizontal)


def inter_ocular_distance(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners (points 36 and 45) of ``(..., 68, 2)``."""
    p = np.asarray(landmarks, dtype=np.float64)
    return np.linalg.norm(p[..., 36, :] - p[..., 45, :], axis=-1)


@dataclass(eq=False)
class FaceTrack:
    """One face followed through a video.

    Attributes:
        landmarks: ``(T, 68, 2)`` float32 ``(x, y)`` in source pixels, iBUG order;
            NaN where no face was found.
        face_found: ``(T,)`` bool.
        confidence: ``(T,)`` float32 in ``[0, 1]``; 0 where no face was found.
        boxes: ``(T, 4)`` float32 face box ``(x0, y0, x1, y1)``; NaN where no face.
        n_faces: ``(T,)`` int, how many faces were seen in the frame (carried forward on
            frames where the face was tracked rather than detected).
        detected: ``(T,)`` bool, frames where the detector ran (the rest were tracked, or
            skipped while no face was in view).
        frame_size: ``(height, width)`` of the source frames.
        source: where the landmarks came from (video file, CSV, ...).
        landmarker: name of the back end that produced them.
        track_id: ``(T,)`` int, which stretch of uninterrupted tracking of the subject each
            frame belongs to: 0 from its first detection, one more each time it is found
            again after being lost (re-found only when it matches the subject, see
            :func:`~expresso_xai.faces.track_faces`); -1 where no face. Default: 0 where a
            face was found.
        landmark_quality: ``(T, 5)`` float32 in ``[0, 1]``, per group of
            ``QUALITY_GROUPS`` (eyes, brows, nose, mouth, jaw): the fraction of the
            group's points that optical flow carried consistently forward and backward from
            the frame before and that the fitted landmarks agree with. Low where a group
            lost track (a hand over the mouth); NaN where not measured (no face, the first
            frame of a stretch, imported tracks).
        frame_size_estimated: True when ``frame_size`` was not known but estimated from
            the landmarks (an OpenFace CSV read without its video); only a known frame
            size must equal the video's in :meth:`require_frame`.

    Example:
        >>> import expresso_xai as ex
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=8)
        >>> faces = ex.track_faces(video, progress=False)
        >>> faces.landmarks.shape, bool(faces.face_found.all())
        ((8, 68, 2), True)
    """

    landmarks: np.ndarray
    face_found: np.ndarray
    confidence: np.ndarray
    boxes: np.ndarray
    n_faces: np.ndarray
    frame_size: tuple[int, int]
    detected: np.ndarray | None = None
    source: str | None = None
    landmarker: str = "unknown"
    track_id: np.ndarray | None = None
    landmark_quality: np.ndarray | None = None
    frame_size_estimated: bool = False

    def __post_init__(self) -> None:
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32)
        n = self.landmarks.shape[0]
        if self.landmarks.shape != (n, 68, 2):
            raise FaceTrackError(f"landmarks must be (T, 68, 2), got {self.landmarks.shape}")
        self.face_found = np.asarray(self.face_found, dtype=bool).reshape(n)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(n)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(n, 4)
        self.n_faces = np.asarray(self.n_faces, dtype=np.int32).reshape(n)
        if self.detected is None:
            self.detected = np.ones(n, dtype=bool)
        self.detected = np.asarray(self.detected, dtype=bool).reshape(n)
        if self.track_id is None:
            self.track_id = np.zeros(n, dtype=np.int32)
        self.track_id = np.asarray(self.track_id, dtype=np.int32).reshape(n).copy()
        self.frame_size = (int(self.frame_size[0]), int(self.frame_size[1]))
        self.track_id[~self.face_found] = -1
        if self.landmark_quality is None:
            self.landmark_quality = np.full((n, len(QUALITY_GROUPS)), np.nan, dtype=np.float32)
        self.landmark_quality = np.asarray(self.landmark_quality, dtype=np.float32).reshape(n, len(QUALITY_GROUPS))
        self.landmark_quality = self.landmark_quality.copy()
        self.landmark_quality[~self.face_found] = np.nan
        self.landmarks[~self.face_found] = np.nan
        self.boxes[~self.face_found] = np.nan
        self.confidence[~self.face_found] = 0.0

    def __len__(self) -> int:
        return int(self.landmarks.shape[0])

    @property
    def n_frames(self) -> int:
        return len(self)

    #: the fields that hold one value per frame, in constructor order
    PER_FRAME = ("landmarks", "face_found", "confidence", "boxes", "n_faces", "detected", "track_id",
                 "landmark_quality")

    def _with_frames(self, **per_frame) -> "FaceTrack":
        """A track with the same frame size, source and landmarker and these per-frame fields."""
        return FaceTrack(frame_size=self.frame_size, source=self.source, landmarker=self.landmarker,
                         frame_size_estimated=self.frame_size_estimated, **per_frame)

    def __getitem__(self, index) -> "FaceTrack":
        """Frames of the track by slice or index array (e.g. a clip's positions), as
        :class:`FaceCrop` and :class:`RegionMap` take them.

        Example:
            >>> import numpy as np
            >>> track = FaceTrack(np.zeros((4, 68, 2)), np.ones(4, bool), np.ones(4), np.zeros((4, 4)),
            ...                   np.ones(4, int), (64, 64))
            >>> len(track[1:3]), len(track[np.array([0, 0, 3])])
            (2, 3)
        """
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 or None)
        return self._with_frames(**{name: getattr(self, name)[index] for name in self.PER_FRAME})

    def landmarks_hash(self) -> str:
        """SHA-256 of the landmarks and which frames have a face: what an explanation's
        regions were drawn from (stored in the cube as ``faces_hash``, so an evaluation
        can check it uses the same track).

        Example:
            >>> import numpy as np
            >>> track = FaceTrack(np.zeros((2, 68, 2)), np.ones(2, bool), np.ones(2), np.zeros((2, 4)),
            ...                   np.ones(2, int), (64, 64))
            >>> track.landmarks_hash() == track[0:2].landmarks_hash() != track[0:1].landmarks_hash()
            True
        """
        import hashlib

        digest = hashlib.sha256()
        for array in (self.landmarks, self.face_found):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def require_frame(self, frame_size: tuple[int, int], video: str = "the video", margin: float = 0.5) -> "FaceTrack":
        """Raise :class:`~expresso_xai.errors.FaceTrackError` when the track cannot be this
        video's: its frame size, when known (not ``frame_size_estimated`` from the
        landmarks, as for an OpenFace CSV read without its video), differs from the video's
        ``(height, width)``, or some landmarks lie beyond that frame by more than ``margin``
        of a side (a track of another video, e.g. an OpenFace CSV of a 1920x1080 copy used
        with a 640x360 one). Returns the track.

        Example:
            >>> import numpy as np, expresso_xai as ex
            >>> faces = ex.FaceTrack(np.full((2, 68, 2), 1500.0), np.ones(2, bool), np.ones(2), np.zeros((2, 4)),
            ...                      np.ones(2), frame_size=(1080, 1920))
            >>> faces.require_frame((360, 640), "clip.mp4")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            expresso_xai.errors.FaceTrackError: the face track is of 1920x1080 frames but clip.mp4 is 640x360: ...
            >>> from dataclasses import replace  # a CSV read without its video: the size is a guess
            >>> replace(faces, frame_size_estimated=True).require_frame((360, 640), "clip.mp4")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            expresso_xai.errors.FaceTrackError: the face track's landmarks reach x=1500, y=1500, far outside clip.mp4's 640x360 frame ...
        """
        known = not self.frame_size_estimated and min(self.frame_size) > 0
        if known and tuple(int(v) for v in self.frame_size) != tuple(int(v) for v in frame_size):
            raise FaceTrackError(f"the face track is of {self.frame_size[1]}x{self.frame_size[0]} frames but {video} "
                                 f"is {frame_size[1]}x{frame_size[0]}: it is the track of another video (or another "
                                 "size of it)")
        found = self.landmarks[self.face_found]
        if not found.size:
            return self
        reach_x, reach_y = (float(found[..., axis].max()) for axis in (0, 1))
        height, width = frame_size
        if reach_x > width * (1 + margin) or reach_y > height * (1 + margin):
            size = f" (the track says {self.frame_size[1]}x{self.frame_size[0]})" if min(self.frame_size) > 0 else ""
            raise FaceTrackError(f"the face track's landmarks reach x={reach_x:.0f}, y={reach_y:.0f}, far outside "
                                 f"{video}'s {width}x{height} frame{size}: it is the track of another video "
                                 "(or another size of it)")
        return self

    def require_face(self, what: str = "this step") -> "FaceTrack":
        """Return ``self``, or raise :class:`NoFaceError` if no frame has a face."""
        if not self.face_found.any():
            raise NoFaceError(
                f"no face in {len(self)} of {len(self)} frames of {self.source or 'the video'}; "
                f"{what} needs one: pass faces= (e.g. from read_openface) or check the video"
            )
        return self

    def eye_aspect_ratio(self, eye: str = "right") -> np.ndarray:
        """``(T,)`` eye aspect ratio of the subject's ``"right"`` or ``"left"`` eye."""
        return eye_aspect_ratio(self.landmarks, eye)

    def inter_ocular_distance(self) -> np.ndarray:
        """``(T,)`` distance between outer eye corners, NaN without a face."""
        return inter_ocular_distance(self.landmarks)

    def mirrored(self) -> "FaceTrack":
        """The track of the left–right mirrored video (indices permuted, x flipped)."""
        width = self.frame_size[1]
        landmarks = self.landmarks[:, MIRROR_PERMUTATION].copy()
        landmarks[..., 0] = (width - 1) - landmarks[..., 0]
        boxes = self.boxes.copy()
        boxes[:, [0, 2]] = (width - 1) - self.boxes[:, [2, 0]]
        fields = {name: getattr(self, name) for name in self.PER_FRAME}
        return self._with_frames(**{**fields, "landmarks": landmarks, "boxes": boxes})

    @classmethod
    def concatenate(cls, tracks: Iterable["FaceTrack"]) -> "FaceTrack":
        """Join tracks of consecutive chunks of one video.

        A track whose ``track_id`` starts over (below the ids already joined: a chunk
        tracked on its own) is renumbered after them, since its first stretch was not
        followed on from the previous chunk; slices of one track keep their ids.

        Example:
            >>> import numpy as np
            >>> chunk = FaceTrack(np.zeros((2, 68, 2)), [True, True], np.ones(2), np.zeros((2, 4)), np.ones(2),
            ...                   (64, 64), track_id=[0, 1])
            >>> FaceTrack.concatenate([chunk, chunk]).track_id.tolist()
            [0, 1, 2, 3]
            >>> FaceTrack.concatenate([chunk[0:1], chunk[1:2]]).track_id.tolist()
            [0, 1]
        """
        tracks = list(tracks)
        if not tracks:
            raise FaceTrackError("nothing to concatenate: give at least one track")
        ids, last = [], -1
        for track in tracks:
            found = track.track_id[track.track_id >= 0]
            offset = last + 1 - int(found.min()) if found.size and found.min() < last else 0
            ids.append(np.where(track.track_id >= 0, track.track_id + offset, -1))
            last = max(last, int(found.max()) + offset if found.size else -1)
        fields = {name: np.concatenate([getattr(t, name) for t in tracks]) for name in cls.PER_FRAME}
        return tracks[0]._with_frames(**{**fields, "track_id": np.concatenate(ids)})

    def quality(self):
        """``landmark_quality`` as an ``xarray.DataArray(time, group)``, groups named as in
        ``QUALITY_GROUPS``.

        Example:
            >>> import numpy as np
            >>> track = FaceTrack(np.zeros((2, 68, 2)), [True, True], np.ones(2), np.zeros((2, 4)), np.ones(2),
            ...                   (64, 64), landmark_quality=[[1, 1, 1, 0.2, 0.9]] * 2)
            >>> round(float(track.quality().sel(group="mouth")[0]), 3)
            0.2
        """
        import xarray as xr

        return xr.DataArray(self.landmark_quality, dims=("time", "group"),
                            coords={"time": np.arange(len(self)), "group": list(QUALITY_GROUPS)},
                            name="landmark_quality")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every per-frame field and the frame size as named arrays (for ``np.savez``);
        :meth:`from_arrays` reads them back.

        Example:
            >>> import numpy as np
            >>> track = FaceTrack(np.zeros((3, 68, 2)), [True, False, True], np.ones(3), np.zeros((3, 4)),
            ...                   np.ones(3), (64, 80))
            >>> back = FaceTrack.from_arrays(track.to_arrays())
            >>> back.frame_size, back.track_id.tolist()
            ((64, 80), [0, -1, 0])
        """
        arrays = {name: getattr(self, name) for name in self.PER_FRAME}
        return {**arrays, "frame_size": np.array(self.frame_size, dtype=np.int64),
                "frame_size_estimated": np.array(self.frame_size_estimated)}

    @classmethod
    def from_arrays(cls, arrays, source: str | None = None, landmarker: str = "unknown") -> "FaceTrack":
        """The track of :meth:`to_arrays`' arrays (or of an ``np.load``-ed ``.npz``); fields
        an older file lacks take their defaults."""
        fields = {name: np.asarray(arrays[name]) for name in cls.PER_FRAME if name in arrays}
        missing = {"landmarks", "face_found"} - set(fields)
        if missing or "frame_size" not in arrays:
            raise FaceTrackError(f"no {', '.join(sorted(missing | ({'frame_size'} - set(arrays))))} among the "
                                 "arrays: not the arrays of FaceTrack.to_arrays()")
        n = len(fields["landmarks"])
        fields.setdefault("confidence", np.asarray(fields["face_found"], dtype=np.float32))
        fields.setdefault("boxes", np.full((n, 4), np.nan))
        fields.setdefault("n_faces", np.asarray(fields["face_found"], dtype=np.int32))
        size = tuple(int(v) for v in np.asarray(arrays["frame_size"]))
        estimated = bool(np.asarray(arrays["frame_size_estimated"])) if "frame_size_estimated" in arrays else False
        return cls(frame_size=size, source=source, landmarker=landmarker, frame_size_estimated=estimated, **fields)

    def __repr__(self) -> str:
        """One line: frames, found fraction, frame size, source and landmarker.

        Example:
            >>> import numpy as np
            >>> FaceTrack(np.zeros((4, 68, 2)), [True, True, True, False], np.ones(4), np.zeros((4, 4)),
            ...           np.ones(4), (360, 640), source="clip.mp4", landmarker="dlib-hog-68")
            FaceTrack(4 frames, face in 75%, 640x360, source='clip.mp4', landmarker='dlib-hog-68')
        """
        found = float(self.face_found.mean()) if len(self) else 0.0
        return (f"FaceTrack({len(self)} frames, face in {found:.0%}, {self.frame_size[1]}x{self.frame_size[0]}, "
                f"source={self.source!r}, landmarker={self.landmarker!r})")
