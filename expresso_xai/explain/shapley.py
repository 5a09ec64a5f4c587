"""Shapley values of facial regions, estimated by Captum's ``ShapleyValueSampling``
(``n_samples`` random orderings of the features, each feature replaced by a baseline
when absent). By default a feature is a region over the whole clip, so its value is
shared among the region's pixels in every frame and says nothing about *when*; with
``window=k`` features are regions × windows of ``k`` frames, as in occlusion."""

from __future__ import annotations

from .base import ClipContext, Method, MethodResult, register
from .features import feature_mask, mask_tensor, spread, values_per_feature


@register
class Shapley(Method):
    name = "shapley"
    defaults = {"n_samples": 25, "baseline": "blur", "window": None, "perturbations_per_eval": None}
    region_features = True
    counts = ("n_samples", "window", "perturbations_per_eval")

    def attribute(self, ctx: ClipContext) -> MethodResult:
        import torch
        from captum.attr import ShapleyValueSampling

        mask = feature_mask(ctx.region_map, self.options["window"])
        baseline = ctx.baseline(self.options["baseline"])
        per_eval = int(self.options["perturbations_per_eval"] or ctx.batch_size or 1)
        torch.manual_seed(ctx.seed)
        with torch.no_grad():
            attribution = ShapleyValueSampling(ctx.model).attribute(
                ctx.x, baselines=baseline, target=ctx.target,
                feature_mask=mask_tensor(ctx.model, mask, ctx.x.device),
                n_samples=int(self.options["n_samples"]), perturbations_per_eval=per_eval,
            )
        values = values_per_feature(attribution, mask, ctx.model)
        pixel_map = spread(values, mask)
        n_features = int(mask.max()) + 1
        return MethodResult(region_time=ctx.region_map.pool(pixel_map), pixel_map=pixel_map,
                            passes=int(self.options["n_samples"]) * n_features + 1)
