"""Grad-CAM (Selvaraju et al. 2017) on a 3-D convolutional layer, upsampled to the clip.

The layer's activation and gradient come from the engine's shared forward+backward pass.
Weights are the gradient averaged over time, height and width (``per_time=True``: over
height and width only, one weight per channel and time slice); the map is the weighted
sum of channels, ReLU'd as in the paper unless ``relu=False``, then upsampled
trilinearly to the clip's ``T × H × W``. Equal to Captum's ``LayerGradCam`` followed by
trilinear interpolation when ``per_time=False``.
"""

from __future__ import annotations

from .base import ClipContext, Method, MethodResult, register, shared_gradients


@register
class GradCam(Method):
    name = "gradcam"
    defaults = {"relu": True, "per_time": False, "layer": None}
    shares_gradient = True
    needs_layer = True
    flags = ("relu", "per_time")

    def attribute(self, ctx: ClipContext) -> MethodResult:
        import torch.nn.functional as F

        gradients = shared_gradients(ctx)
        activation, gradient = gradients["activation"], gradients["layer_gradient"]
        if activation is None or gradient is None or activation.ndim != 5:
            from ..errors import ModelError

            raise ModelError("Grad-CAM needs a layer with a 5-D (N, C, T, H, W) output; "
                             f"candidates: {ctx.model.candidate_layers()}")
        dims = (3, 4) if self.options["per_time"] else (2, 3, 4)
        weights = gradient.mean(dim=dims, keepdim=True)
        cam = (weights * activation).sum(dim=1, keepdim=True)
        if self.options["relu"]:
            cam = F.relu(cam)
        clip_shape = ctx.frames.shape[:3]
        cam = F.interpolate(cam, size=tuple(clip_shape), mode="trilinear", align_corners=False)
        return MethodResult(pixels=cam[0, 0].double().cpu().numpy())
