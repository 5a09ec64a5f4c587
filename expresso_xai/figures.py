"""Print figures of attribution cubes (matplotlib), for papers and reports.

Figures read a cube through its ``.xai`` accessor and never change it. Signed values
get a diverging colour map centred at 0 with symmetric limits, so red and blue mean the
same magnitude; values that are all ≥ 0 get a sequential one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from . import cube as _cube  # noqa: F401 - registers the .xai accessor
from .errors import CubeError

VALUES = ("attribution", "density", "share")

_COLOURBAR_LABELS = {
    "attribution": "attribution (signed sum over the region's pixels)",
    "density": "attribution per pixel",
    "share": "share of the explainer's total |attribution|",
}


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _time_ticks(n_frames: int, most: int = 8) -> np.ndarray:
    step = max(1, int(np.ceil(n_frames / most)))
    return np.arange(0, n_frames, step)


def region_time_heatmap(
    cube: xr.Dataset,
    explainer: str,
    *,
    value: str = "attribution",
    path: str | Path | None = None,
    ax=None,
    cmap: str | None = None,
    title: str | None = None,
):
    """Heatmap of one explainer's regions (rows) over time (columns).

    Rows follow the cube's region order with ``background`` last; columns are frames,
    labelled with their time in seconds and frame index. Frames without a face are
    hatched. ``value`` is ``"attribution"``, ``"density"`` (per pixel; cells without
    pixels are grey) or ``"share"`` (of the explainer's total |attribution|).

    Args:
        cube: an attribution cube.
        explainer: which explainer to show.
        path: save the figure there; without a suffix both ``.png`` and ``.pdf``.
        ax: draw into this matplotlib Axes (its figure is returned) instead of a new figure.
        cmap: colour map name; default ``RdBu_r`` for signed values, ``viridis`` otherwise.
        title: default ``"<explainer>: <value>"`` with the model's name when known.

    Returns:
        The matplotlib Figure.

    Raises:
        CubeError: unknown explainer or value.

    Example:
        >>> from expresso_xai.cube import example_cube
        >>> from expresso_xai.figures import region_time_heatmap
        >>> figure = region_time_heatmap(example_cube(), "gradcam", value="density")
        >>> [label.get_text() for label in figure.axes[0].get_yticklabels()][-1]
        'background'
        >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if value not in VALUES:
        raise CubeError(f"value must be one of {list(VALUES)}, got {value!r}")
    explainers = cube.xai.explainers
    if explainer not in explainers:
        raise CubeError(f"no explainer {explainer!r} in this cube; explainers: {list(explainers)}")
    if value == "attribution":
        data = cube["attribution"]
    elif value == "density":
        data = cube.xai.density()
    else:
        data = cube.xai.share(("time", "region"))
    regions = list(cube.xai.regions)
    if "background" in regions:
        regions = [name for name in regions if name != "background"] + ["background"]
    grid = data.sel(explainer=explainer).transpose("region", "time").sel(region=regions)
    values = grid.values.astype(np.float64)
    frames = grid["time"].values
    seconds = grid["seconds"].values if "seconds" in grid.coords else np.full(len(frames), np.nan)

    finite = values[np.isfinite(values)]
    signed = finite.size > 0 and finite.min() < 0
    if signed:
        limit = float(np.abs(finite).max()) or 1.0
        vmin, vmax = -limit, limit
        cmap = cmap or "RdBu_r"
    else:
        vmax = float(finite.max()) if finite.size else 1.0
        vmin, vmax = 0.0, vmax or 1.0
        cmap = cmap or "viridis"
    colours = matplotlib.colormaps[cmap].with_extremes(bad="#d9d9d9")

    if ax is None:
        width = float(np.clip(3.0 + 0.12 * len(frames), 6.0, 14.0))
        height = 1.4 + 0.32 * len(regions)
        figure, ax = plt.subplots(figsize=(width, height))
    else:
        figure = ax.figure
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", interpolation="nearest",
                      cmap=colours, vmin=vmin, vmax=vmax, origin="upper")
    ax.set_yticks(np.arange(len(regions)), labels=regions)
    ticks = _time_ticks(len(frames))
    ax.set_xticks(ticks, labels=[f"{seconds[i]:.2f}\n{int(frames[i])}" for i in ticks])
    ax.set_xlabel("time (s) / frame")
    ax.set_ylabel("region")

    if "face_found" in cube.variables:
        face_found = cube["face_found"].sel(time=frames).values.astype(bool)
        runs = _runs(~face_found)
        for start, stop in runs:
            ax.axvspan(start - 0.5, stop - 0.5, facecolor="white", alpha=0.35,
                       hatch="///", edgecolor="#555555", linewidth=0)
        if runs:
            ax.legend(handles=[Patch(facecolor="white", hatch="///", edgecolor="#555555", label="no face")],
                      loc="lower right", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.2,
                      fontsize=8, frameon=False)

    colourbar = figure.colorbar(image, ax=ax, pad=0.02)
    colourbar.set_label(_COLOURBAR_LABELS[value])
    if title is None:
        model = cube.attrs.get("model_name") or ""
        title = f"{explainer}: {value} by region and time" + (f" ({model})" if model else "")
    ax.set_title(title, loc="left")

    if path is not None:
        path = Path(path)
        targets = [path.with_suffix(".png"), path.with_suffix(".pdf")] if not path.suffix else [path]
        for target in targets:
            figure.savefig(target, dpi=150, bbox_inches="tight")
    return figure


__all__ = ["region_time_heatmap"]
