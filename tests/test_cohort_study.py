"""The reference study's analysis, end to end on synthetic cohorts explained for real
(demo model, ``ex.cohort.run`` → ``open`` → ``audit`` → ``report``):

- severity planted in long eye closures: the eyes' share of attribution rises with the
  band (high > low, with a bootstrap CI of the difference above 0), and AU45 (eye
  closure) correlates positively with the eyes' attribution over time;
- the same kind of videos with scores the model cannot see (every video has the same eye
  behaviour; the scores are drawn apart from it): no band effect.
"""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.cli import main as cli_main
from expresso_xai.samples import SampleSpec, render, write_sample

pytestmark = pytest.mark.slow
METHODS = ["gradcam", "integrated_gradients"]
EYES = ["right_eye", "left_eye"]
#: Two halves of the scale: twelve participants leave one or two in some BDI-II bands.
BANDS = {"low": (0, 31.5), "high": (31.5, 63)}


def _run(manifest, store):
    """The audit of the two eyes together (shares and tests), and of each region (the AU link)."""
    # on a LocalCluster of two: the suite runs one test at a time, and the second core is free
    done = ex.cohort.run(manifest, "demo", methods=METHODS, store=store, workers=2, progress=False)
    assert done.counts()["failed"] == 0
    cohort = ex.cohort.open(store, time_bins=4)
    eyes = ex.cohort.merge_regions(cohort, {"eyes": EYES})
    return (ex.cohort.audit(eyes, bands=BANDS, n_boot=1000, seed=0, au=False),
            ex.cohort.audit(cohort, bands=BANDS, n_boot=1000, seed=0))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    manifest = ex.samples.make_cohort(folder, n_participants=12, seconds=3, seed=21, progress=False)
    return folder, *_run(manifest, folder / "cohort.zarr")


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    """Twelve videos with the same planted eye closure (score 30 each) and manifest scores
    spread over 0–63 in an order unrelated to the videos."""
    folder = tmp_path_factory.mktemp("unseen")
    scores = np.random.default_rng(3).permutation(np.linspace(0, 63, 12))
    rows = []
    for i, score in enumerate(scores):
        name = f"u{i:02d}"
        write_sample(render(SampleSpec(seed=500 + i, seconds=3, score=30, name=name)), folder, name)
        rows.append({"participant": name, "video": f"{name}.mp4", "openface": f"{name}.openface.csv",
                     "score": f"{score:.2f}"})
    with (folder / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder, *_run(folder / "manifest.csv", folder / "cohort.zarr")


def _contrast(result, explainer, region, low="low", high="high"):
    table = result.contrasts
    row = table[(table.explainer == explainer) & (table.grouping == "band") & (table.region == region)
                & (table.group_a == low) & (table.group_b == high)]
    assert len(row) == 1
    return row.iloc[0]


@pytest.mark.parametrize("explainer", METHODS)
def test_the_eyes_share_rises_with_the_planted_severity(planted, explainer):
    _, result, _ = planted
    shares = result.shares[(result.shares.explainer == explainer) & (result.shares.grouping == "band")]
    means = shares[shares.region == "eyes"].set_index("group")["mean"]
    assert means["high"] > means["low"]
    contrast = _contrast(result, explainer, "eyes")
    assert contrast.difference > 0 and contrast.ci_low > 0, contrast  # CI of high - low above 0
    omnibus = result.omnibus
    eyes = omnibus[(omnibus.explainer == explainer) & (omnibus.grouping == "band") & (omnibus.region == "eyes")].iloc[0]
    assert eyes.p < 0.05, eyes
    if explainer == "gradcam":  # integrated gradients: p 0.04, 0.12 after FDR over the 12 regions
        assert eyes.p_fdr < 0.05, eyes


def test_au45_goes_with_the_eyes_attribution(planted):
    _, _, result = planted
    au = result.au
    for region in EYES:
        row = au[(au.explainer == "gradcam") & (au.band == "all") & (au.au == "AU45") & (au.region == region)].iloc[0]
        assert row.rho > 0.2 and row.ci_low > 0, row


def test_the_model_predicts_the_planted_scores(planted):
    _, result, _ = planted
    assert result.metrics["mae"] < 12  # the demo model was trained on this kind of cohort
    assert result.metrics["pearson_r"] > 0.7


@pytest.mark.parametrize("explainer", METHODS)
def test_scores_the_model_cannot_see_show_no_band_effect(unseen, explainer):
    for result in unseen[1:]:
        omnibus = result.omnibus
        band = omnibus[(omnibus.explainer == explainer) & (omnibus.grouping == "band")]
        assert (band.p_fdr > 0.05).all(), band
    contrast = _contrast(unseen[1], explainer, "eyes")
    assert contrast.ci_low < 0 < contrast.ci_high, contrast


def test_the_report_writes_tables_and_figures(planted, tmp_path):
    folder = planted[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ex.errors.ExpressoWarning)
        code = cli_main(["cohort", "report", str(folder / "cohort.zarr"), "--out", str(tmp_path / "report"),
                            "--n-boot", "200", "--time-bins", "4", "--quiet"])
    assert code == 0
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"participants.csv", "metrics.json", "shares.csv", "omnibus.csv", "contrasts.csv", "au.csv",
            "events.csv"} <= names
    for explainer in METHODS:
        for stem in (f"shares_{explainer}_band", f"shares_{explainer}_error", f"au_{explainer}"):
            assert {f"{stem}.pdf", f"{stem}.png"} <= names
            assert (tmp_path / "report" / f"{stem}.png").stat().st_size > 5000
