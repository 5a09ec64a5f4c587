"""The action-unit link of a cohort audit: per participant, how each region's attribution
follows each facial action unit (AU) over time, and what the region shares do around the
moment an action unit starts.

Two measures, both computed per participant first (a participant's frames are not
independent observations, so frames are never pooled across participants):

* :func:`au_correlations`: Spearman's rho between an AU's intensity series and a region's
  per-frame attribution, over the frames with a face and a finite AU value (the reference
  study's link, per region instead of per frame total).
* :func:`event_triggered`: the event-triggered average of the per-frame region share
  (attribution / sum over regions of |attribution|) at lags around each AU onset,
  averaged over a participant's onsets, then over participants.

An onset is the AU crossing a threshold upward between two consecutive frames with a
face. The threshold depends on where the intensities came from
(``au_intensity.attrs["au_source"]``): OpenFace 2.0 intensities are on a 0-5 scale, and
1.0 is its lowest graded level (A, "trace"); the landmark proxies (eye aspect ratio,
brow height, ...) have no common scale, so they are z-scored over the participant's
frames and an onset is z crossing 1.0 (one standard deviation above the participant's
mean).

Cubes come from :func:`expresso_xai.cohort.participant_cube` or any mapping of
participant name to a cube carrying ``au_intensity(time, au)``.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import CohortError
from ..stats import spearman

#: Where an onset starts, per ``au_source``: an OpenFace intensity, or a z-score of a proxy.
ONSET_THRESHOLDS = {"openface": 1.0, "landmarks": 1.0}
#: Sources whose series are z-scored per participant before the threshold is applied.
ZSCORED_SOURCES = frozenset({"landmarks"})

CORRELATION_COLUMNS = ["participant", "explainer", "au", "region", "n_frames", "rho"]
AU_COLUMNS = ["explainer", "band", "au", "region", "n", "rho", "ci_low", "ci_high"]

# Fewer frames than this and a rank correlation says nothing.
MIN_FRAMES = 3


@contextmanager
def _quiet():
    """Silence numpy's 'mean of empty slice': an all-NaN cell is a NaN result, on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# --- one participant ------------------------------------------------------------------


def _checked_cube(cube: xr.Dataset, name: str, explainers, regions) -> None:
    missing = [v for v in ("attribution", "face_found", "au_intensity") if v not in cube.variables]
    if missing:
        raise CohortError(f"participant {name!r}: its cube has no {missing}; the AU link needs the cube of a "
                          "cohort run (expresso_xai.cohort.participant_cube), or pass au=False")
    for dim, wanted in (("explainer", explainers), ("region", regions)):
        absent = sorted(set(wanted) - {str(v) for v in cube[dim].values})
        if absent:
            raise CohortError(f"participant {name!r}: its cube has no {dim} {absent}")


def _attribution(cube: xr.Dataset, explainers, regions) -> np.ndarray:
    """``(explainer, time, region)`` float64 in the order asked."""
    selected = cube["attribution"].sel(explainer=list(explainers), region=list(regions))
    return np.asarray(selected.transpose("explainer", "time", "region").values, dtype=np.float64)


def _intensities(cube: xr.Dataset) -> tuple[np.ndarray, list[str], str]:
    """``(time, au)`` float64 with NaN on frames without a face, the AU names and the source."""
    intensity = cube["au_intensity"].transpose("time", "au")
    values = np.asarray(intensity.values, dtype=np.float64).copy()
    values[~np.asarray(cube["face_found"].values, dtype=bool)] = np.nan
    source = str(intensity.attrs.get("au_source", cube.attrs.get("au_source", "openface")))
    return values, [str(a) for a in intensity["au"].values], source


