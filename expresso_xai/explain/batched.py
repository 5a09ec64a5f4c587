"""Several clips through one forward+backward: the GPU path of :func:`~expresso_xai.explain`.

One clip of a 3-D CNN leaves most of a GPU idle, so with ``clips_per_batch`` the engine
stacks the preprocessed inputs of ``N`` clips into one ``(N, ...)`` tensor, runs one
forward recording the graph and one backward of the sum of each clip's target output,
and splits the outputs, the input gradient and the Grad-CAM layer's activation and
gradient back into one :class:`ClipContext` per clip. The methods then run on each
clip as before and the clips are added to the running totals in video order, so the
cube is the one clip by clip gives (up to the last bits: a convolution over a batch of
``N`` may sum in another order than over a batch of one).

Why the split is exact: in eval mode every layer maps each row of the batch on its own
(batch norm uses its running statistics, dropout is off), so the gradient of
``sum_i f(x_i)[t_i]`` with respect to ``x_i`` is the gradient of ``f(x_i)[t_i]`` alone.
A model with batch-dependent layers in train mode would break this; the engine puts the
model in eval mode (:func:`~expresso_xai.explain.plan.plan_explain`).

What is batched: the gradient family's shared pass (``gradcam``, ``saliency``,
``input_x_gradient``) and the prediction every method reads. ``guided_gradcam``,
``smoothgrad`` and the perturbation methods still run per clip on the contexts (their
own passes batch perturbations or steps, ``batch_size``); smoothgrad's noise is seeded per
clip, so batching its samples across clips would change the cube. Multi-stream models
(``model.uses_clip_geometry``) place their crops from each clip's landmarks before the
forward: one clip per batch.

``clips_per_batch="auto"`` is 1 on a CPU (batching clips gains nothing there: the cores are
already busy with one) and, on CUDA, is measured on the run's first clip: the peak memory
of its forward+backward sets how many clips fit in :data:`MEMORY_FRACTION` of the free
memory (``torch.cuda.mem_get_info``), at most :data:`MAX_CLIPS_PER_BATCH`; the same
measure bounds integrated gradients' steps per forward (``ClipContext.step_budget``).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from ..errors import MethodError, ModelError
from .base import ClipContext, backward_pass, check_output, graph_forward, precision
from .batching import settle_batch_size
from .clip import ClipInput, _failures_named, resolve_target, run_methods
from .plan import clip_seed
from .prefetch import clip_input

log = logging.getLogger(__name__)

#: the share of the device's free memory a batch of clips (or of path steps) may fill
MEMORY_FRACTION = 0.5
#: the most clips "auto" puts in one batch (beyond it a GPU gains nothing measurable)
MAX_CLIPS_PER_BATCH = 32
#: the most path steps per forward the memory budget may ask for
MAX_STEPS_PER_BATCH = 256


def forward_batch(model, clips: list[ClipInput], *, target=None, device="cpu", seeds=(), batch_size=None,
                  gradient_layer=None, gradients: bool = True, autocast: str | None = None) -> list[ClipContext]:
    """One checked forward of several clips, and with ``gradients`` one backward of the
    sum of each clip's target output: a :class:`ClipContext` per clip, in order, each
    with its outputs and (``gradients``) its share of the pass in ``ctx.cache["gradients"]``,
    as :func:`~expresso_xai.explain.base.shared_gradients` gives it.

    Targets are resolved per clip (``"predicted"``: each clip's own top output). Under
    ``autocast="bf16"`` the forward runs in bfloat16 autocast and the prediction is its
    output, but methods reading ``ctx.output()`` get the float32 one (a forward of their own).

    Example:
        >>> import numpy as np
        >>> from expresso_xai.testing import clip_inputs
        >>> from expresso_xai.explain.clip import crop_clip, forward_clip
        >>> from expresso_xai.explain.base import shared_gradients
        >>> model, frames, faces, crop = clip_inputs(input_size=(64, 64))
        >>> clip = crop_clip(model, frames, faces, crop)
        >>> flipped = crop_clip(model, frames[::-1].copy(), faces, crop)
        >>> first, second = forward_batch(model, [clip, flipped])
        >>> alone = shared_gradients(forward_clip(model, flipped))["input_gradient"]
        >>> bool(np.allclose(second.cache["gradients"]["input_gradient"], alone, rtol=1e-4, atol=1e-9))
        True
    """
    import torch

    if not clips:
        raise MethodError("forward_batch needs at least one clip")
    if model.uses_clip_geometry and len(clips) > 1:
        raise MethodError(f"{model.name} places its crops from each clip's landmarks before the forward, "
                          "so its clips cannot share a batch; use clips_per_batch=1")
    if len(clips) == 1:
        model.prepare_clip(clips[0].landmarks)  # a multi-stream model's boxes: model state, so here
    x = clips[0].x if len(clips) == 1 else torch.cat([clip.x for clip in clips])
    first, last = clips[0].frame_indices[0], clips[-1].frame_indices[-1]
    shared = None
    with _failures_named(f"{model.name} failed on frames {first}-{last}", ModelError):
        with precision(x.device, autocast):
            if gradients:
                forward = graph_forward(model, x, gradient_layer)
                out = forward["output"]
            else:
                with torch.no_grad():
                    out = model(x)
        check_output(out.detach(), model, 0)
        targets = [resolve_target(target, out[row : row + 1].detach(), model) for row in range(len(clips))]
        if gradients:
            rows = torch.arange(len(clips), device=out.device)
            shared = backward_pass(forward, out[rows, torch.tensor(targets, device=out.device)])
    out = out.detach().float()
    seeds = list(seeds) or [0] * len(clips)
    contexts = []
    for row, (clip, clip_target) in enumerate(zip(clips, targets)):
        cache = {"output": out[row : row + 1]}
        if not autocast:  # a bf16 output is not f(x) for the methods that run in float32 (occlusion, IG's check)
            cache["output_of"] = clip.x
        if shared is not None:
            cache["gradients"] = {key: None if value is None else value[row : row + 1] for key, value in shared.items()}
        contexts.append(ClipContext(
            model=model, x=clip.x, frames=clip.frames, region_map=clip.region_map, target=clip_target, device=device,
            seed=seeds[row], batch_size=batch_size, gradient_layer=gradient_layer, landmarks=clip.landmarks,
            prediction=float(out[row, clip_target]), timestamps=clip.timestamps, cache=cache, autocast=autocast,
        ))
    return contexts


@contextmanager
def _peak_memory(device):
    """``{"bytes": ...}`` filled with the peak CUDA memory the block allocated above what
    was allocated when it started (0 on other devices)."""
    import torch

    measure = {"bytes": 0}
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    yield measure
    if cuda:
        torch.cuda.synchronize(device)
        measure["bytes"] = int(torch.cuda.max_memory_allocated(device) - before)


def fitting(per_input_bytes: int, free_bytes: int, most: int) -> int:
    """How many inputs of ``per_input_bytes`` each fit in :data:`MEMORY_FRACTION` of
    ``free_bytes``: at least 1, at most ``most``.

    Example:
        >>> fitting(per_input_bytes=2 * 2**30, free_bytes=40 * 2**30, most=32)
        10
        >>> fitting(per_input_bytes=0, free_bytes=40 * 2**30, most=32), fitting(10**12, 10**9, 32)
        (32, 1)
    """
    if per_input_bytes <= 0:
        return most
    return max(1, min(most, int(MEMORY_FRACTION * free_bytes // per_input_bytes)))


def _free_bytes(device) -> int:
    """Free memory on a CUDA device (``torch.cuda.mem_get_info``), 0 elsewhere."""
    import torch

    return int(torch.cuda.mem_get_info(device)[0]) if torch.device(device).type == "cuda" else 0


def _run_batch(plan, state, batch: list) -> list[ClipContext]:
    """One batch of ``(positions, ClipInput)`` through :func:`forward_batch`, the methods run
    on each clip and the clips added to ``state`` in video order. On CUDA with
    ``clips_per_batch="auto"``, the first batch (one clip) measures the memory budget."""
    measuring = plan.clips_per_batch == "auto" and plan.clips_measured is None
    with _peak_memory(plan.device) as peak:
        contexts = forward_batch(
            plan.model, [clip for _, clip in batch], target=plan.target, device=plan.device,
            seeds=[clip_seed(plan.seed, state.done + k) for k in range(len(batch))], batch_size=state.batch_size,
            gradient_layer=plan.layer, gradients=plan.shares_gradient, autocast=plan.autocast)
    if measuring:
        free = _free_bytes(plan.device)
        # no free memory to size by (not CUDA): one clip at a time
        plan.clips_measured = fitting(peak["bytes"], free, MAX_CLIPS_PER_BATCH) if free else 1
        plan.step_budget = fitting(peak["bytes"], free, MAX_STEPS_PER_BATCH) if free else None
        log.info("clips per batch: %d (a clip's forward+backward peaked at %.0f MB, %.0f MB free)",
                 plan.clips_measured, peak["bytes"] / 2**20, free / 2**20)
    settle_batch_size(plan, state, contexts[0].x)
    results = []
    for ctx in contexts:
        ctx.batch_size, ctx.step_budget = state.batch_size, plan.step_budget
        results.append(run_methods(ctx, plan.methods))
    # added only once every clip of the batch is done: the video's digest is known at the
    # batch's end, so a checkpoint saved on an error holds whole batches, never half of one
    for (positions, _), ctx, clip_results in zip(batch, contexts, results):
        state.add(ctx, clip_results, positions)
    return contexts


def explain_in_batches(plan, state, feed, checkpointer) -> None:
    """The loop of :func:`~expresso_xai.explain` with several clips per forward+backward
    (``plan.clips_per_batch``): clips are gathered from ``feed`` (a
    :class:`~expresso_xai.explain.prefetch.ClipFeed`, which crops them ahead) until a batch
    is full, run by :func:`_run_batch`, and the checkpoint ticks after each batch (with
    the video's digest up to the batch's last clip).

    Example:
        >>> import expresso_xai as ex
        >>> from expresso_xai.testing import tiny_model
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=32)
        >>> cube = ex.explain(tiny_model(), video, methods=["saliency"], clips_per_batch=3, progress=False)
        >>> cube.sizes["clip"], cube.attrs["passes"]  # 3 clips in one pass, recorded per clip
        (3, '{"saliency": 0, "shared_gradient": 3}')
    """
    def size() -> int:
        if plan.clips_per_batch != "auto":
            return plan.clips_per_batch
        return 1 if plan.clips_measured is None else plan.clips_measured

    def finish(batch, digest) -> None:
        _run_batch(plan, state, batch)
        state.video_digest = digest
        checkpointer.tick(state)
        feed.finished(state.done)

    batch, digest = [], ""
    for positions, clip, digest in feed:
        batch.append((positions, clip_input(plan, clip)))  # preprocessed here, in the model's thread
        if len(batch) >= size():
            finish(batch, digest)
            batch = []
    if batch:
        finish(batch, digest)
