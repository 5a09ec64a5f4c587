"""The engine: :func:`explain` runs explanation methods clip by clip over a video and
pools pixels into facial regions, returning the attribution cube.

It is a short loop over the public clip step (:mod:`.clip`): the arguments are checked
first (:mod:`.plan`), each clip is prepared once (crop, regions, preprocessing, one
checked forward) and given to every method (the gradient-sharing ones share one
forward+backward pass; the perturbation ones batch their forwards), and each frame's
region sums are added to running totals (:mod:`.state`), so memory does not grow with
the video's length unless pixels are kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..clips import iter_clips
from ..crop import FaceCrop
from ..errors import FaceTrackError, ModelError, NoFaceWarning, OutputRangeWarning, VideoLayoutError
from ..faces import FaceTrack, track_faces
from ..regions import label_dtype
from ..video import FrameHasher, Video, load_video
from .batching import fastest_batch, settle_batch_size  # noqa: F401  (fastest_batch: importable from here)
from .batched import explain_in_batches
from .clip import ClipInput, forward_clip, run_methods
from .plan import ExplainPlan, clip_seed, plan_explain
from .prefetch import DEFAULT_PREFETCH, ClipFeed, clip_input, prefetch_for
from .pixel_store import store_for
from .state import ExplainState

log = logging.getLogger(__name__)

def explain(
    model,
    video: Video | str | Path,
    faces: FaceTrack | None = None,
    methods: Iterable[str] = ("gradcam", "integrated_gradients", "occlusion"),
    target=None,
    regions="partition",
    clip_length: int | None = None,
    stride: int = 8,
    keep_pixels: bool | str | Path = False,
    device="cpu",
    progress: bool = True,
    batch_size: int | str = "auto",
    seed: int = 0,
    crop: FaceCrop | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: float = 60.0,
    clips_per_batch: int | str = "auto",
    autocast: bool | str = False,
    prefetch: int = DEFAULT_PREFETCH,
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
            ``crop_matrix(time, 2, 3)``: what the Explorer needs to draw overlays. A path
            (a ``pathlib.Path``, or a str ending in ``.zarr`` such as ``"maps.zarr"``)
            writes the pixel maps to a Zarr store there as the clips finish, so memory
            does not grow with the video; the cube reads them lazily from it
            (``pixel_store``). An existing path is refused (``OutputError``) unless
            the same run made it.
        batch_size: perturbations or path steps per forward; ``"auto"`` measures what is
            fastest on the device once per model, input shape, device and torch version,
            and remembers it in the user's cache folder (``batching``); when occlusion is
            the only method that batches, the first clip's own perturbations are the
            measurement (no probe forwards); the cube's
            ``batch_size_source`` attr says whether it was given, measured or remembered.
        seed: seeds stochastic methods (smoothgrad, shapley); the same seed gives the same cube.
        crop: the face crop; default ``FaceCrop.from_track(faces, size=model.input_size)``.
        checkpoint: a file (``.npz``) where finished clips are saved every
            ``checkpoint_every`` seconds and when the run stops on an error or Ctrl-C;
            running the same call again resumes after the last saved clip and gives the
            same cube. It is deleted once the cube is complete.
        clips_per_batch: clips per forward+backward of the gradient family
            (``batched``): ``"auto"`` is 1 on a CPU and sized by a memory budget on CUDA.
        autocast: ``"bf16"`` runs the shared gradient pass and integrated gradients' steps
            in bfloat16 autocast; integrated gradients checks its completeness against the
            float32 model and warns (``PrecisionWarning``) above its tolerance.
        prefetch: clips decoded and cropped (with their region maps) ahead of the model in a
            background thread (``prefetch``); ``0`` makes each clip when the model asks
            for it. The cube is the same either way; its ``decode_wait_fraction`` attr is the
            share of the loop's time the model waited for its next clip.
        **method_options: per-method options as dicts, e.g.
            ``integrated_gradients={"tolerance": 0.005}, occlusion={"window": 8}``.

    Returns:
        The attribution cube, an ``xarray.Dataset`` (see :mod:`expresso_xai.cube`). A frame's
        attribution is the **mean over the clips that cover it**; within a clip, pixel
        attributions are summed over colour channels and then over each region, so with
        a partition the region sums add up to the clip's total.

    The run is a loop over the public clip step: :func:`plan_explain` checks every
    argument first, then for each clip :func:`~.clip.crop_clip` (decoded and cropped a few
    clips ahead in a background thread: ``prefetch``), :func:`~.clip.forward_clip` and
    :func:`~.clip.run_methods`, whose
    results an :class:`ExplainState` adds up (and checkpoints) until it becomes the cube.

    Raises:
        NoFaceError: no frame has a face. Frames without one get ``face_found=False``.
        MethodError, ModelError, ModelOutputError: unknown method, option or option value,
            a target out of range, a missing Grad-CAM layer, an output of the wrong shape
            or with NaN. Everything but the model's outputs is checked before any work.

    Example:
        >>> import expresso_xai as ex
        >>> from expresso_xai.testing import tiny_model
        >>> model = tiny_model(input_size=(64, 64))
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=24)
        >>> cube = ex.explain(model, video, methods=["gradcam", "saliency"], progress=False)
        >>> cube.attribution.dims, cube.attribution.shape
        (('explainer', 'time', 'region'), (2, 24, 12))
    """

    plan = plan_explain(model, methods, method_options, target=target, regions=regions, clip_length=clip_length,
                        stride=stride, keep_pixels=keep_pixels, device=device, batch_size=batch_size, seed=seed,
                        clips_per_batch=clips_per_batch, autocast=autocast)
    prefetch = prefetch_for(prefetch)
    checkpointer = Checkpointer(checkpoint, checkpoint_every)
    source = VideoSource.open(video, faces, progress)
    crop = _crop_for(plan.model, source.faces, crop)
    state = new_state(plan, len(source.faces))
    state.store = store_for(plan, state, lambda: fingerprint(plan, source, crop))
    checkpointer.restore(state, lambda: fingerprint(plan, source, crop))
    with checkpointer.guard(state), ClipFeed(plan, state, source, crop, prefetch, progress) as feed:
        if plan.batches_clips:  # several clips per pass, or autocast (explain/batched.py)
            explain_in_batches(plan, state, feed, checkpointer)
        else:
            for positions, clip, digest in feed:
                ctx = _prepare(plan, state, clip)
                state.add(ctx, run_methods(ctx, plan.methods), positions)
                state.video_digest = digest
                checkpointer.tick(state)
                feed.finished(state.done)
    checkpointer.remove()
    cube = to_cube(plan, source, crop, state)
    cube.attrs.update(prefetch=prefetch, decode_wait_fraction=feed.wait_fraction)
    return cube


