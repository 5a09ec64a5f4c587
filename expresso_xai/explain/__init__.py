"""Explanation methods (one file each, registered by name) and the engine that runs them
over a video and pools pixels into facial regions.

The clip step is public, for evaluation and cohort runs that need the very input a cube
was computed from: :func:`prepare_clip` (one clip cropped, mapped into regions,
preprocessed, its target resolved) and :func:`run_methods` (the methods on it).

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
from .base import BASELINES, METHODS, ClipContext, Method, MethodResult, get_method, register
from .clip import ClipInput, crop_clip, forward_clip, prepare_clip, run_methods
from .engine import explain, fastest_batch
from .plan import ExplainPlan, plan_explain
from .state import ExplainState

__all__ = ["BASELINES", "METHODS", "ClipContext", "ClipInput", "ExplainPlan", "ExplainState", "Method", "MethodResult",
           "crop_clip", "explain", "fastest_batch", "forward_clip", "get_method", "plan_explain", "prepare_clip",
           "register", "run_methods"]
