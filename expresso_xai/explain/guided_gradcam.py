"""Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map (Captum's
``GuidedGradCam``, nearest-neighbour upsampling). Runs its own pass, since guided
backpropagation changes how gradients flow through ReLUs."""

from __future__ import annotations

from ..errors import MethodError
from .base import ClipContext, Method, MethodResult, register
from .modules import as_module


@register
class GuidedGradCam(Method):
    name = "guided_gradcam"
    defaults = {"layer": None, "interpolate_mode": "nearest"}
    needs_layer = True
    choices = {"interpolate_mode": ("nearest", "nearest-exact", "trilinear", "area")}

    def attribute(self, ctx: ClipContext) -> MethodResult:
        from captum.attr import GuidedGradCam as CaptumGuidedGradCam

        if ctx.model.layout != "NCTHW":
            raise MethodError("guided_gradcam upsamples over the input's last three axes, so it needs an "
                              "NCTHW model; use gradcam for NTCHW models")
        layer = ctx.gradient_layer if ctx.gradient_layer is not None else ctx.model.gradcam_layer
        explainer = CaptumGuidedGradCam(as_module(ctx.model), layer)
        attribution = explainer.attribute(ctx.x, target=ctx.target, interpolate_mode=self.options["interpolate_mode"])
        return MethodResult(pixels=ctx.model.to_pixels(attribution)[0], passes=1)
