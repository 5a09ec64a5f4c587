"""Occlusion of facial regions × time windows.

Each feature — one region during a window of ``window`` frames (4 by default) — is
replaced by a baseline (``"blur"`` default, ``"mean"``, ``"zero"``, ``"black"``) and its
attribution is the drop in the target output, ``f(x) - f(x with the feature replaced)``:
what Captum's ``FeatureAblation`` computes on the same feature mask (a test checks they
agree). The perturbed inputs are built here with one ``torch.where`` each because
Captum's generic ablation machinery cost about 70 ms per perturbation on a 16×112×112
clip on 2 CPU cores, as much as a small model's forward. Perturbations are batched
``perturbations_per_eval`` at a time (by default what the engine measured to be fastest
on the device) under ``torch.no_grad()``. A feature's value is shared among its pixels,
so region × time cells hold the value weighted by how much of the feature each frame
holds; nothing is pooled from Captum's per-pixel output, which repeats the value on
every pixel. ``adaptive=True`` measures coarse-to-fine instead (see
:mod:`expresso_xai.explain.occlusion_adaptive`): regions over the whole clip first, time
windows only where the effect is at least ``threshold`` × the largest.
"""

from __future__ import annotations

import numpy as np

from .base import ClipContext, Method, MethodResult, register
from .features import feature_mask, mask_tensor, spread
from .occlusion_adaptive import adaptive_values


@register
class Occlusion(Method):
    name = "occlusion"
    defaults = {"window": 4, "baseline": "blur", "perturbations_per_eval": None, "adaptive": False,
                "threshold": 0.1, "budget": 1 / 3}
    region_features = True
    counts = ("window", "perturbations_per_eval")
    amounts = ("threshold", "budget")
    flags = ("adaptive",)

    def attribute(self, ctx: ClipContext) -> MethodResult:
        baseline = ctx.baseline(self.options["baseline"])
        per_eval = int(self.options["perturbations_per_eval"] or ctx.batch_size or 1)
        reference_pass = 0 if ctx.output_is_known() else 1  # f(x): the clip's own forward when known
        stats = {}
        if self.options["adaptive"]:
            values, mask, resolved, forwards = adaptive_values(
                ctx, int(self.options["window"]), baseline, per_eval, float(self.options["threshold"]), ablate,
                float(self.options["budget"]))
            stats = {"resolved": float(resolved.mean()), "forwards": forwards, "exhaustive_forwards": len(values)}
        else:
            mask = feature_mask(ctx.region_map, int(self.options["window"]))
            values = ablate(ctx, mask, baseline, per_eval)
            forwards = len(values)
        pixel_map = spread(values, mask)
        return MethodResult(region_time=ctx.region_map.pool(pixel_map), pixel_map=pixel_map, stats=stats,
                            passes=forwards + reference_pass)


def ablate(ctx: ClipContext, mask: np.ndarray, baseline, per_eval: int, n_features: int | None = None) -> np.ndarray:
    """``f(x) - f(x with feature k replaced by the baseline)`` for every feature id ``k``
    of ``mask`` (ids 0..n_features-1; pixels with id -1 are never replaced),
    ``per_eval`` perturbed inputs per forward."""
    import torch

    feature_ids = mask_tensor(ctx.model, mask, ctx.x.device)
    n_features = int(mask.max()) + 1 if n_features is None else int(n_features)
    values = np.empty(n_features, dtype=np.float64)
    with torch.no_grad():
        reference = float(ctx.output()[0])
        for start in range(0, n_features, per_eval):
            ids = range(start, min(n_features, start + per_eval))
            batch = torch.cat([torch.where(feature_ids == k, baseline, ctx.x) for k in ids])
            out = ctx.model(batch)[:, ctx.target]
            values[start : start + len(ids)] = reference - out.double().cpu().numpy()
    return values
