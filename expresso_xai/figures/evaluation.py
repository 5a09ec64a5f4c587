"""Figures of an evaluation: perturbation curves and the method × metric table.

They take the table's conventions (direction arrows, which method is best, decimals, the
curves' axis labels) from :mod:`expresso_xai.evaluate.table`, so the print table and the
Explorer's panel mark the same cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import EvaluationError
from .base import OKABE_ITO, _fit_title, _save, _width_inches, style


# --- evaluations: perturbation curves and the method x metric table -------------------

CURVE_KINDS = ("deletion", "insertion", "both")
ORDER_LINES = {"morf": ("MoRF", "-"), "lerf": ("LeRF", "--")}  # the random order: grey, dotted, with its band
RANDOM_COLOUR = "#7f7f7f"
CURVE_AXES_IN, CURVE_LABEL_IN = 2.4, 0.6  # a panel's height and the room for its x label, in inches
BEST_CELL = "#fde9a9"  # background of the best score of each metric
VERDICTS = {True: (" ✓", "#1a7f37"), False: (" ✗", "#b42318"), None: ("", "black")}  # pass, fail, no threshold


def _evaluated(ev: xr.Dataset, explainers) -> list[str]:
    """The explainers to draw, checked against the evaluation's."""
    have = [str(name) for name in ev["explainer"].values]
    names = have if explainers is None else [explainers] if isinstance(explainers, str) else list(explainers)
    unknown = [name for name in names if name not in have]
    if unknown or not names:
        raise EvaluationError(f"the evaluation has no explainer {unknown[0] if unknown else '(none given)'!r}; "
                              f"it has {have}")
    return names


def _curve_kinds(ev: xr.Dataset, kind: str) -> list[str]:
    """The kinds of perturbation to draw; ``"both"``: every kind the evaluation has."""
    if kind not in CURVE_KINDS:
        raise EvaluationError(f"kind={kind!r}: use one of {list(CURVE_KINDS)}")
    curve = ev.get("curve")
    have = [] if curve is None else [str(k) for k in curve["kind"].values if np.isfinite(curve.sel(kind=k)).any()]
    missing = [k for k in ([kind] if kind != "both" else have or ["perturbation"]) if k not in have]
    if missing:
        raise EvaluationError(f"the evaluation has no {missing[0]} curves (it has {have or 'none'}): evaluate "
                              f"with metrics=[..., {'deletion' if missing[0] == 'perturbation' else missing[0]!r}]")
    return have if kind == "both" else [kind]


def _line_label(ev: xr.Dataset, explainer: str, order: str, kind: str) -> str:
    from ..evaluate.table import DIGITS

    metric = f"{kind}_{order}"
    value = float(ev["score"].sel(explainer=explainer, metric=metric)) if metric in ev["metric"] else np.nan
    return f"{explainer} {ORDER_LINES[order][0]}" + (f" {value:.{DIGITS}f}" if np.isfinite(value) else "")


def _random_curves(ax, ev: xr.Dataset, kind: str, explainers: list[str], colours: dict) -> None:
    """The random order's curve and its band: once in grey when every explainer's is the
    same (the random orders do not depend on the attribution), else one per explainer."""
    from ..evaluate.table import ORDERS

    curve, steps = ev["curve"].sel(kind=kind, order="random"), ev["step"].values
    shared = all(np.allclose(curve.sel(explainer=e), curve.sel(explainer=explainers[0]), equal_nan=True)
                 for e in explainers)
    for explainer in explainers[:1] if shared else explainers:
        colour = RANDOM_COLOUR if shared else colours[explainer]
        if "curve_ci" in ev.variables and kind in ev["curve_ci"]["kind"].values:
            band = ev["curve_ci"].sel(explainer=explainer, kind=kind)
            ax.fill_between(steps, band.sel(bound="lower").values, band.sel(bound="upper").values, color=colour,
                            alpha=0.2, linewidth=0, gid=f"{explainer}:random band")
        ax.plot(steps, curve.sel(explainer=explainer).values, ":", color=colour, linewidth=1.6,
                label=ORDERS["random"][0] if shared else f"{explainer} random order", gid=f"{explainer}:random")


