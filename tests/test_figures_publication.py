"""Publication figures: every kind saves PDF (TrueType), SVG and 300-dpi PNG of the asked
width with the cube's provenance in the file; colour scales are symmetric for signed
values and shared across panels when asked; the frame strip finds the planted moments;
the methods paragraph is written from the cube."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

import expresso_xai as ex
from expresso_xai.cube import make_cube
from expresso_xai.errors import CubeError, VideoReadError
from expresso_xai.figures import (agreement_matrix, frame_strip, method_grid, region_bars, region_time_heatmap,
                                  top_moments)
from expresso_xai.regions import PARTITION_REGIONS
from expresso_xai.testing import example_evaluation

T, SIDE, FRAME = 24, 16, 48  # frames, model-input side, video side (the crop is the frame at 1/3)
MODEL_HASH = "feedc0de" * 8
PLANTED = {3: 100.0, 13: 95.0, 12: 90.0, 20: 80.0}  # frame: attribution on the mouth; 12 is 13's neighbour


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def video():
    y, x = np.mgrid[:FRAME, :FRAME]
    face = ((y - 24) ** 2 + (x - 24) ** 2 < 18 ** 2)[None, :, :, None]
    frames = np.where(face, [200, 160, 130], [40, 60, 90]) + np.arange(T)[:, None, None, None]
    return ex.Video.from_array(frames.astype(np.uint8), fps=10.0, source="planted.mp4")


@pytest.fixture(scope="module")
def cube():
    rng = np.random.default_rng(0)
    regions = list(PARTITION_REGIONS)
    labels = np.full((T, SIDE, SIDE), regions.index("background"), np.uint8)
    labels[:, 10:14, 4:12] = regions.index("mouth")
    labels[:, 3:6, 2:7] = regions.index("right_eye")
    labels[:, 3:6, 9:14] = regions.index("left_eye")
    area = np.stack([(labels == i).sum(axis=(1, 2)) for i in range(len(regions))], axis=1)
    attribution = rng.normal(0.0, 1.0, size=(2, T, len(regions)))
    for frame, value in PLANTED.items():
        attribution[:, frame, regions.index("mouth")] = value
    pixels = rng.normal(0.0, 1.0, size=(2, T, SIDE, SIDE))
    pixels[1] *= 50.0  # the second method's numbers are 50 times larger
    crop = np.tile(np.array([[1 / 3, 0, -1 / 3], [0, 1 / 3, -1 / 3]]), (T, 1, 1))
    return make_cube(
        attribution, explainers=["gradcam", "saliency"], time=np.arange(T), seconds=np.arange(T) / 10.0,
        regions=regions, region_area=area, face_found=np.ones(T, bool), prediction=np.zeros(T),
        target="regression", pixels=pixels, region_label=labels, crop_matrix=crop,
        attrs={"model_name": "planted", "model_hash": MODEL_HASH, "video_source": "planted.mp4",
               "video_hash": "0123abcd" * 8, "region_scheme": "partition", "video_fps": 10.0,
               "video_frame_size": [FRAME, FRAME], "clip_length": 16, "stride": 8,
               "methods": {"gradcam": {"relu": True, "layer": None}, "saliency": {"absolute": False}}},
    )


def _kinds(cube, video):
    """name -> draw(path, width): one of each kind of a cube (the cohort and evaluation
    kinds are saved by test_figures.py and the gallery)."""
    return {
        "frame_strip": lambda path, width: frame_strip(cube, video, k=3, path=path, width=width),
        "method_grid": lambda path, width: method_grid(cube, video, k=2, path=path, width=width),
        "region_time_heatmap": lambda path, width: region_time_heatmap(cube, "gradcam", path=path, width=width),
        "region_bars": lambda path, width: region_bars(cube, path=path, width=width),
        "agreement_matrix": lambda path, width: agreement_matrix(cube, path=path, width=width),
        "perturbation_curves": lambda path, width: ex.figures.perturbation_curves(
            example_evaluation().assign_attrs(model_hash=MODEL_HASH), path=path, width=width),
        "metric_table": lambda path, width: ex.figures.metric_table(
            example_evaluation().assign_attrs(model_hash=MODEL_HASH), path=path, width=width),
    }


KINDS = ["frame_strip", "method_grid", "region_time_heatmap", "region_bars", "agreement_matrix",
         "perturbation_curves", "metric_table"]


def _pdf_fonts_are_truetype(data: bytes) -> None:
    assert b"/FontFile2" in data, "no TrueType font program embedded"
    # matplotlib embeds TrueType as a CID font (what pdffonts lists as "CID TrueType")
    subtypes = set(re.findall(rb"/Subtype\s*/(\w+)", data))
    assert subtypes & {b"TrueType", b"CIDFontType2"}, subtypes
    assert b"/Type3" not in data, "Type 3 fonts: journals refuse them"


def _svg_description(path) -> dict:
    root = ElementTree.parse(path).getroot()
    description = root.find(".//{http://purl.org/dc/elements/1.1/}description")
    return json.loads(description.text)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_saves_pdf_svg_and_png_with_the_cubes_provenance(kind, tmp_path, cube, video):
    draw = _kinds(cube, video)[kind]
    for suffix in (".pdf", ".svg", ".png"):
        draw(tmp_path / f"{kind}{suffix}", "single")
    pdf = (tmp_path / f"{kind}.pdf").read_bytes()
    _pdf_fonts_are_truetype(pdf)
    assert MODEL_HASH.encode() in pdf  # the Info dictionary's Keywords
    assert _svg_description(tmp_path / f"{kind}.svg")["model_hash"] == MODEL_HASH
    with Image.open(tmp_path / f"{kind}.png") as image:
        record = json.loads(image.text["expresso_xai_provenance"])
        assert record["model_hash"] == MODEL_HASH
        assert image.size[0] == 1050  # 3.5 in at 300 dpi
        assert round(image.info["dpi"][0]) == 300
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005, "the PNG is blank"


def test_the_cohort_kinds_and_the_region_map_are_print_ready_too(tmp_path):
    import pandas as pd

    shares = pd.DataFrame({"explainer": "gradcam", "grouping": "band", "group": ["minimal", "severe"] * 2,
                           "region": ["mouth", "mouth", "right_eye", "right_eye"], "n": 5,
                           "mean": [0.1, 0.2, 0.3, 0.1], "ci_low": [0.05, 0.1, 0.2, 0.0],
                           "ci_high": [0.2, 0.3, 0.4, 0.2]})
    au = pd.DataFrame({"explainer": "gradcam", "band": "all", "au": ["AU45", "AU45", "AU12", "AU12"],
                       "region": ["right_eye", "mouth"] * 2, "n": 20, "rho": [0.6, 0.0, -0.1, 0.3],
                       "ci_low": [0.4, -0.2, -0.3, 0.1], "ci_high": [0.8, 0.2, 0.1, 0.5]})
    video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=1)
    faces = ex.track_faces(video, progress=False)
    drawings = {"band_bars": lambda path: ex.figures.band_bars(shares, path=path),
                "au_heatmap": lambda path: ex.figures.au_heatmap(au, path=path),
                "region_map": lambda path: ex.figures.plot_region_map(video, faces, path=path, width="single")}
    for name, draw in drawings.items():
        draw(tmp_path / f"{name}.pdf")
        draw(tmp_path / f"{name}.png")
        _pdf_fonts_are_truetype((tmp_path / f"{name}.pdf").read_bytes())
        with Image.open(tmp_path / f"{name}.png") as image:
            assert image.size[0] == 1050, name
            assert "participant_low" in image.text["expresso_xai_provenance"] or name != "region_map"


def test_the_provenance_records_the_methods_parameters_and_the_library_version(tmp_path, cube):
    region_bars(cube, path=tmp_path / "bars.png")
    with Image.open(tmp_path / "bars.png") as image:
        record = json.loads(image.text["expresso_xai_provenance"])
    assert record["methods"] == {"gradcam": {"relu": True, "layer": None}, "saliency": {"absolute": False}}
    assert record["video_hash"] == "0123abcd" * 8
    assert record["expresso_xai_version"] == cube.attrs["expresso_xai_version"]


def test_svg_keeps_text_as_text(tmp_path, cube):
    region_bars(cube, path=tmp_path / "bars.svg")
    texts = "".join(ElementTree.parse(tmp_path / "bars.svg").getroot().itertext())
    assert "mouth" in texts and "gradcam" in texts  # searchable labels, not glyph outlines


@pytest.mark.parametrize("width, pixels", [("double", 2148), (2.0, 600)])
def test_png_width_in_pixels_is_the_width_in_inches_at_300_dpi(tmp_path, cube, width, pixels):
    region_time_heatmap(cube, "gradcam", width=width, path=tmp_path / "heatmap.png")
    with Image.open(tmp_path / "heatmap.png") as image:
        assert image.size[0] == pixels


def test_a_path_without_a_suffix_writes_png_and_pdf_and_an_unknown_suffix_is_refused(tmp_path, cube):
    region_bars(cube, path=tmp_path / "bars")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars.pdf", "bars.png"]
    with pytest.raises(CubeError, match=r"\.pdf, \.svg, \.png"):
        region_bars(cube, path=tmp_path / "bars.jpg")
    assert not (tmp_path / "bars.jpg").exists()
    with pytest.raises(CubeError, match="width='wide'"):
        region_bars(cube, width="wide")


def _overlays(figure):
    return [ax.images[1] for ax in figure.axes if len(ax.images) == 2]


def test_method_grid_shares_one_symmetric_scale_across_methods(cube, video):
    overlays = _overlays(method_grid(cube, video, frames=[3, 13]))
    assert len(overlays) == 4  # 2 methods x 2 frames
    limits = {image.get_clim() for image in overlays}
    assert len(limits) == 1
    low, high = limits.pop()
    assert high > 0 and low == -high
    # the methods are compared in one unit: each pixel's share of its method's total |attribution|
    assert high < 0.01
    rows = [np.abs(image.get_array()).max() for image in overlays]
    assert max(rows) / min(rows) < 5  # the second method's 50-fold numbers are not what shows


def test_method_grid_per_row_gives_each_method_its_own_symmetric_scale(cube, video):
    overlays = _overlays(method_grid(cube, video, frames=[3, 13], scale="row"))
    by_row = [overlays[0].get_clim(), overlays[2].get_clim()]
    assert overlays[0].get_clim() == overlays[1].get_clim()
    assert by_row[0] != by_row[1]
    assert all(low == -high for low, high in by_row)


def test_frame_strip_finds_the_planted_moments_not_their_neighbours(cube, video):
    assert top_moments(cube, k=3) == [3, 13, 20]
    figure = frame_strip(cube, video, k=3)
    faces = [ax for ax in figure.axes if len(ax.images) == 2]
    assert [ax.get_xlabel() for ax in faces] == ["0.30 s", "1.30 s", "2.00 s"]
    low, high = faces[0].images[1].get_clim()
    assert low == -high and {image.get_clim() for ax in faces for image in ax.images[1:]} == {(low, high)}
    assert frame_strip(cube, video, frames=[5, 6]).axes[1].get_xlabel() == "0.60 s"


def test_frame_strip_draws_the_frame_the_model_saw(cube, video):
    figure = frame_strip(cube, video, frames=[0])
    face = figure.axes[0].images[0].get_array()
    # the crop is the whole frame: the face disc's colour at its centre, the dark corner outside
    centre = face[face.shape[0] // 2, face.shape[1] // 2]
    np.testing.assert_allclose(centre, [200, 160, 130], atol=2)
    assert face[20, 20].tolist() == [40, 60, 90]


def test_frame_strip_needs_pixels_and_the_cubes_video(cube, video):
    with pytest.raises(CubeError, match="keep_pixels=True"):
        frame_strip(cube.drop_vars("pixels"), video)
    with pytest.raises(VideoReadError, match="64x64"):
        frame_strip(cube, ex.Video.from_array(np.zeros((T, 64, 64, 3), np.uint8)))
    with pytest.raises(VideoReadError, match="frames"):
        frame_strip(cube, video[:10], frames=[20])
    with pytest.raises(CubeError, match="frame 99"):
        frame_strip(cube, video, frames=[99])


def test_region_bars_are_each_regions_share_summed_over_time(cube):
    figure = region_bars(cube, explainers=["saliency"])
    heights = {label.get_text(): bar.get_height()
               for label, bar in zip(figure.axes[0].get_xticklabels(), figure.axes[0].patches)}
    share = cube.xai.share().sel(explainer="saliency").sum("time")
    assert heights["mouth"] == pytest.approx(float(share.sel(region="mouth")))
    assert list(heights)[0] == "mouth" and "background" not in heights


def test_agreement_matrix_shows_the_cubes_own_agreement_on_a_fixed_scale(cube):
    image = agreement_matrix(cube).axes[0].images[0]
    np.testing.assert_allclose(image.get_array(), cube.xai.agreement().values)
    assert image.get_clim() == (-1.0, 1.0)
    with pytest.raises(CubeError, match="two methods"):
        agreement_matrix(cube.sel(explainer=["gradcam"]))


def test_style_sets_print_fonts_and_the_palette_and_restores_them():
    before = matplotlib.rcParams["pdf.fonttype"], matplotlib.rcParams["axes.prop_cycle"]
    with ex.figures.style():
        assert matplotlib.rcParams["pdf.fonttype"] == 42 and matplotlib.rcParams["svg.fonttype"] == "none"
        assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == ex.figures.OKABE_ITO[0]
    assert (matplotlib.rcParams["pdf.fonttype"], matplotlib.rcParams["axes.prop_cycle"]) == before


def test_methods_text_says_what_was_explained_with_which_parameters(cube):
    text = cube.xai.methods_text()
    assert text == cube.xai.methods_text()
    for expected in ("model planted", MODEL_HASH[:12], "planted.mp4", "frames 0–23, 24 in all",
                     "10 frames per second", "2.40 s", "clips of 16 frames starting every 8 frames",
                     "Grad-CAM (Selvaraju et al., 2017; relu = true)", "saliency", "absolute = false",
                     "partition scheme", "left and right are the subject's", "expresso-xai"):
        assert expected in text, expected
    assert "\n" not in text
    changed = cube.assign_attrs(methods=json.dumps({"gradcam": {"relu": False}, "saliency": {}}))
    assert "relu = false" in changed.xai.methods_text()


@pytest.mark.slow
def test_the_gallery_renders_one_of_each_kind_on_the_shipped_sample(tmp_path):
    from expresso_xai.figures.gallery import make_gallery

    entries = make_gallery(tmp_path / "gallery", max_frames=16)
    names = [entry["name"] for entry in entries]
    assert names == ["frame_strip", "method_grid", "region_time_heatmap", "region_bars", "agreement_matrix",
                     "plot_region_map", "perturbation_curves", "metric_table", "band_bars", "au_heatmap"]
    assert all(callable(getattr(ex.figures, name)) for name in names)  # each name is the function to call
    for entry in entries:
        assert entry["path"].suffix == ".png" and entry["caption"].startswith(entry["name"] + ":")
        with Image.open(entry["path"]) as image:
            assert json.loads(image.text["expresso_xai_provenance"])["expresso_xai_version"]
            pixels = np.asarray(image.convert("L"), dtype=float)
        assert pixels.std() > 10, f"{entry['name']} is blank"
    assert sorted(p.name for p in (tmp_path / "gallery").iterdir()) == sorted(f"{name}.png" for name in names)


def test_methods_text_leaves_out_parameters_whose_flag_is_off(cube):
    methods = {"gradcam": {}, "saliency": {}, "occlusion": {"window": 4, "adaptive": False, "threshold": 0.1}}
    plain = cube.assign_coords(explainer=["gradcam", "occlusion"]).assign_attrs(methods=json.dumps(methods))
    assert "window = 4; adaptive = false)" in plain.xai.methods_text()
    methods["occlusion"]["adaptive"] = True
    adaptive = plain.assign_attrs(methods=json.dumps(methods))
    assert "adaptive = true; threshold = 0.1)" in adaptive.xai.methods_text()
