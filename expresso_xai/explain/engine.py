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
    checkpoint: str | Path | None = None,
    checkpoint_every: float = 60.0,
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
        keep_pixels: also store per-pixel maps ``pixels(explainer, time, y, x)``, each
            pixel's region ``region_label(time, y, x)`` and the face crop
            ``crop_matrix(time, 2, 3)``: what the Explorer needs to draw overlays.
        batch_size: perturbations or path steps per forward; ``"auto"`` measures what is
            fastest on the device, once per run.
        seed: seeds stochastic methods (smoothgrad, shapley); the same seed gives the same cube.
        crop: the face crop; default ``FaceCrop.from_track(faces, size=model.input_size)``.
        checkpoint: a file (``.npz``) where finished clips are saved every
            ``checkpoint_every`` seconds and when the run stops on an error or Ctrl-C;
            running the same call again resumes after the last saved clip and gives the
            same cube. It is deleted once the cube is complete.
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
    label_dtype = np.uint8 if scheme.exclusive else np.uint16
    labels = np.zeros((n_frames, *model.input_size), label_dtype) if keep_pixels else None
    timestamps = np.full(n_frames, np.nan)
    clip_starts, clip_predictions, clip_targets = [], [], []
    clip_stats: dict[str, list] = {}
    passes = dict.fromkeys(methods, 0)
    shared_passes = 0
    batch = None if batch_size == "auto" else int(batch_size)

    state = {"totals": totals, "covered": covered, "prediction_sum": prediction_sum, "region_area": region_area,
             "timestamps": timestamps}
    if pixels is not None:
        state["pixels"] = pixels
        state["labels"] = labels
    fingerprint = _fingerprint(model, source, video, faces, crop, methods, instances, scheme, clip_length, stride,
                               seed, target, keep_pixels, batch_size)
    done = 0
    if checkpoint is not None:
        restored = _load_checkpoint(Path(checkpoint), fingerprint, state)
        if restored is not None:
            done, clip_starts, clip_predictions, clip_targets, clip_stats, passes, shared_passes, batch = restored
            log.info("resuming %s after %d clips", checkpoint, done)

    def save_checkpoint(n_done):
        if checkpoint is not None and n_done > done:
            _save_checkpoint(Path(checkpoint), fingerprint, state, n_done, clip_starts, clip_predictions,
                             clip_targets, clip_stats, passes, shared_passes, batch)

    clips = iter_clips(source if source is not None else Path(video), clip_length, stride)
    total_clips = max(1, -(-max(n_frames - clip_length, 0) // stride) + 1)
    bar = tqdm(clips, total=total_clips, desc="explain", unit="clip", disable=not progress, leave=False,
               initial=0)
    first_frame = source.start if source is not None else 0
    finished = done
    last_save = time.perf_counter()
    try:
        for clip_index, clip in enumerate(bar):
            if clip_index < done:
                continue
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
            clip_landmarks = clip_crop.apply_landmarks(clip_faces.landmarks)  # in model-input pixels
            if hasattr(model, "prepare_clip"):  # models that need the clip's geometry (multi-stream)
                model.prepare_clip(clip_landmarks)
            with torch.no_grad():
                out = model(x)
            check_output(out, model, 0)
            clip_target = _resolve_target(target, out, model)
            if batch is None and any(not getattr(m, "shares_gradient", False) for m in instances.values()):
                batch = fastest_batch(model, x)
            ctx = ClipContext(model=model, x=x, frames=frames, region_map=region_map, target=clip_target,
                              device=device, seed=seed * 1_000_003 + clip_index, batch_size=batch, gradient_layer=layer,
                              landmarks=clip_landmarks)
            unique, first_position = np.unique(indices, return_index=True)
            results = []
            for name, method in instances.items():
                with warnings.catch_warnings():
                    # Captum announces every hook it sets and every input it marks for gradients.
                    warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")
                    results.append(method.attribute(ctx))
            # Every method of the clip is done: only now add it to the totals, so a run
            # stopped mid-clip never leaves half a clip in a checkpoint.
            for m, (name, result) in enumerate(zip(instances, results)):
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
            if labels is not None:
                labels[unique] = region_map.labels[first_position]
            clip_starts.append(int(clip.indices[0]))
            clip_predictions.append(prediction)
            clip_targets.append(clip_target)
            finished = clip_index + 1
            if checkpoint is not None and time.perf_counter() - last_save > checkpoint_every:
                save_checkpoint(finished)
                last_save = time.perf_counter()
    except BaseException:
        save_checkpoint(finished)
        raise
    finally:
        bar.close()

    if checkpoint is not None and Path(checkpoint).exists():
        Path(checkpoint).unlink()  # the cube is complete; nothing left to resume
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
        region_label=labels,
        crop_matrix=crop.matrices if keep_pixels else None,
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


# --- checkpoints ----------------------------------------------------------------------


def _fingerprint(model, source, video, faces, crop, methods, instances, scheme, clip_length, stride, seed,
                 target, keep_pixels, batch_size) -> str:
    """What must match for a checkpoint to be resumed: every input of the run."""
    import hashlib
    import json

    digest = hashlib.sha256()
    for array in (faces.landmarks, faces.face_found, crop.matrices):
        digest.update(np.ascontiguousarray(array).tobytes())
    return json.dumps({
        "model": model.weights_hash(), "video": source.content_hash() if source is not None else str(video),
        "faces_and_crop": digest.hexdigest(), "methods": {m: instances[m].params() for m in methods},
        "scheme": scheme.name, "clip_length": clip_length, "stride": stride, "seed": seed,
        "target": str(target), "keep_pixels": keep_pixels, "batch_size": str(batch_size),
    }, sort_keys=True, default=str)


def _save_checkpoint(path: Path, fingerprint, state, n_done, clip_starts, clip_predictions, clip_targets,
                     clip_stats, passes, shared_passes, batch) -> None:
    import json
    import os

    arrays = {f"state_{k}": v for k, v in state.items()}
    arrays.update({f"stat_{k}": np.asarray(v) for k, v in clip_stats.items()})
    meta = {"fingerprint": fingerprint, "done": n_done, "passes": passes, "shared_passes": shared_passes,
            "batch": batch, "clip_starts": clip_starts, "clip_predictions": clip_predictions,
            "clip_targets": clip_targets}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(partial, path)  # atomic: a crash while saving keeps the previous checkpoint
    log.info("checkpoint %s: %d clips done", path, n_done)


def _load_checkpoint(path: Path, fingerprint, state):
    import json

    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            if meta["fingerprint"] != fingerprint:
                warnings.warn(f"{path} was saved by a run with other inputs or settings; starting afresh "
                              "(it will be overwritten)", stacklevel=3)
                return None
            for key, array in state.items():
                array[...] = stored[f"state_{key}"]
            clip_stats = {name[5:]: stored[name].tolist() for name in stored.files if name.startswith("stat_")}
    except (OSError, ValueError, KeyError) as exc:
        warnings.warn(f"{path} is not a readable checkpoint ({exc}); starting afresh", stacklevel=3)
        return None
    return (meta["done"], meta["clip_starts"], meta["clip_predictions"], meta["clip_targets"], clip_stats,
            meta["passes"], meta["shared_passes"], meta["batch"])
