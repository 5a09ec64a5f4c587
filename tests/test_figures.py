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
    assert figure.axes[0].get_title(loc="left") == "gradcam: attribution by region and time (demo)"
    region_time_heatmap(cube, "gradcam", path=tmp_path / "only.pdf")
    assert (tmp_path / "only.pdf").exists() and not (tmp_path / "only.png").exists()


def test_heatmap_rows_are_the_regions_with_background_last(cube):
    figure = region_time_heatmap(cube, "gradcam")
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
    figure = region_time_heatmap(cube, "gradcam")
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
