"""The method grid: explainers (rows) × moments (columns), each face with that method's
pixel map, on one colour scale for the whole grid (or one per row)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..cube.views import frame_seconds
from ..errors import CubeError
from .base import _new_figure, _save, _width_inches, style
from .frames import (check_explainers, check_pixels, colour_bar, draw_overlay, face_images, frame_labels,
                     overlay_scale, pick_frames)

SCALES = ("shared", "row")
SHARE_LABEL = "share of the method's |attribution| per pixel"


def _shares(pixels: xr.DataArray) -> np.ndarray:
    """``(explainer, time, y, x)`` each method's pixels over its total |attribution| in
    the whole cube: units that methods share, so one scale can compare them."""
    values = pixels.values.astype(np.float64)
    total = np.abs(values).sum(axis=(1, 2, 3), keepdims=True)
    return values / np.where(total > 0, total, 1.0)


def _row_label(ax, name: str) -> None:
    # above the row's first face, not beside it: a method's name is longer than a face is high
    ax.set_title(name, loc="left", pad=2)


@style()
def method_grid(cube: xr.Dataset, video, frames="top", k: int = 4, explainers=None, scale: str = "shared",
                path: str | Path | None = None, width="double"):
    """Methods × frames: each row an explainer, each column a moment (the same frames in
    every row), the face as the model saw it with that method's pixel map over it and
    the region outlines; time stamps under the last row.

    Methods are put in the same units, each pixel's share of the method's total
    |attribution| over the cube, so that with ``scale="shared"`` (the default) one
    symmetric scale (diverging when any map is signed) compares them: a method that
    concentrates its attribution looks hotter. ``scale="row"`` gives each method its
    own scale and colour bar, to see the shape of a method whose values are spread.

    Args:
        cube: a cube made with ``keep_pixels=True``.
        video: the :class:`~expresso_xai.Video` the cube was made from.
        frames: ``"top"`` (the ``k`` moments with most attribution over all methods,
            :func:`.frames.top_moments`) or a list of frame indices.
        k: how many moments with ``frames="top"``.
        explainers: the rows (default: every explainer, in the cube's order).
        scale: ``"shared"`` or ``"row"``.
        path: save there (``.pdf``, ``.svg``, ``.png``; no suffix: PNG and PDF), with the
            cube's provenance in the metadata.
        width: ``"single"``, ``"double"`` or inches.

    Returns:
        The matplotlib Figure: ``axes[row * columns + column]`` are the faces (the
        overlay is ``images[1]``), the colour bars follow.

    Raises:
        CubeError: no pixel maps in the cube, an unknown explainer, frame or scale.
        VideoReadError: the video does not hold the cube's frames.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> method_grid(example_cube(pixels=True), video=None, scale="column")
        Traceback (most recent call last):
        ...
        expresso_xai.errors.CubeError: scale='column': use one of ['shared', 'row']
    """
    if scale not in SCALES:
        raise CubeError(f"scale={scale!r}: use one of {list(SCALES)}")
    check_pixels(cube, "method_grid")
    names = check_explainers(cube, explainers)
    times = pick_frames(cube, frames, k, None)
    inches = _width_inches(width, CubeError)
    bar_in = 0.75 if scale == "row" else 0.0
    side = (inches - 0.15 - bar_in) / len(times)
    figure, axes = _new_figure(inches, len(names) * (side + 0.15) + 0.25 + (0.6 if scale == "shared" else 0.0),
                               nrows=len(names), ncols=len(times), squeeze=False)
    figure.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.02, hspace=0.02)
    shares = _shares(cube["pixels"].sel(explainer=names).transpose("explainer", "time", "y", "x"))
    labels, encoding = frame_labels(cube)
    faces = face_images(cube, video, times)
    positions = np.searchsorted(cube["time"].values, times)
    seconds = frame_seconds(cube)
    shared = overlay_scale(shares)
    for row, name in enumerate(names):
        limits = shared if scale == "shared" else overlay_scale(shares[row])
        for ax, face, position in zip(axes[row], faces, positions):
            draw_overlay(ax, face, shares[row, position], None if labels is None else labels[position], encoding,
                         limits, cube.sizes["region"])
        _row_label(axes[row, 0], name)
        if scale == "row":
            colour_bar(figure, axes[row], limits, "", location="right", shrink=0.9, aspect=12, pad=0.01)
    for ax, position in zip(axes[-1], positions):
        ax.set_xlabel(f"{seconds[position]:.2f} s", labelpad=2)
    if scale == "shared":
        colour_bar(figure, axes, shared, SHARE_LABEL, location="bottom", shrink=0.6, aspect=30, pad=0.02)
    else:
        figure.supxlabel(SHARE_LABEL + " (one scale per row)", fontsize=7)
    _save(figure, path, cube.attrs)
    return figure


__all__ = ["SCALES", "method_grid"]
