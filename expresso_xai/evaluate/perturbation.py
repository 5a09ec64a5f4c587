"""Faithfulness by perturbation over region × time units (:mod:`.units`): deletion and
insertion curves (Petsiuk et al. 2018), faithfulness correlation (Bhatt et al. 2020) and
infidelity (Yeh et al. 2019).

**Deletion**: the clip's units are replaced by the fill one after another, in an order,
and the model's output is read at ``steps + 1`` points (the fraction of units removed,
0 to 1). **Insertion**: the same from the fully filled clip, putting the units back.
Orders: ``morf`` (most relevant first, by the cube's attribution of each unit), ``lerf``
(least relevant first) and ``random`` (the mean of ``n_random`` random orders, with a
95% interval over them); ties are broken at random. The curves are the model's output,
averaged over the evaluated clips.

Scores, per clip then averaged over clips: the area over the perturbation curve of
deletion, ``AOPC = mean_k (f(x) - f(x_k))`` (Samek et al. 2017), and for insertion the
area over the filled clip, ``mean_k (f(x_k) - f(filled))``, for each order. Each is
compared with the random orders' area and divided by the largest output change seen on
the clip (any perturbation), so ``0`` means "no better than random" and ``1`` "the whole
change at once":

* ``*_morf = (A_morf - A_random) / S``: removing (inserting) the relevant units first
  changes the output faster than chance;
* ``*_lerf = (A_random - A_lerf) / S``: removing the irrelevant ones first changes it
  slower than chance;
* ``*_abpc = (A_morf - A_lerf) / S``, the area between the two curves (Schulz et al. 2020).

The raw areas, in the model's output units, are in ``aopc(explainer, kind, order)``.
A curve of ``K`` steps costs at most ``K - 1`` forwards per order and kind (the clean clip's
output is the clip step's, the filled one is shared), batched; identical perturbations
(a clip with fewer units than steps) run once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Metric, MetricResult, Score, pearson, register_metric
from .units import Units, clip_units, fill_tensor, outputs_removed

#: curve points after the start when ``steps=None``
DEFAULT_STEPS = 20
ORDERS = ("morf", "lerf", "random")


@dataclass(eq=False)
class ClipSetup:
    """A clip's units, fill and the two ends of every curve (shared by the groups)."""

    units: Units
    filled: object
    clean: float
    filled_output: float
    batch_size: int


def setup(clip) -> ClipSetup:
    """The units and fill of an evaluated clip (made once, cached on the clip)."""
    if "units" not in clip.cache:
        run, ctx = clip.run, clip.ctx
        units = clip_units(ctx.region_map, run.window)
        filled = fill_tensor(ctx, run.fill, run.window, clip.rng("fill"))
        batch_size = int(run.batch_size or 1)
        filled_output = float(outputs_removed(ctx, units, filled, np.ones((1, len(units)), bool), 1)[0])
        clip.cache["units"] = ClipSetup(units, filled, float(ctx.prediction), filled_output, batch_size)
    return clip.cache["units"]


