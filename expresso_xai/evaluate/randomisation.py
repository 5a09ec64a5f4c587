"""Sanity checks: model-parameter randomisation (Adebayo et al. 2018) and the
data-independence checks for video (frames shuffled within a clip, a static clip), with
the similarity measures they (and :mod:`.robustness`) compare explanations by.

Explanations are compared as **attribution density** per region × frame (the region's
attribution divided by its area at the model's input), not as the cube's region sums:
a region's sum grows with its size, so two explanations that are both spread over the
frame (a randomised model's noise and a trained model's map) would rank the regions alike
by size alone, and every method would look model-independent. Units of zero area are
left out of a comparison.
"""

from __future__ import annotations

import copy
import hashlib
import warnings

import numpy as np

from ..errors import EvaluationError
from ..stats import spearman as rank_correlation
from .base import Metric, MetricResult, Score, register_metric

#: the randomisation modes of :class:`ParameterRandomisation`, in the dataset's order
MODES = ("cascading", "independent")
#: the similarity measures of the randomisation curve, in the dataset's order
SIMILARITIES = ("spearman", "ssim")
#: how a parameter is randomised, as stored in the evaluation's params
RANDOMISATION_RULE = ("each parameter of a layer redrawn from a normal distribution with that parameter's own mean "
                      "and standard deviation, seeded by (seed, layer, parameter name); buffers (BatchNorm running "
                      "statistics) kept; applied to a copy of the model")


# --- similarity ---------------------------------------------------------------------------


def spearman(a, b) -> float:
    """Spearman rank correlation of two equally shaped arrays (flattened; ties get their
    mean rank); pairs where either value is NaN are left out. NaN when fewer than two
    pairs remain or either side is constant (a rank correlation is undefined there).

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 30, 45])
        1.0
        >>> spearman([1, 2, 3, 4], [4, 3, 2, 1])
        -1.0
        >>> spearman([0, 0, 0], [1, 2, 3])
        nan
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise EvaluationError(f"cannot correlate {a.size} values with {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    return rank_correlation(a[keep], b[keep], min_n=2)


def ssim(a, b, sigma: float = 1.5, data_range: float = 1.0) -> float:
    """Mean structural similarity of two 2-D images (Wang et al. 2004): luminance,
    contrast and structure compared in Gaussian windows (``sigma``, cut at 3.5 sigma: an
    11 × 11 window for 1.5), averaged over the windows that lie inside the image, with
    ``C1 = (0.01 data_range)²`` and ``C2 = (0.03 data_range)²``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> image = rng.random((32, 32))
        >>> ssim(image, image)
        1.0
        >>> # flat images: only luminance, (2·0.5·0.25 + C1) / (0.5² + 0.25² + C1)
        >>> round(ssim(np.full((32, 32), 0.5), np.full((32, 32), 0.25)), 4)
        0.8001
    """
    from scipy.ndimage import gaussian_filter

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise EvaluationError(f"ssim compares two 2-D images of one shape, got {a.shape} and {b.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    blur = lambda image: gaussian_filter(image, sigma, truncate=3.5)  # noqa: E731
    mean_a, mean_b = blur(a), blur(b)
    var_a = blur(a * a) - mean_a ** 2
    var_b = blur(b * b) - mean_b ** 2
    covariance = blur(a * b) - mean_a * mean_b
    local = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / \
            ((mean_a ** 2 + mean_b ** 2 + c1) * (var_a + var_b + c2))
    radius = int(3.5 * sigma + 0.5)  # scipy's own window radius: keep windows wholly inside the image
    if min(a.shape) > 2 * radius:
        local = local[radius:-radius, radius:-radius]
    return float(np.round(local.mean(), 12))


def map_ssim(map_a, map_b, n_frames: int | None = None) -> float:
    """Mean over frames of the :func:`ssim` of two ``(L, H, W)`` pixel maps, each frame's
    |map| divided by its maximum first (so both lie in [0, 1]). A frame where either map
    is all zero is left out (an empty map has no structure to compare: against it SSIM
    would only measure how dark the other map is); NaN when no frame is left or a map is
    missing.

    Example:
        >>> maps = np.random.default_rng(0).normal(size=(4, 32, 32))
        >>> map_ssim(maps, -3 * maps)  # sign and scale do not matter
        1.0
        >>> map_ssim(maps, np.zeros_like(maps))
        nan
    """
    if map_a is None or map_b is None:
        return float("nan")
    n_frames = len(map_a) if n_frames is None else n_frames
    frames = [(_unit_max(map_a[t]), _unit_max(map_b[t])) for t in range(n_frames)]
    values = [ssim(a, b) for a, b in frames if a.any() and b.any()]
    return float(np.mean(values)) if values else float("nan")


def _unit_max(frame) -> np.ndarray:
    frame = np.abs(np.asarray(frame, dtype=np.float64))
    top = frame.max()
    return frame / top if top > 0 else frame


def region_density(region_time, area) -> np.ndarray:
    """Attribution per pixel of each region × frame: ``region_time / area``, NaN where a
    region has no pixels (so a comparison leaves that unit out).

    Example:
        >>> region_density(np.array([[6.0, 0.0]]), np.array([[3, 0]]))
        array([[ 2., nan]])
    """
    area = np.asarray(area, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area > 0, np.asarray(region_time, dtype=np.float64) / area, np.nan)


def density_spearman(region_time, other_region_time, area, n_frames: int) -> float:
    """:func:`spearman` of two ``(L, R)`` region × frame attributions of the same frames
    (regions of ``area`` ``(L, R)``), as densities, over the first ``n_frames`` frames.

    Example:
        >>> area = np.array([[1, 16, 2]])  # the sums rank the regions 2 > 3 > 1 and 1 > 3 > 2
        >>> density_spearman(np.array([[1.0, 8.0, 1.5]]), np.array([[4.0, 2.0, 3.0]]), area, 1)
        1.0
    """
    return spearman(region_density(region_time[:n_frames], area[:n_frames]),
                    region_density(other_region_time[:n_frames], area[:n_frames]))


def clip_area(ctx) -> np.ndarray:
    """``(L, R)`` pixels of each region in each frame of a prepared clip.

    Example:
        >>> from expresso_xai.explain import prepare_clip
        >>> from expresso_xai.testing import clip_inputs
        >>> area = clip_area(prepare_clip(*clip_inputs(input_size=(64, 64))))
        >>> area.shape, int(area[0].sum())  # a partition covers each 64 × 64 frame once
        ((16, 12), 4096)
    """
    return np.asarray(ctx.region_map.area().values)


def nanmean(values, axis=0):
    """Mean leaving NaN out, NaN (without a warning) where every value is NaN.

    Example:
        >>> nanmean([[1.0, np.nan], [3.0, np.nan]])
        array([ 2., nan])
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmean(np.asarray(values, dtype=np.float64), axis=axis)


