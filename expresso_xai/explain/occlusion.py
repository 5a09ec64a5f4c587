"""Occlusion of facial regions × time windows.

Each feature — one region during a window of ``window`` frames (4 by default) — is
replaced by a baseline (``"blur"`` default, ``"mean"``, ``"zero"``, ``"black"``) and its
attribution is the drop in the target output, ``f(x) - f(x with the feature replaced)``:
what Captum's ``FeatureAblation`` computes on the same feature mask (a test checks they
agree). The perturbed inputs are built here with one ``torch.where`` each because
Captum's generic ablation machinery cost about 70 ms per perturbation on a 16×112×112
clip on 2 CPU cores, as much as a small model's forward. Perturbations are batched
``perturbations_per_eval`` at a time (by default what the engine measured to be fastest
on the device) under ``torch.no_grad()``. A feature's value is shared among its pixels,
so region × time cells hold the value weighted by how much of the feature each frame
holds; nothing is pooled from Captum's per-pixel output, which repeats the value on
every pixel. ``adaptive=True`` measures coarse-to-fine instead (see
:mod:`expresso_xai.explain.occlusion_adaptive`): pairs of regions over the whole clip
first, then regions, then their time windows, only where the effect is at least
``threshold`` × the largest and within ``budget`` × the exhaustive forwards; the cube's
``occlusion_resolved(time, region)`` marks the cells measured alone.
"""

from __future__ import annotations

import numpy as np

from .base import ClipContext, Method, MethodResult, register
from .batching import run_in_batches
from .features import feature_mask, feature_units, mask_tensor, spread
from .occlusion_adaptive import adaptive_values, resolved_cells


@register
class Occlusion(Method):
    name = "occlusion"
    defaults = {"window": 4, "baseline": "blur", "perturbations_per_eval": None, "adaptive": False,
                "threshold": 0.1, "budget": 1 / 3}
    region_features = True
    measures_batch_size = True  # on its first clip's real perturbations (explain/batching.py)
    counts = ("window", "perturbations_per_eval")
    amounts = ("threshold", "budget")
    flags = ("adaptive",)

    def attribute(self, ctx: ClipContext) -> MethodResult:
        baseline = ctx.baseline(self.options["baseline"])
        per_eval = self.options["perturbations_per_eval"] or ctx.batch_size
        reference_pass = 0 if ctx.output_is_known() else 1  # f(x): the clip's own forward when known
        stats = {}
        window = int(self.options["window"])
        if self.options["adaptive"]:
            values, mask, resolved, forwards = adaptive_values(
                ctx, window, baseline, per_eval, float(self.options["threshold"]), ablate,
                float(self.options["budget"]))
            codes = feature_units(ctx.region_map, window)[0]
            cells = resolved_cells(codes, resolved, len(mask), len(ctx.region_map.names), window)
            stats = {"resolved": cells, "resolved_fraction": float(resolved.mean()), "forwards": forwards,
                     "exhaustive_forwards": len(values)}
        else:
            mask = feature_mask(ctx.region_map, window)
            values = ablate(ctx, mask, baseline, per_eval)
            forwards = len(values)
        pixel_map = spread(values, mask)
        return MethodResult(region_time=ctx.region_map.pool(pixel_map), pixel_map=pixel_map, stats=stats,
                            passes=forwards + reference_pass)


def ablate(ctx: ClipContext, mask: np.ndarray, baseline, per_eval: int | None,
           n_features: int | None = None) -> np.ndarray:
    """``f(x) - f(x with feature k replaced by the baseline)`` for every feature id ``k``
    of ``mask`` (ids 0..n_features-1; pixels with id -1 are never replaced),
    ``per_eval`` perturbed inputs per forward (``None``: as
    ``batching.run_in_batches`` decides, measuring on these
    very perturbations when the run waits for a size).

    Example:
        >>> from expresso_xai.explain import prepare_clip
        >>> from expresso_xai.testing import clip_inputs
        >>> ctx = prepare_clip(*clip_inputs(input_size=(64, 64)))
        >>> mask = feature_mask(ctx.region_map, 8)
        >>> one, four = (ablate(ctx, mask, ctx.baseline("zero"), size) for size in (1, 4))
        >>> len(one) == int(mask.max()) + 1, bool(np.allclose(one, four, atol=1e-5))
        (True, True)
    """
    import torch

    feature_ids = mask_tensor(ctx.model, mask, ctx.x.device)
    n_features = int(mask.max()) + 1 if n_features is None else int(n_features)
    values = np.empty(n_features, dtype=np.float64)
    with torch.no_grad():
        reference = float(ctx.output()[0])

        def forward(start: int, stop: int) -> None:
            batch = torch.cat([torch.where(feature_ids == k, baseline, ctx.x) for k in range(start, stop)])
            values[start:stop] = reference - ctx.model(batch)[:, ctx.target].double().cpu().numpy()

        run_in_batches(ctx.model, ctx.x, n_features, forward, per_eval)
    return values