def spearman_columns(series: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Spearman's rho between ``series (n,)`` and each column of ``table (n, k)`` (average
    ranks for ties, as :func:`scipy.stats.spearmanr`); NaN for a constant series or
    column, or fewer than 3 values.

    Example:
        >>> import numpy as np
        >>> x = np.array([1.0, 2.0, 3.0, 4.0])
        >>> spearman_columns(x, np.stack([x ** 3, -x, np.ones(4)], axis=1)).tolist()
        [1.0, -1.0, nan]
    """
    return spearman(np.asarray(series, dtype=np.float64)[:, None], table, axis=0, min_n=MIN_FRAMES)


def participant_au_correlations(cube: xr.Dataset, explainers, regions, name: str = "") -> pd.DataFrame:
    """Spearman's rho between each AU and each region's per-frame attribution of one
    participant, over frames with a face and a finite AU; columns
    :data:`CORRELATION_COLUMNS` (``participant`` is ``name``).

    Example:
        >>> from expresso_xai.testing import example_cohort
        >>> cohort, cubes = example_cohort(n_participants=4)
        >>> table = participant_au_correlations(cubes["p002"], ["gradcam"], ["right_eye", "mouth"], "p002")
        >>> table.set_index(["au", "region"]).rho["AU45"].round(1).to_dict()
        {'right_eye': 0.5, 'mouth': 0.1}
    """
    _checked_cube(cube, name, explainers, regions)
    attribution = _attribution(cube, explainers, regions)
    intensity, aus, _ = _intensities(cube)
    n_explainers, _, n_regions = attribution.shape
    rows = []
    for j, au in enumerate(aus):
        valid = np.isfinite(intensity[:, j])
        table = attribution[:, valid, :].transpose(1, 0, 2).reshape(int(valid.sum()), n_explainers * n_regions)
        rho = spearman_columns(intensity[valid, j], table).reshape(n_explainers, n_regions)
        rows.append(pd.DataFrame({
            "participant": name, "explainer": np.repeat(list(explainers), n_regions), "au": au,
            "region": np.tile(list(regions), n_explainers), "n_frames": int(valid.sum()), "rho": rho.ravel()}))
    return pd.concat(rows, ignore_index=True)[CORRELATION_COLUMNS]


def au_onsets(series: np.ndarray, source: str = "openface") -> np.ndarray:
    """Frame positions where ``series`` crosses its onset threshold upward (the frame at
    or above it, following one below it; both finite). ``source`` is the cube's
    ``au_source``: ``"openface"`` (threshold 1.0 on the intensity) or ``"landmarks"``
    (z-scored over the finite frames first, threshold z = 1).

    Example:
        >>> import numpy as np
        >>> au_onsets(np.array([0.0, 2.0, 2.5, 0.2, np.nan, 3.0, 0.0, 1.0])).tolist()
        [1, 7]
        >>> au_onsets(np.array([5.0, 5.0, 9.0, 5.0, 5.0, 5.0]), "landmarks").tolist()
        [2]
    """
    if source not in ONSET_THRESHOLDS:
        raise CohortError(f"unknown au_source {source!r}; expected one of {sorted(ONSET_THRESHOLDS)}")
    values = np.asarray(series, dtype=np.float64)
    finite = np.isfinite(values)
    if source in ZSCORED_SOURCES:
        spread = values[finite].std() if finite.sum() > 1 else 0.0
        if spread == 0:
            return np.zeros(0, dtype=np.int64)
        values = (values - values[finite].mean()) / spread
    with np.errstate(invalid="ignore"):
        above = values >= ONSET_THRESHOLDS[source]
    rising = above[1:] & ~above[:-1] & finite[1:] & finite[:-1]
    return np.flatnonzero(rising) + 1


def frame_shares(attribution: np.ndarray, face_found: np.ndarray) -> np.ndarray:
    """Per-frame region share of ``attribution (explainer, time, region)``: each value over
    the frame's sum of |attribution| over regions (0 where that sum is 0); NaN on frames
    without a face, where a share of facial regions means nothing.

    Example:
        >>> import numpy as np
        >>> frame_shares(np.array([[[1.0, -3.0], [0.0, 0.0], [2.0, 2.0]]]), np.array([True, True, False]))[0].tolist()
        [[0.25, -0.75], [0.0, 0.0], [nan, nan]]
    """
    total = np.abs(attribution).sum(axis=2, keepdims=True)
    share = np.divide(attribution, total, out=np.zeros_like(attribution), where=total > 0)
    share[:, ~np.asarray(face_found, dtype=bool), :] = np.nan
    return share


def participant_event_responses(cube: xr.Dataset, explainers, regions, window: int = 12,
                                name: str = "") -> xr.DataArray:
    """One participant's event-triggered average: the per-frame region share
    (:func:`frame_shares`, over all the cube's regions) at lags ``-window..window``
    frames around each onset of each AU (:func:`au_onsets`), averaged over the onsets.
    ``DataArray(explainer, au, lag, region)`` with ``n_onsets(au)``; NaN for an AU
    without onsets, and at lags that fall outside the video or on frames without a face.

    Example:
        >>> from expresso_xai.testing import example_cohort
        >>> cohort, cubes = example_cohort(n_participants=4)
        >>> response = participant_event_responses(cubes["p003"], ["gradcam"], ["right_eye"], window=4)
        >>> dict(response.sizes), int(response.n_onsets.sel(au="AU45")) > 0
        ({'explainer': 1, 'au': 3, 'lag': 9, 'region': 1}, True)
    """
    _checked_cube(cube, name, explainers, regions)
    all_regions = [str(r) for r in cube["region"].values]
    shares = frame_shares(_attribution(cube, explainers, all_regions), cube["face_found"].values)
    shares = shares[:, :, [all_regions.index(r) for r in regions]]
    intensity, aus, source = _intensities(cube)
    lags = np.arange(-window, window + 1)
    n_frames = shares.shape[1]
    padded = np.concatenate([shares, np.full((shares.shape[0], 1, shares.shape[2]), np.nan)], axis=1)
    response = np.full((len(explainers), len(aus), len(lags), len(regions)), np.nan)
    counts = np.zeros(len(aus), dtype=np.int64)
    for j in range(len(aus)):
        onsets = au_onsets(intensity[:, j], source)
        counts[j] = len(onsets)
        if len(onsets):
            frames = onsets[:, None] + lags[None, :]
            frames = np.where((frames >= 0) & (frames < n_frames), frames, n_frames)  # the NaN pad
            with _quiet():
                response[:, j] = np.nanmean(padded[:, frames, :], axis=1)
    return xr.DataArray(response, dims=("explainer", "au", "lag", "region"),
                        coords={"explainer": list(explainers), "au": aus, "lag": lags, "region": list(regions),
                                "n_onsets": ("au", counts)}, name="share")


# --- many participants ----------------------------------------------------------------


CubeSource = Mapping[str, xr.Dataset] | Callable[[str], xr.Dataset]


def cube_getter(cubes: CubeSource) -> Callable[[str], xr.Dataset]:
    """A function name → cube from a mapping or a callable (a missing name is a CohortError).

    Example:
        >>> from expresso_xai.testing import example_cohort
        >>> cohort, cubes = example_cohort(n_participants=4)
        >>> cube_getter(cubes)("p001").sizes["time"]
        60
    """
    if callable(cubes):
        return cubes

    def from_mapping(name: str) -> xr.Dataset:
        if name not in cubes:
            raise CohortError(f"no cube for participant {name!r} in cubes=; give one per participant of the cohort")
        return cubes[name]

    return from_mapping


def average_responses(responses: list[xr.DataArray]) -> xr.DataArray:
    """Participants' event-triggered averages (:func:`participant_event_responses`)
    averaged over participants, each participant weighing the same whatever its number of
    onsets; AUs missing for some participants count only where present. Coordinates
    ``n_onsets(au)`` (all participants') and ``n_participants(au)`` (those with an onset).

    Example:
        >>> from expresso_xai.testing import example_cohort
        >>> cohort, cubes = example_cohort(n_participants=4)
        >>> each = [participant_event_responses(c, ["gradcam"], ["right_eye"], 2) for c in cubes.values()]
        >>> int(average_responses(each).n_participants.sel(au="AU45"))
        4
    """
    aus = sorted({str(a) for r in responses for a in r["au"].values})
    stacked = np.stack([r.reindex(au=aus).values for r in responses])
    counts = np.stack([r["n_onsets"].reindex(au=aus, fill_value=0).values for r in responses])
    with _quiet():
        mean = np.nanmean(stacked, axis=0)
    first = responses[0]
    return xr.DataArray(mean, dims=first.dims, name="share",
                        coords={"explainer": first["explainer"].values, "au": aus, "lag": first["lag"].values,
                                "region": first["region"].values, "n_onsets": ("au", counts.sum(axis=0)),
                                "n_participants": ("au", (counts > 0).sum(axis=0))},
                        attrs={"long_name": "event-triggered average of the per-frame region share",
                               "lag_units": "frames"})


def au_link(cubes: CubeSource, names: Iterable[str], explainers, regions, window: int = 12,
            progress: bool = False) -> tuple[pd.DataFrame, xr.DataArray]:
    """Both measures for the participants ``names``, reading each cube once:
    ``(correlations, events)`` as :func:`au_correlations` and :func:`event_triggered`.

    Example:
        >>> from expresso_xai.testing import example_cohort
        >>> cohort, cubes = example_cohort(n_participants=4)
        >>> rho, events = au_link(cubes, list(cubes), ["gradcam"], ["right_eye"], window=3)
        >>> len(rho), dict(events.sizes)
        (12, {'explainer': 1, 'au': 3, 'lag': 7, 'region': 1})
    """
    from tqdm.auto import tqdm

    cube_of = cube_getter(cubes)
    names = list(names)
    if not names:
        raise CohortError("the AU link needs at least one participant")
    correlations, responses = [], []
    for name in tqdm(names, desc="AU link", unit="participant", disable=not progress):
        cube = cube_of(name)
        correlations.append(participant_au_correlations(cube, explainers, regions, name))
        responses.append(participant_event_responses(cube, explainers, regions, window, name))
    return pd.concat(correlations, ignore_index=True), average_responses(responses)


def au_by_band(correlations: pd.DataFrame, band_of: pd.Series, bands, n_boot: int = 2000, ci: float = 0.95,
               rng: np.random.Generator | None = None) -> pd.DataFrame:
    """Per-participant correlations (:func:`au_correlations`) averaged over participants,
    for everyone (band ``"all"``) and per band of ``bands`` (their order; ``band_of``
    maps participant to band), with percentile bootstrap CIs resampling participants;
    ``n`` counts the participants whose correlation is defined. Columns :data:`AU_COLUMNS`.

    Example:
        >>> import pandas as pd
        >>> from expresso_xai.testing import example_cohort
        >>> cohort, cubes = example_cohort(n_participants=8)
        >>> rho = au_correlations(cubes, ["gradcam"], ["right_eye"])
        >>> table = au_by_band(rho, cohort.band.to_series(), ["minimal", "mild", "moderate", "severe"], 200)
        >>> table.query("au == 'AU45'")[["band", "n"]].values.tolist()
        [['all', 8], ['minimal', 2], ['mild', 2], ['moderate', 2], ['severe', 2]]
    """
    from .analysis import bootstrap_ci

    cube = correlations.set_index(["participant", "explainer", "au", "region"])["rho"].to_xarray()
    cube = cube.reindex(explainer=correlations.explainer.unique(), region=correlations.region.unique())
    explainers, aus, regions = (cube[dim].values.astype(str) for dim in ("explainer", "au", "region"))
    band = band_of.reindex(cube["participant"].values.astype(str)).to_numpy()
    tables = []
    for name in ["all"] + [b for b in bands if b in band]:
        values = cube.values if name == "all" else cube.values[band == name]
        mean, low, high = bootstrap_ci(values, n_boot, ci, rng)
        tables.append(pd.DataFrame({
            "explainer": np.repeat(explainers, len(aus) * len(regions)), "band": name,
            "au": np.tile(np.repeat(aus, len(regions)), len(explainers)),
            "region": np.tile(regions, len(explainers) * len(aus)), "n": np.isfinite(values).sum(axis=0).ravel(),
            "rho": mean.ravel(), "ci_low": low.ravel(), "ci_high": high.ravel()}))
    return pd.concat(tables, ignore_index=True)[AU_COLUMNS]


def au_correlations(cubes: Mapping[str, xr.Dataset], explainers=None, regions=None) -> pd.DataFrame:
    """Per participant, Spearman's rho between each AU and each region's per-frame
    attribution (:func:`participant_au_correlations`); columns :data:`CORRELATION_COLUMNS`.
    ``explainers`` and ``regions`` default to the first cube's.

    Example:
        >>> from expresso_xai.testing import example_cohort
        >>> cohort, cubes = example_cohort(n_participants=8)
        >>> rho = au_correlations(cubes, ["gradcam"], ["right_eye"]).groupby("au").rho.mean()
        >>> bool(rho["AU45"] > 0.3), bool(abs(rho["AU12"]) < 0.15)
        (True, True)
    """
    explainers, regions = _defaults(cubes, explainers, regions)
    return au_link(cubes, list(cubes), explainers, regions)[0]


def event_triggered(cubes: Mapping[str, xr.Dataset], explainers=None, regions=None, window: int = 12) -> xr.DataArray:
    """The event-triggered average of the per-frame region shares around AU onsets,
    per participant then over participants (:func:`average_responses`):
    ``DataArray(explainer, au, lag, region)``, lags in frames.

    Example:
        >>> from expresso_xai.testing import example_cohort
        >>> cohort, cubes = example_cohort(n_participants=8)
        >>> eye = event_triggered(cubes, ["gradcam"], ["right_eye"], window=4).sel(au="AU45", region="right_eye")
        >>> bool(eye.sel(lag=1).item() > eye.sel(lag=-2).item())  # eyes gain share when they close
        True
    """
    explainers, regions = _defaults(cubes, explainers, regions)
    return au_link(cubes, list(cubes), explainers, regions, window)[1]


def _defaults(cubes: Mapping[str, xr.Dataset], explainers, regions) -> tuple[list[str], list[str]]:
    if not cubes:
        raise CohortError("no cubes given; pass {participant: cube}")
    first = next(iter(cubes.values()))
    explainers = [str(e) for e in first["explainer"].values] if explainers is None else list(explainers)
    regions = [str(r) for r in first["region"].values] if regions is None else list(regions)
    return explainers, regions
