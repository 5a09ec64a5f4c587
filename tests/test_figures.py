"""Print figures of a cube: the region × time heatmap."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.cube import make_cube
from expresso_xai.cube.views import VALUE_LABELS, is_signed
from expresso_xai.errors import CubeError, RegionError
from expresso_xai.figures import draw_region_map, plot_region_map, region_time_heatmap
from expresso_xai.regions import PARTITION_REGIONS

N_FRAMES = 20


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def cube(rng):
    # background first here, to check the figure moves it last
    regions = ["background", *PARTITION_REGIONS[:-1]]
    T, R = N_FRAMES, len(regions)
    area = rng.integers(50, 400, size=(T, R))
    face_found = np.ones(T, bool)
    face_found[[4, 5, 12]] = False
    area[~face_found] = 0
    area[:, 0] = 112 * 112 - area[:, 1:].sum(axis=1)
    attribution = rng.normal(size=(2, T, R))
    attribution[1] = np.abs(attribution[1])  # an explainer with only positive values
    return make_cube(attribution, explainers=["gradcam", "saliency"], time=np.arange(50, 50 + T),
                     seconds=np.arange(50, 50 + T) / 25.0, regions=regions, region_area=area,
                     face_found=face_found, prediction=np.zeros(T), attrs={"model_name": "demo"})


def _image(figure):
    return figure.axes[0].images[0]


def test_heatmap_saves_png_and_pdf_when_the_path_has_no_suffix(tmp_path, cube):
    figure = region_time_heatmap(cube, "gradcam", path=tmp_path / "heatmap")
    png, pdf = tmp_path / "heatmap.png", tmp_path / "heatmap.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert figure.axes[0].get_title(loc="left") == "gradcam: attribution per pixel (density) by region and time (demo)"
    region_time_heatmap(cube, "gradcam", path=tmp_path / "only.pdf")
    assert (tmp_path / "only.pdf").exists() and not (tmp_path / "only.png").exists()


def test_heatmap_rows_are_the_regions_with_background_last(cube):
    figure = region_time_heatmap(cube, "gradcam", value="attribution")
    axis = figure.axes[0]
    labels = [label.get_text() for label in axis.get_yticklabels()]
    assert len(labels) == len(PARTITION_REGIONS)
    assert labels == list(PARTITION_REGIONS)  # cube order, background moved last
    image = _image(figure).get_array()
    assert image.shape == (len(PARTITION_REGIONS), N_FRAMES)
    expected = cube["attribution"].sel(explainer="gradcam", region="mouth").values
    np.testing.assert_allclose(image[labels.index("mouth")], expected)
    ticks = [label.get_text() for label in axis.get_xticklabels()]
    assert ticks[0] == "2.00\n50"  # seconds over frame index
    assert figure.axes[1].get_ylabel() == VALUE_LABELS["attribution"]  # the colour bar


def test_signed_values_get_symmetric_limits_and_a_diverging_map(cube):
    figure = region_time_heatmap(cube, "gradcam", value="attribution")
    low, high = _image(figure).get_clim()
    assert low == -high
    assert high == pytest.approx(np.abs(cube["attribution"].sel(explainer="gradcam")).max().item())
    assert _image(figure).get_cmap().name.startswith("RdBu_r")


def test_non_negative_values_get_a_sequential_map_from_zero(cube):
    figure = region_time_heatmap(cube, "saliency", cmap="magma")
    low, high = _image(figure).get_clim()
    assert low == 0 and high > 0
    assert _image(figure).get_cmap().name.startswith("magma")


def test_a_figure_and_the_explorer_agree_that_float_noise_is_not_a_sign(cube):
    # a map of magnitudes with rounding noise below zero, as a sum of pixels can give
    noisy = cube.copy(deep=True)
    noisy["attribution"].loc[{"explainer": "saliency", "region": "mouth"}] = -1e-9
    values = noisy.attribution.sel(explainer="saliency").values
    assert values.min() < 0 and not is_signed(values)
    low, high = _image(region_time_heatmap(noisy, "saliency")).get_clim()
    assert low == 0 and high > 0  # sequential, as the Explorer colours it
    noisy["attribution"].loc[{"explainer": "saliency", "region": "mouth"}] = -0.5
    assert is_signed(noisy.attribution.sel(explainer="saliency").values)
    low, high = _image(region_time_heatmap(noisy, "saliency")).get_clim()
    assert low == -high


@pytest.mark.parametrize("value", ["density", "share"])
def test_density_and_share_heatmaps(cube, value):
    figure = region_time_heatmap(cube, "gradcam", value=value, title="custom")
    image = _image(figure).get_array()
    if value == "density":
        # frames without a face have no pixels outside the background: masked (grey)
        assert image.mask[:-1, 4].all() and not image.mask[-1, 4]
    else:
        np.testing.assert_allclose(np.abs(image).sum(), 1.0)
    low, high = _image(figure).get_clim()
    assert low == -high
    assert figure.axes[0].get_title(loc="left") == "custom"


def test_frames_without_a_face_are_hatched(cube):
    figure = region_time_heatmap(cube, "gradcam")
    spans = [patch for patch in figure.axes[0].patches if patch.get_hatch()]
    assert len(spans) == 2  # frames 4-5 and frame 12
    assert [text.get_text() for text in figure.axes[0].get_legend().get_texts()] == ["no face"]


def test_heatmap_draws_into_a_given_axes(cube):
    figure, (left, right) = plt.subplots(1, 2)
    assert region_time_heatmap(cube, "saliency", ax=right) is figure
    assert right.images and not left.images


def test_unknown_explainer_or_value_is_refused(cube):
    with pytest.raises(CubeError, match=r"'shapley'.*\['gradcam', 'saliency'\]"):
        region_time_heatmap(cube, "shapley")
    with pytest.raises(CubeError, match="value must be one of"):
        region_time_heatmap(cube, "gradcam", value="magnitude")


def test_region_map_drawing_writes_a_figure(tmp_path, short_video, short_faces):
    path = tmp_path / "regions.png"
    figure = plot_region_map(short_video, short_faces, frame=3, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(figure.axes) == 2
    with pytest.raises(RegionError, match="frame 48 is outside the video's 48 frames"):
        plot_region_map(short_video, short_faces, frame=48)


@pytest.mark.parametrize("exclusive", [True, False])
def test_region_drawing_tints_the_regions_and_leaves_the_background(exclusive):
    background = PARTITION_REGIONS.index("background")
    if exclusive:
        labels = np.full((16, 16), background, np.uint8)
        labels[4:8, 4:8] = 0
    else:  # bit flags: right_eye overlaps the mouth in the middle
        labels = np.full((16, 16), 1 << background, np.uint16)
        labels[4:8, 4:8] = 1 << 0
        labels[6:10, 6:10] |= 1 << PARTITION_REGIONS.index("mouth")
    image = draw_region_map(np.zeros((16, 16, 3), np.uint8), labels, PARTITION_REGIONS, outlines=False,
                            exclusive=exclusive)
    assert (image[0, 0] == 0).all() and image[5, 5, 0] > 50  # right_eye tinted, background untouched
    # where boxes overlap, the mouth's green is blended over the eye's red too
    assert (image[7, 7, 1] > image[5, 5, 1]) == (not exclusive)


# --- evaluation figures: perturbation curves and the method x metric table -------------


@pytest.fixture
def evaluation():
    from expresso_xai.testing import example_evaluation

    return example_evaluation(explainers=("gradcam", "integrated_gradients", "saliency"))


def _assert_drawn_png(path):
    """A PNG with a real drawing on it, not a blank canvas."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = plt.imread(path)[..., :3]
    inked = (image < 0.9).any(axis=-1).mean()
    assert 0.005 < inked < 0.6, inked


