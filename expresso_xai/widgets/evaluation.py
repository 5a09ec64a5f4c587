"""What the Explorer's evaluation panel receives: the method x metric table of an
evaluation dataset (:mod:`expresso_xai.evaluate.dataset`) and its perturbation curves.

It is the ``evaluation`` part of the payload (typedef ``Evaluation`` in
``widgets/explorer.js``). As for the rest of the payload, the conventions are decided
in Python and the front-end only draws them; the table's conventions (arrows, decimals,
best rows, curve labels and colours) live in :mod:`expresso_xai.evaluate.table`, shared
with the print figures and the CLI. Definitions from the
dataset's attrs travel as plain text; the front-end puts them in ``title`` attributes and
``textContent``, never in markup.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import EvaluationError
from ..evaluate.table import ARROWS, DIGITS, KINDS, ORDERS, _finite, best_rows, score_table  # noqa: F401

PROVENANCE = ("model_hash", "video_hash")  # must agree between a cube and its evaluation


def check_fits(cube: xr.Dataset, evaluation) -> None:
    """Refuse an evaluation that is not of this cube: not an evaluation dataset, an
    explainer the cube does not have, or another model or video (``model_hash`` /
    ``video_hash`` both set and different).

    Example:
        >>> from expresso_xai.testing import example_cube, example_evaluation
        >>> check_fits(example_cube(), example_evaluation())
        >>> try:
        ...     check_fits(example_cube(explainers=["gradcam"]), example_evaluation())
        ... except EvaluationError as error:
        ...     print(str(error).split(" (")[0])
        the evaluation has explainers ['integrated_gradients'] that the cube does not have
    """
    from ..evaluate.dataset import check_evaluation

    check_evaluation(evaluation)
    have = cube["explainer"].values.tolist()
    extra = [name for name in evaluation["explainer"].values.tolist() if name not in have]
    if extra:
        raise EvaluationError(f"the evaluation has explainers {extra} that the cube does not have (it has {have}): "
                              "pass the evaluation of this cube")
    for key in PROVENANCE:
        ours, theirs = cube.attrs.get(key), evaluation.attrs.get(key)
        if ours and theirs and str(ours) != str(theirs):
            raise EvaluationError(f"the evaluation's {key} {str(theirs)[:12]}… is not the cube's "
                                  f"{str(ours)[:12]}…: it was made for another model or video; "
                                  "pass the evaluation of this cube")


def _by_kind(curve: xr.DataArray) -> xr.DataArray:
    """A curve without a ``kind`` dimension is one kind of perturbation: deletion."""
    return curve if "kind" in curve.dims else curve.expand_dims(kind=["deletion"])


def perturbation_curves(evaluation: xr.Dataset, explainers: list[str]) -> dict | None:
    """``curve(explainer, kind, order, step)`` and the random order's band
    ``curve_ci(explainer, kind, bound, step)`` as ``{explainer: {kind: {order: [...]}}}``,
    kinds without any value left out; None when the evaluation has no curves.

    Example:
        >>> from expresso_xai.testing import example_evaluation
        >>> curves = perturbation_curves(example_evaluation(), ["gradcam"])
        >>> [k for k, _ in curves["kinds"]], [o for o, _, _ in curves["orders"]], len(curves["steps"])
        (['deletion', 'insertion'], ['morf', 'lerf', 'random'], 9)
        >>> curves["values"]["gradcam"]["deletion"]["morf"][0], curves["ci"]["gradcam"]["deletion"]["lower"][0]
        (30.0, 29.0)
    """
    if "curve" not in evaluation:
        return None
    curve = _by_kind(evaluation["curve"]).sel(explainer=explainers).transpose("explainer", "kind", "order", "step")
    kinds = [k for k in curve["kind"].values.tolist() if np.isfinite(curve.sel(kind=k).values).any()]
    if not kinds:
        return None
    orders = curve["order"].values.tolist()
    values = {e: {k: {o: _finite(curve.sel(explainer=e, kind=k, order=o).values) for o in orders} for k in kinds}
              for e in explainers}
    ci = None
    if "curve_ci" in evaluation:
        bands = _by_kind(evaluation["curve_ci"]).sel(explainer=explainers)
        ci = {e: {k: {b: _finite(bands.sel(explainer=e, kind=k, bound=b).values) for b in ("lower", "upper")}
                  for k in kinds if k in bands["kind"].values} for e in explainers}
    return {
        "kinds": [[k, KINDS.get(k, "fraction of units perturbed")] for k in kinds],
        "orders": [[o, *ORDERS.get(o, (o, "#2ca02c"))] for o in orders],
        "steps": _finite(curve["step"].values),
        "label": str(evaluation["curve"].attrs.get("long_name") or "model output"),
        "values": values,
        "ci": ci,
    }


def panel(cube: xr.Dataset, evaluation) -> dict | None:
    """The ``evaluation`` part of the payload, or None without an evaluation; refuses one
    that is not of this cube (:func:`check_fits`). Rows follow the cube's explainers.

    Example:
        >>> from expresso_xai.testing import example_cube, example_evaluation
        >>> data = panel(example_cube(), example_evaluation())
        >>> sorted(data), data["table"]["explainers"]
        (['curves', 'table'], ['gradcam', 'integrated_gradients'])
    """
    if evaluation is None:
        return None
    check_fits(cube, evaluation)
    evaluated = set(evaluation["explainer"].values.tolist())
    explainers = [name for name in cube["explainer"].values.tolist() if name in evaluated]
    return {"table": score_table(evaluation, explainers), "curves": perturbation_curves(evaluation, explainers)}
