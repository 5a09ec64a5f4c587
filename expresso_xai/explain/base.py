"""What an explanation method is, the registry of methods, and what each clip gives them.

A method is a small class with one verb, :meth:`Method.attribute`, that takes a
:class:`ClipContext` (one clip, already cropped and preprocessed, with its region map)
and returns a :class:`MethodResult`: either per-pixel attributions, which the engine pools
into regions, or region × time values directly (perturbation methods whose features are
regions). Methods register themselves by name with :func:`register`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import MethodError, ModelError, ModelOutputError

METHODS: dict[str, type["Method"]] = {}

#: baselines made from the clip itself (see :meth:`ClipContext.baseline`)
BASELINES = ("black", "blur", "mean", "zero")


def register(cls: type["Method"]) -> type["Method"]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str, options: dict | None = None) -> "Method":
    """An instance of a registered method, with its options checked."""
    if name not in METHODS:
        raise MethodError(f"unknown method {name!r}; registered methods: {sorted(METHODS)}")
    return METHODS[name](**(options or {}))


@dataclass
class MethodResult:
    """What a method gives for one clip.

    Exactly one of ``pixels`` and ``region_time`` is set.

    Attributes:
        pixels: ``(L, H, W)`` float64 attribution per pixel, summed over colour channels.
        region_time: ``(L, R)`` float64 attribution per frame and region.
        pixel_map: for ``region_time`` methods, an ``(L, H, W)`` map whose region sums
            equal ``region_time`` (used for overlays when pixels are kept).
        stats: per-clip numbers stored in the cube (e.g. steps, completeness error).
        passes: forward(+backward) passes the method ran.
    """

    pixels: np.ndarray | None = None
    region_time: np.ndarray | None = None
    pixel_map: np.ndarray | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    passes: int = 0


@dataclass
class ClipContext:
    """One clip, ready to be explained.

    Attributes:
        model: the :class:`~expresso_xai.models.VideoModel`.
        x: ``(1, ...)`` preprocessed input in the model's layout.
        frames: ``(L, H, W, 3)`` uint8 model-input frames (for baselines made in pixels).
        region_map: the clip's :class:`~expresso_xai.RegionMap`.
        target: output index explained.
        device: torch device.
        seed: seed for stochastic methods (per clip).
        batch_size: perturbations or steps per forward (``None``: let the engine choose).
        cache: results shared between methods of the same clip.
        gradient_layer: the layer whose activation and gradient the shared pass keeps
            (set by the engine when Grad-CAM runs).
        landmarks: ``(L, 68, 2)`` landmarks in model-input pixels (NaN without a face).
        prediction: the model's output at ``target`` for this clip.
        timestamps: ``(L,)`` seconds of the clip's frames, when known.
        autocast: ``"bf16"`` to run the gradient passes (the shared one, integrated
            gradients' steps) in bfloat16 autocast, ``None`` for float32 (see ``precision``).
        step_budget: inputs with their graph that fit the device's memory budget in one
            forward+backward (measured on CUDA by ``batched``), ``None`` when unknown.
    """

    model: Any
    x: Any
    frames: np.ndarray
    region_map: Any
    target: int
    device: Any = "cpu"
    seed: int = 0
    batch_size: int | None = None
    cache: dict = field(default_factory=dict)
    gradient_layer: Any = None
    landmarks: Any = None
    prediction: float = float("nan")
    timestamps: Any = None
    autocast: str | None = None
    step_budget: int | None = None

    def baseline(self, kind):
        """A baseline input in the model's layout: ``"black"``, ``"blur"`` (Gaussian blur
        of each frame, sigma = 1/20 of the side), ``"mean"`` (per-pixel mean over the
        clip), ``"zero"`` (zeros in model space), or a tensor."""
        import torch

        if isinstance(kind, torch.Tensor):
            if kind.shape != self.x.shape:
                raise MethodError(f"baseline tensor has shape {tuple(kind.shape)}, input {tuple(self.x.shape)}")
            return kind.to(self.x.device, self.x.dtype)
        key = ("baseline", kind)
        if key not in self.cache:
            if kind == "zero":
                value = torch.zeros_like(self.x)
            elif kind == "black":
                value = self.model.preprocess(np.zeros_like(self.frames), self.device)
            elif kind == "blur":
                import cv2

                sigma = max(self.frames.shape[1:3]) / 20.0
                blurred = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in self.frames])
                value = self.model.preprocess(blurred, self.device)
            elif kind == "mean":
                mean = self.frames.astype(np.float64).mean(axis=0, keepdims=True)
                value = self.model.preprocess(
                    np.repeat(np.round(mean).astype(np.uint8), len(self.frames), axis=0), self.device
                )
            else:
                raise MethodError(f"unknown baseline {kind!r}; use one of {list(BASELINES)} or a tensor")
            self.cache[key] = value
        return self.cache[key]

    def output_is_known(self) -> bool:
        """Whether :meth:`output` at the clip's own input costs no forward (the one
        :func:`prepare_clip` ran, for this very input tensor)."""
        return "output" in self.cache and self.cache.get("output_of") is self.x

    def output(self, x=None):
        """Target output for a batch (no gradient), checked for shape and NaN. At the
        clip's own input it is the output :func:`prepare_clip` already computed (no
        second forward for it)."""
        import torch

        if x is None and self.output_is_known():
            return self.cache["output"][:, self.target]
        with torch.no_grad():
            out = self.model(self.x if x is None else x)
        check_output(out, self.model, self.target)
        return out[:, self.target]


def check_output(out, model, target: int) -> None:
    """Raise a clear error for NaN outputs or a target outside the outputs."""
    import torch

    if not bool(torch.isfinite(out).all()):
        raise ModelOutputError(f"{model.name} returned NaN or infinite outputs; check the weights and the input")
    if not 0 <= target < out.shape[1]:
        raise ModelError(f"target {target} is out of range: {model.name} has {out.shape[1]} outputs (0..{out.shape[1] - 1})")


class Method:
    """Base class of explanation methods: one verb, ``attribute``.

    Subclasses set ``name`` and ``defaults`` (their options and default values) and
    declare what they need, so the engine reads capabilities instead of probing:

    * ``shares_gradient``: needs only the gradient of the target output, so the engine
      gives every such method one shared forward+backward pass;
    * ``needs_layer``: reads a layer's activation (Grad-CAM), resolved once per run;
    * ``region_features``: its features are regions (needs a partition).

    Option values are checked when the method is made, before any video or model work:
    ``choices`` (allowed values), ``counts`` (whole numbers ≥ 1; ``None`` is allowed
    where it is the default), ``amounts`` (finite numbers > 0) and ``flags`` (booleans).
    An option named ``baseline`` takes one of ``BASELINES`` or a tensor, and one
    named ``layer`` the name of a layer of the model.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    shares_gradient: ClassVar[bool] = False
    needs_layer: ClassVar[bool] = False
    region_features: ClassVar[bool] = False
    choices: ClassVar[dict[str, tuple]] = {}
    counts: ClassVar[tuple[str, ...]] = ()
    amounts: ClassVar[tuple[str, ...]] = ()
    flags: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options):
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise MethodError(
                f"{self.name} does not take {sorted(unknown)}; its options: "
                + (", ".join(f"{k}={v!r}" for k, v in self.defaults.items()) or "none")
            )
        self.options = {**self.defaults, **options}
        for key, value in self.options.items():
            problem = self._problem(key, value)
            if problem:
                raise MethodError(f"{self.name} option {key}={value!r}: {problem}")

    def _problem(self, key: str, value) -> str | None:
        """What is wrong with one option value, or None."""
        if value is None and self.defaults.get(key) is None:
            return None
        if key == "baseline":
            return None if value in BASELINES or type(value).__name__ == "Tensor" else \
                f"use one of {list(BASELINES)} or a tensor of the input's shape"
        if key == "layer":  # a layer name, checked against the model when the run starts
            return None if isinstance(value, str) else "use the name of one of the model's layers"
        if key in self.choices and value not in self.choices[key]:
            return f"use one of {list(self.choices[key])}"
        if key in self.flags and not isinstance(value, (bool, np.bool_)):
            return "use True or False"
        is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        if key in self.counts and not (is_number and float(value).is_integer() and value >= 1):
            return "use a whole number of at least 1"
        if key in self.amounts and not (is_number and np.isfinite(value) and value > 0):
            return "use a finite number above 0"
        return None

    def attribute(self, ctx: ClipContext) -> MethodResult:
        raise NotImplementedError

    def params(self) -> dict:
        """Options as stored in the cube's attrs (JSON-friendly)."""
        out = {}
        for key, value in self.options.items():
            out[key] = value if isinstance(value, (str, int, float, bool, type(None), list, tuple)) else repr(value)
        return out


