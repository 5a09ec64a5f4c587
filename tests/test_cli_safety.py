"""Every bad input to every CLI subcommand is one clear line on stderr with exit code 2:
never a traceback, never a misleading message. A corpus of hostile inputs, run in-process
(a traceback there is an exception the test sees) and a few as real processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

import expresso_xai as ex
from expresso_xai.cli import main

VIDEO = str(ex.samples.sample_path("participant_low"))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("not a video\n")
    (folder / "truncated.mp4").write_bytes(open(VIDEO, "rb").read()[:2000])
    (folder / "empty.pt2").write_bytes(b"")
    (folder / "random.pt").write_bytes(bytes(range(256)) * 4)
    (folder / "cube.txt").write_text("not a cube\n")
    (folder / "a_file").write_text("a file, not a folder\n")
    (folder / "existing_dir").mkdir()
    (folder / "manifest.csv").write_text("participant,video,score\np1,missing.mp4,10\n")
    (folder / "nan.csv").write_text("participant,video,score\np1,missing.mp4,nan\n")
    from expresso_xai.testing import example_cube

    example_cube().drop_vars("seconds").to_netcdf(folder / "no_seconds.nc")
    words = example_cube().assign(attribution=example_cube().attribution.astype(str))
    words.to_netcdf(folder / "string_attribution.nc")
    reversed_time = example_cube().isel(time=slice(None, None, -1))
    reversed_time.to_netcdf(folder / "reversed_time.nc")
    twice = example_cube().assign_coords(region=["mouth"] * example_cube().sizes["region"])
    twice.to_netcdf(folder / "duplicate_regions.nc")
    return folder


def corpus(f):
    """(arguments, words the message must contain) — ``f`` is the folder of bad files."""
    return [
        ([], "choose a command"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["nonsense"], "invalid choice"),
        (["regions", f"{f}/missing.mp4", "--out", f"{f}/r.png"], "file not found"),
        (["regions", f"{f}/empty.mp4", "--out", f"{f}/r.png"], "empty.mp4"),
        (["regions", f"{f}/text.mp4", "--out", f"{f}/r.png"], "text.mp4"),
        (["regions", VIDEO, "--size", "0"], "--size"),
        (["regions", VIDEO, "--frame", "-1"], "--frame"),
        (["regions", VIDEO, "--frame", "100000", "--out", f"{f}/r.png"], "--frame 100000"),
        (["regions", VIDEO, "--max-frames", "0"], "--max-frames"),
        (["regions", VIDEO, "--out", f"{f}/r.txt"], "png or .pdf or .svg"),
        (["regions", VIDEO, "--out", f"{f}/a_file/r.png"], "is a file, not a folder"),
        (["regions", VIDEO, "--scheme", "circles"], "invalid choice"),
        (["explain", VIDEO, "--stride", "0"], "--stride"),
        (["explain", VIDEO, "--stride", "-3"], "--stride"),
        (["explain", VIDEO, "--stride", "two"], "--stride"),
        (["explain", VIDEO, "--max-frames", "0"], "--max-frames"),
        (["explain", VIDEO, "--out", f"{f}/cube.txt"], ".nc or .zarr"),
        (["explain", VIDEO, "--out", f"{f}/existing_dir"], ".nc or .zarr"),
        (["explain", VIDEO, "--out", f"{f}/a_file/cube.nc"], "is a file, not a folder"),
        (["explain", VIDEO, "--out", "/proc/expresso/cube.nc"], "cannot write in /proc"),
        (["explain", VIDEO, "--figure", f"{f}/fig.gif", "--out", f"{f}/c.nc"], "--figure"),
        (["explain", VIDEO, "--methods", "lime", "--out", f"{f}/c.nc"], "unknown method 'lime'"),
        (["explain", VIDEO, "--methods", ",", "--out", f"{f}/c.nc"], "no methods given"),
        (["explain", VIDEO, "--model", "no-such-model", "--out", f"{f}/c.nc"], "unknown model"),
        (["explain", VIDEO, "--model", f"{f}/empty.pt2", "--out", f"{f}/c.nc"], "empty.pt2"),
        (["explain", VIDEO, "--model", f"{f}/random.pt", "--out", f"{f}/c.nc"], "random.pt"),
        (["explain", VIDEO, "--openface", f"{f}/missing.csv", "--out", f"{f}/c.nc"], "missing.csv"),
        (["explain", f"{f}/missing.mp4", "--out", f"{f}/c.nc"], "file not found"),
        (["explain", f"{f}/empty.mp4", "--out", f"{f}/c.nc"], "empty.mp4"),
        (["explain", f"{f}/truncated.mp4", "--out", f"{f}/c.nc"], "truncated.mp4"),
        (["inspect", f"{f}/missing.nc"], "missing.nc"),
        (["inspect", f"{f}/cube.txt"], "cube.txt"),
        (["inspect", f"{f}/no_seconds.nc"], "seconds"),
        (["inspect", f"{f}/string_attribution.nc"], "attribution"),
        (["inspect", f"{f}/reversed_time.nc"], "time"),
        (["inspect", f"{f}/duplicate_regions.nc"], "region"),
        (["explore", f"{f}/missing.nc", "--out", f"{f}/e.html"], "missing.nc"),
        (["explore", f"{f}/missing.nc", "--out", f"{f}/e.txt"], ".html or .htm"),
        (["landmarks", VIDEO, "--detect-every", "0"], "--detect-every"),
        (["landmarks", VIDEO, "--out", f"{f}/l.txt"], ".npz"),
        (["landmarks", f"{f}/missing.mp4", "--out", f"{f}/l.npz"], "file not found"),
        (["train", f"{f}/missing.csv", "--out", f"{f}/w.pt"], "missing.csv"),
        (["train", f"{f}/manifest.csv", "--lr", "nan"], "--lr"),
        (["train", f"{f}/manifest.csv", "--lr", "0"], "--lr"),
        (["train", f"{f}/manifest.csv", "--epochs", "0"], "--epochs"),
        (["train", f"{f}/manifest.csv", "--batch-size", "0"], "--batch-size"),
        (["train", f"{f}/manifest.csv", "--label-noise", "-1"], "--label-noise"),
        (["train", f"{f}/manifest.csv", "--out", f"{f}/w.txt"], ".pt or .pth"),
        (["samples", "make", "--out", f"{f}/cohort", "--participants", "0"], "--participants"),
        (["samples", "make", "--out", f"{f}/cohort", "--seconds", "-1"], "--seconds"),
        (["samples", "make", "--out", f"{f}/cohort", "--size", "0"], "--size"),
        (["samples", "make", "--out", f"{f}/a_file/cohort"], "is a file, not a folder"),
        (["demo", "--sample", "nobody"], "invalid choice"),
        (["demo", "--out", f"{f}/a_file/demo"], "is a file, not a folder"),
    ]


@pytest.mark.parametrize("index", range(len(corpus("F"))))
def test_a_bad_input_is_one_line_and_exit_code_2(index, bad_files, capsys):
    arguments, words = corpus(bad_files)[index]
    code = main(arguments)
    err = capsys.readouterr().err
    message = [line for line in err.splitlines() if line.startswith("expresso-xai: error:")]
    assert code == 2, (arguments, err)
    assert len(message) == 1 and "Traceback" not in err, err
    assert words in message[0], (words, message[0])


def test_inspect_says_when_an_explainer_has_no_finite_attribution(tmp_path, capsys):
    import numpy as np

    from expresso_xai.testing import example_cube

    cube = example_cube()
    cube["attribution"][0] = np.nan
    path = cube.xai.to_netcdf(tmp_path / "nan.nc")
    assert main(["inspect", str(path)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("gradcam"))
    assert "no finite attribution" in line and "+0" not in line


@pytest.mark.parametrize("arguments", [["--bogus"], ["explain", VIDEO, "--stride", "0"],
                                       ["inspect", "/nonexistent/cube.nc"]])
def test_a_real_process_prints_no_traceback(arguments):
    result = subprocess.run([sys.executable, "-m", "expresso_xai.cli", *arguments], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("expresso-xai: error:")
