"""Facial regions at the pixels the model sees.

:class:`RegionScheme` and :class:`RegionMap`: labelled pixels built from 68 landmarks
mapped through the face crop (:class:`~expresso_xai.crop.FaceCrop`). ``partition``
(default) gives every pixel exactly one label, so region sums conserve the total;
``boxes`` reproduces the reference study's overlapping padded boxes.

This module is also the one home of the label encoding: an exclusive scheme stores each
pixel's region as a uint8 index (``"index"``), an overlapping one as uint16 bit flags
(``"bits"``, bit ``i`` set when the pixel is in region ``i``). :func:`label_encoding`,
:func:`label_dtype`, :func:`in_region` and :func:`relabel` are what the region map, the
cube (``region_label``), the figures and the Explorer's payload use to read them.

Left/right are the **subject's** (points 36–41 are the subject's right eye).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .crop import FaceCrop
from .errors import RegionError
from .faces.facetrack import FaceTrack

# --- the label encoding ---------------------------------------------------------------

ENCODINGS = ("index", "bits")
_LABEL_DTYPES = {"index": np.dtype(np.uint8), "bits": np.dtype(np.uint16)}
NO_REGION = 255  # the index of a pixel whose region was dropped (see relabel)


def _check_encoding(encoding: str) -> str:
    if encoding not in _LABEL_DTYPES:
        raise RegionError(f"unknown region label encoding {encoding!r}; choose one of {list(ENCODINGS)}")
    return encoding


def label_encoding(exclusive: bool) -> str:
    """How a scheme's labels are stored: ``"index"`` (one region per pixel) when it is
    exclusive, else ``"bits"`` (bit flags, regions may overlap).

    Example:
        >>> label_encoding(True), label_encoding(False)
        ('index', 'bits')
    """
    return "index" if exclusive else "bits"


def label_dtype(encoding: str) -> np.dtype:
    """The dtype of labels in ``encoding``: uint8 indices or uint16 bit flags.

    Example:
        >>> label_dtype("index"), label_dtype("bits")
        (dtype('uint8'), dtype('uint16'))
    """
    return _LABEL_DTYPES[_check_encoding(encoding)]


def _label_of(index: int, encoding: str) -> int:
    """The label value of a pixel in region ``index`` alone."""
    return index if _check_encoding(encoding) == "index" else 1 << index


def in_region(labels: np.ndarray, index: int, encoding: str) -> np.ndarray:
    """Bool array, ``labels``' shape: which pixels are in region number ``index``.

    Example:
        >>> in_region(np.array([0, 1, 2], np.uint8), 1, "index").tolist()
        [False, True, False]
        >>> in_region(np.array([0b01, 0b11, 0b10], np.uint16), 1, "bits").tolist()
        [False, True, True]
    """
    labels = np.asarray(labels)
    if _check_encoding(encoding) == "index":
        return labels == index
    return (labels & np.uint16(1 << index)) != 0


def relabel(labels: np.ndarray, stored_names: Sequence[str], current_names: Sequence[str],
            encoding: str) -> np.ndarray:
    """``labels`` that refer to ``stored_names``, renumbered to refer to
    ``current_names`` (e.g. after ``cube.sel(region=[...])`` subset or reordered the
    regions). Pixels of a region no longer among the names get ``NO_REGION`` (255)
    as an index, or lose its bit.

    Example:
        >>> stored, current = ["eye", "mouth", "background"], ["background", "mouth"]
        >>> relabel(np.array([0, 1, 2], np.uint8), stored, current, "index").tolist()
        [255, 1, 0]
        >>> relabel(np.array([0b011, 0b110], np.uint16), stored, current, "bits").tolist()
        [2, 3]
    """
    stored, current = list(stored_names), list(current_names)
    labels = np.asarray(labels)
    _check_encoding(encoding)
    if stored == current:
        return labels
    if encoding == "index":
        lookup = np.full(256, NO_REGION, np.uint8)
        lookup[: len(stored)] = [current.index(n) if n in current else NO_REGION for n in stored]
        return lookup[labels]
    remapped = np.zeros(labels.shape, dtype=np.uint16)
    for old, name in enumerate(stored):
        if name in current:
            remapped |= (((labels >> old) & 1) << current.index(name)).astype(np.uint16)
    return remapped


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

    @property
    def encoding(self) -> str:
        """How the labels are stored (:func:`label_encoding`)."""
        return label_encoding(self.exclusive)

    def rasterize(self, landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Labels ``(H, W)`` for one frame's ``(68, 2)`` landmarks in output pixels."""
        raise NotImplementedError

    def empty(self, shape: tuple[int, int]) -> np.ndarray:
        """Labels of a frame without a face: everything ``background``."""
        background = _label_of(self.names.index("background"), self.encoding)
        return np.full(shape, background, dtype=label_dtype(self.encoding))

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
        labels = np.full(shape, idx["background"], dtype=label_dtype(self.encoding))
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
        labels = np.zeros(shape, dtype=label_dtype(self.encoding))
        for name, (x0, y0, x1, y1) in self.boxes(landmarks).items():
            inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
            labels[inside] |= labels.dtype.type(_label_of(self.names.index(name), self.encoding))
        labels[labels == 0] = _label_of(self.names.index("background"), self.encoding)
        return labels


