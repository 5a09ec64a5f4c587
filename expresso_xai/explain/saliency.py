"""Saliency (Simonyan et al. 2014): the gradient of the target output at the input,
absolute by default as in Captum's ``Saliency``, summed over colour channels. Uses the
engine's shared forward+backward pass."""

from __future__ import annotations

from .base import ClipContext, Method, MethodResult, register, shared_gradients


@register
class Saliency(Method):
    name = "saliency"
    defaults = {"abs": True}
    shares_gradient = True
    flags = ("abs",)

    def attribute(self, ctx: ClipContext) -> MethodResult:
        gradient = shared_gradients(ctx)["input_gradient"]
        if self.options["abs"]:
            gradient = gradient.abs()
        return MethodResult(pixels=ctx.model.to_pixels(gradient)[0])
