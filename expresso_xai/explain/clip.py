"""The clip step: one clip of source frames made ready for the methods, and the methods
run on it. :func:`explain` is a loop over this step; evaluation and cohort runs call it
directly to perturb or re-explain the very input a cube was computed from.

The walk of one clip: source frames → :class:`FaceCrop` (frames and landmarks, one
transform) → :class:`RegionMap` at the model's input → ``model.preprocess`` → one checked
forward (the prediction, and the target it resolves) → each method → region × time.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from ..crop import FaceCrop
from ..errors import ExpressoError, MethodError, ModelError
from ..faces import FaceTrack
from ..regions import RegionMap, get_scheme, region_map
from .base import ClipContext, Method, MethodResult, check_output, get_method, graph_forward


def check_target(target) -> None:
    """Raise :class:`ModelError` unless ``target`` is ``None``, ``"predicted"`` or an output
    index (a bool is not an index: ``True`` would silently mean output 1)."""
    is_index = isinstance(target, (int, np.integer)) and not isinstance(target, (bool, np.bool_))
    if not (target is None or target == "predicted" or (is_index and target >= 0)):
        raise ModelError(f"target must be None, an output index (0, 1, ...) or 'predicted', got {target!r}")


@contextmanager
def _failures_named(what: str, error=MethodError):
    """Turn an exception from inside the model or a method (torch, Captum, the user's own
    code) into one of ours that says where it happened, keeping the cause chained."""
    try:
        yield
    except ExpressoError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything the model or Captum raises
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise error(f"{what}: {type(exc).__name__}: {first_line}") from exc


def resolve_target(target, out, model) -> int:
    """The output index to explain for one clip, given the clip's outputs ``out`` (N, K):
    ``None`` for a single-output model, an index, or ``"predicted"`` (the top output)."""
    check_target(target)
    if target is None:
        if out.shape[1] != 1:
            raise ModelError(f"{model.name} has {out.shape[1]} outputs; pass target= an output index "
                             "or 'predicted' (the top-scoring output of each clip)")
        return 0
    if target == "predicted":
        return int(out[0].argmax())
    check_output(out, model, int(target))
    return int(target)


def clip_region_map(faces: FaceTrack, crop: FaceCrop, scheme, frame_indices) -> RegionMap:
    """The clip's region map at the model's input; a clip without any face is all background."""
    if faces.face_found.any():
        result = region_map(faces, crop, scheme)
    else:
        labels = np.stack([scheme.empty(crop.size) for _ in range(len(faces))])  # already the scheme's dtype
        result = RegionMap(labels, scheme.names, scheme.exclusive, faces.face_found.copy(), np.arange(len(faces)),
                           scheme.name)
    result.frame_indices = np.asarray(frame_indices)
    return result


def gradient_layer(model, methods: dict[str, Method], device="cpu"):
    """The layer Grad-CAM reads (the ``layer=`` option, or the model's default), or
    ``None`` when no method needs one."""
    readers = [method for method in methods.values() if method.needs_layer]
    if not readers:
        return None
    names = {method.options.get("layer") for method in readers} - {None}
    if len(names) > 1:
        raise MethodError(f"gradcam and guided_gradcam must read the same layer, got {sorted(names)}")
    if not names:
        return model.gradcam_layer
    name = names.pop()
    layers = model.named_layers()
    if name not in layers:
        raise ModelError(f"{model.name} has no layer {name!r}; layers Grad-CAM can read: "
                         f"{model.candidate_layers(device)}")
    return layers[name]


@dataclass(eq=False)
class ClipInput:
    """One clip made ready for the model without running it: what :func:`crop_clip`
    returns and :func:`forward_clip` takes. Making it touches no model state, so it can
    be made in another thread while the model runs on the clip before.

    Attributes:
        frames: ``(L, H, W, 3)`` uint8 frames at the model's input (cropped).
        landmarks: ``(L, 68, 2)`` landmarks in model-input pixels (NaN without a face).
        region_map: the clip's :class:`~expresso_xai.RegionMap` at the model's input.
        x: the preprocessed ``(1, ...)`` input tensor in the model's layout, on ``device``.
        frame_indices, timestamps: the frames' indices in the video and their seconds.
    """

    frames: np.ndarray
    landmarks: np.ndarray
    region_map: RegionMap
    x: Any
    frame_indices: np.ndarray
    timestamps: Any = None


def crop_clip(model, frames: np.ndarray, faces: FaceTrack, crop: FaceCrop, regions="partition", *,
              frame_indices=None, timestamps=None, device="cpu") -> ClipInput:
    """The model-free half of :func:`prepare_clip`: source frames cropped like the
    landmarks, the clip's region map at the model's input, and the preprocessed tensor.

    Example:
        >>> from expresso_xai.testing import clip_inputs
        >>> model, frames, faces, crop = clip_inputs(input_size=(64, 64))
        >>> clip = crop_clip(model, frames, faces, crop)
        >>> clip.frames.shape, tuple(clip.x.shape)
        ((16, 64, 64, 3), (1, 3, 16, 64, 64))
    """
    if not len(frames) == len(faces) == len(crop):
        raise ModelError(f"a clip needs as many face-track and crop frames as frames, got {len(frames)} frames, "
                         f"{len(faces)} face-track frames and {len(crop)} crop frames")
    indices = np.arange(len(frames)) if frame_indices is None else np.asarray(frame_indices)
    clip = cropped_input(frames, faces, crop, get_scheme(regions), indices, timestamps)
    clip.x = model.preprocess(clip.frames, device)
    return clip


def cropped_input(frames: np.ndarray, faces: FaceTrack, crop: FaceCrop, scheme, indices: np.ndarray,
                  timestamps=None) -> ClipInput:
    """:func:`crop_clip` without the model: a :class:`ClipInput` whose ``x`` is ``None``
    (NumPy and OpenCV work only, which the engine's background thread does).

    Example:
        >>> from expresso_xai.regions import get_scheme
        >>> from expresso_xai.testing import clip_inputs
        >>> model, frames, faces, crop = clip_inputs(input_size=(64, 64))
        >>> clip = cropped_input(frames, faces, crop, get_scheme("partition"), np.arange(16))
        >>> clip.frames.shape, clip.x is None
        ((16, 64, 64, 3), True)
    """
    return ClipInput(frames=crop.apply(frames), landmarks=crop.apply_landmarks(faces.landmarks),
                     region_map=clip_region_map(faces, crop, scheme, indices), x=None, frame_indices=indices,
                     timestamps=timestamps)


def forward_clip(model, clip: ClipInput, *, target=None, device="cpu", seed: int = 0, batch_size: int | None = None,
                 gradient_layer=None, keep_graph: bool = False) -> ClipContext:
    """The model half of :func:`prepare_clip`: one checked forward of a :class:`ClipInput`
    (recording the graph when ``keep_graph``) and its target resolved.

    Example:
        >>> from expresso_xai.testing import clip_inputs
        >>> model, frames, faces, crop = clip_inputs(input_size=(64, 64))
        >>> ctx = forward_clip(model, crop_clip(model, frames, faces, crop))
        >>> ctx.target, ctx.output_is_known()
        (0, True)
    """
    import torch

    indices, x = clip.frame_indices, clip.x
    model.prepare_clip(clip.landmarks)  # a multi-stream model places its boxes: model state, so here
    cache = {}
    with _failures_named(f"{model.name} failed on frames {indices[0]}-{indices[-1]}", ModelError):
        if keep_graph:
            cache["graph"] = graph_forward(model, x, gradient_layer)
            out = cache["graph"]["output"].detach()
        else:
            with torch.no_grad():
                out = model(x)
    check_output(out, model, 0)
    clip_target = resolve_target(target, out, model)
    cache["output"], cache["output_of"] = out, x
    return ClipContext(model=model, x=x, frames=clip.frames, region_map=clip.region_map, target=clip_target,
                       device=device, seed=seed, batch_size=batch_size, gradient_layer=gradient_layer,
                       landmarks=clip.landmarks, prediction=float(out[0, clip_target]), timestamps=clip.timestamps,
                       cache=cache)


def prepare_clip(model, frames: np.ndarray, faces: FaceTrack, crop: FaceCrop, regions="partition", *,
                 target=None, frame_indices=None, timestamps=None, device="cpu", seed: int = 0,
                 batch_size: int | None = None, gradient_layer=None, keep_graph: bool = False) -> ClipContext:
    """One clip of source frames, ready to be explained: cropped like the landmarks, its
    region map at the model's input, preprocessed, run once through the model (checked
    for shape and NaN) and its target resolved. It is :func:`crop_clip` then
    :func:`forward_clip`.

    Args:
        model: a :class:`~expresso_xai.models.VideoModel`.
        frames: ``(L, H, W, 3)`` uint8 RGB source frames, ``L`` the model's clip length.
        faces, crop: the face track and face crop of those ``L`` frames (index a whole
            video's with the clip's positions: ``faces[positions]``, ``crop[positions]``).
        regions: ``"partition"``, ``"boxes"`` or a :class:`~expresso_xai.RegionScheme`.
        target: ``None`` (single output), an output index or ``"predicted"``.
        frame_indices, timestamps: the frames' indices in the video and their seconds.
        device, seed, batch_size, gradient_layer: passed to the methods (see
            :class:`ClipContext`).
        keep_graph: run the clip's one forward with autograd recording and keep it, so
            that the gradient methods' shared pass is only its backward (``explain``
            sets it when a method shares the gradient): the prediction costs no pass
            of its own.

    Example:
        >>> from expresso_xai.testing import clip_inputs
        >>> model, frames, faces, crop = clip_inputs(input_size=(64, 64))
        >>> ctx = prepare_clip(model, frames, faces, crop)
        >>> ctx.frames.shape, ctx.target, ctx.region_map.names[0]
        ((16, 64, 64, 3), 0, 'right_eye')
    """
    clip = crop_clip(model, frames, faces, crop, regions, frame_indices=frame_indices, timestamps=timestamps,
                     device=device)
    return forward_clip(model, clip, target=target, device=device, seed=seed, batch_size=batch_size,
                        gradient_layer=gradient_layer, keep_graph=keep_graph)


def run_methods(ctx: ClipContext, methods: Iterable[str] | Mapping[str, Method]) -> dict[str, MethodResult]:
    """Run explanation methods on one prepared clip.

    Every result comes back with both ``region_time`` ``(L, R)`` (pixels pooled into the
    clip's regions) and ``pixel_map`` ``(L, H, W)`` (``None`` for a method without one).
    Gradient-sharing methods share one forward+backward pass (``"gradients" in
    ctx.cache`` afterwards).

    Example:
        >>> from expresso_xai.testing import clip_inputs
        >>> ctx = prepare_clip(*clip_inputs(input_size=(64, 64)))
        >>> results = run_methods(ctx, ["gradcam", "saliency"])
        >>> results["saliency"].region_time.shape, "gradients" in ctx.cache
        ((16, 12), True)
    """
    if not isinstance(methods, Mapping):
        methods = {name: get_method(name) for name in methods}
    if ctx.gradient_layer is None and "gradients" not in ctx.cache:
        ctx.gradient_layer = gradient_layer(ctx.model, methods, ctx.device)
    results = {}
    for name, method in methods.items():
        frames = ctx.region_map.frame_indices
        with warnings.catch_warnings(), _failures_named(f"{name} failed on frames {frames[0]}-{frames[-1]}"):
            # Captum announces every hook it sets and every input it marks for gradients.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")
            result = method.attribute(ctx)
        if result.region_time is None:
            result.region_time, result.pixel_map = ctx.region_map.pool(result.pixels), result.pixels
        results[name] = result
    return results
