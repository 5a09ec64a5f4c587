"""Figures of a cohort audit (:func:`expresso_xai.cohort.audit`): region shares per
severity band or error group with their bootstrap confidence intervals, and the AU ×
region correlation heatmap.

They draw the audit's tidy tables (``audit.shares``, ``audit.au``, or those DataFrames
themselves) as they are: every number on the page is a cell of the table, nothing is
recomputed, so a figure and the CSV report next to it cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cube.views import VALUE_LABELS, is_signed
from ..errors import CohortError
from .base import _save, _width_inches, style

SHARE_COLUMNS = ("explainer", "grouping", "group", "region", "n", "mean", "ci_low", "ci_high")
AU_COLUMNS = ("explainer", "band", "au", "region", "n", "rho", "ci_low", "ci_high")
GROUPINGS = {"band": "severity band", "error": "prediction error"}
RHO_LABEL = "Spearman ρ (mean over participants)"
# Bands are ordered (minimal → severe): a sequential palette says so; error groups are not.
GROUP_PALETTES = {"band": ("YlOrRd", 0.3, 0.9), "error": ("tab10", None, None)}


def _audit_attrs(audit) -> dict | None:
    """What the audit records about its cohort (the run's settings: model, methods), for
    the file's metadata; None for a bare table."""
    import json

    settings = getattr(audit, "settings", None)
    if not isinstance(settings, dict):
        return None
    run = settings.get("cohort_settings")
    try:
        run = json.loads(run) if isinstance(run, str) and run else run
    except json.JSONDecodeError:
        run = None
    return {**settings, **(run if isinstance(run, dict) else {})}


def _table(audit, attribute: str, columns: tuple[str, ...]):
    """``audit.<attribute>`` (or ``audit`` when it is the DataFrame), checked to have
    ``columns`` and rows."""
    # a DataFrame first: the AU table's own column "au" would pass for the attribute
    table = audit if hasattr(audit, "columns") else getattr(audit, attribute, audit)
    if not hasattr(table, "columns"):
        raise CohortError(f"expected a cohort audit (with .{attribute}) or its DataFrame, got {type(audit).__name__}")
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise CohortError(f"the {attribute} table has no column {missing[0]!r}: it needs {list(columns)}, "
                          f"it has {list(table.columns)}")
    if table.empty:
        raise CohortError(f"the {attribute} table has no rows: nothing to draw")
    return table


def _select(table, column: str, value, what: str):
    """``(value, rows)``: the rows whose ``column`` is ``value`` (``None``: the first
    value the table has), or a :class:`CohortError` naming the values it has."""
    have = list(dict.fromkeys(table[column].astype(str)))
    value = have[0] if value is None else value
    if value not in have:
        raise CohortError(f"the audit has no {what} {value!r}; it has {have}")
    return value, table[table[column].astype(str) == value]


def _share_regions(table, regions) -> list[str]:
    """The regions to draw: as asked, or all but ``background`` by their largest share."""
    have = list(dict.fromkeys(table["region"].astype(str)))
    if regions is None:
        largest = table.groupby(table["region"].astype(str))["mean"].max()
        return sorted((name for name in have if name != "background"), key=lambda name: -largest[name])
    regions = [regions] if isinstance(regions, str) else list(regions)
    unknown = [name for name in regions if name not in have]
    if unknown or not regions:
        raise CohortError(f"the audit has no region {unknown[0] if unknown else '(none given)'!r}; it has {have}")
    return regions


def _group_colours(grouping: str, count: int) -> list:
    import matplotlib

    name, low, high = GROUP_PALETTES.get(grouping, GROUP_PALETTES["error"])
    palette = matplotlib.colormaps[name]
    if low is None:
        return [palette(i % palette.N) for i in range(count)]
    return [palette(x) for x in np.linspace(low, high, count)]


def _group_bars(ax, rows, names: list[str], x: np.ndarray, offset: float, bar: float, colour) -> None:
    """One group's bars and their CI whiskers: the whisker spans ``ci_low..ci_high``
    exactly (drawn about the CI's middle, so a mean outside its CI cannot break it)."""
    cells = rows.assign(region=rows["region"].astype(str)).set_index("region").reindex(names)
    group = str(rows["group"].iloc[0])
    low, high = cells["ci_low"].to_numpy(float), cells["ci_high"].to_numpy(float)
    ax.bar(x + offset, cells["mean"].to_numpy(float), bar, color=colour, edgecolor="black", linewidth=0.4,
           label=f"{group} (n={int(rows['n'].max())})", gid=group)
    ax.errorbar(x + offset, (low + high) / 2, yerr=np.abs(high - low) / 2, fmt="none", ecolor="black",
                elinewidth=0.8, capsize=1.5, capthick=0.8, gid=f"{group}:ci")


@style()
def band_shares(audit, explainer: str | None = None, regions=None, grouping: str = "band",
                path: str | Path | None = None, width="single"):
    """Region shares of one explainer per group, with their bootstrap confidence
    intervals: regions on x, one bar per group (in the table's group order) with a
    whisker from ``ci_low`` to ``ci_high``, a line at zero when the shares are signed.

    Args:
        audit: what :func:`expresso_xai.cohort.audit` returns (its ``shares`` table is
            drawn) or that DataFrame, columns ``[explainer, grouping, group, region, n,
            mean, ci_low, ci_high]``.
        explainer: which explainer (default: the table's first).
        regions: the regions to draw, in this order (default: all but ``background``,
            the largest share first).
        grouping: ``"band"`` (severity bands) or ``"error"`` (correct, over-, under-
            estimated): any grouping the table has.
        path: save there (PNG, PDF or SVG by suffix; without a suffix both ``.png`` and
            ``.pdf``), never leaving a half-written file.
        width: ``"single"`` or ``"double"`` column (:data:`~expresso_xai.figures.COLUMN_WIDTHS`),
            or inches.

    Returns:
        The matplotlib Figure; each group's bars have the ``gid`` of the group, its
        whiskers ``"<group>:ci"``; legend labels read ``"<group> (n=<participants>)"``.

    Raises:
        CohortError: no shares table, no rows, an unknown explainer, grouping or region,
            or a bad width.

    Example:
        >>> import pandas as pd
        >>> shares = pd.DataFrame({"explainer": "gradcam", "grouping": "band",
        ...     "group": ["minimal", "minimal", "severe", "severe"], "region": ["mouth", "right_eye"] * 2,
        ...     "n": [6, 6, 4, 4], "mean": [0.10, 0.12, 0.09, 0.25], "ci_low": [0.08, 0.10, 0.07, 0.20],
        ...     "ci_high": [0.12, 0.15, 0.11, 0.30]})
        >>> figure = band_shares(shares)
        >>> [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
        ['minimal (n=6)', 'severe (n=4)']
        >>> [label.get_text() for label in figure.axes[0].get_xticklabels()]  # the largest share first
        ['right_eye', 'mouth']
        >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    import matplotlib.pyplot as plt

    table = _table(audit, "shares", SHARE_COLUMNS)
    explainer, table = _select(table, "explainer", explainer, "explainer")
    grouping, table = _select(table, "grouping", grouping, "grouping")
    names = _share_regions(table, regions)
    groups = list(dict.fromkeys(table["group"].astype(str)))
    inches = _width_inches(width, CohortError)
    figure, ax = plt.subplots(figsize=(inches, 1.6 + 0.3 * inches), layout="constrained")
    x, bar = np.arange(len(names), dtype=float), 0.8 / len(groups)
    for i, (group, colour) in enumerate(zip(groups, _group_colours(grouping, len(groups)))):
        rows = table[table["group"].astype(str) == group]
        _group_bars(ax, rows, names, x, (i - (len(groups) - 1) / 2) * bar, bar, colour)
    drawn = table[table["region"].astype(str).isin(names)][["mean", "ci_low", "ci_high"]].to_numpy(float)
    if is_signed(drawn):
        ax.axhline(0.0, color="black", linewidth=0.8, gid="zero")
    ax.set_xticks(x, labels=names, rotation=45, ha="right", fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel(VALUE_LABELS["share"], fontsize=7, wrap=True)
    ax.grid(axis="y", alpha=0.3, linewidth=0.5)
    ax.set_axisbelow(True)
    # about 1.5 inches a legend column, so that the legend never squeezes the axes
    ax.legend(fontsize=6, title=GROUPINGS.get(grouping, grouping), title_fontsize=6, frameon=False,
              ncol=max(1, min(len(groups), int(inches // 1.5))), loc="lower left", bbox_to_anchor=(0.0, 1.0),
              borderaxespad=0.2)
    figure.suptitle(f"{explainer}: region shares per {GROUPINGS.get(grouping, grouping)} (mean, bootstrap CI)",
                    x=0.01, ha="left", fontsize=8)
    _save(figure, path, _audit_attrs(audit), CohortError)
    return figure


def _au_grid(table):
    """``(aus, regions, rho, significant)``: AUs in name order, regions in the table's
    order with ``background`` last, ``(AU, region)`` arrays of the mean rho (NaN where
    the table has no cell) and whether the cell's CI excludes 0."""
    table = table.assign(au=table["au"].astype(str), region=table["region"].astype(str))
    repeated = table.duplicated(["au", "region"])
    if repeated.any():
        first = table[repeated].iloc[0]
        raise CohortError(f"the AU table has more than one row for {first['au']} × {first['region']}")
    aus = sorted(dict.fromkeys(table["au"]))
    regions = list(dict.fromkeys(table["region"]))
    regions = [name for name in regions if name != "background"] + ["background"] * ("background" in regions)
    cells = table.set_index(["au", "region"])

    def grid(column):
        return cells[column].unstack("region").reindex(index=aus, columns=regions).to_numpy(float)

    rho, low, high = grid("rho"), grid("ci_low"), grid("ci_high")
    return aus, regions, rho, (low > 0) | (high < 0)


@style()
def au_heatmap(audit, explainer: str | None = None, band: str = "all", path: str | Path | None = None,
               width="single"):
    """AU × region heatmap of the Spearman correlation between each action unit's
    intensity and each region's attribution, averaged over a band's participants.

    The colour map diverges at 0 with symmetric limits (the largest |ρ|, at most 1);
    cells without a value are grey, and AUs without a value in any region (an AU that
    never varied) are left out; a dot marks a cell whose confidence interval excludes 0.

    Args:
        audit: what :func:`expresso_xai.cohort.audit` returns (its ``au`` table is drawn)
            or that DataFrame, columns ``[explainer, band, au, region, n, rho, ci_low,
            ci_high]``.
        explainer: which explainer (default: the table's first).
        band: which band's rows (``"all"``: every participant, as the audit names it).
        path: save there (PNG, PDF or SVG by suffix; without a suffix both ``.png`` and
            ``.pdf``), never leaving a half-written file.
        width: ``"single"`` or ``"double"`` column, or inches.

    Returns:
        The matplotlib Figure: ``axes[0]`` holds the image (rows: AUs, columns: regions
        with ``background`` last) and the dots (``gid`` ``"significant"``), ``axes[1]``
        the colour bar.

    Raises:
        CohortError: no AU table, no rows, an unknown explainer or band, two rows for one
            cell, or a bad width.

    Example:
        >>> import pandas as pd
        >>> au = pd.DataFrame({"explainer": "gradcam", "band": "all", "au": ["AU45", "AU45", "AU12", "AU12"],
        ...     "region": ["right_eye", "mouth"] * 2, "n": 20, "rho": [0.6, 0.0, -0.1, 0.3],
        ...     "ci_low": [0.4, -0.2, -0.3, 0.1], "ci_high": [0.8, 0.2, 0.1, 0.5]})
        >>> figure = au_heatmap(au)
        >>> figure.axes[0].images[0].get_array().tolist()  # rows AU12, AU45; columns right_eye, mouth
        [[-0.1, 0.3], [0.6, 0.0]]
        >>> figure.axes[0].collections[0].get_offsets().tolist()  # (column, row) of the CIs without 0
        [[1.0, 0.0], [0.0, 1.0]]
        >>> figure.axes[1].get_ylabel()
        'Spearman ρ (mean over participants)'
        >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    import matplotlib
    import matplotlib.pyplot as plt

    table = _table(audit, "au", AU_COLUMNS)
    explainer, table = _select(table, "explainer", explainer, "explainer")
    band, table = _select(table, "band", band, "band")
    # an AU that never varies in any participant (e.g. absent from a short video) has no
    # correlation anywhere: a row of grey would only push the others apart
    measured = table.groupby("au")["rho"].transform(lambda rho: rho.notna().any())
    table = table[measured] if measured.any() else table
    aus, regions, rho, significant = _au_grid(table)
    inches = _width_inches(width, CohortError)
    figure, ax = plt.subplots(figsize=(inches, max(2.6, 1.4 + 0.22 * len(aus))), layout="constrained")
    finite = np.abs(rho[np.isfinite(rho)])
    limit = min(1.0, float(finite.max())) if finite.size and finite.max() > 0 else 1.0
    image = ax.imshow(np.ma.masked_invalid(rho), aspect="auto", interpolation="nearest", vmin=-limit, vmax=limit,
                      cmap=matplotlib.colormaps["RdBu_r"].with_extremes(bad="#d9d9d9"))
    rows, columns = np.nonzero(significant)
    ax.scatter(columns, rows, s=6, c="black", edgecolors="white", linewidths=0.4, gid="significant",
               label="CI excludes 0")
    ax.set_xticks(np.arange(len(regions)), labels=regions, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(aus)), labels=aus, fontsize=7)
    colour_bar = figure.colorbar(image, ax=ax, pad=0.02)
    colour_bar.set_label(RHO_LABEL, fontsize=7)
    colour_bar.ax.tick_params(labelsize=6)
    if rows.size:
        figure.legend(loc="outside lower right", fontsize=6, frameon=False)
    ax.set_title(f"{explainer}: AU × region, band {band} (n={int(table['n'].max())})", loc="left", fontsize=8)
    _save(figure, path, _audit_attrs(audit), CohortError)
    return figure


#: The issue's name for :func:`band_shares`: region shares per severity band, as bars.
band_bars = band_shares

__all__ = ["AU_COLUMNS", "RHO_LABEL", "SHARE_COLUMNS", "au_heatmap", "band_bars", "band_shares"]