# --- model-parameter randomisation ----------------------------------------------------------


def randomisation_layers(model) -> list[str]:
    """The layers model-parameter randomisation walks, from the output down: the
    top-level children of the module that hold parameters, in reverse registration order
    (a module holding a single child with parameters is looked through, so a wrapper
    around a network gives that network's layers). Parameters a module holds itself,
    outside any child (tokens, embeddings), form the layer ``"(own)"``, randomised last.

    Example:
        >>> import expresso_xai as ex
        >>> randomisation_layers(ex.models.load("demo"))
        ['head', 'block2', 'block1', 'stem']
    """
    return [name for name, _ in _layer_parameters(getattr(model, "module", model))]


def _layer_parameters(module) -> list[tuple[str, list[str]]]:
    """``[(layer, [qualified parameter names])]`` from the output down; a parameter
    shared by two layers belongs to the first that registered it."""
    qualified = [name for name, _ in module.named_parameters()]  # each shared parameter once
    prefix, inner = "", module
    while True:
        children = [name for name, child in inner.named_children() if any(True for _ in child.parameters())]
        own = [prefix + name for name, _ in inner.named_parameters(recurse=False)]
        if len(children) != 1 or own:
            break
        prefix, inner = f"{prefix}{children[0]}.", getattr(inner, children[0])
    layers = [(prefix + name, [q for q in qualified if q.startswith(f"{prefix}{name}.")]) for name in children]
    layers = [(name, members) for name, members in layers[::-1] if members]
    if own:
        layers.append(("(own)", own))
    if not layers:
        raise EvaluationError("the model has no parameters to randomise")
    return layers


def _seed(*parts) -> int:
    digest = hashlib.sha256("/".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2 ** 63 - 1)


