"""Views derived from a cube, computed on demand and never stored: share, density, the
top regions or frames, the agreement between explainers, a tidy table, the methods'
parameters.

Plain functions of the Dataset (``cube.xai`` only forwards to them), so they can be read
and tested alone. This module is also the one home of three conventions every reader of a
cube shares:

* the values a cube can be shown as, :data:`VALUES` (``attribution``, ``density``,
  ``share``), their labels (:data:`VALUE_LABELS`) and the view behind each
  (:func:`value_view`): figures, the Explorer and :func:`top` take them from here;
* whether values are signed (:func:`is_signed`), which picks a diverging or a
  sequential colour map in a figure and in the Explorer alike;
* each pixel's region in the cube's current regions (:func:`region_labels`), which
  figures and the Explorer outline alike.

Each function accepts a selection of a cube too (``cube.sel(explainer="gradcam")``):
dimensions that a selection made scalar are grown back.
"""

from __future__ import annotations

import json
import numbers
from typing import Iterable

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import CubeError, VideoReadError
from ..regions import relabel
from .schema import CUBE_DIMS

VALUES = ("attribution", "density", "share")

VALUE_LABELS = {
    "attribution": "attribution (signed sum over the region's pixels)",
    "density": "attribution per pixel",
    "share": "share of the explainer's total |attribution|",
}

#: What figures, the Explorer and the command line show unless told otherwise. Raw sums
#: grow with a region's size (the background, most of the frame, outweighs every facial
#: region in them), so a reader comparing regions is shown attribution per pixel.
DEFAULT_VALUE = "density"

# A value is "below zero" only beyond this fraction of the largest |value|: float noise
# (e.g. -1e-12 in a map of magnitudes) must not turn a colour map diverging.
SIGN_TOLERANCE = 1e-6


# --- parts of a cube ------------------------------------------------------------------


def attribution_of(cube: xr.Dataset) -> xr.DataArray:
    """The cube's ``attribution``, or a :class:`CubeError` saying the Dataset is no cube."""
    if "attribution" not in cube.data_vars:
        raise CubeError("this Dataset is not an attribution cube: it has no 'attribution' variable; "
                        "build one with expresso_xai.explain or make_cube")
    return cube["attribution"]


def _variable(cube: xr.Dataset, name: str) -> xr.DataArray:
    if name not in cube.variables:
        raise CubeError(f"this cube has no {name!r} variable; it is needed here")
    return cube[name]


def _expanded(data: xr.DataArray, dims: tuple[str, ...]) -> xr.DataArray:
    """``data`` with ``dims`` in order, re-growing dims that a ``.sel`` turned scalar."""
    for dim in dims:
        if dim not in data.dims and dim in data.coords:
            data = data.expand_dims(dim)
    return data.transpose(*dims)


def _cells(cube: xr.Dataset) -> xr.DataArray:
    """The attribution as float64 on ``(explainer, time, region)``."""
    return _expanded(attribution_of(cube), CUBE_DIMS).astype(np.float64)


def explainers(cube: xr.Dataset) -> tuple[str, ...]:
    """The explainers' names, in the cube's order.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> explainers(example_cube().sel(explainer="gradcam"))
        ('gradcam',)
    """
    return tuple(str(name) for name in np.atleast_1d(attribution_of(cube)["explainer"].values))


def regions(cube: xr.Dataset) -> tuple[str, ...]:
    """The region names, in the cube's order.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> regions(example_cube())[-1]
        'background'
    """
    return tuple(str(name) for name in np.atleast_1d(attribution_of(cube)["region"].values))


def check_explainer(cube: xr.Dataset, explainer: str) -> None:
    """Raise CubeError, naming the cube's explainers, unless ``explainer`` is one.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> check_explainer(example_cube(), "lime")
        Traceback (most recent call last):
        ...
        expresso_xai.errors.CubeError: no explainer 'lime' in this cube; explainers: ['gradcam', 'integrated_gradients']
    """
    names = explainers(cube)
    if explainer not in names:
        raise CubeError(f"no explainer {explainer!r} in this cube; explainers: {list(names)}")


def frame_seconds(cube: xr.Dataset) -> np.ndarray:
    """Each frame's timestamp in seconds, ``(time,)`` float64; a cube without its
    ``seconds`` coordinate is refused (the schema requires it).

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> frame_seconds(example_cube(fps=25.0))[:3].tolist()
        [0.0, 0.04, 0.08]
    """
    return _expanded(_variable(cube, "seconds"), ("time",)).values.astype(np.float64)


