"""Print figures of a cube: the region × time heatmap."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from expresso_xai.cube import make_cube
from expresso_xai.errors import CubeError
from expresso_xai.figures import region_time_heatmap
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
    assert figure.axes[1].get_ylabel().startswith("attribution")  # the colour bar


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
