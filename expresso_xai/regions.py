"""Facial regions at the pixels the model sees.

Two things live here:

* :class:`FaceCrop`, the one geometric transform between source frames and model input:
  a square crop around a temporally smoothed face box, with a margin, resized to the
  model's input size (default 112×112). It maps frames *and* landmarks, so region masks
  always line up with what the model saw.
* :class:`RegionScheme` and :class:`RegionMap`: labelled pixels built from 68 landmarks.
  ``partition`` (default) gives every pixel exactly one label, so region sums conserve
  the total; ``boxes`` reproduces the reference study's overlapping padded boxes.

Left/right are the **subject's** (points 36–41 are the subject's right eye).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .errors import NoFaceError, RegionError
from .faces.facetrack import STABLE_POINTS, FaceTrack
from .video import Video

# --- the crop transform -------------------------------------------------------------



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
        return cls(matrices, size, faces.frame_size, {"margin": margin, "smoothing": smoothing})

    @classmethod
    def identity(cls, n_frames: int, frame_size: tuple[int, int]) -> "FaceCrop":
        """No crop: model input is the source frame itself."""
        matrices = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (n_frames, 1, 1))
        size = (int(frame_size[0]), int(frame_size[1]))
        return cls(matrices, size, size, {"identity": True})

    def __len__(self) -> int:
        return len(self.matrices)

    def __getitem__(self, index) -> "FaceCrop":
        """Crops of some frames (a slice or an index array, e.g. a clip's indices)."""
        return FaceCrop(self.matrices[index], self.size, self.source_size, dict(self.params))

    def apply(self, video: Video | np.ndarray, interpolation: str = "area") -> np.ndarray:
        """Crop and resize frames ``(T, H, W, 3)`` to ``(T, h, w, 3)`` uint8.

        Pixels outside the source frame are black.
        """
        import cv2

        frames = video.frames if isinstance(video, Video) else np.asarray(video)
        if len(frames) != len(self):
            raise ValueError(f"crop has {len(self)} frames, video has {len(frames)}; "
                             "slice the crop with the clip's indices (crop[indices])")
        flags = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}[interpolation]
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

    def apply_landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        """Map ``(T, K, 2)`` source-pixel points into model-input pixels."""
        points = np.asarray(landmarks, dtype=np.float64)
        linear = self.matrices[:, :, :2]
        shift = self.matrices[:, :, 2]
        return (np.einsum("tij,tkj->tki", linear, points) + shift[:, None, :]).astype(np.float32)

    def invert_points(self, points: np.ndarray) -> np.ndarray:
        """Map ``(T, K, 2)`` model-input points back to source pixels."""
        points = np.asarray(points, dtype=np.float64)
        linear = self.matrices[:, :, :2]
        shift = self.matrices[:, :, 2]
        inverse = np.linalg.inv(linear)
        return np.einsum("tij,tkj->tki", inverse, points - shift[:, None, :]).astype(np.float32)


# --- region schemes -----------------------------------------------------------------

PARTITION_REGIONS: tuple[str, ...] = (
    "right_eye", "left_eye", "right_brow", "left_brow", "nose", "mouth", "jaw",
    "right_cheek", "left_cheek", "forehead", "face_other", "background",
)
BOX_REGIONS: tuple[str, ...] = (
    "right_eye", "left_eye", "right_brow", "left_brow", "nose", "mouth", "jaw", "background",
)

_SUBPIXEL_BITS = 4  # cv2.fillPoly fixed-point precision: 1/16 pixel


