"""What a user sees: one figure default everywhere (attribution per pixel, named in the
title), short one-line reprs, command-line warnings once each in one line, and a
landmarks file that carries its timestamps."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.cli import main
from expresso_xai.cube.views import DEFAULT_VALUE, VALUE_LABELS, value_view
from expresso_xai.errors import ExpressoWarning
from expresso_xai.testing import example_cube, tiny_model

matplotlib.use("Agg")


# --- one figure default -------------------------------------------------------------------


def test_the_figure_default_is_attribution_per_pixel_and_the_title_says_so():
    import matplotlib.pyplot as plt

    cube = example_cube()
    assert DEFAULT_VALUE == "density"
    figure = ex.figures.region_time_heatmap(cube, "gradcam")
    shown = figure.axes[0].images[0].get_array()
    rows = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    expected = value_view(cube, "density").sel(explainer="gradcam").transpose("region", "time").sel(region=rows)
    np.testing.assert_allclose(shown.filled(np.nan), expected.values)
    # the raw sums, where the background outweighs the face, are not what is shown
    assert not np.allclose(shown.filled(np.nan), value_view(cube, "attribution").sel(explainer="gradcam")
                           .transpose("region", "time").sel(region=rows).values, equal_nan=True)
    assert figure.axes[0].get_title(loc="left") == "gradcam: attribution per pixel (density) by region and time (synthetic)"
    assert figure.axes[1].get_ylabel() == VALUE_LABELS["density"]
    share = ex.figures.region_time_heatmap(cube, "gradcam", value="share")
    assert share.axes[0].get_title(loc="left").startswith("gradcam: share of the explainer's total |attribution|")
    plt.close("all")


def test_the_explorer_and_the_command_line_use_the_same_default(monkeypatch, tmp_path):
    assert ex.widgets.Explorer(example_cube()).value == DEFAULT_VALUE
    titles = []
    original = ex.figures.region_time_heatmap

    def recording(*args, **kwargs):
        figure = original(*args, **kwargs)
        titles.append(figure.axes[0].get_title(loc="left"))
        return figure

    monkeypatch.setattr(ex.figures, "region_time_heatmap", recording)
    monkeypatch.setattr(ex.models, "load", lambda name, **options: tiny_model(name="tiny"))
    video = ex.samples.sample_path("participant_low")
    assert main(["explain", str(video), "--methods", "saliency", "--out", str(tmp_path / "cube.nc"),
                 "--max-frames", "16", "--figure", str(tmp_path / "heat.png")]) == 0
    assert titles == ["saliency: attribution per pixel (density) by region and time (tiny)"]


# --- reprs --------------------------------------------------------------------------------


def test_a_video_model_has_a_one_line_repr_that_runs_nothing():
    model = tiny_model(name="tiny")
    model.output_range = (0, 63)
    text = repr(model)
    assert text == "<VideoModel tiny: NCTHW, 16 frames at 64x64, regression in [0, 63], Grad-CAM auto>"
    assert model._candidates is None  # choosing the Grad-CAM layer would run the model
    demo = repr(ex.models.load("demo"))
    assert "\n" not in demo and len(demo) < 120 and "demo" in demo and "[0, 63]" in demo


# --- the command line ---------------------------------------------------------------------


def test_cli_warnings_are_printed_once_each_as_one_line(monkeypatch, capsys):
    import expresso_xai.cli as cli

    def noisy(args):
        for _ in range(3):  # e.g. once per clip
            warnings.warn("no face in 3 of 16 frames;\n   they count as background", ExpressoWarning)
        warnings.warn("a library's own warning", UserWarning)
        return 0

    monkeypatch.setattr(cli, "cmd_inspect", noisy)
    assert main(["inspect", "cube.nc"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "expresso-xai: warning: no face in 3 of 16 frames; they count as background",
        "expresso-xai: warning: UserWarning: a library's own warning",
    ]
    with warnings.catch_warnings(record=True) as caught:  # Python's own handling is back afterwards
        warnings.simplefilter("always")
        warnings.warn("after", ExpressoWarning)
    assert [str(w.message) for w in caught] == ["after"]


def test_landmarks_takes_max_frames_and_saves_timestamps(tmp_path, capsys):
    video = ex.samples.sample_path("participant_low")
    out = tmp_path / "landmarks.npz"
    assert main(["landmarks", str(video), "--max-frames", "12", "--out", str(out)]) == 0
    with np.load(out) as saved:
        assert saved["landmarks"].shape == (12, 68, 2) and saved["face_found"].all()
        np.testing.assert_allclose(saved["timestamps"], ex.load_video(video, max_frames=12).timestamps)
        assert saved["timestamps"][1] == pytest.approx(1 / 25)
        assert saved["frame_size"].tolist() == [192, 192]
    assert f"landmarks of 12/12 frames written to {out}" in capsys.readouterr().out


def test_landmarks_of_a_whole_file_have_a_timestamp_per_row(tmp_path):
    spec = ex.samples.SampleSpec(seed=3, seconds=0.4, size=128, name="short")
    video = ex.samples.write_sample(ex.samples.render(spec), tmp_path)["video"]
    assert main(["landmarks", str(video), "--out", str(tmp_path / "all.npz")]) == 0
    with np.load(tmp_path / "all.npz") as saved:
        assert len(saved["timestamps"]) == len(saved["landmarks"]) == 10
        np.testing.assert_allclose(np.diff(saved["timestamps"]), 1 / 25)
