"""A model declares the output range it was trained for; clips predicted outside it are
flagged in the cube, and when the video's prediction (the mean over its clips) is outside
it, Python (a warning), the command line and the Explorer say so.

The model here is one whose output we know exactly: 100 x the mean brightness of its
input (no normalisation), so a black clip predicts 0, a white one 100, and a clip half
black, half white 50.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.cube.views import OUT_OF_RANGE, output_range, range_caution
from expresso_xai.errors import ModelError, OutputRangeWarning
from expresso_xai.testing import clip_inputs, tiny_model


def brightness_model(output_range=None):
    """Output = 100 x mean input brightness in [0, 1]."""
    import torch

    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(3, 1))
    with torch.no_grad():
        net[2].weight.fill_(100.0 / 3)
        net[2].bias.zero_()
    return ex.models.wrap(net, input_size=(64, 64), mean=(0, 0, 0), std=(1, 1, 1), gradcam_layer=False,
                          name="brightness", output_range=output_range)


@pytest.fixture(scope="module")
def black_then_white():
    """32 frames: 16 black, then 16 white, with the face track of a real sample (the
    frames are replaced after tracking, so the crops are of known brightness)."""
    _, frames, faces, _ = clip_inputs(n_frames=32)
    frames = np.zeros_like(frames)
    frames[16:] = 255
    return ex.Video.from_array(frames, fps=25.0, source="black_then_white"), faces


def _explain(model, video, faces):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cube = ex.explain(model, video, faces=faces, methods=["saliency"], progress=False)
    return cube, [w for w in caught if issubclass(w.category, OutputRangeWarning)]


def test_clips_predicted_outside_the_declared_range_are_flagged(black_then_white):
    cube, warned = _explain(brightness_model(output_range=(-1, 40)), *black_then_white)
    np.testing.assert_allclose(cube.clip_prediction.values, [0, 50, 100], atol=0.5)  # clips at 0, 8, 16
    assert cube[OUT_OF_RANGE].values.tolist() == [False, True, True]
    assert output_range(cube) == (-1.0, 40.0)
    caution = range_caution(cube)
    assert caution.startswith("the model's prediction, 50 (the mean of 3 clips), is outside its declared output "
                              "range [-1, 40] (2 of 3 clips are: 50 to 100)"), caution
    assert len(warned) == 1 and str(warned[0].message) == caution


def test_single_clips_outside_flag_but_a_mean_inside_makes_no_caution(black_then_white):
    """A model trained on the mean over a video's clips (as the demo is) has clips beyond
    its range on its own training data: they are flagged, the video is not cautioned."""
    cube, warned = _explain(brightness_model(output_range=(-1, 63)), *black_then_white)
    assert cube[OUT_OF_RANGE].values.tolist() == [False, False, True]
    assert range_caution(cube) == "" and not warned
    cube, warned = _explain(brightness_model(output_range=(0, float("inf"))), *black_then_white)
    assert cube[OUT_OF_RANGE].values.tolist() == [False, False, False]
    assert range_caution(cube) == "" and not warned


def test_without_a_declared_range_there_is_no_flag_and_no_caution(black_then_white):
    cube, warned = _explain(brightness_model(), *black_then_white)
    assert OUT_OF_RANGE not in cube and output_range(cube) is None
    assert range_caution(cube) == "" and not warned


def test_the_flags_and_the_range_survive_a_file(black_then_white, tmp_path):
    cube, _ = _explain(brightness_model(output_range=(-1, 40)), *black_then_white)
    cube.xai.to_netcdf(tmp_path / "cube.nc")
    back = ex.open_cube(tmp_path / "cube.nc")
    assert back[OUT_OF_RANGE].values.tolist() == [False, True, True]
    assert range_caution(back) == range_caution(cube) != ""


def test_the_range_is_settable_and_checked():
    model = tiny_model()
    assert model.output_range is None
    model.output_range = (0, 63)
    assert model.output_range == (0.0, 63.0) and "in [0, 63]" in model.describe()
    model.output_range = None
    assert model.output_range is None
    for bad in [(63, 0), (1, 1), (0, float("nan")), (1,), "0-63", 5]:
        with pytest.raises(ModelError, match="output_range"):
            model.output_range = bad


def test_the_demo_model_declares_the_range_of_its_card():
    from expresso_xai.models.demo import model_card

    assert tuple(model_card()["output"]["range"]) == (0, 63)
    assert ex.models.load("demo").output_range == (0.0, 63.0)
    assert ex.models.load("demo", output_range=(0, 100)).output_range == (0.0, 100.0)


def test_the_explorer_shows_a_caution(black_then_white):
    cube, _ = _explain(brightness_model(output_range=(-1, 40)), *black_then_white)
    assert ex.widgets.Explorer(cube).cautions == [f"Caution: {range_caution(cube)}"]
    cube, _ = _explain(brightness_model(), *black_then_white)
    assert ex.widgets.Explorer(cube).cautions == []


def test_the_command_line_prints_one_caution_line(monkeypatch, tmp_path, capsys):
    """explain warns once, in one line; inspect and explore show the caution too."""
    from expresso_xai.cli import main

    monkeypatch.setattr(ex.models, "load", lambda name, **options: brightness_model(output_range=(0, 10)))
    video = ex.samples.sample_path("participant_low")
    out = tmp_path / "cube.nc"
    assert main(["explain", str(video), "--model", "bright", "--methods", "saliency", "--out", str(out),
                 "--max-frames", "24"]) == 0
    err = capsys.readouterr().err
    cautions = [line for line in err.splitlines() if "declared output range" in line]
    assert cautions == [f"expresso-xai: warning: {range_caution(ex.open_cube(out))}"], err
    assert main(["inspect", str(out)]) == 0
    printed = capsys.readouterr().out
    assert [line for line in printed.splitlines() if line.startswith("caution")] == \
        [f"caution    {range_caution(ex.open_cube(out))}"]
    assert main(["explore", str(out), "--out", str(tmp_path / "explorer.html")]) == 0
    assert f"note: Caution: {range_caution(ex.open_cube(out))}" in capsys.readouterr().out.splitlines()
