"""Rank correlation shared by the views, the evaluation metrics and the cohort's AU link.

One definition of Spearman's rho (average ranks for ties, the Pearson correlation of the
ranks), so that "agreement between methods", "MPRT similarity" and "AU ↔ region
correlation" cannot drift apart in how they treat ties or constant inputs. The callers
differ only in what they leave out first (NaN pairs, frames without a face) and in how
few values they accept.
"""

from __future__ import annotations

import numpy as np

__all__ = ["spearman"]


def _average_ranks(values: np.ndarray, axis: int) -> np.ndarray:
    """Ranks from 1 along ``axis``, ties sharing their average rank (as
    ``scipy.stats.rankdata``), in numpy alone: importing scipy.stats costs about a second,
    paid by the Explorer's first open in a kernel."""
    moved = np.moveaxis(np.asarray(values, np.float64), axis, -1)
    n = moved.shape[-1]
    order = np.argsort(moved, axis=-1)  # ties get one average rank: their order does not matter
    ordered = np.take_along_axis(moved, order, axis=-1)
    starts = np.ones(ordered.shape, bool)  # where a run of equal values begins
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    ends = np.ones(ordered.shape, bool)
    ends[..., :-1] = starts[..., 1:]
    position = np.arange(1, n + 1)
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, position, n + 1), -1), axis=-1), -1)
    ranks = np.empty_like(ordered)
    np.put_along_axis(ranks, order, (first + last) / 2.0, axis=-1)
    return np.moveaxis(ranks, -1, axis)


def _centred_ranks(values: np.ndarray, axis: int) -> np.ndarray:
    ranks = _average_ranks(values, axis)
    return ranks - ranks.mean(axis=axis, keepdims=True)


def spearman(a, b, axis: int = -1, min_n: int = 2) -> np.ndarray | float:
    """Spearman's rho of ``a`` and ``b`` along ``axis`` (the other axes broadcast).

    Ties get their average rank (as :func:`scipy.stats.spearmanr`). The result is NaN
    where either side is constant along ``axis`` (a ranking is undefined there) or has
    fewer than ``min_n`` values, and is clipped to ``[-1, 1]`` against rounding. Values
    must be finite: callers leave out NaN pairs first, since what "missing" means differs
    (a frame without a face, a metric that failed).

    Args:
        a, b: arrays whose shapes broadcast once ``axis`` is excluded, with the same
            length along ``axis``.
        axis: the axis of the values that are ranked and correlated.
        min_n: fewer values than this give NaN.

    Returns:
        A float for 1-D inputs, else an array of the broadcast shape without ``axis``.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 30, 45])
        1.0
        >>> spearman(np.array([[1, 2, 3], [3, 2, 1], [5, 5, 5]]), [1, 2, 3]).tolist()
        [1.0, -1.0, nan]
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = a.shape[axis]
    if n < min_n:
        shape = np.broadcast_shapes(np.delete(a.shape, axis % a.ndim), np.delete(b.shape, axis % b.ndim))
        return float("nan") if not shape else np.full(shape, np.nan)
    ra, rb = _centred_ranks(a, axis), _centred_ranks(b, axis)
    numerator = (ra * rb).sum(axis=axis)
    norm = np.sqrt((ra * ra).sum(axis=axis) * (rb * rb).sum(axis=axis))
    # Centred ranks of a constant are zero up to rounding; the scale of a real ranking's
    # norm is ~n**3, so anything below 1e-12 of that is a constant.
    defined = norm > 1e-12 * n ** 3
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(defined, np.clip(numerator / np.where(defined, norm, 1.0), -1.0, 1.0), np.nan)
    return float(rho) if np.ndim(rho) == 0 else rho
