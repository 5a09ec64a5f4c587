"""The ``expresso-xai`` command: a researcher works from the shell.

The story: draw the region map of a face video, save its landmarks, generate a small
cohort, run the demo, and mistype a file name. Each command is called in-process through
``expresso_xai.cli.main`` (its exit code and printed lines are checked) and the installed
console script is checked once, so a broken entry point is caught too.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import expresso_xai as ex
from expresso_xai.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONSOLE_SCRIPT = Path(sys.executable).with_name("expresso-xai")


@pytest.fixture(scope="module")
def video_path(tmp_path_factory) -> Path:
    """A 1 s synthetic face video on disk."""
    sample = ex.samples.render(ex.samples.SampleSpec(seed=2, seconds=1, name="face"))
    return ex.samples.write_sample(sample, tmp_path_factory.mktemp("video"))["video"]


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000, f"{path} is not a PNG ({len(data)} bytes)"


def test_console_script_is_installed():
    result = subprocess.run([str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: expresso-xai")
    for command in ("regions", "landmarks", "samples", "demo"):
        assert command in result.stdout


@pytest.mark.parametrize("scheme", ["partition", "boxes"])
def test_regions_draws_the_region_map(video_path, tmp_path, capsys, scheme):
    out = tmp_path / "figures" / "x.png"  # the folder does not exist yet
    assert main(["regions", str(video_path), "--out", str(out), "--scheme", scheme]) == 0
    assert_png(out)
    printed = capsys.readouterr().out
    assert f"figure     {out}" in printed, printed
    assert "found in 25/25 frames" in printed, printed
    # the biggest regions are listed, and they are the chosen scheme's own
    listed = re.search(r"^regions +(.*), \.\.\.$", printed, re.MULTILINE)
    assert listed, printed
    names = {item.split()[0] for item in listed.group(1).split(", ")}
    assert len(names) == 6 and names <= set(ex.regions.get_scheme(scheme).names), (scheme, names)
    if scheme == "partition":  # regions that boxes do not have: the map is a partition
        assert names - set(ex.regions.get_scheme("boxes").names), names


def test_landmarks_are_saved_for_every_frame(video_path, tmp_path, capsys):
    out = tmp_path / "x.npz"
    assert main(["landmarks", str(video_path), "--out", str(out)]) == 0
    with np.load(out) as saved:
        landmarks, face_found = saved["landmarks"], saved["face_found"]
    assert landmarks.shape == (25, 68, 2)
    assert face_found.shape == (25,) and face_found.all()
    assert np.isfinite(landmarks).all()
    assert f"landmarks of 25/25 frames written to {out}" in capsys.readouterr().out


def test_samples_make_writes_a_cohort_manifest(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["samples", "make", "--out", str(out), "--participants", "2", "--seconds", "1"]) == 0
    manifest = out / "manifest.csv"
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["participant"] for row in rows] == ["p000", "p001"]
    assert all((out / row["video"]).is_file() for row in rows)
    assert str(manifest) in capsys.readouterr().out


def test_missing_video_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    missing = tmp_path / "missing.mp4"
    assert main(["regions", str(missing), "--out", str(tmp_path / "x.png")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("expresso-xai: error:"), captured.err
    assert "missing.mp4" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "x.png").exists()


def test_demo_draws_the_shipped_sample(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EXPRESSO_XAI_SAMPLES", raising=False)  # the repository's data_samples/
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    figure = out / "participant_high_regions.png"
    assert_png(figure)
    printed = capsys.readouterr().out
    assert str(figure.resolve()) in printed, printed
    assert "found in 250/250 frames" in printed, printed
    explorer = out / "participant_high_explorer.html"
    assert str(explorer) in printed and explorer.stat().st_size > 1_000_000


@pytest.mark.parametrize("mistake", ["directory", "not_a_video", "frame_out_of_range", "unknown_sample"])
def test_other_mistakes_are_clear_errors_not_tracebacks(video_path, tmp_path, capsys, mistake):
    """Every user mistake ends with ``expresso-xai: error: ...`` naming what was wrong
    and exit code 2, the way a missing file does."""
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("these are notes, not a video\n")
    argv, named = {
        "directory": (["regions", str(tmp_path), "--out", str(tmp_path / "x.png")], str(tmp_path)),
        "not_a_video": (["regions", str(not_a_video), "--out", str(tmp_path / "x.png")], "notes.mp4"),
        "frame_out_of_range": (["regions", str(video_path), "--out", str(tmp_path / "x.png"), "--frame", "99"], "99"),
        "unknown_sample": (["demo", "--out", str(tmp_path / "demo"), "--sample", "nobody"], "nobody"),
    }[mistake]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "expresso-xai: error:" in captured.err, captured.err  # after a progress bar, perhaps
    assert named in captured.err and "Traceback" not in captured.err


@pytest.fixture(scope="module")
def scripted_model(tmp_path_factory) -> Path:
    """A small 3-D CNN saved with torch.export.save, as a user would ship their own model
    (any batch size, so that occlusion can batch its perturbations)."""
    import torch

    from expresso_xai.testing import tiny_cnn

    net = tiny_cnn(widths=(4,)).eval()
    batch = {"input": {0: torch.export.Dim("batch", min=1, max=256)}}
    path = tmp_path_factory.mktemp("model") / "small.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(2, 3, 16, 112, 112),), dynamic_shapes=batch), path)
    return path


def test_explain_writes_a_cube_that_inspect_summarises(tmp_path, capsys, scripted_model):
    video = ex.samples.sample_path("participant_low")
    openface = ex.samples.sample_path("participant_low", "openface")
    out = tmp_path / "cube.nc"
    figure = tmp_path / "heat.png"
    argv = ["explain", str(video), "--model", str(scripted_model), "--methods", "saliency,occlusion",
            "--out", str(out), "--openface", str(openface), "--figure", str(figure), "--max-frames", "40"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "saliency" in printed and "occlusion" in printed and str(out) in printed
    assert_png(figure)
    cube = ex.open_cube(out)
    assert cube.attribution.dims == ("explainer", "time", "region")
    assert list(cube.explainer.values) == ["saliency", "occlusion"]
    # the OpenFace landmarks were used and its action units travel with the cube
    truth = ex.samples.load_truth("participant_low")
    np.testing.assert_allclose(cube.au_intensity.sel(au="AU45").values,
                               5 * np.array(truth["tracks"]["eye_closure"][:40]), atol=0.006)
    assert main(["inspect", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "small" in summary and "partition" in summary and "40 frames" in summary


def test_explore_writes_the_standalone_explorer(tmp_path, capsys, scripted_model):
    video = ex.samples.sample_path("participant_low")
    cube = tmp_path / "cube.nc"
    assert main(["explain", str(video), "--model", str(scripted_model), "--methods", "saliency",
                 "--out", str(cube), "--max-frames", "24", "--keep-pixels"]) == 0
    capsys.readouterr()
    out = tmp_path / "explorer.html"
    assert main(["explore", str(cube), "--video", str(video), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "note:" not in printed
    assert 'id="xe-state"' in out.read_text(encoding="utf-8")
    # without the video it still works and says what is missing
    assert main(["explore", str(cube), "--out", str(tmp_path / "bare.html")]) == 0
    assert "note: No video given" in capsys.readouterr().out
    # a video that is not the cube's: a clear error, not a traceback
    short = tmp_path / "short.mp4"
    ex.samples.write_video(ex.load_video(video, max_frames=10).frames, short, 25.0)
    assert main(["explore", str(cube), "--video", str(short), "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert "expresso-xai: error:" in err and "pass the video the cube was made from" in err and "Traceback" not in err


def test_explain_reports_what_a_scripted_model_cannot_do(tmp_path, capsys, scripted_model, video_path):
    argv = ["explain", str(video_path), "--model", str(scripted_model), "--methods", "gradcam",
            "--out", str(tmp_path / "c.nc")]
    assert main(argv) == 2
    assert "Grad-CAM" in capsys.readouterr().err
    assert main(["explain", str(video_path), "--model", "nothing-here", "--out", str(tmp_path / "c.nc")]) == 2
    assert "unknown model 'nothing-here'" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "none.nc")]) == 2


def test_train_fine_tunes_on_a_manifest_and_reports_participant_metrics(tmp_path, capsys):
    manifest = ex.samples.make_cohort(tmp_path / "cohort", n_participants=4, seconds=1.2, seed=5, progress=False,
                                      splits=(0.5, 0.25, 0.25))
    out = tmp_path / "weights.pt"
    argv = ["train", str(manifest), "--model", "demo", "--epochs", "1", "--lr", "0.001", "--batch-size", "2",
            "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "val   participants 1: MAE" in printed and "predicting the training mean" in printed
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert ex.models.load("demo", weights=out).weights_hash() != ex.models.load("demo").weights_hash()


# --- evaluate: can the cube's explanations be trusted? ----------------------------------


@pytest.fixture(scope="module")
def evaluated_cube(tmp_path_factory, scripted_model) -> Path:
    """A saliency cube of the first 72 frames of participant_high (its first long eye
    closure starts at frame 63), made with the scripted model, on disk."""
    video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=72)
    cube = ex.explain(ex.models.load(str(scripted_model)), video, methods=["saliency"], progress=False)
    return cube.xai.to_netcdf(tmp_path_factory.mktemp("cube") / "cube.nc")


def _evaluate_argv(cube: Path, model: Path, out: Path, *more: str) -> list[str]:
    return ["evaluate", str(cube), "--video", str(ex.samples.sample_path("participant_high")), "--model", str(model),
            "--out", str(out), *more]


def test_evaluate_writes_the_evaluation_prints_its_scores_and_draws_the_curves(tmp_path, capsys, evaluated_cube,
                                                                                scripted_model):
    import json

    out, figure = tmp_path / "eval.nc", tmp_path / "curves.png"
    argv = _evaluate_argv(evaluated_cube, scripted_model, out, "--metrics", "deletion,insertion", "--max-clips", "1",
                          "--steps", "4", "--n-random", "2", "--figure", str(figure))
    assert main(argv) == 0
    printed = capsys.readouterr().out
    ev = ex.open_evaluation(out)
    run = json.loads(ev.attrs["evaluation"])
    assert (run["steps"], run["n_random"], len(run["clips_evaluated"])) == (4, 2, 1)
    assert ev.sizes["step"] == 5 and list(ev.explainer.values) == ["saliency"]
    # the printed table is the file's scores, 3 decimals, with their direction
    for metric in ("deletion_morf", "insertion_abpc"):
        score = float(ev.score.sel(explainer="saliency", metric=metric))
        assert re.search(rf"^  {metric} ↑ +{score:.3f}\s*$", printed, re.MULTILINE), printed
    assert f"1 of {ex.open_cube(evaluated_cube).sizes['clip']} clips" in printed, printed
    assert f"evaluation {out}" in printed and f"figure     {figure}" in printed
    assert_png(figure)


def test_evaluate_builds_the_truth_from_a_samples_json(tmp_path, capsys, evaluated_cube, scripted_model):
    truth_json = ex.samples.sample_path("participant_high", "truth")
    out = tmp_path / "eval.nc"
    argv = _evaluate_argv(evaluated_cube, scripted_model, out, "--metrics", "pointing_game,relevance_mass",
                          "--truth", str(truth_json))
    assert main(argv) == 0
    cube = ex.open_cube(evaluated_cube)
    truth = ex.samples.truth_mask(truth_json, cube)
    assert int(truth.any("region").sum()) == 72 - 63  # the closure's frames inside the cube
    expected = ex.evaluate(None, None, cube, metrics=["pointing_game", "relevance_mass"], truth=truth, progress=False)
    np.testing.assert_allclose(ex.open_evaluation(out).score.values, expected.score.values)
    assert "pointing_game ↑" in capsys.readouterr().out


def test_evaluate_uses_the_openface_landmarks_the_cube_was_explained_with(tmp_path, capsys, scripted_model,
                                                                           monkeypatch):
    from expresso_xai.testing import example_evaluation

    video = ex.samples.sample_path("participant_low")
    openface = ex.samples.sample_path("participant_low", "openface")
    cube = tmp_path / "cube.nc"
    assert main(["explain", str(video), "--model", str(scripted_model), "--methods", "saliency", "--out", str(cube),
                 "--openface", str(openface), "--max-frames", "24"]) == 0
    given = {}

    def evaluate(model, video, cube, **options):  # records what the command passes, runs no model
        given.update(options, video=video)
        return example_evaluation(explainers=("saliency",))

    monkeypatch.setattr(sys.modules["expresso_xai.evaluate"], "evaluate", evaluate)
    argv = ["evaluate", str(cube), "--video", str(video), "--model", str(scripted_model), "--out",
            str(tmp_path / "eval.nc"), "--metrics", "deletion"]
    assert main(argv) == 0
    expected, _ = ex.read_openface(openface, frame_size=(given["video"].height, given["video"].width))
    assert len(given["video"]) == 24 and len(given["faces"]) == 24  # the frames the cube covers
    np.testing.assert_array_equal(given["faces"].landmarks, expected.landmarks[:24])
    assert main(argv + ["--openface", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err


@pytest.mark.parametrize("mistake", ["missing_cube", "not_a_cube", "missing_video", "other_video", "unknown_metric",
                                     "no_metric", "zero_steps", "one_random_order", "window_in_words", "unknown_fill",
                                     "figure_without_curves", "truth_not_json", "out_not_netcdf"])
def test_evaluate_mistakes_are_one_line_errors(tmp_path, capsys, evaluated_cube, scripted_model, mistake):
    notes = tmp_path / "notes.nc"
    notes.write_text("these are notes\n")
    out = tmp_path / "eval.nc"
    argv, named = {
        "missing_cube": (_evaluate_argv(tmp_path / "none.nc", scripted_model, out), "none.nc"),
        "not_a_cube": (_evaluate_argv(notes, scripted_model, out), "notes.nc"),
        "missing_video": (["evaluate", str(evaluated_cube), "--video", str(tmp_path / "none.mp4"), "--model",
                           str(scripted_model), "--out", str(out)], "none.mp4"),
        "other_video": (["evaluate", str(evaluated_cube), "--video", str(ex.samples.sample_path("participant_low")),
                         "--model", str(scripted_model), "--out", str(out)], "not the video the cube was computed from"),
        "unknown_metric": (_evaluate_argv(evaluated_cube, scripted_model, out, "--metrics", "deletion,faith"),
                           "unknown metric 'faith'"),
        "no_metric": (_evaluate_argv(evaluated_cube, scripted_model, out, "--metrics", ","), "no metrics given"),
        "zero_steps": (_evaluate_argv(evaluated_cube, scripted_model, out, "--steps", "0"), "--steps"),
        "one_random_order": (_evaluate_argv(evaluated_cube, scripted_model, out, "--n-random", "1"), "--n-random"),
        "window_in_words": (_evaluate_argv(evaluated_cube, scripted_model, out, "--window", "four"), "'four'"),
        "unknown_fill": (_evaluate_argv(evaluated_cube, scripted_model, out, "--fill", "zeros"), "'zeros'"),
        "figure_without_curves": (_evaluate_argv(evaluated_cube, scripted_model, out, "--metrics", "mprt", "--figure",
                                                 str(tmp_path / "c.png")), "--figure"),
        "truth_not_json": (_evaluate_argv(evaluated_cube, scripted_model, out, "--truth", str(notes)),
                           "not a sample's ground-truth JSON"),
        "out_not_netcdf": (_evaluate_argv(evaluated_cube, scripted_model, tmp_path / "eval.csv"), ".nc"),
    }[mistake]
    assert main(argv) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "expresso-xai: error:" in line]
    assert len(errors) == 1 and named in errors[0], captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()


def test_evaluate_is_a_listed_command(capsys):
    assert main(["--help"]) == 0
    assert "evaluate" in capsys.readouterr().out
    assert main(["evaluate", "--help"]) == 0
    usage = capsys.readouterr().out
    for option in ("--video", "--metrics", "--truth", "--fill", "--n-random", "--max-clips", "--figure"):
        assert option in usage


def test_explain_takes_the_gpu_path_options_and_batched_clips_equal_single_ones(tmp_path, capsys):
    video = ex.samples.sample_path("participant_low")
    openface = ex.samples.sample_path("participant_low", "openface")
    cubes = {}
    for n in ("1", "3"):
        out = tmp_path / f"cube{n}.nc"
        assert main(["explain", str(video), "--model", "demo", "--methods", "saliency,integrated_gradients",
                     "--openface", str(openface), "--max-frames", "40", "--out", str(out),
                     "--clips-per-batch", n, "--batch-size", "8", "--device", "cpu"]) == 0
        cubes[n] = ex.open_cube(out)
    capsys.readouterr()
    assert cubes["3"].attrs["clips_per_batch"] == 3 and cubes["1"].attrs["clips_per_batch"] == 1
    assert cubes["3"].attrs["batch_size_source"] == "given"
    np.testing.assert_allclose(cubes["3"].attribution.values, cubes["1"].attribution.values, rtol=1e-5, atol=1e-9)
    if not torch.cuda.is_available():
        assert main(["explain", str(video), "--device", "cuda", "--out", str(tmp_path / "gpu.nc")]) == 2
        assert "cuda" in capsys.readouterr().err.lower()
    assert main(["explain", str(video), "--autocast", "fp16"]) == 2  # a usage mistake, named by argparse
    assert "--autocast" in capsys.readouterr().err