def _line(axis, gid):
    lines = [line for line in axis.lines if line.get_gid() == gid]
    assert len(lines) == 1, [line.get_gid() for line in axis.lines]
    return lines[0]


def test_perturbation_curves_draw_the_evaluations_own_curves(tmp_path, evaluation):
    from expresso_xai.figures import perturbation_curves

    path = tmp_path / "curves.png"
    figure = perturbation_curves(evaluation, path=path)
    _assert_drawn_png(path)
    assert [axis.get_title(loc="left") for axis in figure.axes] == [
        "deletion (fill blur, units of 4 frames)", "insertion (fill blur, units of 4 frames)"]
    steps = evaluation.step.values
    for axis, kind in zip(figure.axes, ("deletion", "insertion")):
        for explainer in evaluation.explainer.values:
            for order, name in (("morf", "MoRF"), ("lerf", "LeRF")):
                line = _line(axis, f"{explainer}:{order}")
                np.testing.assert_array_equal(line.get_xdata(), steps)
                np.testing.assert_array_equal(line.get_ydata(),
                                              evaluation.curve.sel(explainer=explainer, kind=kind, order=order).values)
                score = float(evaluation.score.sel(explainer=explainer, metric=f"{kind}_{order}"))
                assert line.get_label() == f"{explainer} {name} {score:.3f}"
        # the random orders are the same for every method: one grey line and its band
        random = _line(axis, "gradcam:random")
        np.testing.assert_array_equal(random.get_ydata(), evaluation.curve.sel(explainer="gradcam", kind=kind,
                                                                               order="random").values)
        assert [line.get_gid() for line in axis.lines].count("saliency:random") == 0
        band = [c for c in axis.collections if c.get_gid() == "gradcam:random band"][0].get_paths()[0].vertices
        bounds = evaluation.curve_ci.sel(explainer="gradcam", kind=kind)
        assert band[:, 1].min() == pytest.approx(bounds.min()) and band[:, 1].max() == pytest.approx(bounds.max())
        legend = [text.get_text() for text in axis.get_legend().get_texts()]
        assert len(legend) == 2 * 3 + 1 and legend[-1].startswith("random order")
    assert figure.axes[0].get_xlabel() == "fraction of units removed"
    assert figure.axes[1].get_xlabel() == "fraction of units inserted"


