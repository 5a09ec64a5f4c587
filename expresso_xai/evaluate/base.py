"""What an evaluation metric is, and the registry of metrics.

A metric group is a small class: it is made once per evaluation with the
:class:`~expresso_xai.evaluate.run.EvaluationRun`, sees every evaluated clip once
(:meth:`Metric.add`, where the forwards happen) and then gives its scores
(:meth:`Metric.finish`). Groups that need only the cube (localisation, off-face
relevance) set ``needs_clips = False`` and do their work in ``finish``.

Every score a group gives is declared with a :class:`Score`: its direction (is higher
better?), its definition and its reference. They travel into the evaluation dataset's
``better`` coordinate and ``metric_definitions`` attribute, so a reader of the file knows
how to read each number without this library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import EvaluationError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

    from .run import EvalClip, EvaluationRun

METRICS: dict[str, type["Metric"]] = {}

#: how a removed region × time unit is filled (see :mod:`.units`)
FILLS = ("blur", "temporal", "noisy_linear")


@dataclass(frozen=True)
class Score:
    """One number per explainer that a metric group gives.

    Attributes:
        name: the coordinate value in ``score(explainer, metric)``.
        better: ``"higher"``, ``"lower"`` or ``"neither"`` (descriptive: no direction).
        definition: how it is computed, in one or two sentences.
        reference: where it comes from (paper), or ``""`` for our own.
        threshold: for scores with a verdict, the value that separates pass and fail
            (a ``"higher"`` score passes at or above it, a ``"lower"`` one at or below).
    """

    name: str
    better: str
    definition: str
    reference: str = ""
    threshold: float | None = None

    def __post_init__(self):
        if self.better not in ("higher", "lower", "neither"):
            raise ValueError(f"better must be higher, lower or neither, got {self.better!r}")

    def verdict(self, value: float, threshold: float | None = None) -> float:
        """1.0 (pass), 0.0 (fail) or NaN (no threshold, or no value); ``threshold``
        overrides the declared one."""
        threshold = self.threshold if threshold is None else float(threshold)
        if threshold is None or not np.isfinite(value) or self.better == "neither":
            return float("nan")
        passed = value >= threshold if self.better == "higher" else value <= threshold
        return float(passed)


@dataclass
class MetricResult:
    """What a metric group gives at the end of an evaluation.

    Attributes:
        scores: ``{score name: {explainer: value}}``; explainers left out get NaN.
        variables: extra data variables for the dataset (curves, per-layer similarity...),
            each an ``xarray.DataArray`` whose dims may include ``explainer``.
        params: the group's own parameters, stored in the dataset's attrs.
    """

    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    variables: dict[str, "xr.DataArray"] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


class Metric:
    """Base class of metric groups.

    Subclasses set ``name`` (what users pass in ``metrics=``), ``scores`` (the
    :class:`Score` s they give) and the flags below, and implement :meth:`add` and
    ``finish``.

    Attributes:
        needs_clips: sees every clip (runs forwards); otherwise only the cube.
        needs_truth: needs ``truth=`` (a boolean ``DataArray(time, region)``).
        needs_methods: re-explains clips with the cube's methods (their options are read
            back from the cube's attrs).
        needs_units: perturbs region × time units (needs a partition of the frame).
    """

    name: ClassVar[str] = ""
    scores: ClassVar[tuple[Score, ...]] = ()
    needs_clips: ClassVar[bool] = True
    needs_truth: ClassVar[bool] = False
    needs_methods: ClassVar[bool] = False
    needs_units: ClassVar[bool] = False

    def __init__(self, run: "EvaluationRun"):
        self.run = run

    def add(self, clip: "EvalClip") -> None:
        """Take one evaluated clip into account (called once per clip, in order)."""

    def finish(self) -> MetricResult:
        raise NotImplementedError


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Class decorator adding a metric group to the registry under ``cls.name``."""
    if not cls.name or not cls.scores:
        raise ValueError(f"{cls.__name__} needs a name and at least one score")
    METRICS[cls.name] = cls
    return cls


def score_info(name: str) -> Score:
    """The declaration of a score, by its name, across every registered group."""
    for metric in METRICS.values():
        for score in metric.scores:
            if score.name == name:
                return score
    raise EvaluationError(f"unknown score {name!r}")


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally long vectors; NaN when either is constant.

    Example:
        >>> pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])) > 0.99
        True
    """
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def check_metric_names(names) -> list[str]:
    """The metric group names asked for, checked against the registry."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise EvaluationError("no metrics given")
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise EvaluationError(f"unknown metric {unknown[0]!r}; metrics: {sorted(METRICS)}")
    if len(set(names)) != len(names):
        raise EvaluationError(f"a metric is named twice in {names}")
    return names
