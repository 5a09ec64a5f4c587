"""The attribution cube: the one ``xarray.Dataset`` every part of expresso-xai agrees on.

This module owns the schema (:func:`make_cube` builds and checks it), the ``.xai``
accessor with the derived views (share, density, top regions or frames, a tidy table),
and NetCDF/Zarr I/O (:func:`open_cube`, ``cube.xai.to_netcdf``, ``cube.xai.to_zarr``).

Schema (``cube_version`` 1)::

    attribution  (explainer, time, region)  float32  signed, unnormalised region sums
    region_area  (time, region)             int64    pixels of each region at model input size
    face_found   (time,)                    bool
    prediction   (time,)                    float32  mean model output of the clips covering the frame
    clip_start   (clip,)                    int64    optional: first frame of each model clip
    clip_prediction (clip,)                 float32  optional
    <clip stat>  (clip,)                    any      optional, e.g. integrated_gradients_steps
    pixels       (explainer, time, y, x)    float32  optional, for overlays
    coords: explainer (str), time (int64 frame index), seconds (float64, on time),
            region (str), clip (int64)
    attrs:  created, cube_version, expresso_xai_version, model_name, model_hash,
            video_source, video_hash, region_scheme, target, methods (JSON), versions (JSON)

Attribute values are only ``str``, ``int`` or ``float``; anything nested is stored as
JSON text, so a cube written here opens in plain xarray (and netCDF tools) unchanged.
No dimension or variable is called ``method``: it is a keyword of ``Dataset.sel``, so
``cube.sel(method=...)`` would silently select nothing.

Derived views live on the accessor and are computed on demand, never stored.
"""

from __future__ import annotations

import json
import numbers
import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .errors import CubeError

CUBE_VERSION = 1

# Keywords of xarray's own Dataset.sel/reindex/interp: a dimension or variable with one
# of these names would be shadowed by the keyword (``cube.sel(method="gradcam")``).
RESERVED_NAMES = frozenset({"method", "tolerance", "drop", "indexers"})

# Variables and coordinates of the schema; clip statistics must not reuse these names.
SCHEMA_NAMES = frozenset({
    "attribution", "region_area", "face_found", "prediction", "clip_start", "clip_prediction",
    "pixels", "region_label", "crop_matrix", "explainer", "time", "seconds", "region", "clip", "y", "x",
    "affine_row", "affine_col",
})

# Attributes every cube carries; make_cube fills the ones the caller leaves out.
PROVENANCE_ATTRS = ("model_name", "model_hash", "video_source", "video_hash", "region_scheme")

ZARR_FORMAT = 2  # Zarr v3 has no specification yet for fixed-width unicode (the str coords)


# --- building -----------------------------------------------------------------------


def _package_version(distribution: str) -> str | None:
    try:
        return _distribution_version(distribution)
    except PackageNotFoundError:
        return None


def _library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a cube's numbers; read from the installed
    distributions' metadata, so torch and captum are not imported for this."""
    versions = {"python": platform.python_version()}
    for name, distribution in (("expresso_xai", "expresso-xai"), ("numpy", "numpy"), ("xarray", "xarray"),
                               ("torch", "torch"), ("captum", "captum")):
        found = _package_version(distribution)
        if found is not None:
            versions[name] = found
    return versions


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, datetime)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as error:
        raise CubeError(f"{what} cannot be stored as JSON text in the cube's attrs: {error}; "
                        "pass numbers, strings, lists and dicts") from None


def _attr_value(name: str, value: Any) -> str | int | float:
    """A netCDF-safe attribute value: str, int and float as they are (numpy scalars
    made plain), everything else (dicts, lists, bools, None) as JSON text."""
    if isinstance(value, (bool, np.bool_)):
        return _to_json(bool(value), f"attrs[{name!r}]")
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return _to_json(value, f"attrs[{name!r}]")


def _named_array(value: Any, name: str, dims: tuple[str, ...]) -> np.ndarray:
    """An input as a numpy array; a DataArray is first put in ``dims`` order by name."""
    if isinstance(value, xr.DataArray):
        if set(value.dims) != set(dims):
            raise CubeError(f"{name} has dims {value.dims}, expected {dims}")
        value = value.transpose(*dims).values
    return np.asarray(value)


