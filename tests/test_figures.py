"""Print figures of a cube: the region × time heatmap."""

from __future__ import annotations

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
