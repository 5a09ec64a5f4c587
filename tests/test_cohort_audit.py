"""The cohort audit: planted effects are found, null cohorts stay null, and every
statistic matches a hand-computed value."""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import spearmanr

from expresso_xai.cohort.au import (au_onsets, event_triggered, participant_au_correlations,
                                    participant_event_responses, spearman_columns)
from expresso_xai.cohort.analysis import (SmallGroupWarning, assign_bands, audit, bh_fdr, bootstrap_ci,
                                       participant_shares, resolve_bands)
from expresso_xai.cube import make_cube
from expresso_xai.errors import CohortError
from expresso_xai.testing import example_cohort

EYES = ["right_eye", "left_eye"]


@pytest.fixture(scope="module")
def planted():
    cohort, cubes = example_cohort(n_participants=24, effect=1.0, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        return audit(cohort, cubes=cubes, seed=0), cohort, cubes


@pytest.fixture(scope="module")
def null():
    cohort, cubes = example_cohort(n_participants=24, effect=0.0, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        return audit(cohort, cubes=cubes, seed=0)


def shares_cohort(scores, predictions, eye_shares) -> xr.Dataset:
    """A cohort whose participants have the given eye share (one explainer, one bin, the
    rest of the attribution on the mouth), with only the variables the audit reads."""
    eye = np.asarray(eye_shares, dtype=np.float64)
    attribution = np.stack([eye, 1 - eye], axis=-1)[:, None, None, :] * 7.0  # the scale must not matter
    return xr.Dataset(
        {"attribution": (("participant", "explainer", "time_bin", "region"), attribution),
         "score": ("participant", np.asarray(scores, np.float64)),
         "prediction": ("participant", np.asarray(predictions, np.float64))},
        coords={"participant": [f"p{i}" for i in range(len(eye))], "explainer": ["gradcam"], "time_bin": [0],
                "region": ["right_eye", "mouth"]})


# --- participant level ----------------------------------------------------------------


def test_participant_metrics_are_the_hand_computed_mae_and_rmse():
    cohort = shares_cohort([5, 10, 16, 40], [8, 2, 16, 47], [0.1, 0.2, 0.3, 0.4])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        result = audit(cohort, au=False, n_boot=50)
    # errors 3, -8, 0, 7
    assert result.participants.error.tolist() == [3.0, -8.0, 0.0, 7.0]
    assert result.metrics["mae"] == pytest.approx(18 / 4)
    assert result.metrics["rmse"] == pytest.approx(np.sqrt((9 + 64 + 0 + 49) / 4))
    assert result.metrics["pearson_r"] == pytest.approx(np.corrcoef([8, 2, 16, 47], [5, 10, 16, 40])[0, 1])
    assert result.metrics["bands"]["minimal"] == pytest.approx({"n": 2, "mae": 5.5, "rmse": np.sqrt(73 / 2)})
    assert result.metrics["groups"] == {"correct": 2, "over": 1, "under": 1}
    assert result.participants.error_group.tolist() == ["correct", "under", "correct", "over"]
    assert result.participants.band.tolist() == ["minimal", "minimal", "mild", "severe"]


def test_bands_are_bdi2_or_a_dict_or_edges_and_must_cover_every_score():
    assert assign_bands([13, 13.5, 14, 19.9, 20, 29, 63]).tolist() == [
        "minimal", "minimal", "mild", "mild", "moderate", "severe", "severe"]
    assert assign_bands([0, 19.99, 20, 63], [0, 20, 63]).tolist() == ["0-20", "0-20", "20-63", "20-63"]
    assert assign_bands([3, 9], {"high": (5, 10), "low": (0, 4)}).tolist() == ["low", "high"]
    assert list(resolve_bands({"high": (5, 10), "low": (0, 4)})) == ["low", "high"]
    with pytest.raises(CohortError, match="no band covers the score"):
        assign_bands([40], [0, 20])
    with pytest.raises(CohortError, match="error groups"):
        resolve_bands({"over": (0, 63)})


# --- statistics against hand-computed values ------------------------------------------


def test_benjamini_hochberg_matches_a_hand_computed_example():
    p = [0.041, 0.001, 0.205, 0.039, np.nan, 0.008, 0.06, 0.074, 0.042]
    # m = 8 finite values; sorted: .001 .008 .039 .041 .042 .06 .074 .205; p*m/rank:
    # .008 .032 .104 .082 .0672 .08 .08457 .205; cumulative minimum from the top.
    expected = [0.0672, 0.008, 0.205, 0.0672, np.nan, 0.032, 0.08, 0.074 * 8 / 7, 0.0672]
    np.testing.assert_allclose(bh_fdr(p), expected, rtol=1e-9)


def test_kruskal_mann_whitney_and_effect_sizes_match_closed_forms():
    cohort = shares_cohort([5, 6, 7, 40, 41, 42], [5, 6, 7, 40, 41, 42], [0.1, 0.2, 0.3, 0.5, 0.6, 0.7])
    result = audit(cohort, au=False, n_boot=400)
    omnibus = result.omnibus.set_index(["grouping", "region"])
    # two fully separated groups of 3: ranks 1-3 and 4-6, H = 12/(6*7) * (6^2/3 + 15^2/3) - 3*7
    h = 12 / 42 * (36 / 3 + 225 / 3) - 21
    assert omnibus.loc[("band", "right_eye"), "statistic"] == pytest.approx(h)
    assert omnibus.loc[("band", "right_eye"), "effect"] == pytest.approx(h / 5)  # epsilon^2 = H / (n - 1)
    assert omnibus.loc[("band", "right_eye"), "n_groups"] == 2
    contrast = result.contrasts.set_index("region").loc["right_eye"]
    assert (contrast.group_a, contrast.group_b) == ("minimal", "severe")
    assert contrast.difference == pytest.approx(0.4)
    assert contrast.statistic == 9 and contrast.effect == pytest.approx(1.0)  # every pair has b > a
    assert contrast.p == pytest.approx(0.1)  # exact two-sided: 2 / C(6, 3)
    assert result.contrasts.set_index("region").loc["mouth", "effect"] == pytest.approx(-1.0)
    assert contrast.ci_low > 0.2 and contrast.ci_high < 0.6
    share = result.shares.set_index(["group", "region"])
    assert share.loc[("severe", "right_eye"), "mean"] == pytest.approx(0.6)
    assert share.loc[("correct", "right_eye"), "n"] == 6  # predictions are exact


def test_shares_use_the_signed_sum_over_the_total_magnitude():
    attribution = np.array([[[[2.0, -1.0, 1.0], [1.0, -1.0, 0.0]]]])  # one participant, two bins
    np.testing.assert_allclose(participant_shares(attribution), [[[3 / 6, -2 / 6, 1 / 6]]])


def test_spearman_columns_is_scipys_spearman_with_ties():
    rng = np.random.default_rng(3)
    series = rng.integers(0, 5, 40).astype(float)
    table = np.stack([series + rng.normal(0, 1, 40), rng.integers(0, 3, 40), np.full(40, 2.0)], axis=1)
    expected = [spearmanr(series, table[:, k]).statistic for k in range(2)]
    np.testing.assert_allclose(spearman_columns(series, table)[:2], expected)
    assert np.isnan(spearman_columns(series, table)[2])


def test_bootstrap_cis_cover_the_true_mean_at_their_level():
    rng = np.random.default_rng(0)
    samples = rng.normal(2.0, 1.0, size=(25, 400))  # 400 data sets of 25 participants
    _, low, high = bootstrap_ci(samples, n_boot=1000, ci=0.9, rng=np.random.default_rng(1))
    coverage = np.mean((low <= 2.0) & (2.0 <= high))
    assert 0.84 <= coverage <= 0.95
    _, low99, high99 = bootstrap_ci(samples, n_boot=1000, ci=0.99, rng=np.random.default_rng(1))
    assert np.all(high99 - low99 > high - low)


# --- planted and null cohorts ---------------------------------------------------------


def test_the_eye_share_rises_with_the_band_in_the_planted_cohort(planted):
    result, _, _ = planted
    for explainer in ("gradcam", "integrated_gradients"):
        for eye in EYES:
            row = result.contrasts.query(f"explainer == '{explainer}' and region == '{eye}' and "
                                         "group_a == 'minimal' and group_b == 'severe'").iloc[0]
            assert row.difference > 0.01 and row.ci_low > 0, (explainer, eye)
            assert row.effect > 0.7
            test = result.omnibus.query(f"explainer == '{explainer}' and grouping == 'band' and region == '{eye}'")
            assert test.p_fdr.item() < 0.05 and test.effect.item() > 0.3
    means = result.shares.query("grouping == 'band' and region == 'right_eye' and explainer == 'gradcam'")
    assert means["mean"].iloc[-1] > means["mean"].iloc[0]
    assert list(means.group) == ["minimal", "mild", "moderate", "severe"] and set(means.n) == {6}


def test_the_error_groups_show_nothing_when_attribution_ignores_the_error(planted):
    result, _, _ = planted
    assert (result.omnibus.query("grouping == 'error'").p_fdr > 0.05).all()


def test_a_null_cohort_has_no_significant_band_effect(null):
    assert (null.omnibus.p_fdr.dropna() > 0.05).all()
    assert (null.contrasts.p_fdr.dropna() > 0.05).all()
    assert null.omnibus.p.notna().all()


def test_au45_couples_to_the_eyes_and_au12_does_not(planted):
    rho = planted[0].au.query("band == 'all'").set_index(["explainer", "au", "region"])
    for explainer in ("gradcam", "integrated_gradients"):
        for eye in EYES:
            assert rho.loc[(explainer, "AU45", eye), "rho"] > 0.3
            assert rho.loc[(explainer, "AU45", eye), "ci_low"] > 0.2
            smile = rho.loc[(explainer, "AU12", eye)]
            assert abs(smile.rho) < 0.15 and smile.ci_low < 0 < smile.ci_high
        assert abs(rho.loc[(explainer, "AU45", "mouth"), "rho"]) < 0.1
    bands = planted[0].au.query("au == 'AU45' and region == 'right_eye' and explainer == 'gradcam'")
    assert list(bands.band) == ["all", "minimal", "mild", "moderate", "severe"] and list(bands.n) == [24] + [6] * 4


# --- event-triggered averages ---------------------------------------------------------


def tiny_cube(attribution_eye, au45, source="openface"):
    """One explainer, two regions (eye, rest = 1 each frame), AU45 as given and AU28
    without any intensity (OpenFace gives it as presence only)."""
    n = len(au45)
    attribution = np.stack([attribution_eye, np.ones(n)], axis=-1)[None]
    cube = make_cube(attribution, explainers=["gradcam"], time=np.arange(n), seconds=np.arange(n) / 25,
                     regions=["right_eye", "mouth"], region_area=np.full((n, 2), 10), face_found=np.ones(n, bool),
                     prediction=0.0)
    cube = cube.assign_coords(au=["AU45", "AU28"])
    intensity = np.stack([au45, np.full(n, np.nan)], axis=1).astype(np.float32)
    cube["au_intensity"] = xr.DataArray(intensity, dims=("time", "au"), attrs={"au_source": source})
    return cube


def test_event_triggered_average_is_exact_on_a_hand_made_cube():
    au45 = np.zeros(20)
    au45[[5, 6, 12]] = 2.0  # onsets at 5 and 12
    eye = np.ones(20)
    eye[[7, 14]] = 3.0  # the eyes respond 2 frames after each onset
    response = participant_event_responses(tiny_cube(eye, au45), ["gradcam"], ["right_eye"], window=3)
    expected = [0.5, 0.5, 0.5, 0.5, 0.5, 0.75, 0.5]  # lags -3..3; share = 3 / (3 + 1) at lag 2
    np.testing.assert_allclose(response.sel(explainer="gradcam", au="AU45", region="right_eye"), expected)
    assert int(response.n_onsets.sel(au="AU45")) == 2
    assert au_onsets(au45).tolist() == [5, 12]
    assert int(response.n_onsets.sel(au="AU28")) == 0 and response.sel(au="AU28").isnull().all()
    rho = participant_au_correlations(tiny_cube(eye, au45), ["gradcam"], ["right_eye"]).set_index("au")
    assert rho.loc["AU28", "n_frames"] == 0 and np.isnan(rho.loc["AU28", "rho"])
    assert rho.loc["AU45", "rho"] == pytest.approx(spearmanr(au45, eye).statistic)


def test_event_triggered_average_recovers_a_planted_lag():
    cohort, cubes = example_cohort(n_participants=8, lag=3, seed=1)
    events = event_triggered(cubes, window=8)
    eye = events.sel(explainer="gradcam", au="AU45", region="right_eye")
    assert int(eye.diff("lag").argmax("lag")) + int(eye.lag[1]) == 3  # the biggest rise is into lag 3
    assert float(eye.sel(lag=slice(3, 6)).mean()) > float(eye.sel(lag=slice(-2, 2)).mean()) + 0.05
    boxes = sum(int(np.sum(np.diff((c.au_intensity.sel(au="AU45").values > 1).astype(int)) == 1))
                for c in cubes.values())
    assert int(events.n_onsets.sel(au="AU45")) == boxes and int(events.n_participants.sel(au="AU45")) == 8


def test_landmark_proxies_are_z_scored_and_openface_intensities_are_not():
    _, openface = example_cohort(n_participants=4, au_source="openface")
    _, landmarks = example_cohort(n_participants=4, au_source="landmarks")
    by_openface, by_landmarks = event_triggered(openface, window=2), event_triggered(landmarks, window=2)
    # the same closures: found either way; AU04 (0-0.8) never reaches OpenFace's 1.0 but its z-score does
    assert int(by_openface.n_onsets.sel(au="AU45")) == int(by_landmarks.n_onsets.sel(au="AU45")) > 0
    assert int(by_openface.n_onsets.sel(au="AU04")) == 0 < int(by_landmarks.n_onsets.sel(au="AU04"))


# --- the result object, settings and errors -------------------------------------------


def test_the_audit_is_seeded_and_its_xarray_view_matches_the_table(planted):
    result, cohort, cubes = planted
    view = result.to_xarray()
    row = result.shares.query("explainer == 'gradcam' and group == 'severe' and region == 'left_eye'").iloc[0]
    assert float(view["ci_low"].sel(explainer="gradcam", group="severe", region="left_eye")) == row.ci_low
    assert str(view.grouping.sel(group="under").item()) == "error"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        again = audit(cohort, cubes=lambda name: cubes[name], seed=0, au=False)
        other = audit(cohort, seed=1, au=False)
    pd.testing.assert_frame_equal(again.shares, result.shares)
    assert not np.allclose(other.shares.ci_low, result.shares.ci_low)
    assert list(result.shares.columns) == ["explainer", "grouping", "group", "region", "n", "mean", "ci_low",
                                           "ci_high"]
    assert result.settings["n_boot"] == 2000 and result.settings["bands"]["mild"] == [14.0, 19.0]
    assert result.events.dims == ("explainer", "au", "lag", "region")


def test_explainers_and_regions_subsets_keep_the_shares_of_the_whole(planted):
    result, cohort, _ = planted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallGroupWarning)
        subset = audit(cohort, explainers="gradcam", regions=EYES, au=False)
    assert set(subset.shares.region) == set(EYES) and set(subset.shares.explainer) == {"gradcam"}
    whole = result.shares.query("explainer == 'gradcam' and region in @EYES").reset_index(drop=True)
    np.testing.assert_allclose(subset.shares["mean"], whole["mean"])


def test_small_groups_are_warned_about_and_bad_arguments_refused():
    cohort = shares_cohort([5, 6, 40, 41], [5, 6, 40, 60], [0.1, 0.2, 0.5, 0.6])
    with pytest.warns(SmallGroupWarning, match="band 'minimal' \\(2\\)"):
        result = audit(cohort, au=False, n_boot=100)
    assert result.shares.query("group == 'over'").ci_low.isna().all()  # one participant: no CI
    with pytest.raises(CohortError, match="no explainer \\['lime'\\]"):
        audit(cohort, explainers=["lime"], au=False)
    with pytest.raises(CohortError, match="no region \\['ear'\\]"):
        audit(cohort, regions=["ear"], au=False)
    with pytest.raises(CohortError, match="no band covers"):
        audit(cohort, bands=[0, 30], au=False)
    with pytest.raises(CohortError, match="at least 2"):
        audit(cohort.isel(participant=[0]), au=False)
    with pytest.raises(CohortError, match="ci=1.5"):
        audit(cohort, ci=1.5, au=False)
    with pytest.raises(CohortError, match="no prediction"):
        audit(cohort.assign(prediction=cohort.prediction.where(cohort.participant != "p1")), au=False)
    with pytest.raises(CohortError, match="no cube for participant"):
        audit(cohort, cubes={})
    with pytest.raises(CohortError, match="names no store"):
        audit(cohort)


def test_a_cohort_run_and_opened_from_its_store_is_audited_with_its_own_cubes(tmp_path):
    import expresso_xai as ex

    manifest = ex.samples.make_cohort(tmp_path, n_participants=3, seconds=0.8, progress=False)
    ex.cohort.run(manifest, "demo", methods=["gradcam"], store=tmp_path / "c.zarr", client="sequential",
                  progress=False)
    cohort = ex.cohort.open(tmp_path / "c.zarr", time_bins=4)
    with pytest.warns(SmallGroupWarning):
        result = audit(cohort, n_boot=50, event_window=3)  # cubes read from the store
    assert list(result.participants.index) == ["p000", "p001", "p002"]
    assert set(result.events.au.values) >= {"AU12", "AU45"} and set(result.au.band) == {"all", "minimal", "severe"}
    each = participant_shares(cohort.attribution.values)  # the partition: a participant's |shares| add up to 1
    np.testing.assert_allclose(np.abs(each).sum(axis=-1), 1.0)
    severe = result.shares.query("group == 'severe'").set_index("region")["mean"]
    in_band = (result.participants.band == "severe").to_numpy()
    np.testing.assert_allclose(severe[list(cohort.region.values)], each[in_band, 0].mean(axis=0))
