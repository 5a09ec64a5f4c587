"""Localisation against a ground truth (where the signal is, as region × time units),
and the share of relevance off the face. These groups read only the cube (and the
truth): no model, no video.

**Units.** A unit is one region in one frame. The localisation scores look at the units
of frames with a face (``face_found``) whose region has pixels (``region_area > 0``);
true units elsewhere (a truth marking a frame without a face) are left out. Regions are
compared by attribution *density* (attribution per pixel, :func:`~expresso_xai.cube.views.density`),
so a large region does not win by its size alone.

**Positive and tied.** Attribution is signed; only positive attribution points at
something. What is float noise is decided the way the cube's views decide it
(:data:`~expresso_xai.cube.views.SIGN_TOLERANCE`): a density is *positive* when it is
above ``SIGN_TOLERANCE`` × the explainer's largest |density| over the units, and two
densities are *tied* when they differ by no more than that.

* ``pointing_game`` (Zhang et al. 2018): over the frames with a true unit, the share in
  which the region of highest density is true. Regions tied for the highest share the
  point: the frame scores the share of them that are true (the expected hit of a random
  tie-break, so a flat map scores chance, not 1). A frame whose densities are all ≤ 0
  (no positive attribution) is a miss: the explainer points at nothing there.
* ``relevance_mass`` (Arras et al. 2022): the share of the positive attribution of all
  units that lies in true units; 0 when the explainer has no positive attribution.
* ``relevance_rank`` (Arras et al. 2022): with ``k`` the number of true units, the share
  of the ``k`` units of highest density that are true. Only positive units count as
  picked (an explainer with fewer than ``k`` positive units can pick no more); units tied
  at the ``k``-th place share the places left, as in the pointing game.

Each group's ``chance`` parameter is the expected score of an attribution that carries no
information, shuffled over the units: for the pointing game the mean over frames of
(true regions / regions with pixels), for the other two ``k / units``.

* ``off_face``: the share of |attribution| of frames with a face that lies on
  ``background`` and ``face_other`` (only ``background`` in a scheme without
  ``face_other``; NaN, with a note in the parameters, in a scheme without
  ``background``). Above the threshold (0.5; ``thresholds={"off_face": x}`` overrides
  it) the method or the model relies on something other than the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cube.views import SIGN_TOLERANCE, value_view
from .base import Metric, MetricResult, Score, register_metric

#: the regions that are not the face, in the order they are looked for
OFF_FACE_REGIONS = ("background", "face_other")


@dataclass(frozen=True)
class _Units:
    """The cube as region × frame units, for every explainer."""

    attribution: np.ndarray  # (explainer, time, region), NaN read as 0
    density: np.ndarray  # (explainer, time, region), -inf where no unit or no value
    evaluated: np.ndarray  # (time, region): a face in the frame, pixels in the region
    truth: np.ndarray  # (time, region): the true units among the evaluated ones

    def noise(self, index: int) -> float:
        """The float noise of an explainer's densities (see the module's docstring)."""
        values = self.density[index][self.evaluated]
        values = np.abs(values[np.isfinite(values)])
        return float(SIGN_TOLERANCE * values.max()) if values.size else 0.0


def _units(run) -> _Units:
    cube = run.cube
    face = cube.face_found.values.astype(bool)
    area = cube.region_area.transpose("time", "region").values
    evaluated = face[:, None] & (area > 0)
    density = value_view(cube, "density").values
    density = np.where(evaluated[None] & np.isfinite(density), density, -np.inf)
    attribution = np.nan_to_num(value_view(cube, "attribution").values)
    truth = np.zeros_like(evaluated) if run.truth is None else run.truth.values.astype(bool) & evaluated
    return _Units(attribution, density, evaluated, truth)


def _pointing_game(units: _Units, index: int) -> tuple[float, int]:
    """The pointing game of one explainer, and its frames without positive attribution."""
    frames = units.truth.any(axis=1)
    density, true = units.density[index][frames], units.truth[frames]
    noise = units.noise(index)
    top = density.max(axis=1, keepdims=True)
    tied = density >= top - noise
    hits = (tied & true).sum(axis=1) / tied.sum(axis=1)
    pointless = top[:, 0] <= noise
    hits[pointless] = 0.0
    return float(hits.mean()), int(pointless.sum())


def _relevance_mass(units: _Units, index: int) -> float:
    positive = np.where(units.evaluated, np.clip(units.attribution[index], 0.0, None), 0.0)
    total = positive.sum()
    return float(positive[units.truth].sum() / total) if total > 0 else 0.0


def _relevance_rank(units: _Units, index: int) -> float:
    density, true = units.density[index][units.evaluated], units.truth[units.evaluated]
    k = int(true.sum())
    noise = units.noise(index)
    positive = density > noise
    if positive.sum() <= k:
        return float(true[positive].sum() / k)
    kth = np.sort(density)[-k]
    above = density > kth + noise  # fewer than k: at most k - 1 values exceed the k-th
    tied = positive & ~above & (density >= kth - noise)
    hits = (true & above).sum() + (k - above.sum()) * true[tied].mean()
    return float(hits / k)


class _Localisation(Metric):
    """A score of every explainer against the truth, over the evaluated units."""

    needs_clips = False
    needs_truth = True
    #: the score of one explainer, ``rule(units, explainer_index)``
    rule = None

    def score(self, units: _Units, index: int) -> float:
        return type(self).rule(units, index)

    def chance(self, units: _Units) -> float:
        """The expected score of an attribution shuffled over the units."""
        return float(units.truth.sum() / units.evaluated.sum())

    def finish(self) -> MetricResult:
        units = _units(self.run)
        explainers = self.run.explainers
        params = {"units": int(units.evaluated.sum()), "true_units": int(units.truth.sum())}
        if not units.truth.any():
            note = "the truth marks no region with pixels in a frame with a face: nothing to localise"
            return MetricResult({self.name: {e: float("nan") for e in explainers}}, params={**params, "note": note})
        scores = {e: self.score(units, i) for i, e in enumerate(explainers)}
        return MetricResult({self.name: scores}, params={**params, "chance": self.chance(units), **self.details(units)})

    def details(self, units: _Units) -> dict:
        """Parameters the group adds after scoring."""
        return {}


@register_metric
class PointingGame(_Localisation):
    """Is the region of highest density in each frame a true one? (the module's rules)"""

    name = "pointing_game"
    scores = (Score("pointing_game", "higher", "share of the frames with a true region (and a face) whose region of "
                    "highest attribution density is true; regions tied for the highest share the frame's point, "
                    "a frame without positive density is a miss", "Zhang et al. 2018"),)

    def __init__(self, run):
        super().__init__(run)
        self._pointless: dict[str, int] = {}

    def score(self, units: _Units, index: int) -> float:
        value, pointless = _pointing_game(units, index)
        self._pointless[self.run.explainers[index]] = pointless
        return value

    def chance(self, units: _Units) -> float:
        frames = units.truth.any(axis=1)
        return float(np.mean(units.truth[frames].sum(axis=1) / units.evaluated[frames].sum(axis=1)))

    def details(self, units: _Units) -> dict:
        return {"frames": int(units.truth.any(axis=1).sum()), "frames_without_positive": dict(self._pointless)}


def _declare(name: str, rule, definition: str) -> type[_Localisation]:
    """A localisation group scored by ``rule``, registered under ``name``."""
    score = Score(name, "higher", definition, "Arras et al. 2022 (CLEVR-XAI)")
    group = type(name.title().replace("_", ""), (_Localisation,),
                 {"name": name, "scores": (score,), "rule": staticmethod(rule), "__doc__": definition})
    return register_metric(group)


RelevanceMass = _declare("relevance_mass", _relevance_mass, "share of the positive attribution of the frames with "
                         "a face that falls in true region × frame units (0 without positive attribution)")
RelevanceRank = _declare("relevance_rank", _relevance_rank, "share of the k units of highest positive attribution "
                         "density that are true, k the number of true units; units tied at the k-th place share "
                         "the places left")


@register_metric
class OffFace(Metric):
    """How much of the relevance lies off the face (needs no truth)."""

    name = "off_face"
    needs_clips = False
    scores = (Score("off_face", "lower", "share of |attribution| of the frames with a face on background and "
                    "face_other; above the threshold the method (or the model) relies on something other than "
                    "the face", "Expresso-AI (ACII 2023): headset artefacts found this way", threshold=0.5),)

    def finish(self) -> MetricResult:
        cube, explainers = self.run.cube, self.run.explainers
        regions = [str(region) for region in cube.region.values]
        face = cube.face_found.values.astype(bool)
        if "background" not in regions:
            note = "the cube has no background region: nothing is known to be off the face"
            return MetricResult({self.name: {e: float("nan") for e in explainers}}, params={"note": note})
        off = [regions.index(name) for name in OFF_FACE_REGIONS if name in regions]
        magnitude = np.abs(np.nan_to_num(value_view(cube, "attribution").values))[:, face]
        total = magnitude.sum(axis=(1, 2))
        outside = magnitude[..., off].sum(axis=(1, 2))
        shares = np.divide(outside, total, out=np.full(len(total), np.nan), where=total > 0)
        params = {"regions": [regions[i] for i in off], "frames": int(face.sum())}
        if not self.run.scheme.exclusive:
            params["note"] = (f"the {self.run.scheme.name!r} regions overlap: the total is the sum over regions, "
                              "a pixel in two regions counted twice")
        return MetricResult({self.name: dict(zip(explainers, shares.tolist()))}, params=params)
