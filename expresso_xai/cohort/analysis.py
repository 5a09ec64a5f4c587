"""The reference study's analysis of a cohort (:func:`audit`): participant-level errors,
severity bands and error groups, region shares per group with bootstrap confidence
intervals, Kruskal-Wallis and pairwise Mann-Whitney tests with Benjamini-Hochberg FDR and
effect sizes, and the action-unit link (:mod:`.au`). The participant is the unit
everywhere: shares are per participant, and the bootstrap resamples participants, never
frames (a participant's frames are not independent observations).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from itertools import combinations
from typing import Mapping

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import false_discovery_control, kruskal, mannwhitneyu

from ..errors import CohortError, ExpressoWarning
from .au import AU_COLUMNS, _quiet, au_by_band, au_link
from .bands import ERROR_GROUPS, assign_bands, resolve_bands

SHARE_COLUMNS = ["explainer", "grouping", "group", "region", "n", "mean", "ci_low", "ci_high"]
OMNIBUS_COLUMNS = ["explainer", "grouping", "region", "n_groups", "statistic", "p", "p_fdr", "effect"]
CONTRAST_COLUMNS = ["explainer", "grouping", "region", "group_a", "group_b", "n_a", "n_b", "difference",
                    "ci_low", "ci_high", "statistic", "p", "p_fdr", "effect"]

# Groups smaller than this are warned about; tests need at least MIN_TESTED per group.
MIN_WARNED = 3
MIN_TESTED = 2


class SmallGroupWarning(ExpressoWarning):
    """A band or error group has fewer than 3 participants: its CI and tests are unstable
    (groups of 1 get no CI and enter no test)."""


@dataclass
class Audit:
    """The result of :func:`audit`.

    Attributes:
        participants: one row per participant (index ``participant``): ``score``,
            ``prediction`` (mean of the clip predictions), ``error`` (prediction − score),
            ``band`` (of the score, with the audit's bands), ``error_group`` (``correct``
            when |error| ≤ correct_within, else ``over`` or ``under``), ``split``.
        metrics: participant-level ("clustered") metrics: ``n``, ``mae``, ``rmse``,
            ``pearson_r`` (``None`` when undefined), ``bands`` ``{band: {n, mae, rmse}}``
            for the bands present, ``groups`` ``{correct, over, under: count}``.
        shares: one row per explainer × grouping (``"band"``, ``"error"``) × group × region:
            ``n`` participants, ``mean`` of their region shares (``participant_shares``)
            and ``ci_low``/``ci_high``, its participant-level percentile bootstrap CI (NaN
            for a group of one).
        omnibus: one row per explainer × grouping × region: Kruskal-Wallis H (``statistic``)
            across the ``n_groups`` groups of at least 2 participants, ``p``, ``p_fdr``
            (Benjamini-Hochberg over the regions of one explainer × grouping), ``effect``
            epsilon-squared H / (n − 1), n the participants in those groups (Tomczak &
            Tomczak 2014; 0 to 1). NaN where under 2 groups qualify or all values are equal.
        contrasts: one row per explainer × grouping × region × pair of groups (in the
            groups' order, a before b): ``difference`` = mean_b − mean_a with a bootstrap
            CI (each group resampled on its own); ``statistic`` the Mann-Whitney U of group
            b (pairs where b > a, ties counting half), two-sided ``p``, ``p_fdr`` (BH over
            all pairs and regions of one explainer × grouping), ``effect`` the rank-biserial
            correlation 2U/(n_a n_b) − 1 (positive when b tends to be higher).
        au: one row per explainer × band (``"all"``: everyone) × AU × region: ``rho`` the
            participants' mean Spearman correlation of the AU with the region's per-frame
            attribution, ``n`` participants with a defined one, ``ci_low``/``ci_high`` its
            bootstrap CI over participants (``au.au_by_band``); empty when ``au=False``.
        events: the event-triggered average of the per-frame region share around AU onsets,
            ``DataArray(explainer, au, lag, region)`` with ``n_onsets(au)``, ``n_participants(au)``
            (``au.event_triggered``); ``None`` when ``au=False``.
        settings: the arguments of the audit, bands resolved to ``{name: [low, high]}``.
    """

    participants: pd.DataFrame
    metrics: dict
    shares: pd.DataFrame
    omnibus: pd.DataFrame
    contrasts: pd.DataFrame
    au: pd.DataFrame
    events: xr.DataArray | None
    settings: dict = field(default_factory=dict)

    def to_xarray(self) -> xr.Dataset:
        """The shares as ``mean``, ``ci_low``, ``ci_high``, ``n`` on ``(explainer, group,
        region)``, with the ``grouping`` of each group as a coordinate on ``group``.

        Example:
            >>> from expresso_xai.testing import example_cohort
            >>> cohort, cubes = example_cohort(n_participants=16)
            >>> view = audit(cohort, au=False, n_boot=200).to_xarray()
            >>> dict(view["mean"].sizes), str(view.grouping.sel(group="over").item())
            ({'explainer': 2, 'group': 7, 'region': 12}, 'error')
        """
        table = self.shares
        groups = dict(zip(table.group, table.grouping))  # group names are unique across groupings
        view = table.set_index(["explainer", "group", "region"])[["mean", "ci_low", "ci_high", "n"]].to_xarray()
        view = view.reindex(explainer=table.explainer.unique(), group=list(groups), region=table.region.unique())
        view = view.assign_coords(grouping=("group", list(groups.values())))
        view.attrs = {"ci": self.settings.get("ci", np.nan), "n_boot": self.settings.get("n_boot", 0),
                      "definition": "region share per participant, mean over the group's participants; "
                                    "CI: percentile bootstrap over participants"}
        return view


# --- bands and groups -----------------------------------------------------------------


def _error_groups(errors, correct_within: float) -> np.ndarray:
    """``correct`` where |error| ≤ ``correct_within``, else ``over`` (error > 0) or ``under``."""
    errors = np.asarray(errors, dtype=np.float64)
    return np.where(np.abs(errors) <= correct_within, "correct", np.where(errors > 0, "over", "under"))


# --- statistics -----------------------------------------------------------------------


def bh_fdr(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaN stays NaN and does not count in m.

    Example:
        >>> bh_fdr([0.01, 0.04, np.nan, 0.03, 0.005]).round(3).tolist()
        [0.02, 0.04, nan, 0.04, 0.02]
    """
    p = np.asarray(p, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = false_discovery_control(p[finite], method="bh")
    return adjusted


def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` means of ``values (n, ...)`` over rows resampled with replacement,
    ``(n_boot, ...)``; NaN values are left out of each mean."""
    # a resample as multinomial counts per row: memory n_boot × n, not n_boot × n × cells
    n = len(values)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    flat = values.reshape(n, -1)
    finite = np.isfinite(flat)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (counts @ np.where(finite, flat, 0.0)) / (counts @ finite)
    return means.reshape((n_boot,) + values.shape[1:])


def _percentile_ci(draws: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of bootstrap ``draws (n_boot, ...)`` at level ``ci``."""
    tail = 100 * (1 - ci) / 2
    with _quiet():  # all-NaN cells give NaN bounds
        low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
    return low, high


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, ci: float = 0.95, rng=None):
    """The mean of ``values (n, ...)`` over rows and its percentile bootstrap CI,
    resampling rows: ``(mean, low, high)``; NaN bounds for fewer than 2 rows.

    Example:
        >>> import numpy as np
        >>> mean, low, high = bootstrap_ci(np.random.default_rng(1).normal(5.0, 1.0, 200), rng=np.random.default_rng(0))
        >>> bool(low < 5.0 < high), bool(high - low < 0.5)
        (True, True)
    """
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(0) if rng is None else rng
    with _quiet():
        mean = np.nanmean(values, axis=0)
    if len(values) < MIN_TESTED:
        return mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan)
    low, high = _percentile_ci(_bootstrap_means(values, n_boot, rng), ci)
    return mean, low, high


# --- participant level ----------------------------------------------------------------


def _participant_table(cohort: xr.Dataset, bands, correct_within: float) -> pd.DataFrame:
    """The :attr:`Audit.participants` table of a cohort Dataset."""
    names = [str(p) for p in cohort["participant"].values]
    score = np.asarray(cohort["score"].values, dtype=np.float64)
    prediction = np.asarray(cohort["prediction"].values, dtype=np.float64)
    for label, values in (("score", score), ("prediction", prediction)):
        missing = [n for n, v in zip(names, values) if not np.isfinite(v)]
        if missing:
            raise CohortError(f"participants {missing} have no {label}; leave them out first "
                              f"(cohort.drop_sel(participant={missing}))")
    error = prediction - score
    split = cohort["split"].values.astype(str) if "split" in cohort else np.full(len(names), "")
    return pd.DataFrame({"score": score, "prediction": prediction, "error": error,
                         "band": assign_bands(score, bands), "error_group": _error_groups(error, correct_within),
                         "split": split}, index=pd.Index(names, name="participant"))


def _errors(error: np.ndarray) -> dict:
    return {"n": int(len(error)), "mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error ** 2).mean()))}


def _participant_metrics(participants: pd.DataFrame, bands) -> dict:
    """The :attr:`Audit.metrics` of a participant table."""
    error = participants["error"].to_numpy(np.float64)
    score, prediction = participants["score"].to_numpy(np.float64), participants["prediction"].to_numpy(np.float64)
    defined = len(score) > 1 and np.ptp(score) > 0 and np.ptp(prediction) > 0
    metrics = {**_errors(error), "pearson_r": float(np.corrcoef(prediction, score)[0, 1]) if defined else None}
    band = participants["band"].to_numpy()
    metrics["bands"] = {name: _errors(error[band == name]) for name in resolve_bands(bands) if (band == name).any()}
    metrics["groups"] = {g: int((participants["error_group"] == g).sum()) for g in ERROR_GROUPS}
    return metrics


def participant_shares(attribution: np.ndarray) -> np.ndarray:
    """Region shares ``(participant, explainer, region)`` of ``attribution (participant,
    explainer, time_bin, region)``: a region's sum over bins over the sum over bins and
    regions of |attribution| (signed, as the cube's share; 0 where the total is 0; NaN bins left out).

    Example:
        >>> import numpy as np
        >>> participant_shares(np.array([[[[1.0, -1.0], [2.0, np.nan]]]])).tolist()
        [[[0.75, -0.25]]]
    """
    numerator = np.nansum(attribution, axis=2)
    total = np.nansum(np.abs(attribution), axis=(2, 3))[..., None]
    return np.divide(numerator, total, out=np.zeros_like(numerator), where=total > 0)


# --- tables ---------------------------------------------------------------------------


def _rows(explainers, regions, **columns) -> pd.DataFrame:
    """A tidy table of ``(explainer, region)`` arrays (and scalars) in that order."""
    n_e, n_r = len(explainers), len(regions)
    flat = {k: (np.ravel(v) if np.ndim(v) else v) for k, v in columns.items()}
    return pd.DataFrame({"explainer": np.repeat(list(explainers), n_r), "region": np.tile(list(regions), n_e),
                         **flat})


def _groupings(participants: pd.DataFrame, bands: dict) -> dict[str, dict[str, np.ndarray]]:
    """``{grouping: {group: participant positions}}`` for the groups present, in order."""
    layout = {"band": ("band", list(bands)), "error": ("error_group", list(ERROR_GROUPS))}
    return {grouping: {group: np.flatnonzero(participants[column].to_numpy() == group) for group in order
                       if (participants[column] == group).any()}
            for grouping, (column, order) in layout.items()}


def _warn_small(groups: dict[str, dict[str, np.ndarray]]) -> None:
    small = [f"{grouping} {group!r} ({len(where)})" for grouping, members in groups.items()
             for group, where in members.items() if len(where) < MIN_WARNED]
    if small:
        warnings.warn(f"groups with fewer than {MIN_WARNED} participants: {', '.join(small)}; their CIs and tests "
                      "are unstable (groups of 1 enter no test)", SmallGroupWarning, stacklevel=3)


def _share_table(shares, groups, explainers, regions, n_boot, ci, rng) -> pd.DataFrame:
    tables = []
    for grouping, members in groups.items():
        for group, where in members.items():
            mean, low, high = bootstrap_ci(shares[where], n_boot, ci, rng)
            tables.append(_rows(explainers, regions, grouping=grouping, group=group, n=len(where), mean=mean,
                                ci_low=low, ci_high=high))
    return pd.concat(tables, ignore_index=True)[SHARE_COLUMNS]


def _omnibus_table(shares, groups, explainers, regions) -> pd.DataFrame:
    tables = []
    for grouping, members in groups.items():
        tested = {group: where for group, where in members.items() if len(where) >= MIN_TESTED}
        statistic = p = np.full((len(explainers), len(regions)), np.nan)
        if len(tested) >= 2:
            with np.errstate(invalid="ignore", divide="ignore"):
                statistic, p = kruskal(*[shares[where] for where in tested.values()], axis=0)
        n = sum(len(where) for where in tested.values())
        tables.append(_rows(explainers, regions, grouping=grouping, n_groups=len(tested), statistic=statistic,
                            p=p, effect=np.asarray(statistic) / max(n - 1, 1)))
    return _with_fdr(pd.concat(tables, ignore_index=True), OMNIBUS_COLUMNS)


def _with_fdr(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """BH-FDR within each explainer × grouping, added as ``p_fdr``."""
    table["p_fdr"] = np.nan
    for _, rows in table.groupby(["explainer", "grouping"], sort=False):
        table.loc[rows.index, "p_fdr"] = bh_fdr(rows["p"].to_numpy())
    return table[columns]


def _contrast(shares, where_a, where_b, n_boot, ci, rng) -> dict:
    a, b = shares[where_a], shares[where_b]
    draws = _bootstrap_means(b, n_boot, rng) - _bootstrap_means(a, n_boot, rng)
    low, high = _percentile_ci(draws, ci)
    u_b, p = mannwhitneyu(b, a, alternative="two-sided", axis=0)
    return {"n_a": len(a), "n_b": len(b), "difference": b.mean(axis=0) - a.mean(axis=0), "ci_low": low,
            "ci_high": high, "statistic": u_b, "p": p, "effect": 2 * u_b / (len(a) * len(b)) - 1}


def _contrast_table(shares, groups, explainers, regions, n_boot, ci, rng) -> pd.DataFrame:
    tables = []
    for grouping, members in groups.items():
        tested = [(group, where) for group, where in members.items() if len(where) >= MIN_TESTED]
        for (group_a, where_a), (group_b, where_b) in combinations(tested, 2):
            columns = _contrast(shares, where_a, where_b, n_boot, ci, rng)
            tables.append(_rows(explainers, regions, grouping=grouping, group_a=group_a, group_b=group_b, **columns))
    if not tables:
        return pd.DataFrame(columns=CONTRAST_COLUMNS)
    return _with_fdr(pd.concat(tables, ignore_index=True), CONTRAST_COLUMNS)


# --- the audit ------------------------------------------------------------------------


def _names(cohort: xr.Dataset, dim: str, wanted) -> list[str]:
    present = [str(v) for v in cohort[dim].values]
    if wanted is None:
        return present
    wanted = [wanted] if isinstance(wanted, str) else [str(w) for w in wanted]
    unknown = [w for w in wanted if w not in present]
    if unknown or not wanted:
        raise CohortError(f"no {dim} {unknown or wanted} in this cohort; {dim}s: {present}")
    return wanted


def _checked_settings(cohort, bands, correct_within, explainers, regions, n_boot, ci, seed, event_window) -> dict:
    """Every argument checked before any work (Captum's attribute/_attribute split)."""
    if not isinstance(cohort, xr.Dataset) or "attribution" not in cohort or "participant" not in cohort.dims:
        raise CohortError("audit needs the cohort Dataset of expresso_xai.cohort.open (attribution on "
                          "participant, explainer, time_bin, region)")
    if cohort.sizes["participant"] < 2:
        raise CohortError(f"the cohort has {cohort.sizes['participant']} participant(s); an audit needs at least 2")
    for label, value, ok in (("correct_within", correct_within, lambda v: v >= 0),
                             ("n_boot", n_boot, lambda v: float(v).is_integer() and v >= 10),
                             ("ci", ci, lambda v: 0 < v < 1), ("seed", seed, lambda v: float(v).is_integer()),
                             ("event_window", event_window, lambda v: float(v).is_integer() and v >= 0)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not ok(value):
            raise CohortError(f"{label}={value!r} is not valid; see the audit's docstring for its range")
    resolved = resolve_bands(bands)
    return {"bands": {name: list(edges) for name, edges in resolved.items()}, "correct_within": float(correct_within),
            "explainers": _names(cohort, "explainer", explainers), "regions": _names(cohort, "region", regions),
            "n_boot": int(n_boot), "ci": float(ci), "seed": int(seed), "event_window": int(event_window),
            "time_bins": int(cohort.attrs.get("time_bins", cohort.sizes.get("time_bin", 0))),
            "store": str(cohort.attrs.get("store", ""))}


def audit(cohort: xr.Dataset, bands="bdi2", correct_within: float = 5.0, explainers=None, regions=None,
          n_boot: int = 2000, ci: float = 0.95, seed: int = 0, au: bool = True, cubes=None, event_window: int = 12,
          progress: bool = False) -> Audit:
    """The reference study's analysis of a cohort, with confidence intervals (see :class:`Audit`
    for every table and column).

    Args:
        cohort: the Dataset of :func:`expresso_xai.cohort.open` (may be dask-backed).
        bands: ``"bdi2"`` (minimal 0-13, mild 14-19, moderate 20-28, severe 29-63), a dict
            ``name → (low, high)`` or a list of edges (:func:`resolve_bands`); each
            participant's band is recomputed from its score.
        correct_within: |error| up to this is ``correct``; beyond, ``over`` or ``under``.
        explainers, regions: those to report (default all). Shares are always of the total
            over all regions, so a subset does not change them.
        n_boot, ci, seed: bootstrap draws (at least 10), CI level, the one generator's seed.
        au, cubes: compute the AU link from the participants' cubes (with ``au_intensity``):
            ``{participant: cube}``, a function name → cube, or by default
            :func:`expresso_xai.cohort.participant_cube`.
        event_window: lags ``-event_window..event_window`` frames of the event-triggered averages.
        progress: a progress bar while reading cubes.

    Raises CohortError (fewer than 2 participants, unknown explainers or regions, bands that
    do not cover a score, a participant without score or prediction, a bad value) and warns
    :class:`SmallGroupWarning` for a group of fewer than 3 participants.

    Example:
        >>> from expresso_xai.testing import example_cohort
        >>> cohort, cubes = example_cohort(n_participants=16)
        >>> result = audit(cohort, cubes=cubes, n_boot=500)
        >>> eyes = result.contrasts.query("explainer == 'gradcam' and region == 'right_eye' and "
        ...                               "group_a == 'minimal' and group_b == 'severe'")
        >>> bool(eyes.difference.item() > 0 and eyes.ci_low.item() > 0)
        True
        >>> rho = result.au.query("band == 'all' and explainer == 'gradcam' and region == 'right_eye'")
        >>> bool(rho.set_index("au").rho["AU45"] > 0.3)
        True
    """
    settings = _checked_settings(cohort, bands, correct_within, explainers, regions, n_boot, ci, seed, event_window)
    cube_source = _cube_source(cohort, cubes) if au else None
    participants = _participant_table(cohort, bands, correct_within)
    rng = np.random.default_rng(settings["seed"])
    explainers, regions = settings["explainers"], settings["regions"]
    dims = ("participant", "explainer", "time_bin", "region")
    attribution = cohort["attribution"].sel(explainer=explainers).transpose(*dims)
    shares = participant_shares(np.asarray(attribution.values, dtype=np.float64))  # over all regions, then a subset
    shares = shares[:, :, [list(attribution["region"].values.astype(str)).index(r) for r in regions]]
    groups = _groupings(participants, resolve_bands(bands))
    _warn_small(groups)
    shares_table = _share_table(shares, groups, explainers, regions, settings["n_boot"], settings["ci"], rng)
    omnibus = _omnibus_table(shares, groups, explainers, regions)
    contrasts = _contrast_table(shares, groups, explainers, regions, settings["n_boot"], settings["ci"], rng)
    au_table, events = pd.DataFrame(columns=AU_COLUMNS), None
    if au:
        correlations, events = au_link(cube_source, list(participants.index), explainers, regions,
                                       settings["event_window"], progress)
        au_table = au_by_band(correlations, participants["band"], list(settings["bands"]), settings["n_boot"],
                              settings["ci"], rng)
    settings.update(au=bool(au), cohort_settings=cohort.attrs.get("cohort_settings", ""))
    return Audit(participants, _participant_metrics(participants, bands), shares_table, omnibus, contrasts,
                 au_table, events, settings)


def _cube_source(cohort: xr.Dataset, cubes):
    """The participants' cubes: ``cubes`` (a mapping must name every participant) or, by
    default, :func:`~expresso_xai.cohort.participant_cube` from the store; checked before any work."""
    if cubes is None:
        from .dataset import participant_cube

        if not cohort.attrs.get("store"):
            raise CohortError("this cohort names no store to read the participants' cubes from; pass cubes= "
                              "({participant: cube}) or au=False")
        return lambda name: participant_cube(cohort, name)
    if not callable(cubes) and not isinstance(cubes, Mapping):
        raise CohortError(f"cubes must map participant names to cubes, or be a function name -> cube; got "
                          f"{type(cubes).__name__}")
    missing = [str(p) for p in cohort["participant"].values if not callable(cubes) and str(p) not in cubes]
    if missing:
        raise CohortError(f"no cube for participant(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} in "
                          "cubes=; give one per participant of the cohort, or pass au=False")
    return cubes
