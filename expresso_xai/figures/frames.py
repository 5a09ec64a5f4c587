"""Frames with their pixel attribution drawn over them, for :mod:`.frame_strip` and
:mod:`.method_grid`: which moments to show, the face as the model saw it (the cube's own
crop, at a display size), the overlay (transparent at 0, so the face shows through),
the region outlines and the scale that panels share.

Everything is drawn in the model input's pixel coordinates, so overlay, outlines and
face line up by construction.
"""

from __future__ import annotations

import numbers

import numpy as np
import xarray as xr

from ..cube.views import check_explainer, check_video_frame_size, display_crop, explainers, is_signed, regions
from ..errors import CubeError, VideoReadError
from .base import DIVERGING, SEQUENTIAL, _label_colour_bar

DISPLAY_SIDE = 256  # the face is cropped again at about this many pixels a side: sharp in print
OVERLAY_PERCENTILE = 99.5  # the scale's end: a few hot pixels must not wash out the rest
OUTLINE = {"colors": "white", "linewidths": 0.4, "alpha": 0.8}


def check_pixels(cube: xr.Dataset, what: str) -> None:
    """A :class:`CubeError` saying how to get pixel maps, unless the cube has them, its
    regions' labels and its crop."""
    missing = [name for name in ("pixels", "region_label", "crop_matrix") if name not in cube.variables]
    if missing:
        raise CubeError(f"{what} draws pixel maps over the frames, but this cube has no {missing[0]!r}: explain "
                        "with ex.explain(..., keep_pixels=True)")


def _frame_scores(cube: xr.Dataset, explainer: str | None) -> np.ndarray:
    """``(time,)`` how much attribution each frame has on the face: the sum of
    |attribution| over the regions other than ``background``, each explainer scaled by
    its largest frame (so methods of different units weigh alike); frames without a
    face score -inf."""
    names = [explainer] if explainer is not None else list(explainers(cube))
    face = [name for name in regions(cube) if name != "background"]
    per_frame = abs(cube["attribution"].sel(explainer=names, region=face)).sum("region").transpose("explainer", "time")
    values = per_frame.values.astype(np.float64)
    values = values / np.where(values.max(axis=1, keepdims=True) > 0, values.max(axis=1, keepdims=True), 1.0)
    scores = values.mean(axis=0)
    if "face_found" in cube:
        scores[~cube["face_found"].values.astype(bool)] = -np.inf
    return scores


