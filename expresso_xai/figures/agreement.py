"""The agreement matrix: how alike the explainers rank the cube's cells (Spearman)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..cube.views import agreement, explainers
from ..errors import CubeError
from .base import DIVERGING, _fit_title, _new_figure, _save, _width_inches, style

RHO_LABEL = "Spearman ρ"
LABELS_IN = 2.2  # the row labels and the colour bar, in inches


@style()
def agreement_matrix(cube: xr.Dataset, over=("time", "region"), absolute: bool = False,
                     path: str | Path | None = None, width="single"):
    """The rank agreement between every pair of explainers, as a matrix: each cell is
    Spearman's ρ between two methods' attributions over the cube's cells (time ×
    region by default, frames without a face left out:
    :meth:`cube.xai.agreement <expresso_xai.cube.accessor.XaiAccessor.agreement>`),
    written in the cell, on a fixed diverging scale from -1 to 1.

    Args:
        cube: an attribution cube with at least two explainers.
        over: the dimensions whose cells are ranked (``"region"``: per frame, averaged
            over the frames).
        absolute: rank |attribution| (what matters, whatever the sign).
        path: save there (``.pdf``, ``.svg``, ``.png``; no suffix: PNG and PDF), with the
            cube's provenance in the metadata.
        width: ``"single"``, ``"double"`` or inches.

    Returns:
        The matplotlib Figure: ``axes[0].images[0]`` is the matrix, ``axes[1]`` the
        colour bar.

    Raises:
        CubeError: fewer than two explainers, a bad ``over`` or width.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> figure = agreement_matrix(example_cube())
        >>> figure.axes[0].images[0].get_clim(), figure.axes[0].texts[0].get_text()
        ((-1.0, 1.0), '1.00')
        >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    names = list(explainers(cube))
    if len(names) < 2:
        raise CubeError(f"agreement_matrix compares explainers, and this cube has one ({names}): explain with "
                        "two methods or more")
    rho = agreement(cube, over=over, absolute=absolute)
    if "time" in rho.dims:
        rho = rho.mean("time", skipna=True)
    if "region" in rho.dims:
        rho = rho.mean("region", skipna=True)
    inches = _width_inches(width, CubeError)
    # cells fill the width (square cells would leave a double-width figure mostly blank
    # beside a small matrix), their height within what a number needs and a page allows
    cell = float(np.clip((inches - LABELS_IN) / len(names), 0.2, 0.6))
    figure, ax = _new_figure(inches, 1.2 + cell * len(names))
    image = ax.imshow(np.ma.masked_invalid(rho.values), cmap=DIVERGING, vmin=-1.0, vmax=1.0, aspect="auto")
    for (row, column), value in np.ndenumerate(rho.values):
        ax.text(column, row, "–" if not np.isfinite(value) else f"{value:.2f}", ha="center", va="center",
                color="white" if np.isfinite(value) and abs(value) > 0.6 else "black", fontsize=7)
    ax.set_xticks(np.arange(len(names)), labels=names, rotation=30, ha="right")
    ax.set_yticks(np.arange(len(names)), labels=names)
    figure.colorbar(image, ax=ax, shrink=0.9).set_label(RHO_LABEL)
    cells = " × ".join(rho.attrs.get("over", ", ".join(over)).split(", "))
    how = f"{'|attribution|' if absolute else 'attribution'} ranked over {cells}"
    figure.suptitle(_fit_title(f"Rank agreement between methods ({how})", inches), x=0.01, ha="left")
    _save(figure, path, cube.attrs)
    return figure


__all__ = ["RHO_LABEL", "agreement_matrix"]
