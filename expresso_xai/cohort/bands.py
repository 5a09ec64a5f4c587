"""Severity bands and error groups: which band holds each participant's score (BDI-II by
default, or any bands), shared by the cohort dataset and its audit."""

from __future__ import annotations

import numpy as np

from ..errors import CohortError

ERROR_GROUPS = ("correct", "over", "under")


def resolve_bands(bands) -> dict[str, tuple[float, float]]:
    """Bands as ``{name: (low, high)}`` inclusive, sorted by ``low``: ``"bdi2"`` (the
    BDI-II bands), a dict ``name → (low, high)``, or a list of edges ``[e0, e1, ..., ek]``
    giving bands ``e0-e1, ..., e(k-1)-ek`` (each ``[e_i, e_(i+1))``, the last one closed).

    Example:
        >>> resolve_bands([0, 20, 63])
        {'0-20': (0.0, 20.0), '20-63': (20.0, 63.0)}
        >>> list(resolve_bands("bdi2"))
        ['minimal', 'mild', 'moderate', 'severe']
    """
    from ..models.clustered import BDI_BANDS

    if isinstance(bands, str):
        if bands != "bdi2":
            raise CohortError(f"unknown bands {bands!r}; use 'bdi2', a dict name -> (low, high) or a list of edges")
        bands = BDI_BANDS
    if isinstance(bands, dict):
        try:
            resolved = {str(name): (float(low), float(high)) for name, (low, high) in bands.items()}
        except (TypeError, ValueError):
            raise CohortError(f"bands must map each name to (low, high) numbers, got {bands!r}") from None
    else:
        edges = _edges(bands)
        resolved = {f"{low:g}-{high:g}": (low, high) for low, high in zip(edges[:-1], edges[1:])}
    bad = [name for name, (low, high) in resolved.items() if not low <= high]
    if not resolved or bad:
        raise CohortError(f"bands need low <= high and at least one band; check {bad or bands}")
    clash = sorted(set(resolved) & set(ERROR_GROUPS))
    if clash:
        raise CohortError(f"band names {clash} are the error groups' names; rename those bands")
    return dict(sorted(resolved.items(), key=lambda item: item[1]))


def _edges(bands) -> list[float]:
    try:
        edges = [float(edge) for edge in bands]
    except (TypeError, ValueError):
        edges = []
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise CohortError(f"bands must be 'bdi2', a dict or a list of at least two increasing edges, got {bands!r}")
    return edges


def assign_bands(scores, bands="bdi2") -> np.ndarray:
    """Each score's band name (see :func:`resolve_bands`). A band covers ``low <= s <=
    high``; a score between two bands less than 1 apart (BDI-II's 13 | 14) belongs to the
    lower one, so fractional scores are covered; with edges, ``[e_i, e_(i+1))``.

    Raises:
        CohortError: a score no band covers (naming it), or a NaN score.

    Example:
        >>> assign_bands([0, 13.5, 14, 63]).tolist()
        ['minimal', 'minimal', 'mild', 'severe']
    """
    resolved = resolve_bands(bands)
    scores = np.asarray(scores, dtype=np.float64)
    items = list(resolved.items())
    names = np.full(scores.shape, "", dtype=object)
    from_edges = not isinstance(bands, (str, dict))
    for i, (name, (low, high)) in enumerate(items):
        upper = items[i + 1][1][0] if i + 1 < len(items) else np.inf
        inside = (scores >= low) & (scores <= high)
        if from_edges and i + 1 < len(items):
            inside &= scores < high
        elif upper - high <= 1:
            inside |= (scores > high) & (scores < upper)
        names[inside & (names == "")] = name
    uncovered = scores[names == ""]
    if len(uncovered):
        raise CohortError(f"no band covers the score(s) {sorted(set(uncovered.tolist()))}; bands: {resolved}. "
                          "Give bands that cover every score")
    return names.astype(str)
