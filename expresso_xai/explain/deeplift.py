"""DeepLIFT (Shrikumar et al. 2017) through Captum's ``DeepLift``, the reference study's
default method. The baseline defaults to zeros in the model's input space, as Captum's
default (the reference study's setting); ``"blur"``, ``"black"`` and ``"mean"`` work too."""

from __future__ import annotations

from .base import ClipContext, Method, MethodResult, register
from .modules import as_module


@register
class DeepLift(Method):
    name = "deeplift"
    defaults = {"baseline": "zero"}

    def attribute(self, ctx: ClipContext) -> MethodResult:
        from captum.attr import DeepLift as CaptumDeepLift

        baseline = ctx.baseline(self.options["baseline"])
        attribution, delta = CaptumDeepLift(as_module(ctx.model)).attribute(
            ctx.x, baselines=baseline, target=ctx.target, return_convergence_delta=True
        )
        passes = 2 if ctx.output_is_known() else 3  # Captum's pass, f(b), and f(x) unless already known
        difference = float(ctx.output()[0]) - float(ctx.output(baseline)[0])
        error = abs(float(delta.sum())) / max(abs(difference), 1e-12)
        return MethodResult(pixels=ctx.model.to_pixels(attribution)[0],
                            stats={"completeness_error": error}, passes=passes)
