"""An evaluation run: the cube, the model and the video it was computed from, checked to
belong together, and the cube's clips prepared again with the engine's own clip step
(:func:`~expresso_xai.explain.prepare_clip`), so every metric perturbs or re-explains the
very input the cube's attribution was computed from.

:func:`evaluate` is a loop: every metric group sees each evaluated clip once
(:meth:`Metric.add`), then gives its scores (:meth:`Metric.finish`), which
:func:`~expresso_xai.evaluate.dataset.build_dataset` gathers into one ``xarray.Dataset``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..clips import iter_clips
from ..crop import FaceCrop
from ..errors import EvaluationError, ExpressoError
from ..faces import FaceTrack, track_faces
from ..regions import get_scheme
from ..video import FrameHasher, Video, load_video
from .base import FILLS, METRICS, Metric, check_metric_names

#: what ``metrics=None`` evaluates (the localisation ones only when ``truth`` is given)
DEFAULT_METRICS = ("deletion", "insertion", "random", "mprt", "pointing_game", "relevance_mass")


def _whole(value, name: str, least: int) -> int:
    from ..explain.plan import _whole as whole

    return whole(value, name, least, EvaluationError)


@dataclass(eq=False)
class EvalClip:
    """One clip of the cube, prepared again for evaluation.

    Attributes:
        index: the clip's number in the cube (its ``clip`` coordinate).
        positions: ``(L,)`` the clip's frames as positions on the cube's ``time`` axis.
        frames: ``(L, H, W, 3)`` uint8 source frames.
        faces, crop: the clip's face track and face crop.
        ctx: the :class:`~expresso_xai.explain.ClipContext` for the run's model.
        attribution: ``{explainer: (L, R) float64}`` the cube's attribution at the
            clip's frames (what deletion and insertion order units by).
        n_valid: real frames (the rest repeat the last one, in a short video).
        cache: what metric groups share for this clip (units, fills, re-explanations).
    """

    index: int
    positions: np.ndarray
    frames: np.ndarray
    faces: FaceTrack
    crop: FaceCrop
    ctx: Any
    attribution: dict[str, np.ndarray]
    n_valid: int
    run: "EvaluationRun"
    cache: dict = field(default_factory=dict)

    def prepare(self, model=None, frames: np.ndarray | None = None, order: np.ndarray | None = None):
        """The clip step again, keeping the clip's target, seed and geometry, with another
        model (a randomised copy), other frames (noisy ones), or the frames in another
        ``order`` (positions into the clip: shuffled, or one frame repeated), the face
        track and crop reordered with them so the regions stay on the face."""
        from ..explain import prepare_clip

        run = self.run
        model = run.model if model is None else model
        frames = self.frames if frames is None else frames
        faces, crop, indices = self.faces, self.crop, self.ctx.region_map.frame_indices
        timestamps = self.ctx.timestamps
        if order is not None:
            order = np.asarray(order)
            frames, faces, crop, indices = frames[order], faces[order], crop[order], indices[order]
            timestamps = None if timestamps is None else np.asarray(timestamps)[order]
        return prepare_clip(model, frames, faces, crop, run.scheme, target=int(self.ctx.target),
                            frame_indices=indices, timestamps=timestamps, device=run.device, seed=self.ctx.seed,
                            batch_size=run.batch_size, gradient_layer=run.layer_of(model))

    def explained(self) -> dict:
        """The cube's methods run again on this clip with the run's model
        (``{explainer: MethodResult}``, cached): what sanity and robustness checks compare
        their re-explanations with."""
        if "explained" not in self.cache:
            self.cache["explained"] = self.run.explain(self.ctx)
        return self.cache["explained"]

    def rng(self, purpose: str) -> np.random.Generator:
        """A generator seeded by the run's seed, this clip and ``purpose``, so each metric's
        random draws are reproducible and independent of which other metrics run."""
        tag = int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:4], "little")
        return np.random.default_rng([self.run.seed, self.index, tag])


@dataclass(eq=False)
class EvaluationRun:
    """A checked evaluation: what every metric group reads.

    Attributes:
        model: the :class:`~expresso_xai.models.VideoModel` the cube was computed with
            (``None`` when only cube-level metrics run).
        cube: the attribution cube.
        video: the :class:`Video` or path (``None`` when only cube-level metrics run).
        faces, crop: the face track and crop of the whole video.
        scheme: the cube's region scheme.
        metrics: the metric group names, in order.
        truth: boolean ``DataArray(time, region)`` or ``None``.
        window, fill, steps, n_random, seed, max_clips, batch_size, device, progress: as
            given to :func:`~expresso_xai.evaluate.evaluate`.
        clip_numbers: the cube's clips that are evaluated.
    """

    model: Any
    cube: Any
    video: Any
    faces: FaceTrack | None
    crop: FaceCrop | None
    scheme: Any
    metrics: list[str]
    truth: Any
    window: int
    fill: str
    steps: int | None
    n_random: int
    seed: int
    max_clips: int | None
    batch_size: int | None
    device: Any
    progress: bool
    thresholds: dict = field(default_factory=dict)
    clip_numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _methods: dict | None = None
    _layers: dict = field(default_factory=dict)
    _pinned: dict = field(default_factory=dict)  # integrated gradients at each recorded number of steps

    @property
    def explainers(self) -> tuple[str, ...]:
        return tuple(str(e) for e in self.cube.explainer.values)

    @property
    def needs_clips(self) -> bool:
        return any(METRICS[name].needs_clips for name in self.metrics)

    @property
    def methods(self) -> dict:
        """The cube's methods with the options its attrs record (made once)."""
        if self._methods is None:
            from ..explain import get_method

            methods = {}
            for name in self.explainers:
                try:
                    methods[name] = get_method(name, self.cube.xai.params(name))
                except ExpressoError as exc:
                    raise EvaluationError(f"cannot run {name} again with the options the cube records: {exc}") from None
            self._methods = methods
        return self._methods

    def layer_of(self, model):
        """The Grad-CAM layer of ``model`` (a randomised copy has its own), or ``None``."""
        if model is None:
            return None
        key = id(model.module)
        # keep the module with its layer: a freed copy's id can be reused by a new one
        if key not in self._layers or self._layers[key][0] is not model.module:
            from ..explain.clip import gradient_layer

            methods = self.methods if any(METRICS[m].needs_methods for m in self.metrics) else {}
            self._layers[key] = (model.module, gradient_layer(model, methods, self.device) if methods else None)
        return self._layers[key][1]

    def explain(self, ctx) -> dict:
        """Run the cube's methods on a prepared clip of one of the cube's clips (of any
        model: a randomised copy, shuffled or noisy frames).

        Integrated gradients chooses its number of steps per clip until its completeness
        error is small; a re-explanation uses the steps the cube records for that clip
        (``integrated_gradients_steps``), so the comparison is at the same budget and a
        randomised model, which rarely converges, does not cost up to ``max_steps`` a
        clip."""
        from ..explain import run_methods

        if ctx.gradient_layer is None:
            ctx.gradient_layer = self.layer_of(ctx.model)
        return run_methods(ctx, self._methods_for(ctx.seed))

    def _methods_for(self, seed: int) -> dict:
        from ..explain import get_method

        methods = self.methods
        stat = "integrated_gradients_steps"
        ig = methods.get("integrated_gradients")
        if ig is None or ig.options.get("n_steps") is not None or stat not in self.cube:
            return methods
        number = seed - clip_seed(self.cube.attrs, 0)
        if not 0 <= number < self.cube.sizes["clip"]:
            return methods
        steps = int(self.cube[stat].values[number])
        if steps not in self._pinned:
            self._pinned[steps] = get_method("integrated_gradients", {**ig.options, "n_steps": steps})
        return {**methods, "integrated_gradients": self._pinned[steps]}

    def attribution_at(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        values = np.asarray(self.cube.attribution.values, dtype=np.float64)[:, positions]
        return {name: values[i] for i, name in enumerate(self.explainers)}

    def clips(self) -> Iterator[EvalClip]:
        """The evaluated clips, prepared with the run's model, in order; the video's
        frames are hashed as they are decoded and checked against the cube's at the end."""
        from tqdm.auto import tqdm

        from ..explain import fastest_batch, prepare_clip

        attrs = self.cube.attrs
        first = int(self.cube.time.values[0])
        wanted = set(int(n) for n in self.clip_numbers)
        targets = self.cube.clip_target.values if "clip_target" in self.cube else None
        hasher = FrameHasher()
        clips = iter_clips(self.video, int(attrs["clip_length"]), int(attrs["stride"]))
        bar = tqdm(total=len(wanted), desc="evaluate", unit="clip", disable=not self.progress, leave=False)
        try:
            for number, clip in enumerate(clips):
                positions = clip.indices - first
                hasher.update(clip.frames, positions)
                if number not in wanted:
                    continue
                target = None if targets is None else int(targets[number])
                ctx = prepare_clip(self.model, clip.frames, self.faces[positions], self.crop[positions], self.scheme,
                                   target=target, frame_indices=clip.indices, timestamps=clip.timestamps,
                                   device=self.device, seed=clip_seed(attrs, number),
                                   batch_size=self.batch_size, gradient_layer=self.layer_of(self.model))
                if self.batch_size is None:
                    self.batch_size = ctx.batch_size = fastest_batch(self.model, ctx.x)
                yield EvalClip(number, positions, clip.frames, self.faces[positions], self.crop[positions], ctx,
                               self.attribution_at(positions), int(clip.n_valid), self)
                bar.update(1)
        finally:
            bar.close()
        if not isinstance(self.video, Video):
            _check_content(hasher.hexdigest(), attrs, str(self.video))


def clip_seed(attrs, number: int) -> int:
    """The seed :func:`~expresso_xai.explain` gave clip ``number`` (re-explanations keep it)."""
    from ..explain.plan import clip_seed as seed_of_clip

    return seed_of_clip(int(attrs.get("seed", 0)), number)


def _check_content(digest: str, attrs, source: str) -> None:
    recorded = str(attrs.get("video_hash", ""))
    if recorded and digest != recorded:
        raise EvaluationError(f"{source} is not the video the cube was computed from: its frames hash to "
                              f"{digest[:12]}…, the cube records {recorded[:12]}…")


def _check_truth(truth, cube):
    """A boolean ``DataArray(time, region)`` on the cube's frames and regions."""
    import xarray as xr

    if truth is None:
        return None
    if not isinstance(truth, xr.DataArray) or set(truth.dims) != {"time", "region"}:
        raise EvaluationError("truth must be a boolean xarray.DataArray with dims (time, region); "
                              "build one with ex.samples.truth_mask(json_path, cube)")
    if truth.dtype != bool:
        raise EvaluationError(f"truth must be boolean, got dtype {truth.dtype}")
    missing = set(cube.region.values.tolist()) ^ set(truth.region.values.tolist())
    if missing:
        raise EvaluationError(f"truth regions differ from the cube's: {sorted(map(str, missing))}")
    if truth.sizes["time"] != cube.sizes["time"] or not np.array_equal(truth.time.values, cube.time.values):
        raise EvaluationError(f"truth covers frames {truth.time.values[:1].tolist()}… ({truth.sizes['time']} frames), "
                              f"the cube {cube.time.values[:1].tolist()}… ({cube.sizes['time']} frames)")
    if not bool(truth.any()):
        raise EvaluationError("truth marks no frame and region: localisation needs at least one true unit")
    return truth.transpose("time", "region").sel(region=cube.region.values)


def _metric_names(metrics, truth) -> list[str]:
    if metrics is None:
        names = [name for name in DEFAULT_METRICS if truth is not None or not METRICS[name].needs_truth]
        return check_metric_names(names)
    names = check_metric_names(metrics)
    needing = [name for name in names if METRICS[name].needs_truth]
    if needing and truth is None:
        raise EvaluationError(f"{needing[0]} needs truth=: a boolean DataArray(time, region) of where the "
                              "signal is (ex.samples.truth_mask(json_path, cube) for a sample)")
    return names


def _check_model(model, cube, device):
    import torch

    from ..explain.plan import as_video_model

    model = as_video_model(model)
    recorded = str(cube.attrs.get("model_hash", ""))
    actual = model.weights_hash()
    if recorded and recorded != actual:
        raise EvaluationError(f"the cube was computed with {cube.attrs.get('model_name', 'a model')} "
                              f"(weights {recorded[:12]}…), not with {model.name} (weights {actual[:12]}…)")
    model.module.eval().to(torch.device(device))
    return model


def _faces_for(video, faces, cube, progress):
    if faces is None:
        faces = track_faces(video, progress=progress)
    if len(faces) != cube.sizes["time"]:
        raise EvaluationError(f"the face track has {len(faces)} frames, the cube {cube.sizes['time']}")
    recorded = str(cube.attrs.get("faces_hash", ""))
    if not np.array_equal(faces.face_found, cube.face_found.values) or (recorded and
                                                                        recorded != faces.landmarks_hash()):
        raise EvaluationError("the face track is not the one the cube was explained with (other landmarks"
                              f"{'' if recorded else ' or other frames with a face'}); pass faces= that track, "
                              "e.g. the OpenFace CSV it was explained with")
    return faces


def _chosen_clips(cube, max_clips) -> np.ndarray:
    numbers = np.arange(cube.sizes.get("clip", 0))
    if max_clips is None or max_clips >= len(numbers):
        return numbers
    return np.unique(np.round(np.linspace(0, len(numbers) - 1, max_clips)).astype(np.int64))


def open_run(model, video, cube, *, faces=None, metrics=None, truth=None, window=4, fill="blur", steps=None,
             n_random=8, seed=0, max_clips=None, batch_size=None, device="cpu", progress=True,
             thresholds=None) -> EvaluationRun:
    """Check every argument of :func:`~expresso_xai.evaluate.evaluate` (all before any
    model work) and make the run."""
    from ..cube import check_cube

    check_cube(cube)
    truth = _check_truth(truth, cube)
    names = _metric_names(metrics, truth)
    if fill not in FILLS:
        raise EvaluationError(f"fill={fill!r}: use one of {list(FILLS)}")
    window = _whole(window, "window", 1)
    steps = None if steps is None else _whole(steps, "steps", 1)
    n_random = _whole(n_random, "n_random", 2)
    seed = _whole(seed, "seed", 0)
    max_clips = None if max_clips is None else _whole(max_clips, "max_clips", 1)
    batch_size = None if batch_size is None else _whole(batch_size, "batch_size", 1)
    scheme = get_scheme(str(cube.attrs.get("region_scheme", "partition")))
    units = [name for name in names if METRICS[name].needs_units]
    if units and not scheme.exclusive:
        raise EvaluationError(f"{units[0]} removes region × time units, which needs non-overlapping regions; "
                              f"the cube's scheme {scheme.name!r} overlaps (explain with regions='partition')")
    run = EvaluationRun(None, cube, None, None, None, scheme, names, truth, window, fill, steps, n_random, seed,
                        max_clips, batch_size, device, bool(progress), dict(thresholds or {}))
    if not run.needs_clips:
        return run
    if "clip_length" not in cube.attrs or "stride" not in cube.attrs:
        raise EvaluationError("the cube does not record its clip_length and stride; evaluate cubes made by ex.explain")
    if window > int(cube.attrs["clip_length"]):
        raise EvaluationError(f"window={window} is longer than the cube's clips ({cube.attrs['clip_length']} frames)")
    if model is None or video is None:
        raise EvaluationError(f"{[n for n in names if METRICS[n].needs_clips][0]} runs the model on the video: "
                              "pass the model and the video the cube was computed from")
    run.model = _check_model(model, cube, device)
    if any(METRICS[name].needs_methods for name in names):
        run.methods  # noqa: B018 - read back every method's options now, not after the first clip
    if isinstance(video, Video):
        _check_content(video.content_hash(), cube.attrs, str(video.source or "the video"))
    else:
        video = Path(video)
        load_video(video, max_frames=1)  # a missing or unreadable file fails here, typed
    run.video = video
    run.faces = _faces_for(video, faces, cube, progress)
    run.crop = FaceCrop.from_track(run.faces, size=run.model.input_size, **_crop_params(cube))
    run.clip_numbers = _chosen_clips(cube, max_clips)
    return run


def _crop_params(cube) -> dict:
    import json

    params = cube.attrs.get("crop", "{}")
    params = json.loads(params) if isinstance(params, str) else dict(params)
    return {key: params[key] for key in ("margin", "smoothing") if key in params}


def run_metrics(run: EvaluationRun) -> list:
    """Every metric group of ``run`` over every evaluated clip: their results, in order."""
    groups: list[Metric] = [METRICS[name](run) for name in run.metrics]
    if run.needs_clips:
        clipwise = [group for group in groups if group.needs_clips]
        for clip in run.clips():
            for group in clipwise:
                group.add(clip)
    return [group.finish() for group in groups]
