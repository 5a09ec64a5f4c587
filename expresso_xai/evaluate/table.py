"""How an evaluation's scores are read and shown, wherever they are shown (the Explorer's
panel, ``figures.metric_table``, the CLI's summary): the arrow of each direction, the
decimals, which method is best for each metric, the label and colour of each curve order.

Example:
    >>> from expresso_xai.testing import example_evaluation
    >>> table = score_table(example_evaluation(), ["gradcam", "integrated_gradients"])
    >>> table["metrics"][0]["name"], table["metrics"][0]["arrow"]
    ('deletion_morf', '↑')
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

DIGITS = 3  # decimals of a score in the table
ARROWS = {"higher": "↑", "lower": "↓", "neither": ""}
# order -> (label, colour); the random order's band is its confidence interval (curve_ci)
ORDERS = {"morf": ("MoRF: most relevant first", "#d62728"),
          "lerf": ("LeRF: least relevant first", "#1f77b4"),
          "random": ("random order (band: its CI)", "#7f7f7f")}
KINDS = {"deletion": "fraction of units removed", "insertion": "fraction of units inserted"}


def _finite(values) -> list:
    values = np.asarray(values, dtype=np.float64)
    out = values.astype(object)
    out[~np.isfinite(values)] = None
    return out.tolist()


def best_rows(scores: np.ndarray, better) -> list[list[int]]:
    """Per metric (column of ``scores``, methods in rows), the rows with the best finite
    score in its direction (ties all count); none for ``"neither"`` or no value.

    Example:
        >>> best_rows(np.array([[0.2, 0.2, 1.0], [0.5, 0.1, np.nan]]), ["higher", "lower", "neither"])
        [[1], [1], []]
    """
    best = []
    for column, direction in zip(np.asarray(scores, np.float64).T, better):
        finite = np.isfinite(column)
        if direction not in ("higher", "lower") or not finite.any():
            best.append([])
            continue
        target = column[finite].max() if direction == "higher" else column[finite].min()
        best.append(np.flatnonzero(finite & (column == target)).tolist())
    return best


def _metric_column(name: str, group: str, better: str, info: dict) -> dict:
    label = name[len(group) + 1:] if group and name.startswith(group + "_") else name
    lines = [f"{name}: {info.get('definition') or 'no definition stored'}"]
    if info.get("reference"):
        lines.append(f"reference: {info['reference']}")
    lines.append("no direction (descriptive)" if better == "neither" else f"{better} is better")
    if info.get("threshold") is not None:
        lines[-1] += f"; passes at {'≥' if better == 'higher' else '≤'} {info['threshold']}"
    return {"name": name, "label": label, "group": group, "better": better, "arrow": ARROWS.get(better, ""),
            "title": "\n".join(lines)}


def score_table(evaluation: xr.Dataset, explainers: list[str]) -> dict:
    """The table: one row per explainer (in ``explainers``' order), one column per
    metric with its direction, tooltip and best rows; scores and pass (True) / fail
    (False) marks, NaN as None.

    Example:
        >>> from expresso_xai.testing import example_evaluation
        >>> table = score_table(example_evaluation(), ["gradcam", "integrated_gradients"])
        >>> column = table["metrics"][6]
        >>> column["name"], column["label"], column["arrow"], table["passed"][0][6]
        ('mprt_spearman', 'spearman', '↓', True)
    """
    metrics = evaluation["metric"].values.tolist()
    definitions = json.loads(evaluation.attrs.get("metric_definitions") or "{}")
    better = [str(b) for b in evaluation["better"].values]
    groups = [str(g) for g in evaluation["group"].values] if "group" in evaluation.variables else metrics
    scores = evaluation["score"].sel(explainer=explainers).transpose("explainer", "metric").values
    passed = evaluation["passed"].sel(explainer=explainers).transpose("explainer", "metric").values
    return {
        "explainers": explainers,
        "metrics": [_metric_column(m, g, b, definitions.get(m, {})) for m, g, b in zip(metrics, groups, better)],
        "score": _finite(scores),
        "passed": [[None if not np.isfinite(p) else bool(p) for p in row] for row in passed],
        "best": best_rows(scores, better),
        "digits": DIGITS,
    }
