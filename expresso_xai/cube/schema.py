"""The cube's schema: :func:`make_cube` builds a cube from plain arrays and
:func:`check_cube` refuses a Dataset that does not fit.

Schema (``cube_version`` 1)::

    attribution  (explainer, time, region)  float32  signed, unnormalised region sums
    region_area  (time, region)             int64    pixels of each region at model input size
    face_found   (time,)                    bool
    prediction   (time,)                    float32  mean model output of the clips covering the frame
    clip_start   (clip,)                    int64    optional: first frame of each model clip
    clip_prediction (clip,)                 float32  optional
    <clip stat>  (clip,)                    any      optional, e.g. integrated_gradients_steps
    <cell stat>  (time, region)             float32  optional, mean of a per-cell clip stat over the
                                                     clips covering the frame, e.g. occlusion_resolved
    pixels       (explainer, time, y, x)    float32  optional, for overlays
    region_label (time, y, x)               uint8/16 optional, each pixel's region (regions.label_encoding)
    crop_matrix  (time, affine_row, affine_col) float64 optional, video pixels -> model-input pixels
    coords: explainer (str), time (int64 frame index), seconds (float64, on time),
            region (str), clip (int64)
    attrs:  created, cube_version, expresso_xai_version, model_name, model_hash,
            video_source, video_hash, region_scheme, target, methods (JSON), versions (JSON)

``seconds`` is required: every cube make_cube writes has it, and the command line, the
figures and the Explorer label frames with it. Attribute values are only ``str``,
``int`` or ``float``; anything nested is stored as JSON text, so a cube written here
opens in plain xarray (and netCDF tools) unchanged. No dimension or variable is called
``method``: it is a keyword of ``Dataset.sel``, so ``cube.sel(method=...)`` would
silently select nothing.
"""

from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from ..errors import CubeError
from ..regions import ENCODINGS, label_dtype
from .provenance import CUBE_VERSION, cube_attrs

CUBE_DIMS = ("explainer", "time", "region")

# Keywords of xarray's own Dataset.sel/reindex/interp: a dimension or variable with one
# of these names would be shadowed by the keyword (``cube.sel(method="gradcam")``).
RESERVED_NAMES = frozenset({"method", "tolerance", "drop", "indexers"})

# Variables and coordinates of the schema; clip statistics must not reuse these names.
SCHEMA_NAMES = frozenset({
    "attribution", "region_area", "face_found", "prediction", "clip_start", "clip_prediction",
    "pixels", "region_label", "crop_matrix", "explainer", "time", "seconds", "region", "clip", "y", "x",
    "affine_row", "affine_col",
})

# Variables check_cube requires, and the dims each must have.
REQUIRED_DIMS = {"attribution": CUBE_DIMS, "region_area": ("time", "region"), "face_found": ("time",),
                 "seconds": ("time",)}


# --- input arrays ---------------------------------------------------------------------


def _named_array(value: Any, name: str, dims: tuple[str, ...]) -> np.ndarray:
    """An input as a numpy array; a DataArray is first put in ``dims`` order by name."""
    if isinstance(value, xr.DataArray):
        if set(value.dims) != set(dims):
            raise CubeError(f"{name} has dims {value.dims}, expected {dims}")
        value = value.transpose(*dims).values
    return np.asarray(value)