def _order(relevance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Units from the most relevant to the least, ties broken at random."""
    return np.lexsort((rng.permutation(len(relevance)), -relevance))


def _removed(order: np.ndarray, counts: np.ndarray, n: int, kind: str) -> np.ndarray:
    """``(K+1, n)`` which units are filled at each step of a curve."""
    first = np.zeros((len(counts), n), bool)
    for j, count in enumerate(counts):
        first[j, order[:count]] = True
    return first if kind == "deletion" else ~first


def _outputs(clip, rows: np.ndarray) -> np.ndarray:
    """The output for each row of ``rows`` (which units are filled). Every distinct row
    runs once per clip, whichever curve asks for it (insertion's rows are deletion's
    read backwards: see :meth:`_Curves.add`); the clean and fully filled clips are not
    run again."""
    prepared = setup(clip)
    known = clip.cache.setdefault("outputs", {})
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    keys = [np.packbits(row).tobytes() for row in unique]
    values = np.empty(len(unique))
    todo = []
    for i, (row, key) in enumerate(zip(unique, keys)):
        if not row.any():
            values[i] = prepared.clean
        elif row.all():
            values[i] = prepared.filled_output
        elif key in known:
            values[i] = known[key]
        else:
            todo.append(i)
    if todo:
        values[todo] = outputs_removed(clip.ctx, prepared.units, prepared.filled, unique[todo], prepared.batch_size)
        known.update((keys[i], values[i]) for i in todo)
    return values[np.ravel(inverse)]


def step_fractions(steps: int | None) -> np.ndarray:
    """The curves' x axis: ``steps + 1`` fractions of units from 0 to 1."""
    return np.linspace(0.0, 1.0, (steps or DEFAULT_STEPS) + 1)


class _Curves(Metric):
    """Deletion or insertion curves of every explainer and of random orders."""

    kind = ""
    needs_units = True

    def __init__(self, run):
        super().__init__(run)
        self.fractions = step_fractions(run.steps)
        n_explainers, n_points = len(run.explainers), len(self.fractions)
        self.curves = np.zeros((n_explainers, 2, n_points))  # morf, lerf; summed over clips
        self.random = np.zeros((run.n_random, n_points))
        self.areas = np.zeros((n_explainers, 3))
        self.scale = 0.0
        self.n_clips = 0

    def add(self, clip) -> None:
        prepared = setup(clip)
        n, run = len(prepared.units), self.run
        counts = np.round(self.fractions * n).astype(np.int64)
        rng = clip.rng("orders")
        orders = []
        for explainer in run.explainers:
            morf = _order(relevance=prepared.units.relevance(clip.attribution[explainer], clip.n_valid), rng=rng)
            orders += [morf, morf[::-1]]  # least relevant first: the same ranking read backwards
        # Inserting the first c units of an order leaves filled the same units as deleting
        # the first n - c of the reversed order: insertion's MoRF inputs are deletion's
        # LeRF ones and, with the random orders reversed for insertion (still uniformly
        # random), its random inputs are deletion's; the clip's memo runs each once.
        random_rng = clip.rng("random orders")
        randoms = [random_rng.permutation(n) for _ in range(run.n_random)]
        orders += randoms if self.kind == "deletion" else [order[::-1] for order in randoms]
        rows = np.concatenate([_removed(order, counts, n, self.kind) for order in orders])
        values = _outputs(clip, rows).reshape(len(orders), len(counts))
        n_explainers = len(run.explainers)
        ranked, random = values[: 2 * n_explainers].reshape(n_explainers, 2, -1), values[2 * n_explainers :]
        self.curves += ranked
        self.random += random
        area = self._area(ranked, prepared), self._area(random, prepared).mean()
        self.areas[:, :2] += area[0]
        self.areas[:, 2] += area[1]
        self.scale += float(np.abs(np.concatenate([values.ravel(), [prepared.filled_output]]) - prepared.clean).max())
        self.n_clips += 1

    def _area(self, values: np.ndarray, prepared: ClipSetup) -> np.ndarray:
        if self.kind == "deletion":
            return (prepared.clean - values).mean(axis=-1)
        return (values - prepared.filled_output).mean(axis=-1)

    def finish(self) -> MetricResult:
        import xarray as xr

        run, kind, n = self.run, self.kind, max(self.n_clips, 1)
        explainers = list(run.explainers)
        random = self.random / n
        mean_random = random.mean(axis=0)
        half = 1.96 * random.std(axis=0, ddof=1) / np.sqrt(len(random))
        curve = np.concatenate([self.curves / n, np.broadcast_to(mean_random, (len(explainers), 1, len(mean_random)))],
                               axis=1)
        areas = self.areas / n
        scale = self.scale / n
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = {f"{kind}_morf": (areas[:, 0] - areas[:, 2]) / scale,
                      f"{kind}_lerf": (areas[:, 2] - areas[:, 1]) / scale,
                      f"{kind}_abpc": (areas[:, 0] - areas[:, 1]) / scale}
        if not scale > 0:
            scores = {name: np.full(len(explainers), np.nan) for name in scores}
        coords = {"explainer": explainers, "kind": [kind], "step": self.fractions}
        variables = {
            "curve": xr.DataArray(curve[:, None], dims=("explainer", "kind", "order", "step"),
                                  coords={**coords, "order": list(ORDERS)},
                                  attrs={"long_name": "model output at the target, mean over clips",
                                         "step": "fraction of the clip's region x time units removed (deletion) "
                                                 "or inserted (insertion)"}),
            "curve_ci": xr.DataArray(np.broadcast_to(np.stack([mean_random - half, mean_random + half]),
                                                     (len(explainers), 2, len(mean_random)))[:, None].copy(),
                                     dims=("explainer", "kind", "bound", "step"),
                                     coords={**coords, "bound": ["lower", "upper"]},
                                     attrs={"long_name": "95% interval of the random-order curve over random orders"}),
            "aopc": xr.DataArray(areas[:, None], dims=("explainer", "kind", "order"),
                                 coords={"explainer": explainers, "kind": [kind], "order": list(ORDERS)},
                                 attrs={"long_name": "area over the perturbation curve, in output units, "
                                                     "mean over clips"}),
        }
        return MetricResult({name: dict(zip(explainers, map(float, value))) for name, value in scores.items()},
                            variables, {"steps": len(self.fractions) - 1, "clips": self.n_clips,
                                        "mean_scale": scale})


_AOPC = ("area over the perturbation curve, in {order} order, minus that of random orders, divided by the "
         "largest output change seen on the clip (0: no better than random)")


@register_metric
class Deletion(_Curves):
    name = "deletion"
    kind = "deletion"
    scores = (
        Score("deletion_morf", "higher", "deletion, most relevant first: " + _AOPC.format(order="MoRF"),
              "Petsiuk et al. 2018 (RISE); Samek et al. 2017 (AOPC)"),
        Score("deletion_lerf", "higher", "deletion, least relevant first: random AOPC minus LeRF AOPC, same "
              "normalisation (0: no better than random)", "Samek et al. 2017; Rong et al. 2022 (ROAD)"),
        Score("deletion_abpc", "higher", "MoRF AOPC minus LeRF AOPC, same normalisation",
              "Schulz et al. 2020 (ABPC)"),
    )


@register_metric
class Insertion(_Curves):
    name = "insertion"
    kind = "insertion"
    scores = (
        Score("insertion_morf", "higher", "insertion into the filled clip, most relevant first: area above the "
              "filled clip's output minus that of random orders, same normalisation", "Petsiuk et al. 2018 (RISE)"),
        Score("insertion_lerf", "higher", "insertion, least relevant first: random area minus LeRF area, same "
              "normalisation", "Petsiuk et al. 2018 (RISE)"),
        Score("insertion_abpc", "higher", "insertion MoRF area minus LeRF area, same normalisation",
              "Schulz et al. 2020 (ABPC)"),
    )


# --- random sets of units: faithfulness correlation and infidelity ------------------------


def unit_sets(clip) -> tuple[np.ndarray, np.ndarray]:
    """``(sets (M, n) bool, drops (M,))``: ``M = 8 * n_random`` random sets of a quarter of
    the clip's units, and the output drop ``f(x) - f(x with the set filled)`` of each
    (made once per clip, shared by faithfulness correlation and infidelity)."""
    if "unit_sets" not in clip.cache:
        prepared = setup(clip)
        n = len(prepared.units)
        rng = clip.rng("unit sets")
        size = max(1, int(round(n / 4)))
        sets = np.zeros((8 * clip.run.n_random, n), bool)
        for row in sets:
            row[rng.choice(n, size, replace=False)] = True
        clip.cache["unit_sets"] = sets, prepared.clean - _outputs(clip, sets)
    return clip.cache["unit_sets"]


class _SetMetric(Metric):
    """A score per clip from the random sets' summed attribution and output drops."""

    needs_units = True

    def __init__(self, run):
        super().__init__(run)
        self.values = {explainer: [] for explainer in run.explainers}

    def add(self, clip) -> None:
        sets, drops = unit_sets(clip)
        units = setup(clip).units
        for explainer in self.run.explainers:
            summed = sets.astype(np.float64) @ units.relevance(clip.attribution[explainer], clip.n_valid)
            self.values[explainer].append(self.per_clip(summed, drops))

    def finish(self) -> MetricResult:
        with np.errstate(all="ignore"):
            means = {e: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                     for e, v in self.values.items()}
        return MetricResult({self.name: means}, {}, {"sets_per_clip": 8 * self.run.n_random, "set_size": "1/4 of units"})


@register_metric
class FaithfulnessCorrelation(_SetMetric):
    name = "faithfulness_correlation"
    scores = (Score("faithfulness_correlation", "higher", "Pearson correlation between the summed attribution "
                    "of random sets of a quarter of the units and the output drop when they are filled, per clip, "
                    "averaged over clips", "Bhatt et al. 2020"),)

    @staticmethod
    def per_clip(summed: np.ndarray, drops: np.ndarray) -> float:
        return pearson(summed, drops)


@register_metric
class Infidelity(_SetMetric):
    name = "infidelity"
    scores = (Score("infidelity", "lower", "mean squared difference between the optimally scaled summed "
                    "attribution of random sets of units and the output drop when they are filled, divided by "
                    "the mean squared drop (0: the attribution predicts every drop; 1: it predicts none)",
                    "Yeh et al. 2019 (with its optimal scaling)"),)

    @staticmethod
    def per_clip(summed: np.ndarray, drops: np.ndarray) -> float:
        energy = float((drops * drops).mean())
        if energy == 0:
            return float("nan")
        norm = float((summed * summed).sum())
        beta = float((summed * drops).sum()) / norm if norm > 0 else 0.0
        return float(((beta * summed - drops) ** 2).mean()) / energy