def _check_shape(array: np.ndarray, name: str, dims: tuple[str, ...], shape: tuple[int, ...]) -> None:
    if array.shape != shape:
        described = ", ".join(f"{d}={n}" for d, n in zip(dims, shape))
        raise CubeError(f"{name} has shape {array.shape}, expected {shape} ({described})")


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
    array = _named_array(value, name, dims)
    _check_shape(array, name, dims, shape)
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise CubeError(f"{name} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def _floats(value: Any, name: str, dims: tuple[str, ...], shape: tuple[int, ...], dtype) -> np.ndarray:
    array = _named_array(value, name, dims)
    _check_shape(array, name, dims, shape)
    if array.dtype.kind not in "biuf":
        raise CubeError(f"{name} must hold numbers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=dtype)


def _booleans(value: Any, name: str, dims: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
    array = _named_array(value, name, dims)
    _check_shape(array, name, dims, shape)
    if array.dtype.kind in "iu" and np.isin(array, (0, 1)).all():
        array = array.astype(bool)
    if array.dtype.kind != "b":
        raise CubeError(f"{name} must be booleans, got dtype {array.dtype}")
    return array


def _clip_stat(value: Any, name: str, n_clips: int) -> np.ndarray:
    array = _named_array(value, f"clip_stats[{name!r}]", ("clip",))
    _check_shape(array, f"clip_stats[{name!r}]", ("clip",), (n_clips,))
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


def _target_attr(target: Any) -> int | str:
    if isinstance(target, (bool, np.bool_)):
        raise CubeError(f"target must be a class index (int) or a label such as 'regression', got {target!r}")
    if isinstance(target, numbers.Integral):
        return int(target)
    if isinstance(target, str):
        return target
    raise CubeError(f"target must be a class index (int) or a label such as 'regression', got {target!r}")


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
        region_label: ``(time, y, x)`` each model-input pixel's region, for outlines:
            uint8 indices into ``regions`` (a partition) or uint16 bit flags, bit ``i``
            set when the pixel is in ``regions[i]`` (overlapping boxes).
        crop_matrix: ``(time, 2, 3)`` the affine map from source-video pixels to
            model-input pixels (``[x', y'] = M @ [x, y, 1]``), so overlays can be drawn
            on the video.
        clip_stats: ``{name: (clip,) array}`` per-clip diagnostics, each stored as a
            data variable on ``clip`` (e.g. ``integrated_gradients_converged``).
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
    frames = np.asarray(time)
    if frames.ndim != 1 or len(frames) == 0:
        raise CubeError(f"time must be a non-empty 1-D array of frame indices, got shape {frames.shape}")
    E, T, R = len(explainer_labels), len(frames), len(region_labels)
    frames = _integers(frames, "time", ("time",), (T,))
    if T > 1 and np.any(np.diff(frames) <= 0):
        raise CubeError("time must be strictly increasing frame indices (no repeats); "
                        f"got {frames[:10].tolist()}{' ...' if T > 10 else ''}")
    cube_dims = ("explainer", "time", "region")
    data_vars: dict[str, tuple] = {
        "attribution": (cube_dims, _floats(attribution, "attribution", cube_dims, (E, T, R), np.float32),
                        {"long_name": "attribution summed over the region's pixels (signed)"}),
    }
    area = _integers(region_area, "region_area", ("time", "region"), (T, R))
    if np.any(area < 0):
        raise CubeError("region_area has negative pixel counts")
    data_vars["region_area"] = (("time", "region"), area,
                                {"long_name": "pixels of the region at the model's input size", "units": "pixels"})
    data_vars["face_found"] = (("time",), _booleans(face_found, "face_found", ("time",), (T,)),
                               {"long_name": "a face was found in the frame"})
    if np.ndim(prediction) == 0:  # one clip: the same output for every frame
        prediction = np.full(T, prediction, dtype=np.float32)
    data_vars["prediction"] = (("time",), _floats(prediction, "prediction", ("time",), (T,), np.float32),
                               {"long_name": "mean model output of the clips covering the frame"})
    coords: dict[str, Any] = {
        "explainer": ("explainer", explainer_labels),
        "time": ("time", frames, {"long_name": "frame index in the source video"}),
        "seconds": ("time", _floats(seconds, "seconds", ("time",), (T,), np.float64),
                    {"long_name": "frame timestamp", "units": "s"}),
        "region": ("region", region_labels),
    }

    clip_stats = dict(clip_stats or {})
    if clip_start is None:
        given = [name for name, value in (("clip_prediction", clip_prediction), ("clip_stats", clip_stats or None))
                 if value is not None]
        if given:
            raise CubeError(f"{' and '.join(given)} given without clip_start; pass each clip's first frame")
    else:
        starts = np.asarray(clip_start)
        if starts.ndim != 1:
            raise CubeError(f"clip_start has shape {starts.shape}, expected (clip,)")
        n_clips = len(starts)
        coords["clip"] = ("clip", np.arange(n_clips, dtype=np.int64))
        data_vars["clip_start"] = (("clip",), _integers(starts, "clip_start", ("clip",), (n_clips,)),
                                   {"long_name": "first frame index of the model clip"})
        if clip_prediction is not None:
            data_vars["clip_prediction"] = (
                ("clip",), _floats(clip_prediction, "clip_prediction", ("clip",), (n_clips,), np.float32),
                {"long_name": "model output for the clip"})
        for name, value in clip_stats.items():
            if not isinstance(name, str) or not name:
                raise CubeError(f"clip_stats names must be non-empty strings, got {name!r}")
            if name in RESERVED_NAMES:
                raise CubeError(f"clip_stats name {name!r} is reserved: it is a keyword of xarray's .sel(); "
                                "prefix it with the explainer, e.g. 'integrated_gradients_" + name + "'")
            if name in SCHEMA_NAMES:
                raise CubeError(f"clip_stats name {name!r} is a variable of the cube schema; choose another")
            data_vars[name] = (("clip",), _clip_stat(value, name, n_clips))

    if pixels is not None:
        pixel_array = _named_array(pixels, "pixels", ("explainer", "time", "y", "x"))
        if pixel_array.ndim != 4 or pixel_array.shape[:2] != (E, T):
            raise CubeError(f"pixels has shape {pixel_array.shape}, expected (explainer={E}, time={T}, y, x)")
        data_vars["pixels"] = (("explainer", "time", "y", "x"),
                               _floats(pixel_array, "pixels", ("explainer", "time", "y", "x"),
                                       pixel_array.shape, np.float32),
                               {"long_name": "attribution of each model-input pixel"})

    if region_label is not None:
        labels = _named_array(region_label, "region_label", ("time", "y", "x"))
        if labels.ndim != 3 or labels.shape[0] != T:
            raise CubeError(f"region_label has shape {labels.shape}, expected (time={T}, y, x)")
        if "pixels" in data_vars and labels.shape[1:] != data_vars["pixels"][1].shape[2:]:
            raise CubeError(f"region_label is {labels.shape[1:]} pixels but pixels is "
                            f"{data_vars['pixels'][1].shape[2:]}")
        if labels.dtype == np.uint8:
            encoding = "index"
            if labels.max(initial=0) >= R:
                raise CubeError(f"region_label has index {int(labels.max())} but there are only {R} regions")
        elif labels.dtype == np.uint16:
            encoding = "bits"
        else:
            raise CubeError(f"region_label must be uint8 region indices or uint16 bit flags, got {labels.dtype}")
        data_vars["region_label"] = (("time", "y", "x"), labels,
                                     {"long_name": "region of each model-input pixel", "encoding": encoding,
                                      # what the indices / bits refer to, even after cube.sel(region=...)
                                      "regions": ",".join(region_labels.tolist())})
    if crop_matrix is not None:
        matrices = _floats(crop_matrix, "crop_matrix", ("time", "affine_row", "affine_col"), (T, 2, 3), np.float64)
        if not np.isfinite(matrices).all():
            raise CubeError("crop_matrix has NaN or infinite values")
        data_vars["crop_matrix"] = (("time", "affine_row", "affine_col"), matrices,
                                    {"long_name": "affine map from video pixels to model-input pixels"})

    cube_attrs: dict[str, Any] = {
        "cube_version": CUBE_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "expresso_xai_version": _package_version("expresso-xai") or "0.0.0",
        **{name: "" for name in PROVENANCE_ATTRS},
        "methods": {},
    }
    caller = dict(attrs or {})
    versions = _library_versions()
    caller_versions = caller.pop("versions", None)
    if isinstance(caller_versions, str):
        caller_versions = json.loads(caller_versions)
    versions.update(caller_versions or {})
    if isinstance(caller.get("methods"), str):
        caller["methods"] = json.loads(caller["methods"])
    caller.pop("cube_version", None)
    cube_attrs.update(caller)
    cube_attrs["versions"] = versions
    if target is not None:
        cube_attrs["target"] = _target_attr(target)
    methods = cube_attrs["methods"]
    if not isinstance(methods, Mapping):
        raise CubeError(f"attrs['methods'] must map each explainer to its parameters, got {type(methods).__name__}")
    unknown = sorted(set(methods) - set(explainer_labels.tolist()))
    if unknown:
        raise CubeError(f"attrs['methods'] has parameters for {unknown}, which are not among the "
                        f"explainers {explainer_labels.tolist()}")
    for name in cube_attrs:
        if not isinstance(name, str):
            raise CubeError(f"attribute names must be strings, got {name!r}")
    safe_attrs = {name: _attr_value(name, value) for name, value in cube_attrs.items()}
    return xr.Dataset(data_vars, coords=coords, attrs=safe_attrs)


def example_cube(
    explainers: Sequence[str] = ("gradcam", "integrated_gradients"),
    n_frames: int = 16,
    fps: float = 25.0,
    seed: int = 0,
    pixels: bool = False,
) -> xr.Dataset:
    """A small synthetic cube over the 12 partition regions, for examples and tests.

    The attribution is noise plus a planted positive signal in ``mouth`` on every
    explainer; frame 3 has no face (all pixels ``background``).

    Example:
        >>> from expresso_xai.cube import example_cube
        >>> cube = example_cube()
        >>> cube.xai.explainers, len(cube.xai.regions), cube.sizes["time"]
        (('gradcam', 'integrated_gradients'), 12, 16)
        >>> cube.xai.top(k=1, by="attribution").region.tolist()
        ['mouth', 'mouth']
    """
    from .regions import PARTITION_REGIONS

    rng = np.random.default_rng(seed)
    E, T, R = len(explainers), int(n_frames), len(PARTITION_REGIONS)
    area = rng.integers(80, 600, size=(T, R))
    face_found = np.ones(T, bool)
    if T > 3:
        face_found[3] = False
    background = PARTITION_REGIONS.index("background")
    area[~face_found] = 0
    area[:, background] = 112 * 112 - area.sum(axis=1) + area[:, background]
    attribution = rng.normal(0.0, 1.0, size=(E, T, R)) * np.sqrt(area)[None] * 0.01
    mouth = PARTITION_REGIONS.index("mouth")
    attribution[:, face_found, mouth] += 2.0
    pixel_values = rng.normal(size=(E, T, 8, 8)) if pixels else None
    return make_cube(
        attribution, explainers=list(explainers), time=np.arange(T), seconds=np.arange(T) / fps,
        regions=PARTITION_REGIONS, region_area=area, face_found=face_found,
        prediction=rng.normal(10.0, 1.0, size=T), target="regression", pixels=pixel_values,
        attrs={"model_name": "synthetic", "region_scheme": "partition", "video_source": "synthetic",
               "methods": {name: {} for name in explainers}},
    )


# --- checking and I/O ---------------------------------------------------------------


def _reserved_names_in(dataset: xr.Dataset) -> list[str]:
    names = set(map(str, dataset.dims)) | set(map(str, dataset.variables))
    return sorted(names & RESERVED_NAMES)


def _check_cube(dataset: xr.Dataset, source: str) -> None:
    """Raise CubeError unless ``dataset`` has the cube's core variables."""
    if "attribution" not in dataset.data_vars:
        raise CubeError(f"{source} is not an attribution cube: it has no 'attribution' variable "
                        f"(variables: {sorted(map(str, dataset.data_vars))})")
    dims = tuple(dataset["attribution"].dims)
    if dims != ("explainer", "time", "region"):
        raise CubeError(f"{source} is not an attribution cube: 'attribution' has dims {dims}, "
                        "expected ('explainer', 'time', 'region')")
    missing = [name for name in ("explainer", "time", "region", "region_area", "face_found")
               if name not in dataset.variables]
    if missing:
        raise CubeError(f"{source} is not a complete attribution cube: missing {missing}")
    reserved = _reserved_names_in(dataset)
    if reserved:
        raise CubeError(f"{source} has dimensions or variables named {reserved}, which shadow "
                        "keywords of xarray's .sel(); rename them (the cube uses 'explainer')")
    version = dataset.attrs.get("cube_version", CUBE_VERSION)
    if isinstance(version, numbers.Integral) and int(version) > CUBE_VERSION:
        raise CubeError(f"{source} is a version {int(version)} cube; this expresso_xai reads up to "
                        f"version {CUBE_VERSION}: upgrade expresso_xai")


def _plain_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values as plain Python (netCDF gives back numpy scalars)."""
    return {name: value.item() if isinstance(value, np.generic) else value for name, value in attrs.items()}


def _unicode_labels(dataset: xr.Dataset) -> xr.Dataset:
    """Text variables as fixed-width unicode, whatever the store gave back (object,
    numpy StringDType), so a cube is the same in memory however it was stored."""
    text = {}
    for name, variable in dataset.variables.items():
        if variable.dtype.kind not in "OT" or not variable.size:
            continue
        strings = variable.values.ravel().tolist()
        if all(isinstance(v, str) for v in strings):
            # via Python strings: numpy cannot cast StringDType to unsized "<U"
            labels = np.array(strings, dtype=str).reshape(variable.shape)
            text[name] = xr.Variable(variable.dims, labels, variable.attrs)
    if not text:
        return dataset
    return dataset.assign_coords({n: v for n, v in text.items() if n in dataset.coords}).assign(
        {n: v for n, v in text.items() if n in dataset.data_vars})


def _is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or path.is_dir()


def open_cube(path: str | Path) -> xr.Dataset:
    """Read a cube written by ``cube.xai.to_netcdf`` (``.nc``) or ``cube.xai.to_zarr``
    (``.zarr``, a folder) fully into memory; the file is closed on return.

    Raises:
        CubeError: the path does not exist, is not readable as netCDF/Zarr, or holds
            no attribution cube.

    Example:
        >>> import pathlib, tempfile
        >>> from expresso_xai.cube import example_cube, open_cube
        >>> cube = example_cube()
        >>> path = cube.xai.to_netcdf(pathlib.Path(tempfile.mkdtemp()) / "cube.nc")
        >>> open_cube(path).identical(cube)
        True
    """
    path = Path(path)
    if not path.exists():
        raise CubeError(f"no cube at {path}: the file does not exist")
    zarr = _is_zarr(path)
    try:
        if zarr:
            opened = xr.open_zarr(path, consolidated=None, chunks=None)
        else:
            opened = xr.open_dataset(path, engine="netcdf4")
        with opened:
            dataset = opened.load()
    except (OSError, ValueError, KeyError, TypeError) as error:
        kind = "Zarr store" if zarr else "netCDF file"
        raise CubeError(f"{path} could not be read as a {kind}: {error}") from error
    dataset = _unicode_labels(dataset.drop_encoding())
    dataset.attrs = _plain_attrs(dataset.attrs)
    for variable in dataset.variables.values():
        variable.attrs = _plain_attrs(variable.attrs)
    _check_cube(dataset, str(path))
    return dataset


def _check_attrs_safe(dataset: xr.Dataset, path: Path) -> None:
    for owner, attrs in [("the cube", dataset.attrs)] + [
        (f"variable {name!r}", variable.attrs) for name, variable in dataset.variables.items()
    ]:
        for name, value in attrs.items():
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (str, numbers.Integral, numbers.Real)):
                raise CubeError(f"cannot write {path}: attribute {name!r} of {owner} is a "
                                f"{type(value).__name__}; store it as JSON text (json.dumps) or a str/int/float")


# --- the accessor -------------------------------------------------------------------


def _expanded(data: xr.DataArray, dims: tuple[str, ...]) -> xr.DataArray:
    """``data`` with ``dims`` in order, re-growing dims that a ``.sel`` turned scalar."""
    for dim in dims:
        if dim not in data.dims and dim in data.coords:
            data = data.expand_dims(dim)
    return data.transpose(*dims)


@xr.register_dataset_accessor("xai")
class XaiAccessor:
    """``cube.xai``: derived views and I/O of an attribution cube.

    Views are computed when asked for and never stored in the cube.

    Example:
        >>> from expresso_xai.cube import example_cube
        >>> cube = example_cube()
        >>> float(abs(cube.xai.share()).sum(("time", "region")).min())  # doctest: +ELLIPSIS
        1.0...
        >>> cube.xai.to_dataframe().shape
        (384, 8)
    """

    def __init__(self, dataset: xr.Dataset):
        self._cube = dataset

    # -- parts ---------------------------------------------------------------------

    @property
    def _attribution(self) -> xr.DataArray:
        if "attribution" not in self._cube.data_vars:
            raise CubeError("this Dataset is not an attribution cube: it has no 'attribution' variable; "
                            "build one with expresso_xai.explain or make_cube")
        return self._cube["attribution"]

    def _variable(self, name: str) -> xr.DataArray:
        if name not in self._cube.variables:
            raise CubeError(f"this cube has no {name!r} variable; it is needed here")
        return self._cube[name]

    @property
    def explainers(self) -> tuple[str, ...]:
        """The explainers' names, in the cube's order."""
        return tuple(str(name) for name in np.atleast_1d(self._attribution["explainer"].values))

    @property
    def regions(self) -> tuple[str, ...]:
        """The region names, in the cube's order."""
        return tuple(str(name) for name in np.atleast_1d(self._attribution["region"].values))

    def _check_explainer(self, explainer: str) -> None:
        if explainer not in self.explainers:
            raise CubeError(f"no explainer {explainer!r} in this cube; explainers: {list(self.explainers)}")

    # -- views ---------------------------------------------------------------------

    def share(self, dim: str | Iterable[str] = ("time", "region")) -> xr.DataArray:
        """Attribution as a fraction of the total |attribution| over ``dim``, per
        explainer: over the default ``("time", "region")`` the |share| of all cells of an
        explainer sums to 1. Where the total is 0 the share is 0 (float64).

        Example:
            >>> from expresso_xai.cube import example_cube
            >>> per_frame = example_cube().xai.share("region")  # each frame's regions sum to 1 in |.|
            >>> bool(abs(abs(per_frame).sum("region") - 1).max() < 1e-9)
            True
        """
        attribution = self._attribution.astype(np.float64)
        dims = (dim,) if isinstance(dim, str) else tuple(dim)
        unknown = [d for d in dims if d not in attribution.dims]
        if unknown:
            raise CubeError(f"cannot share over {unknown}: attribution has dims {attribution.dims}")
        total = abs(attribution).sum(dims)
        share = xr.where(total > 0, attribution / total.where(total > 0), 0.0)
        share = share.transpose(*attribution.dims)
        share.name = "share"
        share.attrs = {"long_name": f"share of total |attribution| over {', '.join(dims)}"}
        return share

    def density(self) -> xr.DataArray:
        """Attribution per pixel: attribution / region_area; NaN where the area is 0
        (float64).

        Example:
            >>> from expresso_xai.cube import example_cube
            >>> density = example_cube().xai.density()
            >>> bool(density.sel(time=3, region="mouth").isnull().all())  # no face in frame 3
            True
        """
        attribution = self._attribution.astype(np.float64)
        area = self._variable("region_area")
        density = attribution / area.where(area > 0)
        density = density.transpose(*attribution.dims)
        density.name = "density"
        density.attrs = {"long_name": "attribution per pixel of the region", "units": "1/pixel"}
        return density

    def top(self, k: int = 3, by: str = "density", dim: str = "region") -> pd.DataFrame:
        """The ``k`` highest regions (``dim="region"``, each summed over time) or
        frames (``dim="time"``, each summed over regions) of each explainer.

        ``by`` is ``"attribution"`` (signed sum), ``"density"`` (summed attribution over
        summed area) or ``"share"`` (summed share of the total |attribution|). Rank 1 is
        the highest value; ties keep the cube's order; NaN values (no pixels) are left
        out. Columns: ``explainer``, ``region`` or ``time``, ``value``, ``rank``.

        Example:
            >>> from expresso_xai.cube import example_cube
            >>> table = example_cube(explainers=["gradcam"]).xai.top(k=2, by="attribution")
            >>> list(table.columns), table["rank"].tolist()
            (['explainer', 'region', 'value', 'rank'], [1, 2])
        """
        if dim not in ("region", "time"):
            raise CubeError(f"top() ranks regions or frames: dim must be 'region' or 'time', got {dim!r}")
        if by not in ("attribution", "density", "share"):
            raise CubeError(f"top() ranks by 'attribution', 'density' or 'share', got {by!r}")
        if not isinstance(k, numbers.Integral) or k < 1:
            raise CubeError(f"k must be a positive integer, got {k!r}")
        other = "time" if dim == "region" else "region"
        attribution = _expanded(self._attribution, ("explainer", "time", "region")).astype(np.float64)
        summed = attribution.sum(other)
        if by == "attribution":
            values = summed
        elif by == "density":
            area = _expanded(self._variable("region_area"), ("time", "region")).sum(other)
            values = summed / area.where(area > 0)
        else:
            total = abs(attribution).sum(("time", "region"))
            values = xr.where(total > 0, summed / total.where(total > 0), 0.0)
        values = values.transpose("explainer", dim)
        labels = values[dim].values.tolist()
        rows = []
        for explainer, row in zip(self.explainers, values.values):
            keep = np.flatnonzero(~np.isnan(row))
            order = keep[np.argsort(-row[keep], kind="stable")][: int(k)]
            for rank, index in enumerate(order, start=1):
                rows.append((explainer, labels[index], float(row[index]), rank))
        table = pd.DataFrame(rows, columns=["explainer", dim, "value", "rank"])
        table[dim] = table[dim].astype(np.int64 if dim == "time" else str)
        table["rank"] = table["rank"].astype(np.int64)
        table["value"] = table["value"].astype(np.float64)
        return table

    def agreement(self, over: str | Iterable[str] = ("time", "region"), absolute: bool = False,
                  faces_only: bool = True) -> xr.DataArray:
        """Spearman rank correlation between every pair of explainers.

        Each explainer's attribution is ranked over the cells of ``over`` (average ranks
        for ties) and the ranks are correlated, so ``1`` means the two methods order the
        cells the same way and ``-1`` the opposite way. ``over=("time", "region")`` (the
        default) gives one ``(explainer, other)`` matrix for the whole cube;
        ``over="region"`` gives one per frame, ``(time, explainer, other)``: where it
        drops, the methods disagree about which region matters in that frame. A cell set
        where an explainer is constant has no ranking: its correlations are NaN.

        Args:
            over: the dimensions whose cells are ranked.
            absolute: rank |attribution| (what matters, whatever the sign).
            faces_only: leave out the frames without a face (all their pixels are
                background, so their face regions tie at 0 and would only add agreement
                about nothing); per frame, those frames get NaN.

        Example:
            >>> from expresso_xai.cube import example_cube
            >>> cube = example_cube(explainers=["gradcam", "saliency"])
            >>> rho = cube.xai.agreement()
            >>> rho.dims, float(rho.sel(explainer="gradcam", other="gradcam"))
            (('explainer', 'other'), 1.0)
            >>> cube.xai.agreement(over="region").dims
            ('time', 'explainer', 'other')
        """
        from scipy.stats import rankdata

        over = (over,) if isinstance(over, str) else tuple(over)
        if not over or set(over) - {"time", "region"}:
            raise CubeError(f"agreement() ranks over 'time' and/or 'region', got {over!r}")
        attribution = _expanded(self._attribution, ("explainer", "time", "region")).astype(np.float64)
        if absolute:
            attribution = abs(attribution)
        no_face = None
        if faces_only and "face_found" in self._cube:
            no_face = ~_expanded(self._variable("face_found"), ("time",)).values.astype(bool)
            if "time" in over:
                attribution = attribution.isel(time=np.flatnonzero(~no_face))
        keep = [d for d in ("time", "region") if d not in over]
        data = attribution.transpose("explainer", *keep, *over).values
        data = data.reshape(data.shape[: 1 + len(keep)] + (-1,))
        ranks = rankdata(data, axis=-1)
        ranks = ranks - ranks.mean(axis=-1, keepdims=True)
        norms = np.sqrt((ranks ** 2).sum(axis=-1))
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = (np.einsum("a...k,b...k->...ab", ranks, ranks)
                   / np.einsum("a...,b...->...ab", norms, norms))
        rho = np.clip(rho, -1.0, 1.0)
        if no_face is not None and keep == ["time"]:
            rho[no_face] = np.nan
        coords = {"explainer": list(self.explainers), "other": list(self.explainers)}
        coords.update({d: attribution[d].values for d in keep})
        return xr.DataArray(rho, dims=(*keep, "explainer", "other"), coords=coords,
                            name="spearman", attrs={"long_name": "Spearman rank correlation between explainers",
                                                    "over": ", ".join(over)})

    def to_dataframe(self) -> pd.DataFrame:
        """One row per (explainer, time, region), in the cube's order, with columns
        ``explainer, time, seconds, region, attribution, region_area, density,
        face_found``.

        Example:
            >>> from expresso_xai.cube import example_cube
            >>> table = example_cube().xai.to_dataframe()
            >>> table.columns.tolist()[:4], len(table) == 2 * 16 * 12
            (['explainer', 'time', 'seconds', 'region'], True)
        """
        attribution = _expanded(self._attribution, ("explainer", "time", "region"))
        E, T, R = attribution.shape
        area = _expanded(self._variable("region_area"), ("time", "region")).values
        face_found = _expanded(self._variable("face_found"), ("time",)).values
        time = attribution["time"].values
        seconds = (_expanded(self._cube["seconds"], ("time",)).values if "seconds" in self._cube.coords
                   else np.full(T, np.nan))
        density = attribution.values.astype(np.float64) / np.where(area > 0, area, np.nan)[None]
        return pd.DataFrame({
            "explainer": np.repeat(np.array(self.explainers, dtype=str), T * R),
            "time": np.tile(np.repeat(time.astype(np.int64), R), E),
            "seconds": np.tile(np.repeat(seconds.astype(np.float64), R), E),
            "region": np.tile(np.array(self.regions, dtype=str), E * T),
            "attribution": attribution.values.ravel(),
            "region_area": np.tile(area.astype(np.int64).ravel(), E),
            "density": density.ravel(),
            "face_found": np.tile(np.repeat(face_found.astype(bool), R), E),
        })

    def params(self, explainer: str | None = None) -> dict:
        """Each method's parameters, decoded from ``attrs["methods"]`` (JSON text):
        ``{explainer: {...}}``, or one explainer's dict (``{}`` when none were stored).

        Example:
            >>> from expresso_xai.cube import example_cube
            >>> example_cube().xai.params()
            {'gradcam': {}, 'integrated_gradients': {}}
        """
        text = self._cube.attrs.get("methods", "{}")
        try:
            methods = json.loads(text) if isinstance(text, str) else dict(text)
        except json.JSONDecodeError as error:
            raise CubeError(f"attrs['methods'] is not valid JSON: {error}") from None
        if explainer is None:
            return methods
        self._check_explainer(explainer)
        return methods.get(explainer, {})

    # -- I/O -----------------------------------------------------------------------

    def to_netcdf(self, path: str | Path) -> Path:
        """Write the cube as one netCDF-4 file (compressed numeric variables) that
        :func:`open_cube` reads back identical and plain ``xarray.open_dataset`` opens.
        Returns the path.

        Booleans are stored as int8 with a ``dtype: bool`` attribute (xarray restores
        them), names as variable-length strings.
        """
        path = Path(path)
        self._attribution  # noqa: B018 - refuse a Dataset that is not a cube
        _check_attrs_safe(self._cube, path)
        cube = self._cube.drop_encoding()
        encoding = {name: {"zlib": True, "complevel": 4} for name, variable in cube.data_vars.items()
                    if variable.dtype.kind in "biuf" and variable.ndim > 0}
        cube.to_netcdf(path, engine="netcdf4", format="NETCDF4", encoding=encoding)
        return path

    def to_zarr(self, path: str | Path) -> Path:
        """Write the cube as a Zarr store (a folder, format 2 with consolidated metadata,
        overwriting one already there) that :func:`open_cube` reads back identical and
        plain ``xarray.open_zarr`` opens. Returns the path.

        Zarr format 2 because format 3 has no specification yet for the fixed-width
        unicode names (zarr-python warns it may change).
        """
        path = Path(path)
        self._attribution  # noqa: B018 - refuse a Dataset that is not a cube
        _check_attrs_safe(self._cube, path)
        self._cube.drop_encoding().to_zarr(path, mode="w", zarr_format=ZARR_FORMAT, consolidated=True)
        return path


__all__ = ["CUBE_VERSION", "XaiAccessor", "example_cube", "make_cube", "open_cube"]
