"""SmoothGrad (Smilkov et al. 2017) through Captum's ``NoiseTunnel``, by default the
squared variant over saliency as in the reference study (``smoothgrad_sq``). The noise
standard deviation is ``noise`` times the input's range; samples are seeded per clip."""

from __future__ import annotations

from .base import ClipContext, Method, MethodResult, register


@register
class SmoothGrad(Method):
    name = "smoothgrad"
    defaults = {"base": "saliency", "nt_type": "smoothgrad_sq", "samples": 10, "noise": 0.15,
                "ig_steps": 16, "baseline": "blur"}
    choices = {"base": ("saliency", "integrated_gradients"), "nt_type": ("smoothgrad", "smoothgrad_sq", "vargrad")}
    counts = ("samples", "ig_steps")
    amounts = ("noise",)

    def attribute(self, ctx: ClipContext) -> MethodResult:
        import torch
        from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

        base = self.options["base"]
        extra = {}
        if base == "integrated_gradients":
            inner = IntegratedGradients(ctx.model)
            extra.update(baselines=ctx.baseline(self.options["baseline"]), n_steps=self.options["ig_steps"],
                         method="gausslegendre")
            passes_per_sample = self.options["ig_steps"]
        else:
            inner = Saliency(ctx.model)
            extra["abs"] = True
            passes_per_sample = 1
        stdev = float(self.options["noise"]) * float(ctx.x.max() - ctx.x.min())
        torch.manual_seed(ctx.seed)
        attribution = NoiseTunnel(inner).attribute(
            ctx.x, nt_type=self.options["nt_type"], nt_samples=int(self.options["samples"]),
            nt_samples_batch_size=ctx.batch_size or 1, stdevs=stdev, target=ctx.target, **extra,
        )
        return MethodResult(pixels=ctx.model.to_pixels(attribution)[0],
                            passes=int(self.options["samples"]) * passes_per_sample)
