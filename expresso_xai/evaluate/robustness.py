"""Robustness: max-sensitivity under small input noise (Yeh et al. 2019) and temporal
consistency of a frame explained by overlapping clips."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .base import Metric, MetricResult, Score, register_metric
from .randomisation import clip_area, nanmean, region_density, spearman

#: the noise radius of max-sensitivity, as a share of the range of the clip's model input
NOISE_RADIUS = 0.02


def noisy_inputs(x, n: int, rng: np.random.Generator, radius: float = NOISE_RADIUS):
    """``n`` copies of a model input ``x`` (a tensor) with independent uniform noise in
    ``[-r, r]`` added to every value, ``r = radius × (max(x) − min(x))``, drawn from
    ``rng`` (one copy at a time, so memory stays at one input).

    Example:
        >>> import torch
        >>> x = torch.linspace(0, 10, 50).reshape(1, 50)
        >>> noisy = list(noisy_inputs(x, 3, np.random.default_rng(0)))
        >>> len(noisy), bool(all((copy - x).abs().max() <= 0.2 for copy in noisy))
        (3, True)
    """
    import torch

    r = radius * float(x.max() - x.min())
    for _ in range(n):
        noise = rng.uniform(-r, r, size=tuple(x.shape)).astype(np.float32)
        yield x + torch.from_numpy(noise).to(device=x.device, dtype=x.dtype)


def relative_change(region_time, other_region_time) -> float:
    """``||other − region_time||_F / ||region_time||_F``; NaN when ``region_time`` is all
    zero.

    Example:
        >>> relative_change(np.array([[3.0, 4.0]]), np.array([[3.0, 4.5]]))
        0.1
    """
    region_time = np.asarray(region_time, dtype=np.float64)
    norm = np.linalg.norm(region_time)
    if norm == 0:
        return float("nan")
    return float(np.linalg.norm(np.asarray(other_region_time, dtype=np.float64) - region_time) / norm)


@register_metric
class MaxSensitivity(Metric):
    """Explain each clip again ``n_random`` times with uniform noise of radius 2 % of its
    model input's range added (``clip.rng("max_sensitivity")``), and keep the largest
    relative change of the region × frame attribution (the cube's region sums, real
    frames only). The noise is added to the model input only: a baseline a method makes
    from the clip's pixels (blur, mean) stays that of the clean clip.
    """

    name = "max_sensitivity"
    needs_methods = True
    scores = (Score("max_sensitivity", "lower", "largest relative change ||e(x+δ) − e(x)||_F / ||e(x)||_F of the "
                    "region × frame attribution over n_random draws of uniform input noise δ of radius 2 % of the "
                    "input's range, mean over clips", "Yeh et al. 2019"),)

    def __init__(self, run):
        super().__init__(run)
        self.values: list[np.ndarray] = []

    def add(self, clip) -> None:
        original = clip.explained()
        n_valid = clip.n_valid
        largest = np.full(len(self.run.explainers), np.nan)
        for noisy in noisy_inputs(clip.ctx.x, self.run.n_random, clip.rng("max_sensitivity")):
            results = self.run.explain(replace(clip.ctx, x=noisy, cache={}))
            for e, explainer in enumerate(self.run.explainers):
                change = relative_change(original[explainer].region_time[:n_valid],
                                         results[explainer].region_time[:n_valid])
                largest[e] = np.fmax(largest[e], change)
        self.values.append(largest)

    def finish(self) -> MetricResult:
        explainers = list(self.run.explainers)
        mean = nanmean(np.stack(self.values)) if self.values else np.full(len(explainers), np.nan)
        params = {"noise": f"uniform, radius {NOISE_RADIUS} × the range of each clip's model input",
                  "draws_per_clip": self.run.n_random, "clips": len(self.values)}
        return MetricResult({"max_sensitivity": {e: float(mean[i]) for i, e in enumerate(explainers)}}, {}, params)


@register_metric
class TemporalConsistency(Metric):
    """A frame covered by two consecutive evaluated clips is explained twice, in two
    temporal contexts; compare the two explanations of each such frame (with a face) by
    the Spearman correlation of their region densities. Costs nothing beyond the
    explanations other groups share (``clip.explained()``)."""

    name = "temporal_consistency"
    needs_methods = True
    scores = (Score("temporal_consistency", "higher", "Spearman correlation between the region attribution "
                    "densities of the same frame explained by two overlapping clips, mean over the frames that "
                    "consecutive evaluated clips share (NaN when none overlap)"),)

    def __init__(self, run):
        super().__init__(run)
        self.values: list[list[float]] = [[] for _ in run.explainers]
        self.previous: dict | None = None
        self.pairs = 0

    def add(self, clip) -> None:
        n_valid = clip.n_valid
        positions = np.asarray(clip.positions[:n_valid])
        area = clip_area(clip.ctx)[:n_valid]
        results = clip.explained()
        current = {"positions": positions,
                   "density": [region_density(results[e].region_time[:n_valid], area) for e in self.run.explainers]}
        if self.previous is not None:
            shared, before, now = np.intersect1d(self.previous["positions"], positions, return_indices=True)
            with_face = np.asarray(self.run.cube.face_found.values)[shared]
            self.pairs += bool(with_face.any())
            for e in range(len(self.run.explainers)):
                self.values[e] += [spearman(self.previous["density"][e][i], current["density"][e][j])
                                   for i, j, face in zip(before, now, with_face) if face]
        self.previous = current

    def finish(self) -> MetricResult:
        explainers = list(self.run.explainers)
        mean = [float(nanmean(values)) if values else float("nan") for values in self.values]
        frames = len(self.values[0]) if self.values else 0
        params = {"clip_pairs": self.pairs, "frames_compared": frames}
        if not frames:
            params["note"] = ("no two consecutive evaluated clips share a frame with a face (one clip, a stride as "
                              "long as the clips, or max_clips left the overlapping ones out): the score is NaN")
        self.previous = None
        return MetricResult({"temporal_consistency": dict(zip(explainers, mean))}, {}, params)