def _curve_panel(ax, ev: xr.Dataset, kind: str, explainers: list[str], colours: dict, columns: int) -> None:
    import json

    from ..evaluate.table import KINDS

    for explainer in explainers:
        for order, (_, style) in ORDER_LINES.items():
            ax.plot(ev["step"].values, ev["curve"].sel(explainer=explainer, kind=kind, order=order).values, style,
                    color=colours[explainer], linewidth=1.6, label=_line_label(ev, explainer, order, kind),
                    gid=f"{explainer}:{order}")
    _random_curves(ax, ev, kind, explainers, colours)
    params = json.loads(ev.attrs.get("evaluation") or "{}")
    how = ", ".join(([f"fill {params['fill']}"] if "fill" in params else []) +
                    ([f"units of {params['window']} frames"] if "window" in params else []))
    ax.set_title(kind + (f" ({how})" if how else ""), loc="left")
    ax.set_xlabel(KINDS.get(kind, "fraction of units perturbed"))
    ax.set_ylabel(str(ev["curve"].attrs.get("long_name") or "model output"))
    ax.set_xlim(0.0, 1.0)
    ax.grid(alpha=0.3, linewidth=0.5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -CURVE_LABEL_IN / CURVE_AXES_IN), fontsize=8, frameon=False,
              ncol=columns, title="method, order, normalised AOPC (0: random)", title_fontsize=8)


def _evaluation_title(ev: xr.Dataset, what: str) -> str:
    about = [ev.attrs.get("model_name") or "", Path(str(ev.attrs.get("video_source") or "")).name]
    return what + (f" ({', '.join(part for part in about if part)})" if any(about) else "")


@style()
def perturbation_curves(ev: xr.Dataset, kind: str = "both", explainers=None, path: str | Path | None = None,
                        width=None):
    """Deletion and insertion curves of an evaluation: one panel per kind with, per
    method, the model output against the fraction of region × time units removed
    (inserted) in MoRF order (solid) and LeRF order (dashed), and the random orders' mean
    (grey, dotted) with its confidence band; each line's normalised AOPC score
    (``<kind>_morf``, ``<kind>_lerf``: 0 is no better than random) is in the legend.

    Args:
        ev: an evaluation dataset (:func:`expresso_xai.evaluate`) with curves.
        kind: ``"deletion"``, ``"insertion"`` or ``"both"`` (every kind it has).
        explainers: the methods to draw (``None``: all); each keeps its colour.
        path: save there (PNG, PDF or SVG by suffix; without a suffix both ``.png`` and
            ``.pdf``), never leaving a half-written file.
        width: ``"single"``, ``"double"`` or inches (default: 4.8 inches a panel).

    Returns:
        The matplotlib Figure; each line's ``gid`` is ``"<explainer>:<order>"``.

    Raises:
        EvaluationError: not an evaluation, no curves of that kind, unknown explainer, a
            bad width.

    Example:
        >>> from expresso_xai.testing import example_evaluation
        >>> figure = perturbation_curves(example_evaluation(), explainers=["gradcam"])
        >>> [axis.get_title(loc="left").split(" (")[0] for axis in figure.axes]
        ['deletion', 'insertion']
        >>> [line.get_label() for line in figure.axes[0].lines][:2]
        ['gradcam MoRF 0.165', 'gradcam LeRF 0.497']
        >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    import matplotlib.pyplot as plt

    from ..evaluate.dataset import check_evaluation

    check_evaluation(ev)
    kinds, names = _curve_kinds(ev, kind), _evaluated(ev, explainers)
    every, palette = ev["explainer"].values.tolist(), OKABE_ITO
    colours = {name: palette[every.index(name) % len(palette)] for name in names}
    # the axes keep their height however long the legends below them are
    width = 4.8 * len(kinds) if width is None else _width_inches(width, EvaluationError)
    # two legend columns only where a panel is wide enough for two labels side by side
    columns = 1 if len(names) <= 2 or width / len(kinds) < 4.5 else 2
    bottom, top = CURVE_LABEL_IN + 0.2 * (2 + -(-(2 * len(names) + 1) // columns)), 0.6
    height = top + CURVE_AXES_IN + bottom
    figure, axes = plt.subplots(1, len(kinds), figsize=(width, height), squeeze=False)
    figure.subplots_adjust(left=0.55 / width, right=1 - 0.15 / width, bottom=bottom / height, top=1 - top / height,
                           wspace=0.3)
    for ax, name in zip(axes[0], kinds):
        _curve_panel(ax, ev, name, names, colours, columns)
    figure.suptitle(_evaluation_title(ev, "Perturbation curves"), x=0.01, ha="left")
    _save(figure, path, ev.attrs, EvaluationError, exact=True)
    return figure


def _fill_table(table, scores: dict, widths: list[float]) -> None:
    """Booktabs-like: rules above and below the headers and at the end, none between
    methods; a metric group's name above its first column, underlined over the group
    (none for a group that is one score of its own name); score cells have no edges so
    that the best one's shade shows."""

    def cell(row, col, text, edges="closed", height=1.0, facecolor="white", **style):
        added = table.add_cell(row, col, widths[col], height, text=text, loc="left" if col == 0 else "center",
                               edgecolor="black", facecolor=facecolor)
        added.visible_edges = edges
        added.set_linewidth(0.0 if edges == "closed" else 0.8)
        added.get_text().set(**style)

    metrics, groups = scores["metrics"], [metric["group"] for metric in scores["metrics"]]
    cell(0, 0, "", "T")
    cell(1, 0, "method", "B", fontweight="bold")
    for j, metric in enumerate(metrics, start=1):
        alone = groups.count(metric["group"]) == 1 and metric["label"] == metric["group"]
        first = j == 1 or groups[j - 2] != metric["group"]
        cell(0, j, metric["group"] if first and not alone else "", "T" if alone else "TB", fontstyle="italic",
             horizontalalignment="left")
        cell(1, j, f"{metric['label']} {metric['arrow']}".strip(), "B", fontweight="bold")
    for i, explainer in enumerate(scores["explainers"]):
        cell(i + 2, 0, explainer)
        for j, (value, verdict) in enumerate(zip(scores["score"][i], scores["passed"][i])):
            mark, colour = VERDICTS[verdict]
            best = i in scores["best"][j]
            cell(i + 2, j + 1, "–" if value is None else f"{value:.{scores['digits']}f}{mark}", color=colour,
                 fontweight="bold" if best else "normal", facecolor=BEST_CELL if best else "white")
    for j in range(len(metrics) + 1):  # the closing rule, as a row of no height
        cell(len(scores["explainers"]) + 2, j, "", "T", height=0.01)


