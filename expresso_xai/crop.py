"""The face crop: the one geometric transform between source frames and model input.

:class:`FaceCrop` is a square crop around a temporally smoothed face box, with a margin,
resized to the model's input size (default 112×112). It maps frames *and* landmarks, so
the region masks built from the mapped landmarks (:mod:`expresso_xai.regions`) always
line up with what the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import RegionError, VideoLayoutError
from .faces.facetrack import STABLE_POINTS, FaceTrack
from .video import Video


def _smooth_series(values: np.ndarray, valid: np.ndarray, sigma: float | None) -> np.ndarray:
    """Gaussian-smooth ``(T, K)`` values over time using valid frames only; fill gaps
    from the nearest valid frame."""
    t = np.arange(len(values))
    valid_t = t[valid]
    filled = np.empty_like(values)
    # nearest valid frame for every frame (gaps take their neighbour's value)
    nearest = valid_t[np.clip(np.searchsorted(valid_t, t), 0, len(valid_t) - 1)]
    before = valid_t[np.clip(np.searchsorted(valid_t, t) - 1, 0, len(valid_t) - 1)]
    use_before = np.abs(before - t) < np.abs(nearest - t)
    nearest = np.where(use_before, before, nearest)
    filled[:] = values[nearest]
    if sigma is None or sigma <= 0:
        return filled
    if np.isinf(sigma):
        return np.broadcast_to(values[valid].mean(axis=0), values.shape).copy()
    radius = int(np.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights = valid.astype(np.float64)
    padded_v = np.pad(values * weights[:, None], ((radius, radius), (0, 0)))
    padded_w = np.pad(weights, (radius, radius))
    num = np.stack([np.convolve(padded_v[:, k], kernel, mode="valid") for k in range(values.shape[1])], axis=1)
    den = np.convolve(padded_w, kernel, mode="valid")[:, None]
    return np.where(den > 1e-6, num / np.maximum(den, 1e-12), filled)


@dataclass(eq=False)
class FaceCrop:
    """Per-frame similarity transform from source pixels to model-input pixels.

    Attributes:
        matrices: ``(T, 2, 3)`` affine matrices ``[x', y'] = M @ [x, y, 1]`` (pixel
            centres at integer coordinates in both spaces).
        size: ``(height, width)`` of the model input.
        source_size: ``(height, width)`` of the source frames.
        source: where the face track came from (shown by ``repr``), or ``None``.

    Build one with :meth:`from_track`. ``crop.apply(video)`` gives the model-input frames
    and ``crop.apply_landmarks(faces.landmarks)`` the landmarks in the same pixels.

    Example:
        >>> import expresso_xai as ex
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=16)
        >>> faces = ex.track_faces(video, progress=False)
        >>> crop = ex.FaceCrop.from_track(faces, size=(112, 112))
        >>> crop.apply(video).shape
        (16, 112, 112, 3)
    """

    matrices: np.ndarray
    size: tuple[int, int]
    source_size: tuple[int, int]
    params: dict = field(default_factory=dict)
    source: str | None = None

    @classmethod
    def from_track(
        cls,
        faces: FaceTrack,
        size: tuple[int, int] | int = (112, 112),
        margin: float = 0.2,
        smoothing: float | None = 2.0,
    ) -> "FaceCrop":
        """Crop around the landmarks' bounding box, made square, grown by ``margin``
        on every side (as a fraction of its side), and smoothed over time with a
        Gaussian of ``smoothing`` frames (``None``: no smoothing; ``float('inf')``: one
        fixed crop for the whole video). Frames without a face reuse the nearest
        frame's crop.

        Raises:
            NoFaceError: no frame of the track has a face.
        """
        faces.require_face("a face crop")
        size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        valid = faces.face_found
        landmarks = np.where(valid[:, None, None], faces.landmarks, 0.0).astype(np.float64)
        low, high = landmarks.min(axis=1), landmarks.max(axis=1)
        centre = landmarks[:, STABLE_POINTS].mean(axis=1)
        centre[:, 1] = 0.5 * (centre[:, 1] + 0.5 * (low[:, 1] + high[:, 1]))
        half_extent = np.maximum(np.abs(high - centre), np.abs(centre - low)).max(axis=1)
        series = np.column_stack([centre, half_extent])
        series = _smooth_series(series, valid, smoothing)
        aspect = size[1] / size[0]
        half_h = series[:, 2] * (1.0 + 2.0 * margin) * max(1.0, 1.0 / aspect)
        half_w = half_h * aspect
        matrices = np.zeros((len(faces), 2, 3))
        sx = size[1] / (2.0 * half_w)
        sy = size[0] / (2.0 * half_h)
        matrices[:, 0, 0] = sx
        matrices[:, 1, 1] = sy
        matrices[:, 0, 2] = -sx * (series[:, 0] - half_w) - 0.5
        matrices[:, 1, 2] = -sy * (series[:, 1] - half_h) - 0.5
        return cls(matrices, size, faces.frame_size, {"margin": margin, "smoothing": smoothing}, faces.source)

    @classmethod
    def identity(cls, n_frames: int, frame_size: tuple[int, int]) -> "FaceCrop":
        """No crop: model input is the source frame itself.

        Example:
            >>> FaceCrop.identity(3, (48, 64)).size
            (48, 64)
        """
        matrices = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (n_frames, 1, 1))
        size = (int(frame_size[0]), int(frame_size[1]))
        return cls(matrices, size, size, {"identity": True})

    def __len__(self) -> int:
        return len(self.matrices)

    def __getitem__(self, index) -> "FaceCrop":
        """Crops of some frames (a slice or an index array, e.g. a clip's indices)."""
        return FaceCrop(self.matrices[index], self.size, self.source_size, dict(self.params), self.source)

    def __repr__(self) -> str:
        """One line (never the matrices): frames, model-input size, and what is cropped.

        Example:
            >>> FaceCrop(np.tile(np.eye(2, 3), (16, 1, 1)), (112, 112), (360, 640), source="/data/a.mp4")
            <FaceCrop 16 frames 112x112 from 'a.mp4' (640x360)>
            >>> FaceCrop(np.tile(np.eye(2, 3), (16, 1, 1)), (112, 112), (360, 640))
            <FaceCrop 16 frames 112x112 from 640x360 frames>
            >>> FaceCrop.identity(3, (48, 64))
            <FaceCrop 3 frames 64x48, no crop>
        """
        size = f"{self.size[1]}x{self.size[0]}"
        if self.params.get("identity"):
            return f"<FaceCrop {len(self)} frames {size}, no crop>"
        frame = f"{self.source_size[1]}x{self.source_size[0]}"
        source = f"{Path(self.source).name!r} ({frame})" if self.source else f"{frame} frames"
        return f"<FaceCrop {len(self)} frames {size} from {source}>"

    def apply(self, video: Video | np.ndarray, interpolation: str = "area") -> np.ndarray:
        """Crop and resize frames ``(T, H, W, 3)`` to ``(T, h, w, 3)`` uint8.

        Pixels outside the source frame are black.

        Raises:
            VideoLayoutError: the frames are not ``(T, H, W, 3)`` uint8.
            RegionError: the crop and the frames differ in length, or the
                interpolation (``"area"``, ``"linear"``, ``"cubic"``) is unknown.

        Example:
            >>> crop = FaceCrop.identity(2, (4, 6))
            >>> crop.apply(np.zeros((2, 4, 6, 3), np.uint8)).shape
            (2, 4, 6, 3)
        """
        import cv2

        frames = self._checked_frames(video)
        choices = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
        if interpolation not in choices:
            raise RegionError(f"unknown interpolation {interpolation!r}; choose one of {sorted(choices)}")
        flags = choices[interpolation]
        out = np.empty((len(frames), self.size[0], self.size[1], frames.shape[-1]), np.uint8)
        for t, (frame, matrix) in enumerate(zip(frames, self.matrices)):
            scale = abs(matrix[0, 0])
            if flags == cv2.INTER_AREA and scale < 1:
                # INTER_AREA only applies to pure resizes: pre-blur then sample bilinearly.
                sigma = 0.5 * (1.0 / scale - 1.0) if scale < 0.9 else 0
                if sigma > 0.3:
                    frame = cv2.GaussianBlur(frame, (0, 0), sigma)
            out[t] = cv2.warpAffine(
                frame, matrix, (self.size[1], self.size[0]),
                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
            )
        return out

    def _checked_frames(self, video) -> np.ndarray:
        """The frames of ``video`` if they are ``(T, H, W, 1|3|4)`` uint8 of this crop's
        length; else a typed error that says what they are. (The frame size is not
        checked: a track read from a CSV without one only estimates it.)"""
        if isinstance(video, Video):
            frames = video.frames
        else:
            try:
                frames = np.asarray(video)
            except (TypeError, ValueError, RuntimeError) as exc:  # ragged lists, tensors that need grad
                raise VideoLayoutError(f"frames must be a (T, H, W, 3) uint8 array, got {type(video).__name__}: "
                                       f"{exc}") from None
        if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4) or frames.dtype != np.uint8:
            raise VideoLayoutError(f"frames must be (T, H, W, 3) uint8 RGB, got {frames.dtype} {frames.shape}; "
                                   "Video.from_array(frames).frames converts other layouts and types")
        if len(frames) != len(self):
            raise RegionError(f"crop has {len(self)} frames, video has {len(frames)}; "
                              "slice the crop with the clip's indices (crop[indices])")
        return frames

    def apply_landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        """Map ``(T, K, 2)`` source-pixel points into model-input pixels.

        Example:
            >>> crop = FaceCrop(np.array([[[2.0, 0, 1], [0, 2.0, 0]]]), (8, 8), (4, 4))
            >>> crop.apply_landmarks(np.array([[[1.0, 1.0]]])).tolist()
            [[[3.0, 2.0]]]
        """
        points = self._checked_points(landmarks)
        mapped = np.einsum("tij,tkj->tki", self.matrices[:, :, :2], points) + self.matrices[:, None, :, 2]
        return mapped.astype(np.float32)

    def _checked_points(self, points) -> np.ndarray:
        """``(T, K, 2)`` points as float64, ``T`` this crop's length; else a RegionError."""
        try:
            array = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError, RuntimeError):
            array = None
        if array is None or array.ndim != 3 or array.shape[2] != 2 or len(array) != len(self):
            shape = "not numbers" if array is None else array.shape
            raise RegionError(f"points must be (T, K, 2) (x, y) for the crop's {len(self)} frames, got {shape}")
        return array

    def invert_points(self, points: np.ndarray) -> np.ndarray:
        """Map ``(T, K, 2)`` model-input points back to source pixels: the inverse of
        :meth:`apply_landmarks`, e.g. to draw the crop's outline on the video.

        Example:
            >>> crop = FaceCrop(np.array([[[2.0, 0, 1], [0, 2.0, 0]]]), (8, 8), (4, 4))
            >>> crop.invert_points(crop.apply_landmarks(np.array([[[1.0, 1.0]]]))).tolist()
            [[[1.0, 1.0]]]
        """
        shifted = self._checked_points(points) - self.matrices[:, None, :, 2]
        return np.einsum("tij,tkj->tki", np.linalg.inv(self.matrices[:, :, :2]), shifted).astype(np.float32)


__all__ = ["FaceCrop"]
