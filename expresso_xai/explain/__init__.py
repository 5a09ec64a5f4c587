"""Explanation methods (one file each, registered by name) and the engine that runs them
over a video and pools pixels into facial regions.

``explain(model, video, methods=[...])`` returns the attribution cube. Registered
methods: gradcam, guided_gradcam, saliency, input_x_gradient, integrated_gradients,
smoothgrad, deeplift, occlusion, shapley. Add one by subclassing :class:`Method` and
decorating it with :func:`register`.
"""

from . import (  # noqa: F401  (importing registers the methods)
    deeplift,
    gradcam,
    guided_gradcam,
    input_x_gradient,
    integrated_gradients,
    occlusion,
    saliency,
    shapley,
    smoothgrad,
)
from .base import METHODS, ClipContext, Method, MethodResult, get_method, register
from .engine import explain, fastest_batch

__all__ = ["METHODS", "ClipContext", "Method", "MethodResult", "explain", "fastest_batch", "get_method", "register"]
