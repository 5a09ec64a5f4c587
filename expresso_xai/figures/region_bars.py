"""Region bars: how each explainer shares its attribution out over the facial regions,
the methods side by side per region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..cube.views import is_signed, value_view
from ..errors import CubeError
from .base import OKABE_ITO, _new_figure, _save, _width_inches, style
from .frames import check_explainers

GROUPINGS = ("explainer", "region")
SHARE_LABEL = "share of total |attribution|"  # short: it runs along a panel's height


def region_values(cube: xr.Dataset, names: list[str], background: bool) -> xr.DataArray:
    """``(explainer, region)`` shares of each explainer's total |attribution|, summed
    over time (with ``background`` their |values| add up to 1 when the attribution has
    one sign, less when signs cancel over time), regions by their mean
    share over the explainers, ``background`` last or left out.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube()
        >>> shares = region_values(abs(cube), ["gradcam"], background=True)
        >>> shares["region"].values[[0, -1]].tolist(), round(float(shares.sum()), 6)
        (['mouth', 'background'], 1.0)
    """
    shares = value_view(cube, "share").sel(explainer=names).sum("time")
    face = [str(name) for name in shares["region"].values if name != "background"]
    face.sort(key=lambda name: -float(shares.sel(region=name).mean()))
    regions = face + (["background"] if background and "background" in shares["region"] else [])
    return shares.sel(region=regions).transpose("explainer", "region")


@style()
def region_bars(cube: xr.Dataset, by: str = "explainer", explainers=None, background: bool = False,
                path: str | Path | None = None, width="single"):
    """Each region's share of each explainer's total |attribution| (summed over time;
    :meth:`cube.xai.share <expresso_xai.cube.accessor.XaiAccessor.share>`): regions on x,
    the largest first, with ``by="explainer"`` one bar per explainer in each region
    (Okabe–Ito colours, :data:`~expresso_xai.figures.OKABE_ITO`), with ``by="region"``
    one panel per explainer. Shares are signed when the method is: a line marks 0.

    Args:
        cube: an attribution cube.
        by: ``"explainer"`` (grouped bars) or ``"region"`` (a panel per explainer).
        explainers: which explainers (default: all, in the cube's order).
        background: draw the ``background`` region too (last); with it the |shares| of
            each explainer add up to 1.
        path: save there (``.pdf``, ``.svg``, ``.png``; no suffix: PNG and PDF), with the
            cube's provenance in the metadata.
        width: ``"single"``, ``"double"`` or inches.

    Returns:
        The matplotlib Figure; each explainer's bars have its name as ``gid``.

    Raises:
        CubeError: unknown explainer or ``by``, or a bad width.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> figure = region_bars(example_cube())
        >>> bars = [patch for patch in figure.axes[0].patches if patch.get_gid() == "gradcam"]
        >>> figure.axes[0].get_xticklabels()[0].get_text()
        'mouth'
        >>> len(bars), round(float(bars[0].get_height()), 3)
        (11, 0.47)
        >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    if by not in GROUPINGS:
        raise CubeError(f"by={by!r}: use one of {list(GROUPINGS)}")
    names = check_explainers(cube, explainers)
    shares = region_values(cube, names, background)
    inches = _width_inches(width, CubeError)
    panels = 1 if by == "explainer" else len(names)
    figure, axes = _new_figure(inches, 1.0 + 1.2 * panels, nrows=panels, sharex=True, squeeze=False)
    x, bar = np.arange(shares.sizes["region"], dtype=float), 0.8 / (len(names) if by == "explainer" else 1)
    for i, name in enumerate(names):
        ax = axes[0, 0] if by == "explainer" else axes[i, 0]
        offset = (i - (len(names) - 1) / 2) * bar if by == "explainer" else 0.0
        ax.bar(x + offset, shares.sel(explainer=name).values, bar, color=OKABE_ITO[i % len(OKABE_ITO)],
               edgecolor="black", linewidth=0.3, label=name, gid=name)
        if by == "region":
            ax.set_title(name, loc="left", pad=2)
    for ax in axes[:, 0]:
        if is_signed(shares.values):
            ax.axhline(0.0, color="black", linewidth=0.6)
        ax.grid(axis="y", alpha=0.3, linewidth=0.5)
        ax.set_axisbelow(True)
    axes[-1, 0].set_xticks(x, labels=shares["region"].values.tolist(), rotation=45, ha="right")
    figure.supylabel(SHARE_LABEL, fontsize=7)
    if by == "explainer":  # above the axes, as many columns as the width holds
        figure.legend(frameon=False, ncol=max(1, min(len(names), int(inches // 1.7))), loc="outside upper left")
    _save(figure, path, cube.attrs)
    return figure


__all__ = ["GROUPINGS", "SHARE_LABEL", "region_bars", "region_values"]