def test_perturbation_curves_of_some_methods_and_one_kind(tmp_path, evaluation):
    from expresso_xai.figures import perturbation_curves

    everyone = perturbation_curves(evaluation)
    one = perturbation_curves(evaluation, kind="insertion", explainers=["saliency"], path=tmp_path / "curves")
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "curves.pdf").read_bytes()[:5] == b"%PDF-"
    assert len(one.axes) == 1 and one.axes[0].get_title(loc="left").startswith("insertion")
    assert {line.get_gid() for line in one.axes[0].lines} == {"saliency:morf", "saliency:lerf", "saliency:random"}
    # a method keeps its colour when drawn alone
    assert _line(one.axes[0], "saliency:morf").get_color() == _line(everyone.axes[1], "saliency:morf").get_color()
    perturbation_curves(evaluation, kind="deletion", path=tmp_path / "curves.svg")
    assert b"<svg" in (tmp_path / "curves.svg").read_bytes()[:500]


def test_random_curves_that_differ_between_methods_are_drawn_for_each(evaluation):
    from expresso_xai.figures import perturbation_curves

    changed = evaluation.copy(deep=True)
    changed["curve"].loc[{"explainer": "saliency", "order": "random"}] += 1.0
    axis = perturbation_curves(changed, kind="deletion").axes[0]
    for explainer in ("gradcam", "integrated_gradients", "saliency"):
        np.testing.assert_array_equal(_line(axis, f"{explainer}:random").get_ydata(),
                                      changed.curve.sel(explainer=explainer, kind="deletion", order="random").values)


def test_perturbation_curves_refuse_what_they_cannot_draw(evaluation, cube):
    from expresso_xai.errors import EvaluationError
    from expresso_xai.figures import perturbation_curves

    with pytest.raises(EvaluationError, match="not an evaluation dataset"):
        perturbation_curves(cube)
    with pytest.raises(EvaluationError, match="no explainer 'occlusion'"):
        perturbation_curves(evaluation, explainers=["occlusion"])
    with pytest.raises(EvaluationError, match="kind='removal'"):
        perturbation_curves(evaluation, kind="removal")
    deletion_only = evaluation.sel(kind=["deletion"])
    with pytest.raises(EvaluationError, match=r"no insertion curves \(it has \['deletion'\]\)"):
        perturbation_curves(deletion_only, kind="insertion")
    assert len(perturbation_curves(deletion_only).axes) == 1  # both: every kind it has
    with pytest.raises(EvaluationError, match="no perturbation curves"):
        perturbation_curves(evaluation.drop_vars(["curve", "curve_ci"]))


