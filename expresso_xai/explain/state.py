"""The running totals of an explanation run: what the finished clips added up to, and
the checkpoint that saves them so an interrupted run resumes where it stopped.

Totals are sums over the clips covering each frame; :meth:`ExplainState.averages` turns
them into the per-frame means the cube stores. A clip is added only once every method
has finished on it, so a checkpoint never holds half a clip.
"""

from __future__ import annotations

import json
import logging
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import atomic_path
from .base import ClipContext, MethodResult

log = logging.getLogger(__name__)

#: the arrays of the state (``None`` when pixels are not kept)
ARRAYS = ("totals", "covered", "prediction_sum", "region_area", "timestamps", "pixels", "labels")
#: the per-clip lists and counters, saved as JSON
COUNTERS = ("done", "clip_starts", "clip_predictions", "clip_targets", "passes", "shared_passes", "batch_size",
            "batch_source", "video_digest", "pixel_base")


@dataclass(eq=False)
class ExplainState:
    """What the clips finished so far add up to.

    Attributes:
        methods: the methods' names, in the order of ``totals``' first axis.
        totals: ``(M, T, R)`` float64 region attribution summed over the covering clips.
        covered: ``(T,)`` how many clips covered each frame.
        prediction_sum: ``(T,)`` the covering clips' predictions, summed.
        region_area: ``(T, R)`` pixels per region (the same in every covering clip).
        timestamps: ``(T,)`` seconds of each frame (NaN until a clip covers it).
        pixels: ``(M, T, H, W)`` summed pixel maps, when pixels are kept; with a pixel
            store, ``(M, window, H, W)``: only the frames from ``pixel_base`` on, which
            the clips still to come can add to (earlier ones are final and in the store).
        labels: ``(T, H, W)`` each pixel's region, when pixels are kept (``(window, H, W)``
            with a pixel store).
        pixel_base: the first frame of ``pixels`` and ``labels`` (0 without a store).
        store: the ``pixel_store.PixelStore`` final frames go to, or ``None``.
        done: clips finished, in the order the video gives them.
        clip_starts, clip_predictions, clip_targets: one entry per finished clip.
        clip_stats: ``{method_stat: [one value per clip]}`` (e.g. IG's steps).
        passes: forward(+backward) passes run by each method.
        shared_passes: clips whose gradient methods shared one pass.
        batch_size: perturbations per forward, once measured (kept so a resumed run
            batches exactly like the first).
        batch_source: where it came from: ``"given"`` (``batch_size=``), ``"measured"``,
            ``"remembered"`` or, until the first clip's occlusion has found it on its real
            perturbations, ``"measuring"`` (``expresso_xai.explain.batching``; the cube says
            ``"measured per clip"`` when no clip had enough to settle it), ``""`` when unused.
        video_digest: the hash of the frames the finished clips were decoded from, so a
            resumed run can tell that the file was replaced in between.

    Example:
        >>> state = ExplainState.empty(["saliency"], n_frames=4, n_regions=2)
        >>> state.totals.shape, state.done
        ((1, 4, 2), 0)
    """

    methods: list
    totals: np.ndarray
    covered: np.ndarray
    prediction_sum: np.ndarray
    region_area: np.ndarray
    timestamps: np.ndarray
    pixels: np.ndarray | None = None
    labels: np.ndarray | None = None
    done: int = 0
    clip_starts: list = field(default_factory=list)
    clip_predictions: list = field(default_factory=list)
    clip_targets: list = field(default_factory=list)
    clip_stats: dict = field(default_factory=dict)
    passes: dict = field(default_factory=dict)
    shared_passes: int = 0
    batch_size: int | None = None
    batch_source: str = ""
    video_digest: str = ""
    pixel_base: int = 0
    store: object = None

    @classmethod
    def empty(cls, methods, n_frames: int, n_regions: int, pixel_size=None, label_dtype=np.uint8,
              window: int | None = None) -> "ExplainState":
        """Zero totals for ``n_frames`` frames; ``pixel_size=(H, W)`` also keeps pixel maps,
        of every frame, or of ``window`` frames when they go to a ``store`` as they
        become final."""
        methods = list(methods)
        keep = pixel_size is not None
        held = n_frames if window is None else min(window, n_frames)
        return cls(
            methods=methods,
            totals=np.zeros((len(methods), n_frames, n_regions), np.float64),
            covered=np.zeros(n_frames, np.int64),
            prediction_sum=np.zeros(n_frames, np.float64),
            region_area=np.zeros((n_frames, n_regions), np.int64),
            timestamps=np.full(n_frames, np.nan),
            pixels=np.zeros((len(methods), held, *pixel_size), np.float32) if keep else None,
            labels=np.zeros((held, *pixel_size), label_dtype) if keep else None,
            passes=dict.fromkeys(methods, 0),
        )

    def clear(self) -> None:
        """Forget every clip (a resumed run found that its video changed)."""
        fresh = ExplainState.empty(self.methods, 1, 1)
        for name in ARRAYS:
            if getattr(self, name) is not None:
                getattr(self, name)[...] = np.nan if name == "timestamps" else 0
        for name in ("done", "clip_starts", "clip_predictions", "clip_targets", "clip_stats", "passes", "shared_passes",
                     "pixel_base"):
            setattr(self, name, getattr(fresh, name))

    def add(self, ctx: ClipContext, results: dict[str, MethodResult], positions: np.ndarray) -> None:
        """Add one finished clip: ``results`` of every method on ``ctx``, whose frames sit
        at ``positions`` of the run's frames."""
        unique, first, inverse, copies = np.unique(positions, return_index=True, return_inverse=True,
                                                   return_counts=True)

        def per_frame(values):
            """Values of the clip's distinct frames: a frame repeated to pad a short video
            gets the mean of its copies, not their sum."""
            if len(unique) == len(positions):
                return values[first]
            out = np.zeros((len(unique), *values.shape[1:]), values.dtype)
            np.add.at(out, inverse, values)
            return out / copies.reshape(-1, *[1] * (values.ndim - 1))

        if self.store is not None:
            self.flush(int(unique[0]))
        rows = unique - self.pixel_base
        for m, name in enumerate(self.methods):
            result = results[name]
            self.passes[name] += result.passes
            self.totals[m][unique] += per_frame(result.region_time)
            if self.pixels is not None and result.pixel_map is not None:
                self.pixels[m][rows] += per_frame(result.pixel_map).astype(np.float32)
            for key, value in result.stats.items():
                self.clip_stats.setdefault(f"{name}_{key}", []).append(value)
        self.shared_passes += int("gradients" in ctx.cache)
        self.covered[unique] += 1
        self.prediction_sum[unique] += ctx.prediction
        self.region_area[unique] = ctx.region_map.area().values[first]
        if ctx.timestamps is not None:
            self.timestamps[unique] = np.asarray(ctx.timestamps)[first]
        if self.labels is not None:
            self.labels[rows] = ctx.region_map.labels[first]
        self.clip_starts.append(int(ctx.region_map.frame_indices[0]))
        self.clip_predictions.append(ctx.prediction)
        self.clip_targets.append(ctx.target)
        self.done += 1

    def absorb(self, later: "ExplainState") -> None:
        """Add the clips of ``later``, a state of the same run that explained the clips
        after this one's (a slice of a long video), as if they had been added here.

        Example:
            >>> a = ExplainState.empty(["saliency"], n_frames=4, n_regions=2)
            >>> b = ExplainState.empty(["saliency"], n_frames=4, n_regions=2)
            >>> b.totals[0, 2:] = 1.0; b.covered[2:] = 1; b.done = 3
            >>> a.absorb(b); a.totals[0, :, 0].tolist(), a.done
            ([0.0, 0.0, 1.0, 1.0], 3)
        """
        if self.store is not None or later.store is not None:
            from ..errors import ExpressoError

            raise ExpressoError("a run whose pixel maps go to a store cannot be split into slices")
        covered = later.covered > 0
        for name in ("totals", "covered", "prediction_sum", "pixels"):
            if getattr(self, name) is not None:
                getattr(self, name)[...] += getattr(later, name)
        for name in ("region_area", "timestamps", "labels"):
            if getattr(self, name) is not None:
                getattr(self, name)[covered] = getattr(later, name)[covered]
        for name in ("clip_starts", "clip_predictions", "clip_targets"):
            getattr(self, name).extend(getattr(later, name))
        for key, values in later.clip_stats.items():
            self.clip_stats.setdefault(key, []).extend(values)
        for name, count in later.passes.items():
            self.passes[name] = self.passes.get(name, 0) + count
        self.shared_passes += later.shared_passes
        self.batch_size = self.batch_size or later.batch_size
        self.batch_source = self.batch_source or later.batch_source
        self.done = later.done

    def averages(self):
        """``(attribution (M, T, R) float32, pixels (M, T, H, W) or None, prediction (T,))``:
        each frame's mean over the clips that covered it. Pixel maps are divided in
        place (they can be large), so call this once, when the run is over."""
        from ..errors import ExpressoError

        counts = self.covered.astype(np.float64)
        if (counts == 0).any():
            raise ExpressoError(f"{int((counts == 0).sum())} frames were not covered by any clip; "
                                "the face track and the video must have the same frames")
        attribution = (self.totals / counts[None, :, None]).astype(np.float32)
        if self.store is not None:
            self.flush(len(counts))
            return attribution, None, (self.prediction_sum / counts).astype(np.float32)
        if self.pixels is not None:
            self.pixels /= counts[None, :, None, None]
        return attribution, self.pixels, (self.prediction_sum / counts).astype(np.float32)

    def flush(self, upto: int) -> None:
        """Write the frames before ``upto`` (final: no clip still to come covers them) to
        the store, each divided by its number of covering clips as :meth:`averages` does,
        and slide the window on to ``upto``."""
        count = min(upto, len(self.covered)) - self.pixel_base
        if count <= 0:
            return
        base, window = self.pixel_base, self.pixels.shape[1]
        final = min(count, window)  # more than the window: frames no clip covered (averages refuses them)
        counts = self.covered[base:base + final].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            # float32 / float64 -> float32: the very operation of the in-memory `pixels /= counts`
            maps = (self.pixels[:, :final] / counts[None, :, None, None]).astype(np.float32)
        self.store.write(base, maps, self.labels[:final])
        self.pixels[:, :window - final] = self.pixels[:, final:]
        self.pixels[:, window - final:] = 0
        self.labels[:window - final] = self.labels[final:]
        self.labels[window - final:] = 0
        self.pixel_base = base + count

    # --- checkpoint ---------------------------------------------------------------------

    def save(self, path: str | Path, fingerprint: str) -> None:
        """Write the state to ``path`` (``.npz``) atomically: a crash while saving keeps
        the previous checkpoint whole."""
        path = Path(path)
        arrays = {f"state_{name}": getattr(self, name) for name in ARRAYS if getattr(self, name) is not None}
        arrays.update({f"stat_{key}": np.asarray(values) for key, values in self.clip_stats.items()})
        meta = {"fingerprint": fingerprint, **{name: getattr(self, name) for name in COUNTERS}}
        with atomic_path(path) as partial:
            np.savez(partial, meta=np.array(json.dumps(meta)), **arrays)
        log.info("checkpoint %s: %d clips done", path, self.done)

    def load(self, path: str | Path, fingerprint: str) -> bool:
        """Restore a checkpoint saved by the same run into this (empty) state. Returns
        False, with a warning, when the file was saved by another run or cannot be read;
        the run then starts afresh and overwrites it."""
        path = Path(path)
        if not path.exists():
            return False
        try:
            with np.load(path, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                if meta["fingerprint"] != fingerprint:
                    warnings.warn(f"{path} was saved by a run with other inputs or settings; starting afresh "
                                  "(it will be overwritten)", stacklevel=3)
                    return False
                arrays = {name: stored[f"state_{name}"] for name in ARRAYS if getattr(self, name) is not None}
                stats = {name[5:]: stored[name].tolist() for name in stored.files if name.startswith("stat_")}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc}); starting afresh",
                          stacklevel=3)
            return False
        for name, array in arrays.items():
            getattr(self, name)[...] = array
        for name in COUNTERS:
            setattr(self, name, meta.get(name, getattr(self, name)))
        self.clip_stats = stats
        log.info("resuming %s after %d clips", path, self.done)
        return True