def randomised_parameters(model, seed: int = 0) -> dict[str, "object"]:
    """``{qualified parameter name: tensor}``: every parameter of ``model`` redrawn from a
    normal distribution with its own mean and (population) standard deviation, each from
    a generator seeded by ``(seed, layer, parameter name)``, so a layer's draw is the same
    whichever other layers are randomised with it. ``model`` itself is not changed.

    A draw at the parameter's own scale (rather than each layer's ``reset_parameters``)
    works for any module, custom ones included, and keeps activations in the range the
    rest of the network expects, so the randomised model's gradients neither vanish nor
    explode for reasons unrelated to what was learned.

    Example:
        >>> import expresso_xai as ex
        >>> model = ex.models.load("demo")
        >>> drawn = randomised_parameters(model, seed=0)
        >>> weight = dict(model.module.named_parameters())["head.weight"]
        >>> bool((drawn["head.weight"] != weight).all()), drawn["head.weight"].shape == weight.shape
        (True, True)
    """
    import torch

    module = getattr(model, "module", model)
    parameters = dict(module.named_parameters())
    drawn = {}
    for layer, names in _layer_parameters(module):
        for name in names:
            original = parameters[name].detach()
            values = original.double()
            generator = torch.Generator().manual_seed(_seed(seed, "mprt", layer, name))
            noise = torch.randn(tuple(original.shape), generator=generator, dtype=torch.float64)
            spread = values.std(unbiased=False) if values.numel() > 1 else values.new_zeros(())
            drawn[name] = (noise * spread.cpu() + values.mean().cpu()).to(original.device, original.dtype)
    return drawn


@register_metric
class ParameterRandomisation(Metric):
    """Re-explain each clip with copies of the model whose layers are randomised, from
    the output down: ``cascading`` (the top layer, then the top two, ... then all) and
    ``independent`` (one layer at a time), and compare with the model's own explanation.

    One working copy of the model lives during the run; each configuration loads the
    original or the randomised tensors into it (drawn once per run), so the user's model
    is never touched and no copy is made per clip. Costs ``2 × layers − 1``
    re-explanations per clip (the top layer alone is the same model in both modes).
    """

    name = "mprt"
    needs_methods = True
    scores = (
        Score("mprt_spearman", "lower", "Spearman rank correlation between the region × frame attribution density "
              "of the model's explanation and that of the fully randomised model (every layer, cascading from "
              "the top); high: the explanation does not depend on what the model learned", "Adebayo et al. 2018",
              threshold=0.5),
        Score("mprt_ssim", "lower", "SSIM (Gaussian windows, Wang et al. 2004) between the |pixel maps|, each "
              "frame divided by its maximum, of the model's explanation and of the fully randomised model's, "
              "averaged over frames (frames where either map is empty left out)", "Adebayo et al. 2018",
              threshold=0.5),
    )

    def __init__(self, run):
        super().__init__(run)
        self.per_clip: list[np.ndarray] = []
        self._copy = None
        self._drawn: dict = {}
        self._layers: list[tuple[str, list[str]]] = []

    def _start(self) -> None:
        self._layers = _layer_parameters(self.run.model.module)
        self._drawn = randomised_parameters(self.run.model, self.run.seed)
        self._copy = copy.deepcopy(self.run.model)

    def _load(self, randomised: set[str]) -> None:
        """Put the randomised tensors of the ``randomised`` layers, the original ones of
        the others, into the working copy."""
        import torch

        originals = dict(self.run.model.module.named_parameters())
        parameters = dict(self._copy.module.named_parameters())
        with torch.no_grad():
            for layer, names in self._layers:
                source = self._drawn if layer in randomised else originals
                for name in names:
                    parameters[name].copy_(source[name])

    def add(self, clip) -> None:
        if self._copy is None:
            self._start()
        original = clip.explained()
        area, n_valid = clip_area(clip.ctx), clip.n_valid
        names = [layer for layer, _ in self._layers]
        explainers = self.run.explainers
        values = np.full((len(explainers), len(MODES), len(names), len(SIMILARITIES)), np.nan)
        for k, layer in enumerate(names):
            for m, mode in enumerate(MODES):
                if mode == "independent" and k == 0:  # the top layer alone: the cascading model
                    values[:, m, k] = values[:, 0, k]
                    continue
                self._load(set(names[:k + 1]) if mode == "cascading" else {layer})
                randomised = self.run.explain(clip.prepare(model=self._copy))
                for e, explainer in enumerate(explainers):
                    values[e, m, k] = (density_spearman(original[explainer].region_time,
                                                        randomised[explainer].region_time, area, n_valid),
                                       map_ssim(original[explainer].pixel_map, randomised[explainer].pixel_map,
                                                n_valid))
        self.per_clip.append(values)

    def finish(self) -> MetricResult:
        import xarray as xr

        names = [layer for layer, _ in self._layers]
        if not names and self.run.model is not None:  # no clip was evaluated
            names = randomisation_layers(self.run.model)
        explainers = list(self.run.explainers)
        if self.per_clip:
            similarity = nanmean(np.stack(self.per_clip))
        else:
            similarity = np.full((len(explainers), len(MODES), len(names), len(SIMILARITIES)), np.nan)
        self._copy, self._drawn = None, {}  # free the working copy and the draws
        curve = xr.DataArray(similarity, dims=("explainer", "mode", "layer", "similarity"),
                             coords={"explainer": explainers, "mode": list(MODES), "layer": names,
                                     "similarity": list(SIMILARITIES)},
                             attrs={"long_name": "similarity to the model's own explanation",
                                    "description": "after randomising the layers from the top down to this one "
                                                   "(cascading) or this layer alone (independent); mean over clips"})
        last = len(names) - 1
        scores = {f"mprt_{measure}": {e: float(similarity[i, 0, last, s]) for i, e in enumerate(explainers)}
                  for s, measure in enumerate(SIMILARITIES)} if names else {}
        params = {"layers": names, "randomisation": RANDOMISATION_RULE, "clips": len(self.per_clip),
                  "compared": "region × frame attribution density (Spearman), |pixel maps| (SSIM), real frames"}
        if self.per_clip:
            undefined = np.isnan(np.stack(self.per_clip)[:, :, 0, last, 0]).sum(axis=0)
            if undefined.any():  # a constant map (e.g. a Grad-CAM the randomised model switched off) has no ranks
                params["constant_maps"] = {e: int(n) for e, n in zip(explainers, undefined) if n}
        return MetricResult(scores, {"randomisation": curve}, params)


