"""Input × gradient (Shrikumar et al. 2016): the input times the gradient of the target
output, summed over colour channels. Uses the engine's shared forward+backward pass."""

from __future__ import annotations

from .base import ClipContext, Method, MethodResult, register, shared_gradients


@register
class InputXGradient(Method):
    name = "input_x_gradient"
    defaults = {}
    shares_gradient = True

    def attribute(self, ctx: ClipContext) -> MethodResult:
        gradient = shared_gradients(ctx)["input_gradient"]
        return MethodResult(pixels=ctx.model.to_pixels(ctx.x * gradient)[0])