def graph_forward(model, x, layer=None) -> dict:
    """One forward of ``x`` with autograd recording: ``{"x": the input leaf that requires
    grad, "output": out, "activation": the layer's output or None}`` (the graph kept
    for one backward)."""
    import torch

    leaf = x.detach().clone().requires_grad_(True)
    captured: dict = {}
    handle = None
    if layer is not None:
        def hook(_module, _inputs, output):
            if not isinstance(output, torch.Tensor):
                raise ModelError(f"the Grad-CAM layer returns {type(output).__name__}, not a tensor")
            captured["activation"] = output

        handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            out = model(leaf)
    finally:
        if handle is not None:
            handle.remove()
    return {"x": leaf, "output": out, "activation": captured.get("activation"), "of": x, "layer": layer}


def shared_gradients(ctx: ClipContext) -> dict:
    """One forward and one backward pass of the target output, giving the gradient at
    the input and, when the engine set ``ctx.gradient_layer``, that layer's activation
    and gradient. Cached on the clip, so every gradient-sharing method uses one pass;
    the forward is the one :func:`prepare_clip` recorded when it kept the graph.
    """
    if "gradients" in ctx.cache:
        return ctx.cache["gradients"]
    forward = ctx.cache.pop("graph", None)
    if forward is None or forward["of"] is not ctx.x or forward["layer"] is not ctx.gradient_layer:
        forward = graph_forward(ctx.model, ctx.x, ctx.gradient_layer)  # none kept for this input and layer
    out = forward["output"]
    check_output(out, ctx.model, ctx.target)
    result = backward_pass(forward, out[:, ctx.target])
    ctx.cache["gradients"] = result
    return result