@style()
def metric_table(ev: xr.Dataset, path: str | Path | None = None, width=None):
    """The method × metric table of an evaluation as a figure: one row per method, one
    column per score under its metric group, with its direction (↑ higher is better,
    ↓ lower), the best method of each score in bold on a shaded cell (none for a
    descriptive score), and ✓ / ✗ where a score passes or fails its threshold
    (``passed``). Labels, arrows, decimals and best cells are the Explorer's
    (``expresso_xai.evaluate.table.score_table``).

    Args:
        ev: an evaluation dataset (:func:`expresso_xai.evaluate`).
        path: save there (PNG, PDF or SVG by suffix; without a suffix both ``.png`` and
            ``.pdf``), never leaving a half-written file.
        width: ``"single"``, ``"double"`` or inches (default: as wide as the labels).

    Returns:
        The matplotlib Figure; the table is ``figure.axes[0].tables[0]``, its cell
        ``[2 + method, 1 + metric]`` (row 0: groups, row 1: score labels, column 0:
        methods).

    Raises:
        EvaluationError: not an evaluation dataset.

    Example:
        >>> from expresso_xai.testing import example_evaluation
        >>> figure = metric_table(example_evaluation())
        >>> table = figure.axes[0].tables[0]
        >>> table[1, 7].get_text().get_text(), table[2, 7].get_text().get_text()
        ('spearman ↓', '0.383 ✓')
        >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    import matplotlib.pyplot as plt
    from matplotlib.table import Table

    from ..evaluate.dataset import check_evaluation
    from ..evaluate.table import score_table

    check_evaluation(ev)
    scores = score_table(ev, ev["explainer"].values.tolist())
    characters = [max(len(name) for name in scores["explainers"] + ["method"]) + 2] + \
        [max(len(metric["label"]) + 2, 9) + 2 for metric in scores["metrics"]]
    inches = 0.3 + 0.065 * sum(characters) if width is None else _width_inches(width, EvaluationError)
    # in inches: the table's rows, the title above and the key below, all inside the figure
    rows, top, foot = 0.22 * (len(scores["explainers"]) + 2), 0.3, 0.3
    height = rows + top + foot
    figure = plt.figure(figsize=(inches, height))
    ax = figure.add_axes((0.0, foot / height, 1.0, rows / height))
    ax.set_axis_off()
    table = Table(ax, bbox=(0.0, 0.0, 1.0, 1.0))
    _fill_table(table, scores, [count / sum(characters) for count in characters])
    table.auto_set_font_size(False)
    # a width narrower than the labels shrinks the type rather than let the cells overlap
    size = 7 * min(1.0, (inches - 0.3) / (0.065 * sum(characters)))
    table.set_fontsize(size)
    ax.add_table(table)
    figure.suptitle(_evaluation_title(ev, "Evaluation scores"), x=0.01, y=1 - 0.06 / height, ha="left", va="top")
    key = ("↑ higher is better, ↓ lower; bold on shade: best per metric; ✓ pass, ✗ fail at the metric's "
           "threshold; – no value")
    figure.text(0.01, 0.1 / height, _fit_title(key, inches * 7 / size), fontsize=min(6.0, size), color="#555555",
                va="bottom")
    _save(figure, path, ev.attrs, EvaluationError, exact=True)
    return figure