# --- data randomisation ------------------------------------------------------------------------


@register_metric
class DataRandomisation(Metric):
    """How much an explanation depends on the order of frames and on motion.

    Each clip is explained again once with its real frames in a random order (drawn from
    ``clip.rng("shuffle")``; one permutation a clip, so the check costs one
    re-explanation a clip and the mean over clips averages over permutations) and once
    with its middle real frame repeated. Padding frames of a short video stay in place.
    """

    name = "random"
    needs_methods = True
    scores = (
        Score("shuffled_frames", "neither", "Spearman correlation between the region × frame attribution density "
              "of each clip and that of the clip with its frames shuffled (mapped back to the original frames), "
              "mean over clips: near 1, the explanation ignores the order of frames"),
        Score("static_clip", "neither", "Spearman correlation between the attribution density of each region over "
              "the clip and over its middle frame repeated (no motion), mean over clips: near 1, the explanation "
              "ignores motion"),
    )

    def __init__(self, run):
        super().__init__(run)
        self.values: list[np.ndarray] = []

    def add(self, clip) -> None:
        original = clip.explained()
        n_valid, length = clip.n_valid, len(clip.frames)
        area = clip_area(clip.ctx)
        order = np.arange(length)
        order[:n_valid] = clip.rng("shuffle").permutation(n_valid)
        shuffled_ctx = clip.prepare(order=order)
        shuffled = self.run.explain(shuffled_ctx)
        static_ctx = clip.prepare(order=np.full(length, n_valid // 2))
        static = self.run.explain(static_ctx)
        static_area = clip_area(static_ctx)[:n_valid].sum(axis=0)
        values = np.full((len(self.run.explainers), 2), np.nan)
        for e, explainer in enumerate(self.run.explainers):
            back = np.empty_like(shuffled[explainer].region_time)
            back[order] = shuffled[explainer].region_time  # row j of the shuffled clip shows frame order[j]
            values[e, 0] = density_spearman(original[explainer].region_time, back, area, n_valid)
            values[e, 1] = spearman(region_density(original[explainer].region_time[:n_valid].sum(axis=0),
                                                   area[:n_valid].sum(axis=0)),
                                    region_density(static[explainer].region_time[:n_valid].sum(axis=0), static_area))
        self.values.append(values)

    def finish(self) -> MetricResult:
        explainers = list(self.run.explainers)
        mean = nanmean(np.stack(self.values)) if self.values else np.full((len(explainers), 2), np.nan)
        scores = {score.name: {e: float(mean[i, s]) for i, e in enumerate(explainers)}
                  for s, score in enumerate(self.scores)}
        params = {"clips": len(self.values), "shuffles_per_clip": 1, "static_frame": "the clip's middle real frame",
                  "compared": "region × frame attribution density (shuffled), region density over the clip (static)"}
        return MetricResult(scores, {}, params)