def backward_pass(forward: dict, picked) -> dict:
    """One backward of ``picked.sum()`` (the target outputs of a :func:`graph_forward`):
    ``{"input_gradient", "output", "activation", "layer_gradient"}``, detached, in float32
    (an autocast forward gives bfloat16 activations). Rows are independent when the
    model is in eval mode, so for a batch of clips row ``i`` is clip ``i``'s own pass.

    Example:
        >>> import torch
        >>> from expresso_xai.testing import tiny_model
        >>> model = tiny_model(input_size=(64, 64))
        >>> forward = graph_forward(model, torch.rand(2, 3, 16, 64, 64), layer=model.gradcam_layer)
        >>> result = backward_pass(forward, forward["output"][:, 0])
        >>> tuple(result["input_gradient"].shape), tuple(result["layer_gradient"].shape)
        ((2, 3, 16, 64, 64), (2, 4, 16, 64, 64))
    """
    import torch

    # autograd.grad, not backward() with a hook on the activation: a tensor hook closing
    # over the activation is a reference cycle through autograd's C++ graph that Python's
    # collector cannot see, and it kept every clip's graph alive (about 20 MB a clip at
    # 112 px). It also leaves the parameters' .grad alone.
    activation = forward["activation"]
    wanted = [forward["x"]] + ([activation] if activation is not None else [])
    with torch.enable_grad():
        gradients = torch.autograd.grad(picked.sum(), wanted, allow_unused=True)
    layer_gradient = gradients[1] if len(gradients) > 1 else None
    return {
        "input_gradient": gradients[0].detach(),
        "output": forward["output"].detach().float(),
        "activation": activation.detach().float() if activation is not None else None,
        "layer_gradient": layer_gradient.detach().float() if layer_gradient is not None else None,
    }


#: the values of ``autocast=``: reduced precisions the gradient passes can run in
AUTOCAST = {"bf16": "bfloat16"}


def precision(device, autocast: str | None):
    """The context the gradient passes run in: ``torch.autocast`` in bfloat16 on
    ``device`` for ``autocast="bf16"`` (CPU or CUDA), nothing for ``None``.

    Example:
        >>> import torch
        >>> with precision("cpu", "bf16"):
        ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
        torch.bfloat16
        >>> with precision("cpu", None):
        ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
        torch.float32
    """
    import contextlib

    import torch

    if not autocast:
        return contextlib.nullcontext()
    if autocast not in AUTOCAST:
        raise MethodError(f"autocast={autocast!r}: use False or one of {list(AUTOCAST)}")
    return torch.autocast(torch.device(device).type, dtype=getattr(torch, AUTOCAST[autocast]))
