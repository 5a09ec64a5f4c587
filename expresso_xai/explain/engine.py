"""The engine: runs explanation methods clip by clip over a video and pools pixels into
facial regions, returning the attribution cube.

Per clip it crops the frames to the model's input (the same :class:`FaceCrop` that maps
the landmarks, so regions line up), preprocesses once, gives every gradient-sharing
method (gradcam, saliency, input_x_gradient) one shared forward+backward pass, batches
the perturbation methods' forwards, and adds each frame's region sums into running
totals, so memory does not grow with the video's length (unless pixels are kept).
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import MethodError, ModelError, NoFaceWarning
from ..faces import FaceTrack, track_faces
from ..regions import FaceCrop, get_scheme
from ..video import Video, iter_clips, load_video
from .base import ClipContext, check_output, get_method

log = logging.getLogger(__name__)

_BATCH_CACHE: dict = {}


def fastest_batch(model, x, candidates: Iterable[int] = (1, 2, 4, 8, 16), repeats: int = 2) -> int:
    """The batch size with the lowest time per sample for no-grad forwards of ``x``,
    measured on this device (cached per model, input shape and device).

    Batching is not always faster: on a 2-core CPU, 8 perturbations per forward of
    r3d_18 measured 1.5x slower per sample than one at a time.
    """
    import torch

    key = (id(model.module), tuple(x.shape), str(x.device))
    if key in _BATCH_CACHE:
        return _BATCH_CACHE[key]
    best, best_time = 1, float("inf")
    with torch.no_grad():
        for size in candidates:
            batch = x.expand(size, *x.shape[1:]).contiguous()
            try:
                model(batch)  # warm-up
                started = time.perf_counter()
                for _ in range(repeats):
                    model(batch)
            except RuntimeError as exc:  # out of memory on an accelerator
                log.info("batch of %d failed (%s); keeping %d", size, exc, best)
                break
            per_sample = (time.perf_counter() - started) / (repeats * size)
            if per_sample < 0.95 * best_time:
                best, best_time = size, per_sample
            else:
                break
    _BATCH_CACHE[key] = best
    return best


def _resolve_target(target, out, model) -> int:
    if target is None:
        if out.shape[1] != 1:
            raise ModelError(f"{model.name} has {out.shape[1]} outputs; pass target= an output index "
                             "or 'predicted' (the top-scoring output of each clip)")
        return 0
    if target == "predicted":
        return int(out[0].argmax())
    if isinstance(target, (int, np.integer)):
        check_output(out, model, int(target))
        return int(target)
    raise ModelError(f"target must be None, an output index or 'predicted', got {target!r}")


def explain(
    model,
    video: Video | str | Path,
    faces: FaceTrack | None = None,
    methods: Iterable[str] = ("gradcam", "integrated_gradients", "occlusion"),
    target=None,
    regions="partition",
    clip_length: int | None = None,
    stride: int = 8,
    keep_pixels: bool = False,
    device="cpu",
    progress: bool = True,
    batch_size: int | str = "auto",
    seed: int = 0,
    crop: FaceCrop | None = None,
    **method_options,
):
    """Explain a video model on a face video: attribution per method, frame and region.

    Args:
        model: a :class:`~expresso_xai.models.VideoModel` (see :func:`expresso_xai.models.wrap`)
            or an ``nn.Module`` taking ``(N, 3, T, 112, 112)`` (wrapped with defaults).
        video: a :class:`Video` or a path (decoded clip by clip).
        faces: the face track; ``None`` runs the landmarker.
        methods: registered method names (``expresso_xai.explain.METHODS``).
        target: an output index, ``"predicted"`` (each clip's top output), or ``None`` for
            a model with a single (regression) output.
        regions: ``"partition"``, ``"boxes"`` or a :class:`RegionScheme`.
        clip_length, stride: clips slid over the video (default: the model's length, 8).
        keep_pixels: also store per-pixel maps ``pixels(explainer, time, y, x)``.
        batch_size: perturbations or path steps per forward; ``"auto"`` measures what is
            fastest on the device, once per run.
        seed: seeds stochastic methods (smoothgrad, shapley); the same seed gives the same cube.
        crop: the face crop; default ``FaceCrop.from_track(faces, size=model.input_size)``.
        **method_options: per-method options as dicts, e.g.
            ``integrated_gradients={"tolerance": 0.005}, occlusion={"window": 8}``.

    Returns:
        The attribution cube, an ``xarray.Dataset`` (see :mod:`expresso_xai.cube`). A frame's
        attribution is the **mean over the clips that cover it**; within a clip, pixel
        attributions are summed over colour channels and then over each region, so with
        a partition the region sums add up to the clip's total.

    Raises:
        NoFaceError: no frame has a face. Frames without one get ``face_found=False``.
        MethodError, ModelError, ModelOutputError: unknown method or option, a target out
            of range, a missing Grad-CAM layer, an output of the wrong shape or with NaN.

    Example:
        >>> import torch, expresso_xai as ex
        >>> torch.manual_seed(0) and None
        >>> net = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 1))
        >>> model = ex.models.wrap(net, input_size=(64, 64))
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=24)
        >>> cube = ex.explain(model, video, methods=["gradcam", "saliency"], progress=False)
        >>> cube.attribution.dims, cube.attribution.shape
        (('explainer', 'time', 'region'), (2, 24, 12))
    """
    import torch
    from tqdm.auto import tqdm

    from ..cube import make_cube
    from ..models import VideoModel, wrap

    if isinstance(model, torch.nn.Module):
        model = wrap(model)
    if not isinstance(model, VideoModel):
        raise ModelError(f"model must be a VideoModel or torch.nn.Module, got {type(model).__name__}")
    methods = list(methods)
    if not methods:
        raise MethodError("no methods given")
    unknown = set(method_options) - set(methods)
    if unknown:
        raise MethodError(f"options given for {sorted(unknown)}, which are not among the methods {methods}; "
                          "pass options as method_name={...}")
    instances = {name: get_method(name, method_options.get(name)) for name in methods}
    scheme = get_scheme(regions)
    if not scheme.exclusive:
        for name, method in instances.items():
            if getattr(method, "region_features", False):
                raise MethodError(f"{name} needs non-overlapping regions, but scheme {scheme.name!r} overlaps; "
                                  "use regions='partition'")
    clip_length = int(clip_length or model.clip_length)
    model.module.to(device)

    source = video if isinstance(video, Video) else None
    if source is None:
        source_path = Path(video)
        if faces is None:
            faces = track_faces(source_path, progress=progress)
        first = load_video(source_path, max_frames=1)
        fps, video_source, frame_size = first.fps, str(source_path), (first.height, first.width)
    else:
        if faces is None:
            faces = track_faces(source, progress=progress)
        fps, video_source, frame_size = source.fps, source.source, (source.height, source.width)
    faces.require_face("explaining the video")
    n_frames = len(faces)
    if crop is None:
        crop = FaceCrop.from_track(faces, size=model.input_size)
    if crop.size != model.input_size:
        raise ModelError(f"crop gives {crop.size} frames but {model.name} takes {model.input_size}")

    layer = None
    layer_options = {m.options.get("layer") for m in instances.values() if getattr(m, "needs_layer", False)}
    layer_options.discard(None)
    if len(layer_options) > 1:
        raise MethodError(f"gradcam and guided_gradcam must read the same layer, got {sorted(layer_options)}")
    if any(getattr(m, "needs_layer", False) for m in instances.values()):
        if layer_options:
            name = layer_options.pop()
            layers = model.named_layers()
            if name not in layers:
                raise ModelError(f"{model.name} has no layer {name!r}; layers Grad-CAM can read: "
                                 f"{model.candidate_layers(device)}")
            layer = layers[name]
        else:
            layer = model.gradcam_layer

    names = list(scheme.names)
    n_methods, n_regions = len(methods), len(names)
    totals = np.zeros((n_methods, n_frames, n_regions), np.float64)
    covered = np.zeros(n_frames, np.int64)
    prediction_sum = np.zeros(n_frames, np.float64)
    region_area = np.zeros((n_frames, n_regions), np.int64)
    pixels = np.zeros((n_methods, n_frames, *model.input_size), np.float32) if keep_pixels else None
    timestamps = np.full(n_frames, np.nan)
    clip_starts, clip_predictions, clip_targets = [], [], []
    clip_stats: dict[str, list] = {}
    passes = dict.fromkeys(methods, 0)
    shared_passes = 0
    batch = None if batch_size == "auto" else int(batch_size)

    clips = iter_clips(source if source is not None else Path(video), clip_length, stride)
    total_clips = max(1, -(-max(n_frames - clip_length, 0) // stride) + 1)
    bar = tqdm(clips, total=total_clips, desc="explain", unit="clip", disable=not progress, leave=False)
    first_frame = source.start if source is not None else 0
    for clip_index, clip in enumerate(bar):
        indices = clip.indices - first_frame  # positions in this video (a slice starts past 0)
        if indices.max() >= n_frames:
            raise ModelError(f"the face track has {n_frames} frames but the video has more; "
                             "pass faces tracked on the same video")
        clip_crop = crop[indices]
        frames = clip_crop.apply(clip.frames)
        clip_faces = FaceTrack(faces.landmarks[indices], faces.face_found[indices], faces.confidence[indices],
                               faces.boxes[indices], faces.n_faces[indices], faces.frame_size)
        region_map = _clip_region_map(clip_faces, clip_crop, scheme, clip.indices)
        x = model.preprocess(frames, device)
        with torch.no_grad():
            out = model(x)
        check_output(out, model, 0)
        clip_target = _resolve_target(target, out, model)
        if batch is None and any(not getattr(m, "shares_gradient", False) for m in instances.values()):
            batch = fastest_batch(model, x)
        ctx = ClipContext(model=model, x=x, frames=frames, region_map=region_map, target=clip_target,
                          device=device, seed=seed * 1_000_003 + clip_index, batch_size=batch, gradient_layer=layer)
        unique, first_position = np.unique(indices, return_index=True)
        for m, (name, method) in enumerate(instances.items()):
            with warnings.catch_warnings():
                # Captum announces every hook it sets and every input it marks for gradients.
                warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")
                result = method.attribute(ctx)
            passes[name] += result.passes
            if result.region_time is not None:
                region_time, pixel_map = result.region_time, result.pixel_map
            else:
                pixel_map = result.pixels
                region_time = region_map.pool(pixel_map)
            np.add.at(totals[m], indices, region_time)
            if pixels is not None and pixel_map is not None:
                np.add.at(pixels[m], indices, pixel_map.astype(np.float32))
            for key, value in result.stats.items():
                clip_stats.setdefault(f"{name}_{key}", []).append(value)
        if "gradients" in ctx.cache:
            shared_passes += 1
        covered[unique] += 1
        timestamps[indices] = clip.timestamps
        prediction = float(out[0, clip_target])
        prediction_sum[unique] += prediction
        region_area[unique] = region_map.area().values[first_position]
        clip_starts.append(int(clip.indices[0]))
        clip_predictions.append(prediction)
        clip_targets.append(clip_target)
    bar.close()

    counts = covered.astype(np.float64)
    if (counts == 0).any():  # pragma: no cover - iter_clips covers every frame
        raise RuntimeError("some frames were not covered by any clip")
    attribution = (totals / counts[None, :, None]).astype(np.float32)
    if pixels is not None:
        pixels /= counts[None, :, None, None]

    missing = int((~faces.face_found).sum())
    if missing and missing < n_frames:
        warnings.warn(f"no face in {missing} of {n_frames} frames; they are marked face_found=False "
                      "and all their pixels count as background", NoFaceWarning, stacklevel=2)
    attrs = {
        "model_name": model.name,
        "model_hash": model.weights_hash(),
        "model_layout": model.layout,
        "model_input_size": list(model.input_size),
        "gradcam_layer": model.gradcam_layer_name if layer is not None else "",
        "video_source": str(video_source or ""),
        "video_hash": source.content_hash() if source is not None else "",
        "video_fps": float(fps),
        "video_frame_size": list(frame_size),
        "region_scheme": scheme.name,
        "clip_length": clip_length,
        "stride": int(stride),
        "seed": int(seed),
        "batch_size": int(batch or 1),
        "device": str(device),
        "aggregation": "frame attribution = mean over the clips covering the frame",
        "methods": {name: instances[name].params() for name in methods},
        "passes": {**passes, "shared_gradient": shared_passes},
        "crop": crop.params,
    }
    return make_cube(
        attribution,
        explainers=methods,
        time=first_frame + np.arange(n_frames),
        seconds=np.asarray(timestamps[:n_frames], dtype=np.float64),
        regions=names,
        region_area=region_area,
        face_found=faces.face_found,
        prediction=(prediction_sum / counts).astype(np.float32),
        clip_start=np.asarray(clip_starts),
        clip_prediction=np.asarray(clip_predictions, np.float32),
        target="regression" if target is None else ("predicted" if target == "predicted" else int(target)),
        pixels=pixels,
        clip_stats={"clip_target": np.asarray(clip_targets), **{k: np.asarray(v) for k, v in clip_stats.items()}},
        attrs=attrs,
    )


def _clip_region_map(clip_faces: FaceTrack, clip_crop: FaceCrop, scheme, indices):
    from ..regions import region_map

    if clip_faces.face_found.any():
        result = region_map(clip_faces, clip_crop, scheme)
    else:  # a clip without any face: every pixel is background
        from ..regions import RegionMap

        labels = np.stack([scheme.empty(clip_crop.size) for _ in range(len(indices))])
        result = RegionMap(labels, scheme.names, scheme.exclusive, clip_faces.face_found.copy(),
                           np.arange(len(indices)), scheme.name)
    result.frame_indices = np.asarray(indices)
    return result