# --- the video and its clips ----------------------------------------------------------


@dataclass(eq=False)
class VideoSource:
    """The video being explained, in memory or streamed from a file, with its face track.

    Attributes:
        video: the :class:`Video`, or the path it is decoded from clip by clip.
        faces: the face track of every frame (tracked here when not given).
        fps, frame_size: the video's rate and ``(height, width)``.
        source: where it came from (a path, or the array's label).
        first_frame: the index of its first frame (non-zero for a slice of a video).
        hasher: hashes the frames as the clips are decoded (for a path, that is the only
            time they are all seen), so the cube records the content it was computed from.
    """

    video: Any
    faces: FaceTrack
    fps: float
    frame_size: tuple[int, int]
    source: str
    first_frame: int
    hasher: FrameHasher = field(default_factory=FrameHasher)
    digests: dict = field(default_factory=dict)  # clips decoded -> hash of their frames

    @classmethod
    def open(cls, video, faces: FaceTrack | None, progress: bool) -> "VideoSource":
        """Read what the run needs to know of ``video`` (a path is not decoded whole)."""
        if isinstance(video, Video):
            first, source, start = video, video.source, video.start
        elif not isinstance(video, (str, Path)):
            raise VideoLayoutError(f"explain takes a Video or the path of a video file, got {type(video).__name__}; "
                                   "wrap frames with ex.Video.from_array(frames, fps=...)")
        else:
            video = Path(video)
            first, source, start = load_video(video, max_frames=1), str(video), 0
        if faces is None:
            faces = track_faces(video, progress=progress)
        elif isinstance(video, Video) and len(faces) != video.n_frames:
            raise FaceTrackError(f"the face track has {len(faces)} frames but {source or 'the video'} has "
                                 f"{video.n_frames}: give the track of this video (e.g. faces[:{video.n_frames}] "
                                 "if it covers more)")
        faces.require_frame((first.height, first.width), str(source or "the video"))
        faces.require_face("explaining the video")
        return cls(video, faces, first.fps, (first.height, first.width), str(source or ""), start)

    def content_hash(self) -> str:
        """SHA-256 of the decoded frames (for a path: of those decoded so far, all of
        them once the run is over)."""
        return self.video.content_hash() if isinstance(self.video, Video) else self.hasher.hexdigest()

    def identity(self) -> str:
        """What names the video in a checkpoint's fingerprint before it is decoded: its
        content for a video in memory, its path for a file (whose content is checked
        clip by clip as a resumed run decodes it again, see :meth:`clips`)."""
        return self.video.content_hash() if isinstance(self.video, Video) else str(self.video)

    def clips(self, plan: ExplainPlan, state: ExplainState):
        """``(positions, clip)`` for every clip the state has not finished, ``positions``
        being the clip's frames in the face track. When resuming, the frames of the
        finished clips are decoded and hashed again: if they differ from those the
        checkpoint was made from (the file was replaced), the run starts afresh. (The
        progress bar is the :class:`ClipFeed`'s, of the clips finished.)"""
        n_frames, skip = len(self.faces), state.done
        # Decoded in chunks of a few clips: a 256-frame chunk of a 640x480 interview is 236 MB, held
        # three times over while it is stacked and joined to the frames left over.
        clips = iter_clips(self.video, plan.clip_length, plan.stride,
                           chunk_size=max(32, 2 * plan.clip_length, plan.stride))
        self.hasher, self.digests = FrameHasher(), {0: FrameHasher().hexdigest()}
        in_memory = isinstance(self.video, Video)  # already hashed whole, and in the fingerprint
        clip = positions = None
        for index, clip in enumerate(clips):
            if index == skip and skip and not in_memory and self.digests[skip] != state.video_digest:
                warnings.warn(f"{self.source}: the video is not the one the checkpoint was made from "
                              "(its frames changed); starting afresh", stacklevel=4)
                state.clear()
                yield from self.clips(plan, state)
                return
            positions = clip.indices - self.first_frame
            if positions.max() >= n_frames:
                raise FaceTrackError(f"the face track has {n_frames} frames but {self.source or 'the video'} "
                                     "has more: give the track of this video")
            if not in_memory:
                self.hasher.update(clip.frames, positions)
                self.digests = {index: self.digests.get(index), index + 1: self.hasher.hexdigest()}
            if index >= skip:
                yield positions, clip
        if clip is not None and int(positions.max()) + 1 < n_frames:
            raise FaceTrackError(f"the face track has {n_frames} frames but {self.source or 'the video'} has "
                                 f"{int(positions.max()) + 1}: give the track of this video")

    def digest_after(self, n_clips: int) -> str:
        """The hash of the frames of the first ``n_clips`` clips (kept for the last two)."""
        return self.digests.get(n_clips) or ""

    def digest_decoded(self) -> str:
        """What :meth:`digest_after` gives once the clip :meth:`clips` gave last is finished
        (read as the clip is given: a background thread may decode further before then)."""
        latest = max(self.digests)
        return self.digest_after(latest) if latest else ""

    def n_clips(self, plan: ExplainPlan) -> int:
        """How many clips :meth:`clips` slides over the whole video."""
        return max(1, -(-max(len(self.faces) - plan.clip_length, 0) // plan.stride) + 1)


def _crop_for(model, faces: FaceTrack, crop: FaceCrop | None) -> FaceCrop:
    crop = FaceCrop.from_track(faces, size=model.input_size) if crop is None else crop
    if crop.size != model.input_size:
        raise ModelError(f"crop gives {crop.size} frames but {model.name} takes {model.input_size}")
    return crop


def new_state(plan: ExplainPlan, n_frames: int) -> ExplainState:
    """Empty running totals for a run of ``plan`` over ``n_frames`` frames."""
    pixel_size = plan.model.input_size if plan.keep_pixels else None
    dtype = label_dtype(plan.scheme.encoding)
    state = ExplainState.empty(plan.methods, n_frames, len(plan.scheme.names), pixel_size, dtype,
                               window=plan.clip_length if plan.pixel_store is not None else None)
    state.batch_size = plan.batch_size
    state.batch_source = "given" if plan.batch_size is not None else ""
    return state


def _prepare(plan: ExplainPlan, state: ExplainState, clip: ClipInput):
    """The clip step for one clip of the run, cropped ahead (by the :class:`ClipFeed`, or
    :func:`clip_input` for a clip of source frames); measures the batch size on the first
    clip that needs one (kept in the state, so a resumed run batches the same way)."""
    clip = clip_input(plan, clip)
    ctx = forward_clip(plan.model, clip, target=plan.target, device=plan.device,
                       seed=clip_seed(plan.seed, state.done), batch_size=state.batch_size,
                       gradient_layer=plan.layer, keep_graph=plan.shares_gradient)
    settle_batch_size(plan, state, ctx.x)
    ctx.batch_size = state.batch_size
    return ctx


# --- checkpoints ----------------------------------------------------------------------


def fingerprint(plan: ExplainPlan, source: VideoSource, crop: FaceCrop) -> str:
    """What must match for a checkpoint to be resumed: every input of the run."""
    digest = hashlib.sha256()
    for array in (source.faces.landmarks, source.faces.face_found, crop.matrices):
        digest.update(np.ascontiguousarray(array).tobytes())
    return json.dumps({
        "model": plan.model.weights_hash(), "video": source.identity(),
        "faces_and_crop": digest.hexdigest(), "methods": {m: method.params() for m, method in plan.methods.items()},
        "scheme": plan.scheme.name, "clip_length": plan.clip_length, "stride": plan.stride, "seed": plan.seed,
        "target": str(plan.target), "keep_pixels": str(plan.pixel_store) if plan.pixel_store else plan.keep_pixels,
        "autocast": str(plan.autocast),
        "batch_size": str(plan.batch_size or "auto"),
    }, sort_keys=True, default=str)


class Checkpointer:
    """Saves a run's state to ``path`` every ``every`` seconds and when the run stops on
    an error or Ctrl-C; restores it when the same run starts again; removes it once the
    cube is complete. Does nothing when ``path`` is ``None``."""

    def __init__(self, path: str | Path | None, every: float = 60.0):
        self.path = None if path is None else Path(path)
        self.every = float(every)
        self.fingerprint = ""
        self.saved_at, self.saved_done = time.perf_counter(), 0

    def restore(self, state: ExplainState, fingerprint) -> None:
        """Resume ``state`` from the file when it was made by the same run; ``fingerprint``
        is the run's fingerprint or a function returning it (called only when there is a
        file: hashing the model's weights costs a tenth of an r3d_18 clip)."""
        if self.path is None:
            return
        self.fingerprint = fingerprint() if callable(fingerprint) else fingerprint
        if state.load(self.path, self.fingerprint):
            self.saved_done = state.done

    def save(self, state: ExplainState) -> None:
        if self.path is not None and state.done > self.saved_done:
            state.save(self.path, self.fingerprint)
            self.saved_done = state.done
        self.saved_at = time.perf_counter()

    def tick(self, state: ExplainState) -> None:
        if time.perf_counter() - self.saved_at > self.every:
            self.save(state)

    @contextmanager
    def guard(self, state: ExplainState):
        try:
            yield
        except BaseException:
            self.save(state)
            raise

    def remove(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()


# --- the cube -------------------------------------------------------------------------


def run_attrs(plan: ExplainPlan, source: VideoSource, crop: FaceCrop, state: ExplainState) -> dict:
    """The cube's provenance: enough to reproduce it."""
    model = plan.model
    return {
        "model_name": model.name,
        "model_hash": model.weights_hash(),
        "model_weights": model.weights_source,
        "model_layout": model.layout,
        "model_output_range": None if model.output_range is None else list(model.output_range),
        "model_input_size": list(model.input_size),
        "gradcam_layer": model.gradcam_layer_name if plan.layer is not None else "",
        "video_source": source.source,
        "video_hash": source.content_hash(),
        "video_n_frames": len(source.faces),  # the frames video_hash covers, from time[0]
        "faces_hash": source.faces.landmarks_hash(),
        "video_fps": float(source.fps),
        "video_frame_size": list(source.frame_size),
        "region_scheme": plan.scheme.name,
        "clip_length": plan.clip_length,
        "stride": plan.stride,
        "seed": plan.seed,
        "batch_size": int(state.batch_size or 1),
        # "measuring" left at the end: each clip had too few perturbations to settle one size
        "batch_size_source": {"measuring": "measured per clip", "": "unused"}.get(state.batch_source,
                                                                                 state.batch_source),
        "clips_per_batch": int(plan.clips_measured or (plan.clips_per_batch if plan.clips_per_batch != "auto" else 1)),
        "autocast": plan.autocast or "",
        "device": str(plan.device),
        "aggregation": "frame attribution = mean over the clips covering the frame",
        "methods": {name: method.params() for name, method in plan.methods.items()},
        "passes": {**state.passes, "shared_gradient": state.shared_passes},
        "crop": crop.params,
    }


def to_cube(plan: ExplainPlan, source: VideoSource, crop: FaceCrop, state: ExplainState):
    """The attribution cube of a finished run."""
    from ..cube import make_cube
    from ..cube.views import range_caution

    attribution, pixels, prediction = state.averages()
    faces, n_frames = source.faces, len(source.faces)
    missing = int((~faces.face_found).sum())
    if missing and missing < n_frames:
        warnings.warn(f"no face in {missing} of {n_frames} frames; they are marked face_found=False "
                      "and all their pixels count as background", NoFaceWarning, stacklevel=3)
    target = plan.target
    cube = make_cube(
        attribution, explainers=list(plan.methods), time=source.first_frame + np.arange(n_frames),
        seconds=np.asarray(state.timestamps, dtype=np.float64), regions=list(plan.scheme.names),
        region_area=state.region_area, face_found=faces.face_found, prediction=prediction,
        clip_start=np.asarray(state.clip_starts), clip_prediction=np.asarray(state.clip_predictions, np.float32),
        target="regression" if target is None else ("predicted" if target == "predicted" else int(target)),
        pixels=pixels, region_label=None if state.store else state.labels,  # a store's: attached below
        crop_matrix=crop.matrices if plan.keep_pixels else None,
        clip_stats={"clip_target": np.asarray(state.clip_targets), **_range_flags(plan.model, state),
                    **{key: np.asarray(values) for key, values in state.clip_stats.items()}},
        attrs=run_attrs(plan, source, crop, state),
    )
    if state.store is not None:
        cube = state.store.attach(cube)
    caution = range_caution(cube)
    if caution:
        warnings.warn(caution, OutputRangeWarning, stacklevel=3)
    return cube


def _range_flags(model, state: ExplainState) -> dict:
    """``{OUT_OF_RANGE: (clip,) bool}`` when the model declares an output range, else ``{}``."""
    from ..cube.views import OUT_OF_RANGE

    if model.output_range is None:
        return {}
    low, high = model.output_range
    predictions = np.asarray(state.clip_predictions, dtype=np.float64)
    return {OUT_OF_RANGE: (predictions < low) | (predictions > high)}