def test_metric_table_marks_the_best_score_in_each_metrics_own_direction(tmp_path, evaluation):
    from expresso_xai.figures import BEST_CELL, metric_table

    ev = evaluation.copy(deep=True)
    metrics = ev.metric.values.tolist()
    assert ev.better.sel(metric="mprt_spearman") == "lower" and ev.better.sel(metric="deletion_morf") == "higher"
    # the same numbers in a lower-is-better and a higher-is-better column: opposite winners
    ev["score"].loc[{"metric": "mprt_spearman"}] = [0.6, 0.2, 0.4]
    ev["score"].loc[{"metric": "deletion_morf"}] = [0.6, 0.2, 0.4]
    ev["score"].loc[{"metric": "static_clip"}] = [0.6, 0.2, 0.4]  # descriptive: no winner
    ev["passed"].loc[{"metric": "mprt_spearman"}] = [0.0, 1.0, np.nan]
    ev["score"].loc[{"explainer": "saliency", "metric": "relevance_mass"}] = np.nan
    path = tmp_path / "table.png"
    table = metric_table(ev, path=path).axes[0].tables[0]
    _assert_drawn_png(path)

    def marked(metric):
        col = metrics.index(metric) + 1
        cells = [table[row, col] for row in (2, 3, 4)]
        bold = [cell.get_text().get_fontweight() == "bold" for cell in cells]
        shaded = [matplotlib.colors.same_color(cell.get_facecolor(), BEST_CELL) for cell in cells]
        assert bold == shaded
        return bold

    assert marked("mprt_spearman") == [False, True, False]
    assert marked("deletion_morf") == [True, False, False]
    assert marked("static_clip") == [False, False, False]
    assert [table[row, 0].get_text().get_text() for row in (2, 3, 4)] == list(ev.explainer.values)
    spearman = metrics.index("mprt_spearman") + 1
    assert table[1, spearman].get_text().get_text() == "spearman ↓"
    assert table[0, metrics.index("mprt_spearman") + 1].get_text().get_text() == "mprt"  # the group's first column
    assert table[1, metrics.index("static_clip") + 1].get_text().get_text() == "static_clip"  # no direction
    # the marks are the dataset's verdicts (fail, pass, none)
    assert [table[row, spearman].get_text().get_text() for row in (2, 3, 4)] == ["0.600 ✗", "0.200 ✓", "0.400"]
    assert table[4, metrics.index("relevance_mass") + 1].get_text().get_text() == "–"


