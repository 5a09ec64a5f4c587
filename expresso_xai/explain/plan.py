"""Every argument of :func:`~expresso_xai.explain.explain` checked and resolved before any
face tracking or model work starts (Captum's ``attribute`` → ``_attribute`` split): the
methods and their option values, the region scheme, the target, the Grad-CAM layer, the
clip geometry and the run's numbers. A typo fails in milliseconds, not after the first
clip of a long video.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import MethodError, ModelError
from ..regions import RegionScheme, get_scheme
from .base import Method, get_method
from .clip import check_target, gradient_layer


@dataclass(eq=False)
class ExplainPlan:
    """A checked explanation run.

    Attributes:
        model: the :class:`~expresso_xai.models.VideoModel`, on ``device``.
        methods: ``{name: Method}`` in the order asked for.
        scheme: the region scheme.
        target: ``None``, an output index or ``"predicted"``.
        layer: the module Grad-CAM reads, or ``None`` when no method needs one.
        clip_length, stride: how clips slide over the video.
        keep_pixels, device, seed: as given to :func:`explain` (``keep_pixels`` True also
            when a path was given).
        batch_size: perturbations or steps per forward; ``None`` until measured.
        clips_per_batch: clips per forward+backward (``batched``): a number, or
            ``"auto"`` (left only on CUDA: measured on the first clip, then ``clips_measured``).
        autocast: ``"bf16"`` or ``None`` (float32), see ``base.precision``.
        clips_measured, step_budget: what the first clip's memory measure gave on CUDA.
    """

    model: Any
    methods: dict[str, Method]
    scheme: RegionScheme
    target: Any
    layer: Any
    clip_length: int
    stride: int
    keep_pixels: bool
    device: Any
    seed: int
    batch_size: int | None
    clips_per_batch: int | str = 1
    autocast: str | None = None
    clips_measured: int | None = None
    step_budget: int | None = None
    pixel_store: Path | None = None  # keep_pixels="maps.zarr": where the pixel maps go (.pixel_store)

    @property
    def shares_gradient(self) -> bool:
        """Whether a method uses the shared forward+backward (the clip's forward then keeps its graph)."""
        return any(method.shares_gradient for method in self.methods.values())

    @property
    def needs_batch_size(self) -> bool:
        """Whether a method batches perturbations or steps (all but the shared-gradient ones)."""
        return any(not method.shares_gradient for method in self.methods.values())

    @property
    def batches_clips(self) -> bool:
        """Whether the run goes through ``batched.explain_in_batches`` (several clips
        per pass, or autocast); else the engine's clip-by-clip loop."""
        return self.clips_per_batch != 1 or self.autocast is not None


def clip_seed(seed: int, number: int) -> int:
    """The seed of the run's clip ``number`` (0 the first) for a run seeded ``seed``:
    stochastic methods (smoothgrad, shapley) draw the same noise for that clip in a
    resumed run, a batched one, a slice of a cohort run and a re-explanation.

    Example:
        >>> clip_seed(0, 3), clip_seed(1, 0)
        (3, 1000003)
    """
    return int(seed) * 1_000_003 + int(number)


def _whole(value, name: str, least: int, error: type[Exception] = MethodError) -> int:
    is_whole = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not is_whole or value < least:
        raise error(f"{name} must be a whole number of at least {least}, got {value!r}")
    return int(value)


def as_video_model(model):
    """A :class:`~expresso_xai.models.VideoModel`: wrapped with defaults when ``model`` is
    a plain ``nn.Module``."""
    import torch

    from ..models import VideoModel, wrap

    if isinstance(model, torch.nn.Module):
        model = wrap(model)
    if not isinstance(model, VideoModel):
        raise ModelError(f"model must be a VideoModel or torch.nn.Module, got {type(model).__name__}")
    return model


def make_methods(names: Iterable[str], options: dict, scheme: RegionScheme) -> dict[str, Method]:
    """The methods asked for, with their options checked against the region scheme."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise MethodError("no methods given")
    if len(set(names)) != len(names):
        raise MethodError(f"a method is named twice in {names}")
    unknown = set(options) - set(names)
    if unknown:
        raise MethodError(f"options given for {sorted(unknown)}, which are not among the methods {names}; "
                          "pass options as method_name={...}")
    methods = {name: get_method(name, options.get(name)) for name in names}
    for name, method in methods.items():
        if method.region_features and not scheme.exclusive:
            raise MethodError(f"{name} needs non-overlapping regions, but scheme {scheme.name!r} overlaps; "
                              "use regions='partition'")
    return methods


def clips_per_batch_for(value, model, device) -> int | str:
    """``clips_per_batch=`` checked and resolved: a whole number, or ``"auto"`` (1 on a
    CPU, left to measure on CUDA); always 1 for a model that needs each clip's landmarks.

    Example:
        >>> import torch
        >>> from expresso_xai.testing import tiny_model
        >>> clips_per_batch_for("auto", tiny_model(), torch.device("cpu")), clips_per_batch_for(4, tiny_model(), "cpu")
        (1, 4)
    """
    if isinstance(value, str) and value != "auto":
        raise MethodError(f"clips_per_batch must be 'auto' or a whole number of at least 1, got {value!r}")
    if value != "auto":
        value = _whole(value, "clips_per_batch", 1)
    if model.uses_clip_geometry:
        return 1  # its crops follow each clip's landmarks, set before the forward: one clip at a time
    if value == "auto" and getattr(device, "type", str(device)) != "cuda":
        return 1
    return value


def autocast_for(value) -> str | None:
    """``autocast=`` checked: ``False``/``None`` (float32) or ``"bf16"``.

    Example:
        >>> autocast_for(False), autocast_for("bf16")
        (None, 'bf16')
    """
    from .base import AUTOCAST

    if value is None or value is False:
        return None
    if isinstance(value, str) and value in AUTOCAST:
        return value
    raise MethodError(f"autocast must be False or one of {list(AUTOCAST)}, got {value!r}")


def _check_available(device) -> None:
    """A CUDA (or MPS) device this machine has, or a :class:`ModelError` that says so
    (torch would fail deep inside ``module.to``)."""
    import torch

    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise ModelError(f"device {str(device)!r} is not available: torch {torch.__version__} sees {found} CUDA "
                         f"device(s) here; use device='cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelError("device 'mps' is not available here; use device='cpu'")


def plan_explain(model, methods, method_options: dict, *, target=None, regions="partition", clip_length=None,
                 stride=8, keep_pixels=False, device="cpu", batch_size="auto", seed=0, clips_per_batch="auto",
                 autocast=False) -> ExplainPlan:
    """Check every argument of :func:`explain` and resolve what can be resolved without
    the video: raises :class:`MethodError` or :class:`ModelError` naming the argument.

    Example:
        >>> from expresso_xai.testing import tiny_model
        >>> plan = plan_explain(tiny_model(), ["gradcam", "occlusion"], {"occlusion": {"window": 8}})
        >>> list(plan.methods), plan.clip_length, plan.needs_batch_size
        (['gradcam', 'occlusion'], 16, True)
        >>> plan_explain(tiny_model(), ["occlusion"], {"occlusion": {"window": 0}})
        Traceback (most recent call last):
        ...
        expresso_xai.errors.MethodError: occlusion option window=0: use a whole number of at least 1
    """
    import torch

    model = as_video_model(model)
    scheme = get_scheme(regions)
    chosen = make_methods(methods, method_options, scheme)
    check_target(target)
    if batch_size != "auto":
        batch_size = _whole(batch_size, "batch_size", 1)
    autocast = autocast_for(autocast)
    pixel_store = None
    # a str only when it ends in .zarr: keep_pixels="yes" is a mistake, not a folder called yes
    if isinstance(keep_pixels, Path) or (isinstance(keep_pixels, str) and keep_pixels.lower().endswith(".zarr")):
        keep_pixels, pixel_store = True, Path(keep_pixels).absolute()
    if not isinstance(keep_pixels, (bool, np.bool_)):
        raise MethodError(f"keep_pixels must be True or False, or where the pixel maps go: a Zarr store's path "
                          f"(a str ending in .zarr, or a pathlib.Path), got {keep_pixels!r}")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"device {device!r} is not a torch device ({exc}); use 'cpu' or 'cuda'") from None
    _check_available(device)
    if model.module.training:
        # Dropout and batch statistics would make every run differ while the cube records
        # the same model_hash: explanations are of the model in eval mode.
        warnings.warn(f"{model.name} was in training mode; it is put in eval mode to be explained",
                      stacklevel=3)
    clip_length, stride = _whole(clip_length or model.clip_length, "clip_length", 1), _whole(stride, "stride", 1)
    if stride > clip_length:
        # frames between clips would be covered by none: found only after all the work
        raise MethodError(f"stride {stride} is longer than the clip length {clip_length}: the frames between "
                          "clips would not be explained; use a stride of at most the clip length")
    model.module.eval().to(device)
    return ExplainPlan(
        model=model, methods=chosen, scheme=scheme, target=target, layer=gradient_layer(model, chosen, device),
        clip_length=clip_length, stride=stride,
        keep_pixels=bool(keep_pixels), device=device, seed=_whole(seed, "seed", 0),
        batch_size=None if batch_size == "auto" else batch_size,
        clips_per_batch=clips_per_batch_for(clips_per_batch, model, device), autocast=autocast,
        pixel_store=pixel_store,
    )