# --- the values a cube is shown as ----------------------------------------------------


def share(cube: xr.Dataset, dim: str | Iterable[str] = ("time", "region")) -> xr.DataArray:
    """Attribution as a fraction of the total |attribution| over ``dim``, per explainer:
    over the default ``("time", "region")`` the |share| of all cells of an explainer
    sums to 1. Where the total is 0 the share is 0 (float64).

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> float(abs(share(example_cube())).sum(("time", "region")).max())  # doctest: +ELLIPSIS
        1.0...
    """
    attribution = attribution_of(cube).astype(np.float64)
    dims = (dim,) if isinstance(dim, str) else tuple(dim)
    unknown = [d for d in dims if d not in attribution.dims]
    if unknown:
        raise CubeError(f"cannot share over {unknown}: attribution has dims {attribution.dims}")
    total = abs(attribution).sum(dims)
    result = xr.where(total > 0, attribution / total.where(total > 0), 0.0).transpose(*attribution.dims)
    result.name = "share"
    result.attrs = {"long_name": f"share of total |attribution| over {', '.join(dims)}"}
    return result


def density(cube: xr.Dataset) -> xr.DataArray:
    """Attribution per pixel: attribution / region_area; NaN where the area is 0
    (float64).

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> float(density(example_cube()).sel(explainer="gradcam", time=3, region="background")) != 0
        True
    """
    attribution = attribution_of(cube).astype(np.float64)
    area = _variable(cube, "region_area")
    result = (attribution / area.where(area > 0)).transpose(*attribution.dims)
    result.name = "density"
    result.attrs = {"long_name": "attribution per pixel of the region", "units": "1/pixel"}
    return result


def value_view(cube: xr.Dataset, value: str) -> xr.DataArray:
    """The cube shown as ``value`` (one of :data:`VALUES`), float64 on ``(explainer,
    time, region)``: the attribution itself, its :func:`density` per pixel, or its
    :func:`share` of each explainer's total |attribution| over time and regions.

    Raises:
        CubeError: ``value`` is not one of :data:`VALUES`.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> view = value_view(example_cube(), "share")
        >>> view.dims, str(view.dtype)
        (('explainer', 'time', 'region'), 'float64')
    """
    if value not in VALUES:
        raise CubeError(f"value must be one of {list(VALUES)}, got {value!r}")
    if value == "attribution":
        view = attribution_of(cube).astype(np.float64)
    elif value == "density":
        view = density(cube)
    else:
        view = share(cube, ("time", "region"))
    return _expanded(view, CUBE_DIMS)


def is_signed(values) -> bool:
    """Whether ``values`` go below zero by more than float noise (more than
    :data:`SIGN_TOLERANCE` of the largest |value|); NaN and infinities are ignored.
    Signed values get a diverging colour map centred at 0, the others a sequential one.

    Example:
        >>> is_signed([-0.5, 1.0]), is_signed([-1e-12, 1.0]), is_signed([float("nan")])
        (True, False, False)
    """
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return False
    return bool(finite.min() < -SIGN_TOLERANCE * max(np.abs(finite).max(), 1e-30))


# --- rankings -------------------------------------------------------------------------


def region_labels(cube: xr.Dataset) -> tuple[np.ndarray, str]:
    """``region_label`` renumbered to the cube's current regions (indices, or bits), so a
    cube subset or reordered with ``.sel(region=...)`` still outlines the right regions
    (:func:`expresso_xai.regions.relabel`); and the encoding.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube(n_frames=1, pixels=True)
        >>> names = cube["region"].values.tolist()
        >>> label = np.full((1, 8, 8), names.index("background"), np.uint8)
        >>> label[0, :2, :2] = names.index("mouth")
        >>> cube["region_label"] = (("time", "y", "x"), label, {"encoding": "index", "regions": ",".join(names)})
        >>> labels, encoding = region_labels(cube.sel(region=["background", "mouth"]))
        >>> encoding, labels[0, :3, :3].tolist()
        ('index', [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    """
    variable = cube["region_label"]
    labels = variable.transpose("time", "y", "x").values
    encoding = variable.attrs.get("encoding", "index" if labels.dtype == np.uint8 else "bits")
    current = cube["region"].values.tolist()
    stored = [n for n in str(variable.attrs.get("regions", "")).split(",") if n] or current
    return relabel(labels, stored, current, encoding), encoding