def test_metric_table_refuses_a_cube_and_saves_by_suffix(tmp_path, evaluation, cube):
    from expresso_xai.errors import EvaluationError
    from expresso_xai.figures import metric_table

    with pytest.raises(EvaluationError, match="not an evaluation dataset"):
        metric_table(cube)
    metric_table(evaluation, path=tmp_path / "table.pdf")
    pdf = (tmp_path / "table.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and not (tmp_path / "table.png").exists()
    assert b"/CIDFontType2" in pdf and b"/Type3" not in pdf  # TrueType text, editable in a journal's tools


# --- cohort audit figures: region shares per group, the AU x region heatmap -------------

SHARE_REGIONS = ["mouth", "right_eye", "background", "nose"]


@pytest.fixture
def shares():
    """Two explainers with different, known shares; bands in severity order, not sorted."""
    import pandas as pd

    rows = []
    for e, explainer in enumerate(["gradcam", "occlusion"]):
        for grouping, groups in [("band", ["minimal", "severe", "mild"]), ("error", ["correct", "over"])]:
            for g, group in enumerate(groups):
                for r, region in enumerate(SHARE_REGIONS):
                    mean = 0.01 * (1 + r) * (1 + g) + 0.5 * e + 0.2 * (region == "right_eye")
                    rows.append((explainer, grouping, group, region, 10 + g, mean, mean - 0.01 * (1 + g),
                                 mean + 0.02 * (1 + r)))
    return pd.DataFrame(rows, columns=["explainer", "grouping", "group", "region", "n", "mean", "ci_low", "ci_high"])


def _bars_and_whiskers(axis):
    from matplotlib.container import BarContainer, ErrorbarContainer

    bars = [c for c in axis.containers if isinstance(c, BarContainer)]
    whiskers = [c for c in axis.containers if isinstance(c, ErrorbarContainer)]
    return bars, whiskers


def test_band_shares_draw_one_bar_per_group_and_region_with_the_tables_means(shares):
    from types import SimpleNamespace

    from expresso_xai.figures import band_shares

    figure = band_shares(SimpleNamespace(shares=shares), explainer="occlusion")
    axis = figure.axes[0]
    bars, _ = _bars_and_whiskers(axis)
    # default regions: background left out, the largest share first
    assert [label.get_text() for label in axis.get_xticklabels()] == ["right_eye", "nose", "mouth"]
    assert [bar.patches[0].get_gid() for bar in bars] == ["minimal", "severe", "mild"]
    assert [text.get_text() for text in axis.get_legend().get_texts()] == \
        ["minimal (n=10)", "severe (n=11)", "mild (n=12)"]
    rows = shares[(shares.explainer == "occlusion") & (shares.grouping == "band")]
    for bar in bars:
        cells = rows[rows.group == bar.patches[0].get_gid()].set_index("region")
        np.testing.assert_allclose([patch.get_height() for patch in bar.patches],
                                   cells.loc[["right_eye", "nose", "mouth"], "mean"].values)
    # in each region, the groups side by side in the table's order, centred on the tick
    centres = np.array([[patch.get_x() + patch.get_width() / 2 for patch in bar.patches] for bar in bars])
    assert (np.diff(centres, axis=0) > 0).all()
    np.testing.assert_allclose(centres.mean(axis=0), axis.get_xticks(), atol=1e-12)


def test_band_shares_whiskers_span_exactly_the_confidence_intervals(shares):
    from expresso_xai.figures import band_shares

    figure = band_shares(shares, grouping="error", regions=["nose", "background"])
    bars, whiskers = _bars_and_whiskers(figure.axes[0])
    assert len(whiskers) == len(bars) == 2
    rows = shares[(shares.explainer == "gradcam") & (shares.grouping == "error")]
    for bar, whisker in zip(bars, whiskers):
        segments = np.array(whisker.lines[2][0].get_segments())  # (region, end, xy)
        cells = rows[rows.group == bar.patches[0].get_gid()].set_index("region").loc[["nose", "background"]]
        np.testing.assert_allclose(segments[:, 0, 1], cells.ci_low.values)
        np.testing.assert_allclose(segments[:, 1, 1], cells.ci_high.values)
        np.testing.assert_allclose(segments[:, 0, 0], [p.get_x() + p.get_width() / 2 for p in bar.patches])


def test_band_shares_draw_a_zero_line_only_for_signed_shares(shares):
    from expresso_xai.figures import band_shares

    def zero_lines(table):
        return [line for line in band_shares(table).axes[0].lines if line.get_gid() == "zero"]

    assert zero_lines(shares) == []
    signed = shares.assign(mean=shares["mean"] - 0.1, ci_low=shares.ci_low - 0.1, ci_high=shares.ci_high - 0.1)
    (line,) = zero_lines(signed)
    assert list(line.get_ydata()) == [0, 0]


@pytest.fixture
def au_table():
    """Two bands; one cell without a value; only the eyes' CIs can exclude 0."""
    import pandas as pd

    rng = np.random.default_rng(7)
    rows = []
    for band in ["all", "severe"]:
        for au in ["AU45", "AU04", "AU12"]:
            for region in ["background", "right_eye", "mouth"]:
                if (au, region) == ("AU12", "mouth") and band == "all":
                    continue  # a cell without a value
                rho = float(rng.uniform(-0.6, 0.6))
                low = rho - 0.1 if region == "right_eye" else rho - 1.0  # only the eyes' CI can exclude 0
                rows.append(("gradcam", band, au, region, 8, rho, low, rho + 0.1))
    return pd.DataFrame(rows, columns=["explainer", "band", "au", "region", "n", "rho", "ci_low", "ci_high"])


def test_au_heatmap_cells_are_the_mean_rho_with_the_significant_ones_marked(au_table):
    from expresso_xai.figures import au_heatmap

    table = au_table[au_table.band == "all"]
    figure = au_heatmap(au_table)
    axis, bar = figure.axes
    assert [t.get_text() for t in axis.get_yticklabels()] == ["AU04", "AU12", "AU45"]
    assert [t.get_text() for t in axis.get_xticklabels()] == ["right_eye", "mouth", "background"]
    cells = table.set_index(["au", "region"])["rho"].unstack()
    expected = cells.reindex(index=["AU04", "AU12", "AU45"], columns=["right_eye", "mouth", "background"])
    image = axis.images[0]
    drawn = image.get_array()
    np.testing.assert_allclose(drawn.filled(np.nan), expected.values)
    assert drawn.mask[1, 1] and drawn.mask.sum() == 1
    limit = np.nanmax(np.abs(expected.values))
    assert image.get_clim() == pytest.approx((-limit, limit))
    assert image.get_cmap().name.startswith("RdBu_r")
    (dots,) = [c for c in axis.collections if c.get_gid() == "significant"]
    significant = table[(table.ci_low > 0) | (table.ci_high < 0)]
    expected_dots = {(["right_eye", "mouth", "background"].index(r), ["AU04", "AU12", "AU45"].index(a))
                     for a, r in zip(significant.au, significant.region)}
    assert {tuple(map(int, xy)) for xy in dots.get_offsets()} == expected_dots and expected_dots
    assert bar.get_ylabel() == "Spearman ρ (mean over participants)"
    assert axis.get_title(loc="left") == "gradcam: AU × region, band all (n=8)"


def test_au_heatmap_limits_are_symmetric_and_at_most_one():
    import pandas as pd

    from expresso_xai.figures import au_heatmap

    table = pd.DataFrame([("saliency", "mild", "AU01", "nose", 3, -1.0, -1.0, -0.5),
                          ("saliency", "mild", "AU02", "nose", 3, 0.25, 0.1, 0.4)],
                         columns=["explainer", "band", "au", "region", "n", "rho", "ci_low", "ci_high"])
    assert au_heatmap(table, band="mild").axes[0].images[0].get_clim() == (-1.0, 1.0)
    small = table.assign(rho=[-0.05, 0.02])
    assert au_heatmap(small, band="mild").axes[0].images[0].get_clim() == pytest.approx((-0.05, 0.05))


@pytest.mark.parametrize("suffix", ["png", "pdf", "svg"])
def test_cohort_figures_save_by_suffix(tmp_path, shares, au_table, suffix):
    from types import SimpleNamespace

    from expresso_xai.figures import au_heatmap, band_shares

    audit = SimpleNamespace(shares=shares, au=au_table)
    band_shares(audit, path=tmp_path / f"shares.{suffix}", width="double")
    au_heatmap(audit, path=tmp_path / f"au.{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"au.{suffix}", f"shares.{suffix}"]
    for name in ("au", "shares"):
        data = (tmp_path / f"{name}.{suffix}").read_bytes()
        if suffix == "png":
            _assert_drawn_png(tmp_path / f"{name}.png")
        elif suffix == "pdf":
            assert data[:5] == b"%PDF-" and b"/CIDFontType2" in data and b"/Type3" not in data
        else:
            assert b"<svg" in data[:1000]


def test_cohort_figures_refuse_what_they_cannot_draw(shares, au_table):
    from types import SimpleNamespace

    from expresso_xai.errors import CohortError
    from expresso_xai.figures import au_heatmap, band_shares

    audit = SimpleNamespace(shares=shares, au=au_table)
    with pytest.raises(CohortError, match=r"no explainer 'deeplift'; it has \['gradcam', 'occlusion'\]"):
        band_shares(shares, explainer="deeplift")
    with pytest.raises(CohortError, match="no grouping 'sex'"):
        band_shares(shares, grouping="sex")
    with pytest.raises(CohortError, match="no region 'forehead'"):
        band_shares(shares, regions=["nose", "forehead"])
    with pytest.raises(CohortError, match="no rows"):
        band_shares(shares.iloc[:0])
    with pytest.raises(CohortError, match="no column 'ci_high'"):
        band_shares(shares.drop(columns="ci_high"))
    with pytest.raises(CohortError, match="width='wide'"):
        band_shares(shares, width="wide")
    with pytest.raises(CohortError, match=r"no band 'moderate'; it has \['all', 'severe'\]"):
        au_heatmap(audit, band="moderate")
    with pytest.raises(CohortError, match="no explainer 'deeplift'"):
        au_heatmap(audit, explainer="deeplift")
    with pytest.raises(CohortError, match="expected a cohort audit"):
        au_heatmap(object())
