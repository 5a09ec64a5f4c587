"""Opening the Explorer on a long video fast: nothing heavy imported on the way (no
scipy.stats, no matplotlib), an initial payload of the same size whatever the length,
and the frame asked for sent before the rest of its window."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.stats import _average_ranks, spearman
from expresso_xai.testing.browser import long_cube
from expresso_xai.widgets import payload, stream


@pytest.fixture(scope="module")
def long():
    """3,000 frames (6 windows of 500) at 16x16 with a video; frames 100-139 and 2990-2999
    without a face and a prediction per frame."""
    cube, video = long_cube(3000, size=16)
    face = np.ones(3000, bool)
    face[100:140] = False
    face[2990:] = False
    cube = cube.assign(face_found=("time", face),
                       prediction=("time", np.sin(np.arange(3000) / 50.0).astype(np.float32)))
    return cube, video


def test_ranks_without_scipy_are_scipys_average_ranks():
    from scipy.stats import rankdata

    rng = np.random.default_rng(7)
    for shape, axis in (((6, 9), -1), ((6, 9), 0), ((3, 4, 11), 1), ((1,), 0), ((2, 0), -1)):
        tied = rng.integers(0, 4, size=shape).astype(np.float64)  # many ties
        spread = rng.normal(size=shape)
        for values in (tied, spread):
            np.testing.assert_array_equal(_average_ranks(values, axis), rankdata(values, axis=axis))
    assert spearman([1, 1, 2, 3], [4, 4, 5, 9]) == pytest.approx(1.0)
    assert spearman([3, 1, 2], [1, 3, 2]) == pytest.approx(-1.0)


def test_the_colour_maps_are_matplotlibs():
    from matplotlib import colormaps

    for kind, name in payload.LUT_MAPS.items():
        expected = (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(int).tolist()
        assert payload.colour_luts()[kind] == expected, kind


def test_opening_an_explorer_imports_neither_scipy_stats_nor_matplotlib():
    code = ("import sys, expresso_xai as ex\n"
            "from expresso_xai.testing.browser import long_cube\n"
            "cube, video = long_cube(1200, size=16)\n"
            "ex.widgets.Explorer(cube, video)\n"
            "print(sorted(m for m in ('scipy.stats', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_long_payloads_columns_are_compact_and_exact(long):
    cube, _ = long
    data = ex.widgets.Explorer(cube)._data
    step = data["window"]["step"]
    assert data["times"] == {"start": 0, "step": 1, "count": 3000}
    assert data["heat_times"] == {"start": 0, "step": step, "count": 600}
    start, every = data["seconds"]["start"], data["seconds"]["step"]
    np.testing.assert_allclose(start + every * np.arange(3000), cube["seconds"].values, atol=1e-9)
    # the face flags' runs give back every frame's flag, the no-face stretches included
    runs, flag, flags = data["face_found"]["runs"], data["face_found"]["first"], []
    for k, n in enumerate(runs):
        flags += [flag if k % 2 == 0 else not flag] * n
    assert runs == [100, 40, 2850, 10] and flags == cube["face_found"].values.tolist()
    # one prediction per heat column: the mean of its frames
    expected = cube["prediction"].values.astype(np.float64).reshape(600, step).mean(axis=1)
    np.testing.assert_allclose(data["prediction"], expected, rtol=1e-5)
    # irregular frame numbers (every other frame, one missing) are listed as they are
    times = np.delete(np.arange(0, 6000, 2), 10)
    assert stream.regular_run(times) == times.tolist()
    assert stream.regular_run(np.arange(0, 6000, 2)) == {"start": 0, "step": 2, "count": 3000}


def test_a_1_minute_and_a_10_minute_payload_are_the_same_size():
    minute = ex.widgets.Explorer(long_cube(1500 * 2, size=8, video=False, explainers=("gradcam",))[0])._data
    ten = ex.widgets.Explorer(long_cube(15_000, size=8, video=False, explainers=("gradcam",))[0])._data
    sizes = [len(json.dumps(d, allow_nan=False)) for d in (minute, ten)]
    assert abs(sizes[1] - sizes[0]) < 0.02 * sizes[0], sizes


def _sent(explorer) -> list:
    sent = []
    explorer.send = lambda content, buffers=None: sent.append((content, buffers))
    return sent


def test_the_frame_asked_for_comes_first_then_its_whole_window(long):
    cube, video = long
    explorer = ex.widgets.Explorer(cube, video)
    sent = _sent(explorer)
    explorer._on_window_request(explorer, {"type": "window", "index": 4, "column": 2480}, [])
    (head, head_buffers), (whole, whole_buffers) = sent
    assert head["partial"] and not whole["partial"] and head["index"] == whole["index"] == 4
    assert (head["start"], head["stop"]) == (2450, 2500) and (whole["start"], whole["stop"]) == (2000, 2500)
    assert explorer.sent_windows == [4]  # whole windows only

    def codes(header, buffers, name):
        return np.frombuffer(zlib.decompress(buffers[header["overlays"][name]]), np.uint8).reshape(-1, 16, 16)

    for name in cube["explainer"].values.tolist():  # the head is the window's own slice, same scale
        np.testing.assert_array_equal(codes(head, head_buffers, name), codes(whole, whole_buffers, name)[450:])
    heat = np.frombuffer(head_buffers[head["heat"]], "<f4").reshape(2, 3, 12, 50)
    np.testing.assert_allclose(heat, payload.heat_array(cube)[..., 2450:2500], rtol=1e-6)
    assert len(head["frames"]["lengths"]) == 50
    # a window already made goes whole at once
    explorer._windows.get(5)
    explorer._on_window_request(explorer, {"type": "window", "index": 5, "column": 2600}, [])
    assert [h["partial"] for h, _ in sent[2:]] == [False] and explorer.sent_windows == [4, 5]


def test_the_first_frames_are_made_ahead_and_sent_before_their_window(long):
    cube, video = long
    explorer = ex.widgets.Explorer(cube, video, frame=1234)
    sent = _sent(explorer)
    column, made = explorer._first_head
    assert column == 1234 and made.result()[0]["partial"]
    explorer._windows.ready = lambda index: False  # as when the page asks before window 2 is made
    explorer._on_window_request(explorer, {"type": "window", "index": 2, "column": 1234}, [])
    assert [(h["start"], h["stop"], h["partial"]) for h, _ in sent] == [(1234, 1284, True), (1000, 1500, False)]
    assert explorer._first_head is None and explorer.sent_windows == [2]