def display_crop(cube: xr.Dataset, frame_size: tuple[int, int], factor: int, positions=None):
    """The model's crop (``crop_matrix``) of the cube's frames, or of those at
    ``positions``, scaled up by a whole ``factor`` about pixel centres: source frames
    cropped with it line up pixel for pixel with the pixel maps scaled by ``factor``.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube(n_frames=1, pixels=True)
        >>> cube["crop_matrix"] = (("time", "affine_row", "affine_col"), np.array([[[0.5, 0.0, 10.0], [0.0, 0.5, 20.0]]]))
        >>> crop = display_crop(cube, (192, 192), 4)
        >>> crop.size == (4 * cube.sizes["y"], 4 * cube.sizes["x"]), crop.matrices[0].tolist()
        (True, [[2.0, 0.0, 41.5], [0.0, 2.0, 81.5]])
    """
    from ..crop import FaceCrop

    h, w = cube.sizes["y"], cube.sizes["x"]
    matrices = cube["crop_matrix"].transpose("time", ...).values
    matrices = (matrices if positions is None else matrices[positions]) * factor
    matrices[:, :, 2] += 0.5 * factor - 0.5
    return FaceCrop(matrices, (h * factor, w * factor), frame_size)


def check_video_frame_size(cube: xr.Dataset, frames: np.ndarray, source: str) -> None:
    """:class:`VideoReadError` when ``frames`` are not the size of the video the cube was
    made from (its ``video_frame_size`` attr; nothing to check without it).

    Example:
        >>> import numpy as np
        >>> from expresso_xai.testing import example_cube
        >>> check_video_frame_size(example_cube(n_frames=1), np.zeros((1, 5, 5, 3), np.uint8), "v.mp4")
    """
    expected = cube.attrs.get("video_frame_size")
    if isinstance(expected, str):  # nested attrs are stored as JSON text
        expected = json.loads(expected) if expected.strip().startswith("[") else None
    if expected is not None and len(expected) == 2 and tuple(int(v) for v in expected) != frames.shape[1:3]:
        raise VideoReadError(
            f"{source or 'the video'} is {frames.shape[2]}x{frames.shape[1]} but the cube was made from a "
            f"{int(expected[1])}x{int(expected[0])} video: pass the video the cube was made from")


def _summed(cube: xr.Dataset, by: str, dim: str) -> xr.DataArray:
    """``(explainer, dim)`` values of ``by`` with the other dimension summed away."""
    other = "time" if dim == "region" else "region"
    attribution = _cells(cube)
    summed = attribution.sum(other, min_count=1)  # all-NaN stays NaN, not a fake 0
    if by == "density":
        area = _expanded(_variable(cube, "region_area"), ("time", "region")).sum(other)
        summed = summed / area.where(area > 0)
    elif by == "share":
        total = abs(attribution).sum(("time", "region"), min_count=1)
        summed = xr.where(total > 0, summed / total.where(total > 0), summed * 0.0)
    return summed.transpose("explainer", dim)


def top(cube: xr.Dataset, k: int = 3, by: str = "density", dim: str = "region") -> pd.DataFrame:
    """The ``k`` highest regions (``dim="region"``, each summed over time) or frames
    (``dim="time"``, each summed over regions) of each explainer.

    ``by`` is one of :data:`VALUES`: ``"attribution"`` (signed sum), ``"density"``
    (summed attribution over summed area) or ``"share"`` (summed share of the total
    |attribution|). Rank 1 is the highest value; ties keep the cube's order; NaN values
    (no pixels) are left out. Columns: ``explainer``, ``region`` or ``time``, ``value``,
    ``rank``.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> top(example_cube(), k=1, by="share")["region"].tolist()
        ['mouth', 'mouth']
    """
    if dim not in ("region", "time"):
        raise CubeError(f"top() ranks regions or frames: dim must be 'region' or 'time', got {dim!r}")
    if by not in VALUES:
        raise CubeError(f"top() ranks by 'attribution', 'density' or 'share', got {by!r}")
    if not isinstance(k, numbers.Integral) or k < 1:
        raise CubeError(f"k must be a positive integer, got {k!r}")
    values = _summed(cube, by, dim)
    labels = values[dim].values.tolist()
    rows = []
    for explainer, row in zip(explainers(cube), values.values):
        keep = np.flatnonzero(~np.isnan(row))
        order = keep[np.argsort(-row[keep], kind="stable")][: int(k)]
        rows += [(explainer, labels[index], float(row[index]), rank) for rank, index in enumerate(order, start=1)]
    table = pd.DataFrame(rows, columns=["explainer", dim, "value", "rank"])
    table[dim] = table[dim].astype(np.int64 if dim == "time" else str)
    table["rank"] = table["rank"].astype(np.int64)
    table["value"] = table["value"].astype(np.float64)
    return table