SCHEMES: dict[str, type[RegionScheme]] = {"partition": PartitionScheme, "boxes": BoxScheme}


def get_scheme(scheme: str | RegionScheme) -> RegionScheme:
    """A :class:`RegionScheme` from its name (``"partition"``, ``"boxes"``) or itself.

    Example:
        >>> scheme = get_scheme("boxes")
        >>> scheme.name, scheme.encoding, scheme.empty((2, 2)).tolist()
        ('boxes', 'bits', [[128, 128], [128, 128]])
    """
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
        """``(height, width)`` of the labelled frames."""
        return int(self.labels.shape[1]), int(self.labels.shape[2])

    @property
    def encoding(self) -> str:
        """How ``labels`` are stored (:func:`label_encoding`)."""
        return label_encoding(self.exclusive)

    def _index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise RegionError(f"no region {name!r} in scheme {self.scheme!r}; regions: {list(self.names)}") from None

    def mask(self, name: str) -> np.ndarray:
        """``(T, H, W)`` bool mask of one region."""
        return in_region(self.labels, self._index(name), self.encoding)

    def masks(self) -> np.ndarray:
        """``(T, R, H, W)`` bool masks of all regions, in ``names`` order."""
        return np.stack([self.mask(name) for name in self.names], axis=1)

    def area(self):
        """Pixels of each region in each frame as an ``xarray.DataArray (time, region)``."""
        import xarray as xr

        if self.encoding == "index":  # one label a pixel: count them all at once
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
        if self.encoding == "index":  # one label a pixel: count them all at once
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
        """One line: scheme, regions, frames, size, and the frames without a face if any.

        Example:
            >>> names = get_scheme("partition").names
            >>> RegionMap(np.zeros((16, 112, 112), np.uint8), names, True, np.arange(16) > 1, np.arange(16),
            ...           "partition")
            <RegionMap 'partition' 12 regions 16 frames 112x112, 2 without a face>
        """
        missing = int(len(self) - np.count_nonzero(self.face_found))
        faceless = f", {missing} without a face" if missing else ""
        return (f"<RegionMap {self.scheme!r} {len(self.names)} regions {len(self)} frames "
                f"{self.shape[1]}x{self.shape[0]}{faceless}>")


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


# --- colours -------------------------------------------------------------------------

REGION_COLOURS: dict[str, tuple[int, int, int]] = {
    "right_eye": (230, 25, 75), "left_eye": (245, 130, 48), "right_brow": (145, 30, 180),
    "left_brow": (240, 50, 230), "nose": (255, 225, 25), "mouth": (60, 180, 75),
    "jaw": (0, 130, 200), "right_cheek": (70, 240, 240), "left_cheek": (170, 255, 195),
    "forehead": (128, 128, 0), "face_other": (170, 110, 40), "background": (0, 0, 0),
}


__all__ = [
    "BOX_REGIONS", "ENCODINGS", "NO_REGION", "PARTITION_REGIONS", "REGION_COLOURS", "SCHEMES", "BoxScheme",
    "PartitionScheme", "RegionMap", "RegionScheme", "get_scheme", "in_region", "label_dtype",
    "label_encoding", "region_map", "relabel",
]
