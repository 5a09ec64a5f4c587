"""The frame strip: the moments of a video with the most attribution, each frame with its
pixel map drawn over the face as the model saw it, the region outlines and its time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..cube.views import check_explainer, explainers, frame_seconds
from ..errors import CubeError
from .base import _fit_title, _new_figure, _save, _width_inches, style
from .frames import (check_pixels, colour_bar, draw_overlay, face_images, frame_labels, overlay_scale,
                     pick_frames)

PANEL_MIN_IN = 1.1  # a face narrower than this in print shows no detail: wrap into rows


def _grid(width_in: float, count: int) -> tuple[int, int, float]:
    """``(rows, columns, panel side in inches)`` for ``count`` faces across ``width_in``."""
    columns = max(1, min(count, int(width_in // PANEL_MIN_IN)))
    rows = -(-count // columns)
    return rows, columns, (width_in - 0.1) / columns


@style()
def frame_strip(cube: xr.Dataset, video, frames="top", k: int = 6, explainer: str | None = None,
                path: str | Path | None = None, width="double"):
    """The ``k`` moments with the highest attribution, each frame cropped as the model saw
    it with the explainer's pixel map over it (transparent where it is 0), the outlines
    of the regions and its time in seconds underneath; one colour scale for all frames
    (symmetric about 0 when signed), as a colour bar below.

    The moments are distinct (at least ``frames // (2k)`` frames apart), chosen by the
    sum of |attribution| over the face's regions (:func:`.frames.top_moments`), and shown
    in time order.

    Args:
        cube: a cube made with ``keep_pixels=True`` (it has ``pixels``, ``region_label``
            and ``crop_matrix``).
        video: the :class:`~expresso_xai.Video` the cube was made from.
        frames: ``"top"`` or a list of frame indices (the cube's ``time``).
        k: how many moments with ``frames="top"``.
        explainer: whose pixel map (default: the cube's first explainer); the moments are
            chosen by it.
        path: save there (``.pdf``, ``.svg``, ``.png``; no suffix: PNG and PDF), with the
            cube's provenance in the file's metadata.
        width: ``"single"``, ``"double"`` or inches; narrow widths wrap into rows.

    Returns:
        The matplotlib Figure: one axes per frame (its overlay is ``images[1]``; the
        x label is the time stamp), then the colour bar.

    Raises:
        CubeError: the cube has no pixel maps (explain with ``keep_pixels=True``), an
            unknown explainer or frame, or a bad ``k`` or width.
        VideoReadError: the video does not hold the cube's frames.

    Example:
        >>> import expresso_xai as ex
        >>> from expresso_xai.testing import example_cube
        >>> ex.figures.frame_strip(example_cube(), video=None)
        Traceback (most recent call last):
        ...
        expresso_xai.errors.CubeError: frame_strip draws pixel maps over the frames, but this cube has no 'pixels': explain with ex.explain(..., keep_pixels=True)
    """
    check_pixels(cube, "frame_strip")
    explainer = explainer if explainer is not None else explainers(cube)[0]
    check_explainer(cube, explainer)
    times = pick_frames(cube, frames, k, explainer)
    inches = _width_inches(width, CubeError)
    rows, columns, side = _grid(inches, len(times))
    figure, axes = _new_figure(inches, rows * (side + 0.2) + 0.75, nrows=rows, ncols=columns, squeeze=False)
    pixels = cube["pixels"].sel(explainer=explainer).transpose("time", "y", "x")
    scale = overlay_scale(pixels.values)
    labels, encoding = frame_labels(cube)
    faces = face_images(cube, video, times)
    seconds = dict(zip(cube["time"].values.tolist(), frame_seconds(cube)))
    positions = np.searchsorted(cube["time"].values, times)
    for ax, time, face, position in zip(axes.flat, times, faces, positions):
        draw_overlay(ax, face, pixels.values[position], None if labels is None else labels[position], encoding,
                     scale, cube.sizes["region"])
        ax.set_xlabel(f"{seconds[time]:.2f} s", labelpad=2)
    for ax in axes.flat[len(times):]:
        ax.set_axis_off()
    colour_bar(figure, axes, scale, f"{explainer}: attribution per pixel", location="bottom", shrink=0.6,
               aspect=30, pad=0.02)
    model = cube.attrs.get("model_name") or ""
    title = f"{explainer}: the {len(times)} moments with most attribution" + (f" ({model})" if model else "")
    figure.suptitle(_fit_title(title, inches), x=0.01, ha="left")
    _save(figure, path, cube.attrs)
    return figure


__all__ = ["frame_strip"]