def top_moments(cube: xr.Dataset, k: int, explainer: str | None = None, spacing: int | None = None) -> list[int]:
    """The ``k`` frame indices (the cube's ``time``) with the most attribution on the
    face, in time order, at least ``spacing`` frames apart (default: an even share of
    the video, ``frames // (2k)``) so that they are distinct moments and not one peak's
    neighbours; fewer distinct moments than ``k``: the closest ones fill in.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube(n_frames=32)
        >>> cube["attribution"].loc[dict(time=[9, 10, 25], region="mouth")] = 100.0
        >>> top_moments(cube, k=2)
        [9, 25]
    """
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise CubeError(f"k must be a positive number of frames, got {k!r}")
    scores = _frame_scores(cube, explainer)
    spacing = max(1, len(scores) // (2 * int(k))) if spacing is None else int(spacing)
    order = np.argsort(-scores, kind="stable")
    chosen: list[int] = []
    for position in order:
        if len(chosen) < k and all(abs(int(position) - other) >= spacing for other in chosen):
            chosen.append(int(position))
    chosen += [int(p) for p in order if int(p) not in chosen][: max(0, int(k) - len(chosen))]
    times = cube["time"].values
    return sorted(int(times[p]) for p in chosen[: min(int(k), len(times))])


def pick_frames(cube: xr.Dataset, frames, k: int, explainer: str | None) -> list[int]:
    """``frames="top"``: :func:`top_moments`; else the listed frame indices, checked."""
    if isinstance(frames, str):
        if frames != "top":
            raise CubeError(f"frames={frames!r}: use 'top' or a list of frame indices (the cube's time)")
        return top_moments(cube, k, explainer)
    wanted = [frames] if isinstance(frames, numbers.Integral) else list(frames)
    have = set(cube["time"].values.tolist())
    unknown = [f for f in wanted if f not in have]
    if unknown or not wanted:
        times = cube["time"].values
        raise CubeError(f"frame {unknown[0] if unknown else '(none given)'!r} is not in the cube, which covers "
                        f"frames {int(times.min())}..{int(times.max())}")
    return [int(f) for f in wanted]


def face_images(cube: xr.Dataset, video, times: list[int]) -> np.ndarray:
    """``(len(times), H, W, 3)`` uint8: those frames of ``video`` cropped as the model
    saw them, at :data:`DISPLAY_SIDE`."""
    from ..video import Video

    if not isinstance(video, Video):
        raise VideoReadError(f"expected an expresso_xai Video (ex.load_video), got {type(video).__name__}")
    positions = np.asarray(times) - int(video.start)
    if positions.min() < 0 or positions.max() >= len(video):
        raise VideoReadError(f"{video.source or 'the video'} has frames {video.start}..{video.start + len(video) - 1}"
                             f" but the figure shows frames {min(times)}..{max(times)}: pass the cube's video")
    frames = video.frames[positions]
    check_video_frame_size(cube, frames, video.source)
    factor = max(1, int(round(DISPLAY_SIDE / max(cube.sizes["y"], cube.sizes["x"]))))
    cube_positions = np.searchsorted(cube["time"].values, times)
    return display_crop(cube, frames.shape[1:3], factor, cube_positions).apply(frames)


def overlay_scale(pixels: np.ndarray) -> tuple[float, float, str]:
    """``(vmin, vmax, cmap)`` for pixel maps: symmetric about 0 with :data:`DIVERGING`
    when signed, ``0..`` with :data:`SEQUENTIAL` when not; the end is the
    :data:`OVERLAY_PERCENTILE` of |value|.

    Example:
        >>> overlay_scale(np.array([-1.0, 0.5, 2.0]))[2], overlay_scale(np.array([0.0, 2.0]))[:2]
        ('RdBu_r', (0.0, 2.0))
    """
    magnitude = np.abs(pixels[np.isfinite(pixels)])
    magnitude = magnitude[magnitude > 0]
    limit = float(np.percentile(magnitude, OVERLAY_PERCENTILE)) if magnitude.size else 1.0
    return (-limit, limit, DIVERGING) if is_signed(pixels) else (0.0, limit, SEQUENTIAL)


def _see_through(name: str, signed: bool):
    """``name`` with opacity growing with |value| (0 at the scale's neutral end), so
    the face shows where the attribution is small."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    colours = matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))
    position = np.linspace(-1.0, 1.0, 256) if signed else np.linspace(0.0, 1.0, 256)
    colours[:, 3] = 0.85 * np.abs(position) ** 0.6
    return ListedColormap(colours, name=name)


def draw_overlay(ax, face: np.ndarray, pixels: np.ndarray, labels: np.ndarray | None, encoding: str,
                 scale: tuple[float, float, str], n_regions: int):
    """The face, the pixel map over it on ``scale`` and the outlines of the regions
    other than ``background`` (index ``n_regions - 1`` or absent); returns the overlay
    image (its ``get_clim()`` is the scale)."""
    from ..regions import in_region

    h, w = pixels.shape
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)
    ax.imshow(face, extent=extent, interpolation="bilinear")
    vmin, vmax, cmap = scale
    # colours are blended after resampling: resampling the values first would draw dark
    # rims where a see-through neighbour is mixed in
    image = ax.imshow(pixels, extent=extent, cmap=_see_through(cmap, vmin < 0), vmin=vmin, vmax=vmax,
                      interpolation="bilinear", interpolation_stage="rgba")
    if labels is not None:
        for index in range(n_regions):
            inside = in_region(labels, index, encoding)
            if inside.any() and not inside.all():
                ax.contour(inside.astype(float), levels=[0.5], **OUTLINE)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def colour_bar(figure, axes, scale: tuple[float, float, str], label: str, **kwargs):
    """An opaque colour bar for ``scale`` (the overlay's own map fades out at 0)."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from matplotlib.ticker import MaxNLocator

    mappable = ScalarMappable(Normalize(scale[0], scale[1]), matplotlib.colormaps[scale[2]])
    bar = figure.colorbar(mappable, ax=axes, **kwargs)
    # few ticks, 0 among them: a bar under a strip of faces is short for its numbers
    bar.locator = MaxNLocator(nbins=4, symmetric=scale[0] < 0)
    bar.update_ticks()
    _label_colour_bar(bar, label)
    return bar


def frame_labels(cube: xr.Dataset) -> tuple[np.ndarray | None, str]:
    """The cube's per-pixel regions renumbered to its current regions, and the encoding
    (:func:`~expresso_xai.cube.views.region_labels`; ``None`` without ``region_label``)."""
    from ..cube.views import region_labels

    return region_labels(cube) if "region_label" in cube else (None, "index")


def check_explainers(cube: xr.Dataset, names) -> list[str]:
    """The explainers to draw (``None``: all), each checked."""
    names = list(explainers(cube)) if names is None else [names] if isinstance(names, str) else list(names)
    for name in names:
        check_explainer(cube, name)
    if not names:
        raise CubeError("no explainers given: name at least one")
    return names