def _spearman(data: np.ndarray) -> np.ndarray:
    """Spearman correlation between the rows of ``data (explainer, ..., cell)``:
    ``(..., explainer, explainer)``; NaN where a row is constant."""
    from ..stats import spearman

    rho = spearman(data[:, None], data[None, :], axis=-1)
    return np.moveaxis(rho, (0, 1), (-2, -1))


def agreement(cube: xr.Dataset, over: str | Iterable[str] = ("time", "region"), absolute: bool = False,
              faces_only: bool = True) -> xr.DataArray:
    """Spearman rank correlation between every pair of explainers.

    Each explainer's attribution is ranked over the cells of ``over`` (average ranks for
    ties) and the ranks are correlated, so ``1`` means the two methods order the cells
    the same way and ``-1`` the opposite way. ``over=("time", "region")`` (the default)
    gives one ``(explainer, other)`` matrix for the whole cube; ``over="region"`` gives
    one per frame, ``(time, explainer, other)``: where it drops, the methods disagree
    about which region matters in that frame. A cell set where an explainer is constant
    has no ranking: its correlations are NaN.

    Args:
        over: the dimensions whose cells are ranked.
        absolute: rank |attribution| (what matters, whatever the sign).
        faces_only: leave out the frames without a face (all their pixels are
            background, so their face regions tie at 0 and would only add agreement
            about nothing); per frame, those frames get NaN.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> agreement(example_cube(), over="time").dims
        ('region', 'explainer', 'other')
    """
    over = (over,) if isinstance(over, str) else tuple(over)
    if not over or set(over) - {"time", "region"}:
        raise CubeError(f"agreement() ranks over 'time' and/or 'region', got {over!r}")
    attribution = abs(_cells(cube)) if absolute else _cells(cube)
    no_face = None
    if faces_only and "face_found" in cube:
        no_face = ~_expanded(_variable(cube, "face_found"), ("time",)).values.astype(bool)
        if "time" in over:
            attribution = attribution.isel(time=np.flatnonzero(~no_face))
    keep = [d for d in ("time", "region") if d not in over]
    data = attribution.transpose("explainer", *keep, *over).values
    rho = _spearman(data.reshape(data.shape[: 1 + len(keep)] + (-1,)))
    if no_face is not None and keep == ["time"]:
        rho[no_face] = np.nan
    names = list(explainers(cube))
    coords = {"explainer": names, "other": names, **{d: attribution[d].values for d in keep}}
    return xr.DataArray(rho, dims=(*keep, "explainer", "other"), coords=coords, name="spearman",
                        attrs={"long_name": "Spearman rank correlation between explainers", "over": ", ".join(over)})


# --- tables ---------------------------------------------------------------------------


def to_dataframe(cube: xr.Dataset) -> pd.DataFrame:
    """One row per (explainer, time, region), in the cube's order, with columns
    ``explainer, time, seconds, region, attribution, region_area, density,
    face_found``.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> int(to_dataframe(example_cube())["density"].isna().sum())  # 11 empty regions in frame 3, 2 explainers
        22
    """
    attribution = _expanded(attribution_of(cube), CUBE_DIMS)
    E, T, R = attribution.shape
    area = _expanded(_variable(cube, "region_area"), ("time", "region")).values
    face_found = _expanded(_variable(cube, "face_found"), ("time",)).values
    seconds = frame_seconds(cube)
    density_values = attribution.values.astype(np.float64) / np.where(area > 0, area, np.nan)[None]
    return pd.DataFrame({
        "explainer": np.repeat(np.array(explainers(cube), dtype=str), T * R),
        "time": np.tile(np.repeat(attribution["time"].values.astype(np.int64), R), E),
        "seconds": np.tile(np.repeat(seconds, R), E),
        "region": np.tile(np.array(regions(cube), dtype=str), E * T),
        "attribution": attribution.values.ravel(),
        "region_area": np.tile(area.astype(np.int64).ravel(), E),
        "density": density_values.ravel(),
        "face_found": np.tile(np.repeat(face_found.astype(bool), R), E),
    })