def _shaped(value: Any, name: str, dims: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
    """An input as a numpy array of ``shape`` (its ``dims``), or a CubeError naming it."""
    array = _named_array(value, name, dims)
    if array.shape != shape:
        described = ", ".join(f"{d}={n}" for d, n in zip(dims, shape))
        raise CubeError(f"{name} has shape {array.shape}, expected {shape} ({described})")
    return array


def _labels(values: Any, name: str) -> np.ndarray:
    """Unique, non-empty string labels as a fixed-width unicode array (the dtype that
    survives both netCDF and Zarr unchanged)."""
    if isinstance(values, str):
        raise CubeError(f"{name} must be a sequence of names, got the single string {values!r}")
    labels = list(values)
    if not labels:
        raise CubeError(f"{name} is empty; a cube needs at least one")
    bad = [label for label in labels if not isinstance(label, str) or not label]
    if bad:
        raise CubeError(f"{name} must be non-empty strings, got {bad!r}")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise CubeError(f"{name} are not unique: {repeated} appear more than once")
    return np.array(labels, dtype=str)


def _integers(value: Any, name: str, dims: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
    array = _shaped(value, name, dims, shape)
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise CubeError(f"{name} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def _floats(value: Any, name: str, dims: tuple[str, ...], shape: tuple[int, ...], dtype) -> np.ndarray:
    array = _shaped(value, name, dims, shape)
    if array.dtype.kind not in "biuf":
        raise CubeError(f"{name} must hold numbers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=dtype)


def _booleans(value: Any, name: str, dims: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
    array = _shaped(value, name, dims, shape)
    if array.dtype.kind in "iu" and np.isin(array, (0, 1)).all():
        array = array.astype(bool)
    if array.dtype.kind != "b":
        raise CubeError(f"{name} must be booleans, got dtype {array.dtype}")
    return array


def _clip_stat(value: Any, name: str, n_clips: int) -> np.ndarray:
    array = _shaped(value, f"clip_stats[{name!r}]", ("clip",), (n_clips,))
    kind = array.dtype.kind
    if kind == "b":
        return array
    if kind in "iu":
        return array.astype(np.int64)
    if kind == "f":
        # netCDF4 has no float16
        return array.astype(np.float32) if array.dtype.itemsize < 4 else array
    if kind in "UO" and all(isinstance(v, str) for v in array.tolist()):
        return array.astype(str)
    raise CubeError(f"clip_stats[{name!r}] has dtype {array.dtype}; use bool, int, float or str")


# --- the builders: each returns {name: (dims, values, attrs)} ---------------------------


def _frames(time: Any) -> np.ndarray:
    """The ``time`` coordinate: non-empty, integer, strictly increasing frame indices."""
    frames = np.asarray(time)
    if frames.ndim != 1 or len(frames) == 0:
        raise CubeError(f"time must be a non-empty 1-D array of frame indices, got shape {frames.shape}")
    frames = _integers(frames, "time", ("time",), frames.shape)
    if len(frames) > 1 and np.any(np.diff(frames) <= 0):
        raise CubeError("time must be strictly increasing frame indices (no repeats); "
                        f"got {frames[:10].tolist()}{' ...' if len(frames) > 10 else ''}")
    return frames


def _coords(explainers: np.ndarray, frames: np.ndarray, seconds: Any, regions: np.ndarray) -> dict:
    return {
        "explainer": ("explainer", explainers),
        "time": ("time", frames, {"long_name": "frame index in the source video"}),
        "seconds": ("time", _floats(seconds, "seconds", ("time",), frames.shape, np.float64),
                    {"long_name": "frame timestamp", "units": "s"}),
        "region": ("region", regions),
    }


def _frame_variables(attribution: Any, shape: tuple[int, int, int], region_area: Any, face_found: Any,
                     prediction: Any) -> dict:
    """The variables every cube has: attribution, region_area, face_found, prediction."""
    T, R = shape[1:]
    area = _integers(region_area, "region_area", ("time", "region"), (T, R))
    if np.any(area < 0):
        raise CubeError("region_area has negative pixel counts")
    if np.ndim(prediction) == 0:  # one clip: the same output for every frame
        prediction = np.full(T, prediction, dtype=np.float32)
    return {
        "attribution": (CUBE_DIMS, _floats(attribution, "attribution", CUBE_DIMS, shape, np.float32),
                        {"long_name": "attribution summed over the region's pixels (signed)"}),
        "region_area": (("time", "region"), area,
                        {"long_name": "pixels of the region at the model's input size", "units": "pixels"}),
        "face_found": (("time",), _booleans(face_found, "face_found", ("time",), (T,)),
                       {"long_name": "a face was found in the frame"}),
        "prediction": (("time",), _floats(prediction, "prediction", ("time",), (T,), np.float32),
                       {"long_name": "mean model output of the clips covering the frame"}),
    }


def _check_clip_stat_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise CubeError(f"clip_stats names must be non-empty strings, got {name!r}")
    if name in RESERVED_NAMES:
        raise CubeError(f"clip_stats name {name!r} is reserved: it is a keyword of xarray's .sel(); "
                        "prefix it with the explainer, e.g. 'integrated_gradients_" + name + "'")
    if name in SCHEMA_NAMES:
        raise CubeError(f"clip_stats name {name!r} is a variable of the cube schema; choose another")


def _clip_variables(clip_start: Any, clip_prediction: Any, clip_stats: Mapping[str, Any]) -> tuple[dict, dict]:
    """The ``clip`` coordinate and the per-clip variables: ``(coords, data_vars)``."""
    if clip_start is None:
        given = [name for name, value in (("clip_prediction", clip_prediction), ("clip_stats", clip_stats or None))
                 if value is not None]
        if given:
            raise CubeError(f"{' and '.join(given)} given without clip_start; pass each clip's first frame")
        return {}, {}
    starts = np.asarray(clip_start)
    if starts.ndim != 1:
        raise CubeError(f"clip_start has shape {starts.shape}, expected (clip,)")
    n_clips = len(starts)
    data_vars = {"clip_start": (("clip",), _integers(starts, "clip_start", ("clip",), (n_clips,)),
                                {"long_name": "first frame index of the model clip"})}
    if clip_prediction is not None:
        data_vars["clip_prediction"] = (
            ("clip",), _floats(clip_prediction, "clip_prediction", ("clip",), (n_clips,), np.float32),
            {"long_name": "model output for the clip"})
    for name, value in clip_stats.items():
        _check_clip_stat_name(name)
        data_vars[name] = (("clip",), _clip_stat(value, name, n_clips))
    return {"clip": ("clip", np.arange(n_clips, dtype=np.int64))}, data_vars


def _cell_variables(clip_start: Any, clip_stats: dict, frames: np.ndarray, n_regions: int) -> dict:
    """Clip stats given per cell, ``(clip, clip frame, region)`` (e.g. adaptive occlusion's
    ``occlusion_resolved``), taken out of ``clip_stats`` and stored on ``(time, region)``:
    each frame's mean over the clips that covered it (a clip frame past the video's end
    repeats its last frame, as the engine pads short videos)."""
    if clip_start is None:  # _clip_variables refuses the stats without their clips
        return {}
    cells = {name: np.asarray(value) for name, value in clip_stats.items() if np.ndim(value) == 3}
    data_vars = {}
    for name, value in cells.items():
        _check_clip_stat_name(name)
        del clip_stats[name]
        starts = np.asarray(clip_start)
        if value.shape[0] != len(starts) or value.shape[2] != n_regions or value.dtype.kind not in "biuf":
            raise CubeError(f"clip_stats[{name!r}] has shape {value.shape} and dtype {value.dtype}; a per-cell "
                            f"stat is numbers or booleans of shape (clip={len(starts)}, clip frame, region={n_regions})")
        positions = np.minimum(starts[:, None] + np.arange(value.shape[1]), frames[-1])
        rows = np.searchsorted(frames, positions).ravel()
        total, covered = np.zeros((len(frames), n_regions)), np.zeros(len(frames))
        np.add.at(total, rows, value.reshape(-1, n_regions).astype(np.float64))
        np.add.at(covered, rows, 1)
        mean = (total / np.where(covered, covered, np.nan)[:, None]).astype(np.float32)
        data_vars[name] = (("time", "region"), mean, {"long_name": f"{name}: mean over the clips covering the frame"})
    return data_vars


def _pixel_variable(pixels: Any, n_explainers: int, n_frames: int) -> dict:
    dims = ("explainer", "time", "y", "x")
    array = _named_array(pixels, "pixels", dims)
    if array.ndim != 4 or array.shape[:2] != (n_explainers, n_frames):
        raise CubeError(f"pixels has shape {array.shape}, expected (explainer={n_explainers}, "
                        f"time={n_frames}, y, x)")
    return {"pixels": (dims, _floats(array, "pixels", dims, array.shape, np.float32),
                       {"long_name": "attribution of each model-input pixel"})}


def _label_encoding_of(labels: np.ndarray, n_regions: int) -> str:
    """The encoding of ``region_label`` from its dtype (see :mod:`expresso_xai.regions`)."""
    encoding = next((e for e in ENCODINGS if labels.dtype == label_dtype(e)), None)
    if encoding is None:
        raise CubeError(f"region_label must be uint8 region indices or uint16 bit flags, got {labels.dtype}")
    if encoding == "index" and labels.max(initial=0) >= n_regions:
        raise CubeError(f"region_label has index {int(labels.max())} but there are only {n_regions} regions")
    return encoding


def _label_variable(region_label: Any, regions: np.ndarray, n_frames: int, pixel_shape) -> dict:
    labels = _named_array(region_label, "region_label", ("time", "y", "x"))
    if labels.ndim != 3 or labels.shape[0] != n_frames:
        raise CubeError(f"region_label has shape {labels.shape}, expected (time={n_frames}, y, x)")
    if pixel_shape is not None and labels.shape[1:] != pixel_shape:
        raise CubeError(f"region_label is {labels.shape[1:]} pixels but pixels is {pixel_shape}")
    return {"region_label": (("time", "y", "x"), labels,
                             {"long_name": "region of each model-input pixel",
                              "encoding": _label_encoding_of(labels, len(regions)),
                              # what the indices / bits refer to, even after cube.sel(region=...)
                              "regions": ",".join(regions.tolist())})}


def _crop_variable(crop_matrix: Any, n_frames: int) -> dict:
    dims = ("time", "affine_row", "affine_col")
    matrices = _floats(crop_matrix, "crop_matrix", dims, (n_frames, 2, 3), np.float64)
    if not np.isfinite(matrices).all():
        raise CubeError("crop_matrix has NaN or infinite values")
    return {"crop_matrix": (dims, matrices, {"long_name": "affine map from video pixels to model-input pixels"})}


def _overlay_variables(pixels: Any, region_label: Any, crop_matrix: Any, regions: np.ndarray,
                       shape: tuple[int, int, int]) -> dict:
    """The optional variables for overlays: pixels, region_label, crop_matrix."""
    data_vars = _pixel_variable(pixels, *shape[:2]) if pixels is not None else {}
    pixel_shape = data_vars["pixels"][1].shape[2:] if data_vars else None
    if region_label is not None:
        data_vars.update(_label_variable(region_label, regions, shape[1], pixel_shape))
    if crop_matrix is not None:
        data_vars.update(_crop_variable(crop_matrix, shape[1]))
    return data_vars


# --- building -------------------------------------------------------------------------


def make_cube(
    attribution: Any,
    *,
    explainers: Sequence[str],
    time: Any,
    seconds: Any,
    regions: Sequence[str],
    region_area: Any,
    face_found: Any,
    prediction: Any,
    clip_start: Any = None,
    clip_prediction: Any = None,
    target: int | str | None = None,
    pixels: Any = None,
    region_label: Any = None,
    crop_matrix: Any = None,
    clip_stats: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build and check an attribution cube from plain arrays.

    Args:
        attribution: ``(explainer, time, region)`` signed region sums (stored float32).
        explainers: the methods' registered names, one per ``attribution[i]``.
        time: ``(time,)`` frame indices in the source video, strictly increasing.
        seconds: ``(time,)`` each frame's timestamp in seconds.
        regions: region names (e.g. ``regions.PARTITION_REGIONS``).
        region_area: ``(time, region)`` pixels of each region at the model's input size.
        face_found: ``(time,)`` whether the frame had a face.
        prediction: ``(time,)`` mean model output of the clips covering each frame
            (``nan`` for a frame no clip covers); a scalar is repeated for every frame.
        clip_start: ``(clip,)`` first frame index of each model clip; gives the cube a
            ``clip`` dimension. Needed by ``clip_prediction`` and ``clip_stats``.
        clip_prediction: ``(clip,)`` the model's output for each clip.
        target: what was explained: a class index, or a label such as ``"regression"``
            or ``"predicted:3"``. Stored as ``attrs["target"]`` (left out when ``None``).
        pixels: ``(explainer, time, y, x)`` pixel attributions for overlays (float32).
        region_label: ``(time, y, x)`` each model-input pixel's region, for outlines, in
            the encoding of :func:`expresso_xai.regions.label_encoding`: uint8 indices
            into ``regions`` (a partition) or uint16 bit flags, bit ``i`` set when the
            pixel is in ``regions[i]`` (overlapping boxes).
        crop_matrix: ``(time, 2, 3)`` the affine map from source-video pixels to
            model-input pixels (``[x', y'] = M @ [x, y, 1]``), so overlays can be drawn
            on the video.
        clip_stats: ``{name: (clip,) array}`` per-clip diagnostics, each stored as a
            data variable on ``clip`` (e.g. ``integrated_gradients_converged``); a
            ``(clip, clip frame, region)`` array is a per-cell diagnostic, stored on
            ``(time, region)`` as each frame's mean over the clips covering it (e.g.
            ``occlusion_resolved``: the share of those clips that measured the cell alone).
        attrs: provenance; nested values (``methods``: each method's parameters,
            ``versions``) are stored as JSON text. ``created`` and library ``versions``
            are filled in (the caller's values win, versions are merged).

    Arrays may also be ``xarray.DataArray`` with those dimension names, in any order.

    Raises:
        CubeError: a shape, dtype or name does not fit the schema.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.cube import make_cube
        >>> regions = ["mouth", "nose", "background"]
        >>> cube = make_cube(
        ...     np.ones((2, 4, 3)), explainers=["gradcam", "saliency"], time=np.arange(4),
        ...     seconds=np.arange(4) / 25, regions=regions, region_area=np.full((4, 3), 10),
        ...     face_found=np.ones(4, bool), prediction=np.zeros(4), target="regression",
        ...     attrs={"model_name": "demo", "methods": {"gradcam": {"layer": "layer4"}}})
        >>> dict(cube.attribution.sizes), str(cube.attribution.dtype)
        ({'explainer': 2, 'time': 4, 'region': 3}, 'float32')
        >>> cube.attrs["cube_version"], cube.xai.params("gradcam")
        (1, {'layer': 'layer4'})
    """
    explainer_labels = _labels(explainers, "explainers")
    region_labels = _labels(regions, "regions")
    frames = _frames(time)
    shape = (len(explainer_labels), len(frames), len(region_labels))
    data_vars = _frame_variables(attribution, shape, region_area, face_found, prediction)
    coords = _coords(explainer_labels, frames, seconds, region_labels)
    clip_stats = dict(clip_stats or {})
    data_vars.update(_cell_variables(clip_start, clip_stats, frames, len(region_labels)))
    clip_coords, clip_vars = _clip_variables(clip_start, clip_prediction, clip_stats)
    coords.update(clip_coords)
    data_vars.update(clip_vars)
    data_vars.update(_overlay_variables(pixels, region_label, crop_matrix, region_labels, shape))
    return xr.Dataset(data_vars, coords=coords, attrs=cube_attrs(attrs, target, explainer_labels))


# --- checking -------------------------------------------------------------------------


def _not_a_cube(source: str, why: str) -> CubeError:
    return CubeError(f"{source} is not an attribution cube: {why}")


def _check_variables(dataset: xr.Dataset, source: str) -> None:
    """The required variables are there, on their dims, ``attribution`` a float."""
    if "attribution" not in dataset.data_vars:
        raise _not_a_cube(source, "it has no 'attribution' variable "
                                  f"(variables: {sorted(map(str, dataset.data_vars))})")
    for name, dims in REQUIRED_DIMS.items():
        if name not in dataset.variables:
            continue  # listed with the other missing names below
        if tuple(dataset[name].dims) != dims:
            raise _not_a_cube(source, f"{name!r} has dims {tuple(dataset[name].dims)}, expected {dims}")
    missing = [name for name in (*CUBE_DIMS, *REQUIRED_DIMS) if name not in dataset.variables]
    if missing:
        raise CubeError(f"{source} is not a complete attribution cube: missing {missing}")
    if dataset["attribution"].dtype.kind != "f":
        raise _not_a_cube(source, f"'attribution' must hold floating-point numbers, "
                                  f"got dtype {dataset['attribution'].dtype}")


def _check_coords(dataset: xr.Dataset, source: str) -> None:
    """At least one explainer, unique names, strictly increasing frames."""
    if dataset.sizes["explainer"] == 0:
        raise _not_a_cube(source, "'explainer' is empty; a cube needs at least one explainer")
    for dim in ("explainer", "region"):
        names = dataset[dim].values.tolist()
        repeated = sorted({str(name) for name in names if names.count(name) > 1})
        if repeated:
            raise _not_a_cube(source, f"{dim!r} names are not unique: {repeated} appear more than once")
    frames = dataset["time"].values
    if frames.dtype.kind not in "iu" or np.any(np.diff(frames) <= 0):
        raise _not_a_cube(source, "'time' must be strictly increasing integer frame indices (no repeats); "
                                  f"got {frames[:10].tolist()}")


def _reserved_names_in(dataset: xr.Dataset) -> list[str]:
    names = set(map(str, dataset.dims)) | set(map(str, dataset.variables))
    return sorted(names & RESERVED_NAMES)


def check_cube(dataset: xr.Dataset, source: str = "the cube") -> None:
    """Raise :class:`~expresso_xai.errors.CubeError` unless ``dataset`` is an attribution
    cube the rest of the library can read: ``attribution`` (float) on ``(explainer, time,
    region)`` with at least one explainer, ``region_area`` on ``(time, region)``,
    ``face_found`` and ``seconds`` on ``time``, unique explainer and region names,
    strictly increasing frames, no name that shadows a keyword of xarray's ``.sel()``,
    and a ``cube_version`` this library reads. The message names ``source`` (e.g. the
    file) and the variable at fault.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube()
        >>> check_cube(cube)  # a cube passes silently
        >>> check_cube(cube.drop_vars("seconds"), "my.nc")
        Traceback (most recent call last):
        ...
        expresso_xai.errors.CubeError: my.nc is not a complete attribution cube: missing ['seconds']
    """
    _check_variables(dataset, source)
    _check_coords(dataset, source)
    reserved = _reserved_names_in(dataset)
    if reserved:
        raise CubeError(f"{source} has dimensions or variables named {reserved}, which shadow "
                        "keywords of xarray's .sel(); rename them (the cube uses 'explainer')")
    version = dataset.attrs.get("cube_version", CUBE_VERSION)
    if isinstance(version, numbers.Integral) and int(version) > CUBE_VERSION:
        raise CubeError(f"{source} is a version {int(version)} cube; this expresso_xai reads up to "
                        f"version {CUBE_VERSION}: upgrade expresso_xai")


__all__ = ["CUBE_VERSION", "check_cube", "make_cube"]
