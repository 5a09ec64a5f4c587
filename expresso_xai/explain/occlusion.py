"""Occlusion of facial regions × time windows.

Each feature — one region during a window of ``window`` frames (4 by default) — is
replaced by a baseline (``"blur"`` default, ``"mean"``, ``"zero"``, ``"black"``) and its
attribution is the drop in the target output, ``f(x) - f(x with the feature replaced)``,
computed by Captum's ``FeatureAblation`` on a feature mask built from the region map.
Perturbations are batched ``perturbations_per_eval`` at a time (chosen by the engine by
measuring what is fastest on the device). A feature's value is shared among its pixels,
so region × time cells hold the value weighted by how much of the feature each frame
holds; nothing is pooled from Captum's per-pixel output, which repeats the value on
every pixel.
"""

from __future__ import annotations

import numpy as np

from .base import ClipContext, Method, MethodResult, register
from .features import feature_mask, mask_tensor, spread, values_per_feature


@register
class Occlusion(Method):
    name = "occlusion"
    defaults = {"window": 4, "baseline": "blur", "perturbations_per_eval": None}
    region_features = True

    def attribute(self, ctx: ClipContext) -> MethodResult:
        import torch
        from captum.attr import FeatureAblation

        mask = feature_mask(ctx.region_map, int(self.options["window"]))
        baseline = ctx.baseline(self.options["baseline"])
        per_eval = int(self.options["perturbations_per_eval"] or ctx.batch_size or 1)
        with torch.no_grad():
            attribution = FeatureAblation(ctx.model).attribute(
                ctx.x, baselines=baseline, target=ctx.target,
                feature_mask=mask_tensor(ctx.model, mask, ctx.x.device), perturbations_per_eval=per_eval,
            )
        values = values_per_feature(attribution, mask, ctx.model)
        pixel_map = spread(values, mask)
        return MethodResult(region_time=ctx.region_map.pool(pixel_map), pixel_map=pixel_map,
                            passes=int(np.max(mask)) + 2)