def params(cube: xr.Dataset, explainer: str | None = None) -> dict:
    """Each method's parameters, decoded from ``attrs["methods"]`` (JSON text):
    ``{explainer: {...}}``, or one explainer's dict (``{}`` when none were stored).

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> params(example_cube(), "gradcam")
        {}
    """
    text = cube.attrs.get("methods", "{}")
    try:
        methods = json.loads(text) if isinstance(text, str) else dict(text)
    except json.JSONDecodeError as error:
        raise CubeError(f"attrs['methods'] is not valid JSON: {error}") from None
    if explainer is None:
        return methods
    check_explainer(cube, explainer)
    return methods.get(explainer, {})


# --- predictions outside the model's declared output range ---------------------------

#: The per-clip flag of a cube whose model declared an output range (``VideoModel.output_range``).
OUT_OF_RANGE = "prediction_out_of_range"


def output_range(cube: xr.Dataset) -> tuple[float, float] | None:
    """The output range the cube's model declared (attrs ``model_output_range``), or None.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> output_range(example_cube()) is None, output_range(example_cube().assign_attrs(model_output_range="[0, 63]"))
        (True, (0.0, 63.0))
    """
    value = cube.attrs.get("model_output_range")
    try:
        value = json.loads(value) if isinstance(value, str) and value else value
        return None if value is None or value == "" else (float(value[0]), float(value[1]))
    except (json.JSONDecodeError, TypeError, ValueError, IndexError):
        raise CubeError(f"attrs['model_output_range'] must be [low, high] or null, got {value!r}") from None


def range_caution(cube: xr.Dataset) -> str:
    """One line saying that the model's prediction for the video, the mean over its clips,
    is outside the output range the model declares (and how many clips are), or ``""``
    when it is inside (or no range was declared). The command line and the Explorer show
    it; :func:`~expresso_xai.explain` warns with it.

    Single clips outside the range are flagged in the cube (:data:`OUT_OF_RANGE`) but do
    not make a caution while the mean is inside: a model trained on the mean over a
    video's clips, as the demo is, has clips beyond its range on the very data it was
    trained on (12 of the 31 clips of the shipped ``participant_high``, predicted 50.4).

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube().assign_attrs(model_output_range="[0, 63]").assign_coords(clip=[0, 1])
        >>> cube = cube.assign(clip_prediction=("clip", [60.0, 92.5]), prediction_out_of_range=("clip", [False, True]))
        >>> range_caution(cube)[:103]
        "the model's prediction, 76.25 (the mean of 2 clips), is outside its declared output range [0, 63] (1 of"
        >>> range_caution(cube.assign(clip_prediction=("clip", [30.0, 72.5])))
        ''
    """
    bounds = output_range(cube)
    if bounds is None or OUT_OF_RANGE not in cube.variables or "clip_prediction" not in cube.variables:
        return ""
    predictions = np.asarray(cube["clip_prediction"].values, dtype=np.float64)
    mean = float(predictions.mean()) if predictions.size else float("nan")
    if not (mean < bounds[0] or mean > bounds[1]):
        return ""
    flags = np.asarray(cube[OUT_OF_RANGE].values, dtype=bool)
    low, high = f"{predictions[flags].min():.4g}", f"{predictions[flags].max():.4g}"
    return (f"the model's prediction, {mean:.4g} (the mean of {predictions.size} clips), is outside its declared "
            f"output range [{bounds[0]:g}, {bounds[1]:g}] ({int(flags.sum())} of {flags.size} clips are: "
            f"{low if low == high else f'{low} to {high}'}); the model is used beyond what it was trained for, "
            "and the explanations describe that")


__all__ = ["DEFAULT_VALUE", "OUT_OF_RANGE", "SIGN_TOLERANCE", "VALUES", "VALUE_LABELS", "agreement", "check_explainer",
           "density", "explainers", "frame_seconds", "is_signed", "output_range", "params", "range_caution", "regions",
           "share", "to_dataframe", "top", "value_view"]
