"""Adaptive (coarse-to-fine) occlusion over region × time-window units.

Each region is first occluded over the whole clip (one forward per region). Then the
group of windows with the largest effect (if at least ``threshold`` × the largest effect
seen) is split in two halves (earlier and later windows), largest first, down to single
windows, until no group qualifies or the forwards reach ``budget`` × the exhaustive count
(a few groups are split per batch of forwards); other groups stay leaves. A leaf of several windows is *unresolved*: its measured
value is spread over its pixels (each window gets its pixel share, nothing invented
beyond the one measurement), and the clip's stat ``occlusion_resolved`` (fraction of
region × window units measured alone) says how much of the clip was resolved. When the
effect is concentrated in a few units this costs far fewer forwards than exhaustive
occlusion; when it is spread evenly it can cost more (every split is two forwards).
"""

from __future__ import annotations

import numpy as np

from .features import feature_units


def adaptive_values(ctx, window: int, baseline, per_eval: int, threshold: float, ablate, budget: float = 1 / 3):
    """``(values (F,), fine_mask (L, H, W), resolved (F,) bool, forwards)`` for the fine
    units of :func:`~expresso_xai.explain.features.feature_units`; ``ablate`` is the
    occlusion's batched ``(ctx, mask, baseline, per_eval, n_features) -> effects``.
    Groups are split largest effect first, while the forwards stay within ``budget`` ×
    the exhaustive count (the whole-region pass is always run).

    Example:
        >>> from expresso_xai.explain import prepare_clip
        >>> from expresso_xai.explain.occlusion import ablate
        >>> from expresso_xai.testing import clip_inputs
        >>> ctx = prepare_clip(*clip_inputs(input_size=(64, 64)))
        >>> values, mask, resolved, forwards = adaptive_values(ctx, 4, ctx.baseline("zero"), 4, 0.25, ablate)
        >>> values.shape == resolved.shape, len(np.unique(ctx.region_map.labels)) <= forwards <= len(values) / 3
        (True, True)
    """
    codes, fine_mask = feature_units(ctx.region_map, window)
    unit_region = codes % len(ctx.region_map.names)
    pixel_counts = np.bincount(fine_mask.ravel(), minlength=len(codes)).astype(np.float64)
    groups = [np.flatnonzero(unit_region == region) for region in np.unique(unit_region)]
    effects = list(_measure(ctx, fine_mask, groups, len(codes), baseline, per_eval, ablate))
    forwards, largest = len(groups), float(np.abs(effects).max())
    while True:
        splittable = [i for i, units in enumerate(groups) if len(units) > 1 and largest > 0
                      and abs(effects[i]) >= threshold * largest]
        room = int(budget * len(codes)) - forwards
        chosen = sorted(splittable, key=lambda i: -abs(effects[i]))[:min(max(1, per_eval // 2), room // 2)]
        if not chosen:
            break
        children = [half for i in chosen for half in np.array_split(groups[i], 2)]
        groups = [units for i, units in enumerate(groups) if i not in chosen] + children
        effects = [effect for i, effect in enumerate(effects) if i not in chosen] + list(
            _measure(ctx, fine_mask, children, len(codes), baseline, per_eval, ablate))
        forwards += len(children)
    values = np.zeros(len(codes))
    resolved = np.zeros(len(codes), dtype=bool)
    for units, effect in zip(groups, effects):
        values[units] = effect * pixel_counts[units] / pixel_counts[units].sum()
        resolved[units] = len(units) == 1
    return values, fine_mask, resolved, forwards


def _measure(ctx, fine_mask, groups, n_units, baseline, per_eval, ablate) -> np.ndarray:
    """The effect of occluding each group of fine units (disjoint) in batched forwards."""
    lookup = np.full(n_units, -1, dtype=np.int64)
    for index, units in enumerate(groups):
        lookup[units] = index
    return ablate(ctx, lookup[fine_mask], baseline, per_eval, len(groups))