def _fill(canvas: np.ndarray, polygon: np.ndarray, value: int) -> None:
    import cv2

    points = np.round(np.asarray(polygon, dtype=np.float64) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(canvas, [points.reshape(-1, 1, 2)], int(value), lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.convexHull(np.asarray(points, dtype=np.float32)).reshape(-1, 2)


def _ellipse(centre: np.ndarray, axis: np.ndarray, semi_major: float, semi_minor: float, n: int = 32) -> np.ndarray:
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    across = np.array([-axis[1], axis[0]])
    return centre + np.outer(semi_major * np.cos(theta), axis) + np.outer(semi_minor * np.sin(theta), across)


def _grow(polygon: np.ndarray, distance: float) -> np.ndarray:
    centre = polygon.mean(axis=0)
    offset = polygon - centre
    norm = np.linalg.norm(offset, axis=1, keepdims=True)
    return centre + offset * (1.0 + distance / np.maximum(norm, 1e-6))


class RegionScheme:
    """How 68 landmarks become labelled pixels. Subclasses override :meth:`rasterize`.

    Attributes:
        name: registered name (``"partition"``, ``"boxes"``).
        names: region names; label ``i`` (or bit ``i``) means ``names[i]``.
        exclusive: every pixel has exactly one label (a partition, region sums conserve
            the total); otherwise labels are bit flags and regions may overlap.
    """

    name: str = ""
    names: tuple[str, ...] = ()
    exclusive: bool = True

    def rasterize(self, landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Labels ``(H, W)`` for one frame's ``(68, 2)`` landmarks in output pixels."""
        raise NotImplementedError

    def empty(self, shape: tuple[int, int]) -> np.ndarray:
        """Labels of a frame without a face: everything ``background``."""
        background = self.names.index("background")
        if self.exclusive:
            return np.full(shape, background, dtype=np.uint8)
        return np.full(shape, 1 << background, dtype=np.uint16)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, regions={len(self.names)})"


class PartitionScheme(RegionScheme):
    """Every pixel gets one of 12 labels (``PARTITION_REGIONS``).

    Regions are painted from coarse to fine, each over the previous: the face outline
    (jaw line closed over a forehead as high as half the nasion–chin distance) is
    ``face_other``, then forehead, cheeks, jaw (chin and lower face below the mouth),
    mouth (outer lip grown by 6% of the inter-ocular distance), nose, brows (a band
    around the brow points) and last the eyes: an ellipse on the eye corners, 1.5× the
    corner distance wide and 1× high, so the region keeps its size when the eye closes.
    """

    name = "partition"
    names = PARTITION_REGIONS
    exclusive = True

    def rasterize(self, landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        L = np.asarray(landmarks, dtype=np.float64)
        idx = {n: i for i, n in enumerate(self.names)}
        labels = np.full(shape, idx["background"], dtype=np.uint8)
        iod = max(np.linalg.norm(L[45] - L[36]), 1e-3)
        across = (L[45] - L[36]) / iod
        up = L[27] - L[8]
        face_length = max(np.linalg.norm(up), 1e-3)
        up = up / face_length
        forehead_top = L[17:27] + up * 0.5 * face_length
        # face outline: jaw, then up over the forehead
        outline = np.concatenate([L[0:17], forehead_top[::-1]])
        _fill(labels, outline, idx["face_other"])
        _fill(labels, np.concatenate([[L[0]], L[17:27], [L[16]], forehead_top[::-1]]), idx["forehead"])
        _fill(labels, L[[0, 1, 2, 3, 4, 5, 48, 31, 40, 41, 36]], idx["right_cheek"])
        _fill(labels, L[[16, 15, 14, 13, 12, 11, 54, 35, 47, 46, 45]], idx["left_cheek"])
        _fill(labels, np.concatenate([L[3:14], L[[54, 55, 56, 57, 58, 59, 48]]]), idx["jaw"])
        _fill(labels, _grow(L[48:60], 0.06 * iod), idx["mouth"])
        nose_points = np.concatenate([
            L[27:36],
            [L[31] - across * 0.08 * iod, L[35] + across * 0.08 * iod,
             0.5 * (L[27] + L[39]), 0.5 * (L[27] + L[42])],
        ])
        _fill(labels, _convex_hull(nose_points), idx["nose"])
        for side, points in (("right_brow", L[17:22]), ("left_brow", L[22:27])):
            band = np.concatenate([points + up * 0.05 * iod, (points - up * 0.08 * iod)[::-1]])
            _fill(labels, band, idx[side])
        for side, first in (("right_eye", 36), ("left_eye", 42)):
            outer, inner = L[first], L[first + 3]
            width = max(np.linalg.norm(inner - outer), 1e-3)
            axis = (inner - outer) / width
            _fill(labels, _ellipse(0.5 * (outer + inner), axis, 0.75 * width, 0.5 * width), idx[side])
        return labels


class BoxScheme(RegionScheme):
    """The reference study's overlapping boxes (``BOX_REGIONS``), as bit flags.

    Axis-aligned bounding boxes of the landmark groups mouth 48–67, right brow 17–21,
    left brow 22–26, right eye 36–41, left eye 42–47, nose 27–34 and jaw 0–16; eyes and
    mouth are padded by ``pad`` (25%) of their width and height on every side.
    ``background`` is every pixel in no box.
    """

    name = "boxes"
    names = BOX_REGIONS
    exclusive = False
    groups = {
        "right_eye": range(36, 42), "left_eye": range(42, 48), "right_brow": range(17, 22),
        "left_brow": range(22, 27), "nose": range(27, 35), "mouth": range(48, 68), "jaw": range(0, 17),
    }
    padded = ("right_eye", "left_eye", "mouth")

    def __init__(self, pad: float = 0.25):
        self.pad = float(pad)

    def boxes(self, landmarks: np.ndarray) -> dict[str, tuple[float, float, float, float]]:
        """``{region: (x0, y0, x1, y1)}`` for one frame's landmarks."""
        L = np.asarray(landmarks, dtype=np.float64)
        out = {}
        for name, group in self.groups.items():
            points = L[list(group)]
            (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
            if name in self.padded:
                dx, dy = self.pad * (x1 - x0), self.pad * (y1 - y0)
                x0, x1, y0, y1 = x0 - dx, x1 + dx, y0 - dy, y1 + dy
            out[name] = (x0, y0, x1, y1)
        return out

    def rasterize(self, landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
        labels = np.zeros(shape, dtype=np.uint16)
        for name, (x0, y0, x1, y1) in self.boxes(landmarks).items():
            inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
            labels[inside] |= np.uint16(1 << self.names.index(name))
        labels[labels == 0] = 1 << self.names.index("background")
        return labels


SCHEMES: dict[str, type[RegionScheme]] = {"partition": PartitionScheme, "boxes": BoxScheme}


def get_scheme(scheme: str | RegionScheme) -> RegionScheme:
    """A :class:`RegionScheme` from its name (``"partition"``, ``"boxes"``) or itself."""
    if isinstance(scheme, RegionScheme):
        return scheme
    if scheme not in SCHEMES:
        raise RegionError(f"unknown region scheme {scheme!r}; choose one of {sorted(SCHEMES)}")
    return SCHEMES[scheme]()


# --- region maps --------------------------------------------------------------------


@dataclass(eq=False)
class RegionMap:
    """Labelled pixels ``(time, y, x)`` of each frame at the model's input size.

    Attributes:
        labels: ``(T, H, W)``; for an exclusive scheme (``partition``) uint8 indices into
            ``names``, for an overlapping one (``boxes``) uint16 bit flags (bit ``i`` set
            when the pixel is in ``names[i]``). Use :meth:`mask` rather than reading the
            encoding.
        names: region names.
        exclusive: whether every pixel has exactly one region.
        face_found: ``(T,)``; frames without a face are all ``background``.
        frame_indices: ``(T,)`` frame index in the source video.
        scheme: the scheme's name.

    Example:
        >>> import expresso_xai as ex
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=4)
        >>> region_map = ex.region_map(ex.track_faces(video, progress=False))
        >>> region_map.labels.shape, region_map.names[0]
        ((4, 112, 112), 'right_eye')
        >>> int(region_map.area().sum("region")[0])  # a partition covers every pixel once
        12544
    """

    labels: np.ndarray
    names: tuple[str, ...]
    exclusive: bool
    face_found: np.ndarray
    frame_indices: np.ndarray
    scheme: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.labels.shape[1]), int(self.labels.shape[2])

    def _index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise RegionError(f"no region {name!r} in scheme {self.scheme!r}; regions: {list(self.names)}") from None

    def mask(self, name: str) -> np.ndarray:
        """``(T, H, W)`` bool mask of one region."""
        i = self._index(name)
        if self.exclusive:
            return self.labels == i
        return (self.labels & np.uint16(1 << i)) != 0

    def masks(self) -> np.ndarray:
        """``(T, R, H, W)`` bool masks of all regions, in ``names`` order."""
        return np.stack([self.mask(name) for name in self.names], axis=1)

    def area(self):
        """Pixels of each region in each frame as an ``xarray.DataArray (time, region)``."""
        import xarray as xr

        if self.exclusive:
            n = len(self.names)
            flat = self.labels.reshape(len(self), -1).astype(np.int64) + n * np.arange(len(self))[:, None]
            counts = np.bincount(flat.ravel(), minlength=n * len(self)).reshape(len(self), n)
        else:
            counts = self.masks().sum(axis=(2, 3))
        return xr.DataArray(
            counts.astype(np.int64), dims=("time", "region"),
            coords={"time": self.frame_indices, "region": list(self.names)}, name="region_area",
        )

    def pool(self, values: np.ndarray) -> np.ndarray:
        """Sum ``(T, H, W)`` per-pixel values inside each region: ``(T, R)`` float64.

        With a partition the region sums add up to the frame's total.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.shape != self.labels.shape:
            raise RegionError(f"values of shape {values.shape} do not match the region map {self.labels.shape}")
        if self.exclusive:
            n = len(self.names)
            flat = self.labels.reshape(len(self), -1).astype(np.int64) + n * np.arange(len(self))[:, None]
            return np.bincount(flat.ravel(), weights=values.ravel(), minlength=n * len(self)).reshape(len(self), n)
        return np.einsum("trhw,thw->tr", self.masks(), values)

    def __getitem__(self, index) -> "RegionMap":
        """Frames of the map by slice or index array (e.g. a clip's positions)."""
        return RegionMap(
            self.labels[index], self.names, self.exclusive, self.face_found[index],
            self.frame_indices[index], self.scheme,
        )

    def __repr__(self) -> str:
        return f"RegionMap({len(self)} frames, {self.shape[1]}x{self.shape[0]}, scheme={self.scheme!r})"


def region_map(
    faces: FaceTrack,
    crop: FaceCrop | None = None,
    scheme: str | RegionScheme = "partition",
    size: tuple[int, int] | int = (112, 112),
) -> RegionMap:
    """Label every pixel of the model input with its facial region.

    Args:
        faces: landmarks in source pixels.
        crop: the transform to model input; default ``FaceCrop.from_track(faces, size)``.
            Use ``FaceCrop.identity(len(faces), faces.frame_size)`` for source pixels.
        scheme: ``"partition"`` (every pixel one label) or ``"boxes"`` (the reference
            study's overlapping padded boxes), or a :class:`RegionScheme`.

    Raises:
        NoFaceError: no frame has a face.

    Example:
        >>> import expresso_xai as ex
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=4)
        >>> faces = ex.track_faces(video, progress=False)
        >>> boxes = ex.region_map(faces, scheme="boxes")
        >>> boxes.exclusive, boxes.mask("mouth").shape
        (False, (4, 112, 112))
    """
    faces.require_face("a region map")
    scheme = get_scheme(scheme)
    crop = crop if crop is not None else FaceCrop.from_track(faces, size=size)
    if len(crop) != len(faces):
        raise RegionError(f"crop has {len(crop)} frames but the face track {len(faces)}")
    points = crop.apply_landmarks(np.nan_to_num(faces.landmarks))
    labels = np.stack([
        scheme.rasterize(points[t], crop.size) if faces.face_found[t] else scheme.empty(crop.size)
        for t in range(len(faces))
    ])
    return RegionMap(labels, scheme.names, scheme.exclusive, faces.face_found.copy(),
                     np.arange(len(faces)), scheme.name)


# --- drawing ------------------------------------------------------------------------

REGION_COLOURS: dict[str, tuple[int, int, int]] = {
    "right_eye": (230, 25, 75), "left_eye": (245, 130, 48), "right_brow": (145, 30, 180),
    "left_brow": (240, 50, 230), "nose": (255, 225, 25), "mouth": (60, 180, 75),
    "jaw": (0, 130, 200), "right_cheek": (70, 240, 240), "left_cheek": (170, 255, 195),
    "forehead": (128, 128, 0), "face_other": (170, 110, 40), "background": (0, 0, 0),
}


def draw_region_map(
    frame: np.ndarray, labels: np.ndarray, names: Sequence[str], alpha: float = 0.45,
    outlines: bool = True, exclusive: bool = True,
) -> np.ndarray:
    """Blend region colours over one ``(H, W, 3)`` uint8 RGB frame; ``background`` stays clear.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.regions import draw_region_map, PARTITION_REGIONS
        >>> labels = np.zeros((8, 8), np.uint8)  # all right_eye
        >>> draw_region_map(np.zeros((8, 8, 3), np.uint8), labels, PARTITION_REGIONS).shape
        (8, 8, 3)
    """
    import cv2

    image = frame.astype(np.float32).copy()
    for i, name in enumerate(names):
        if name == "background":
            continue
        inside = labels == i if exclusive else (labels & (1 << i)) != 0
        if not inside.any():
            continue
        colour = np.array(REGION_COLOURS.get(name, (255, 255, 255)), np.float32)
        image[inside] = (1 - alpha) * image[inside] + alpha * colour
        if outlines:
            contours, _ = cv2.findContours(inside.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            outline = np.zeros(labels.shape, np.uint8)
            cv2.drawContours(outline, contours, -1, 1, 1)
            image[outline > 0] = colour
    return np.clip(image, 0, 255).astype(np.uint8)


def plot_region_map(
    video: Video, faces: FaceTrack, region_map_: RegionMap | None = None, crop: FaceCrop | None = None,
    frame: int = 0, path=None, title: str | None = None,
):
    """Figure of one frame: the source with its landmarks, and the model input with its
    regions and a legend. Saves to ``path`` (PNG, PDF, ...) when given.

    Example:
        >>> import expresso_xai as ex
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=2)
        >>> figure = ex.regions.plot_region_map(video, ex.track_faces(video, progress=False))
        >>> len(figure.axes)
        2
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    crop = crop if crop is not None else FaceCrop.from_track(faces)
    region_map_ = region_map_ if region_map_ is not None else region_map(faces, crop)
    if not 0 <= frame < len(video):
        raise IndexError(f"frame {frame} outside the video's {len(video)} frames")
    model_input = crop[frame : frame + 1].apply(video.frames[frame : frame + 1])[0]
    overlay = draw_region_map(model_input, region_map_.labels[frame], region_map_.names,
                              exclusive=region_map_.exclusive)
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2))
    left.imshow(video.frames[frame])
    if faces.face_found[frame]:
        points = faces.landmarks[frame]
        left.scatter(points[:, 0], points[:, 1], s=4, c="#00ff66")
        h, w = crop.size
        corners = crop[frame : frame + 1].invert_points(
            np.array([[[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5], [-0.5, -0.5]]])
        )
        left.plot(*corners[0].T, c="white", lw=1)
    left.set_title(f"frame {frame}: landmarks and crop")
    right.imshow(overlay)
    right.set_title(f"model input {crop.size[1]}x{crop.size[0]}: regions ({region_map_.scheme})")
    present = [n for n in region_map_.names if n != "background" and region_map_.mask(n)[frame].any()]
    right.legend(
        handles=[Patch(color=np.array(REGION_COLOURS[n]) / 255, label=n) for n in present],
        loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False,
    )
    for axis in (left, right):
        axis.set_axis_off()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120, bbox_inches="tight")
    return figure
