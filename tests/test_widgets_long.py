"""The Explorer on long videos, at the Python level: windows streamed from the kernel,
the heatmap downsampled keeping peaks, and the standalone HTML's lossy pixel maps, size
cap and time ranges. The browser side is in test_browser.py (JupyterLab, a long video)."""

from __future__ import annotations

import base64
import json
import re
import zlib

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.errors import CubeError, ExplorerSizeError
from expresso_xai.testing.browser import long_cube
from expresso_xai.widgets import payload, stream, windows


@pytest.fixture(scope="module")
def long():
    """3,000 frames (2 min at 25 fps, 6 windows of 20 s) at 16x16, with a video."""
    return long_cube(3000, size=16)


def _page_state(path) -> dict:
    text = path.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="xe-state">(.*?)</script>', text, re.S)
    return json.loads(found.group(1))


# --- windows and downsampling ----------------------------------------------------------


def test_windows_cover_the_video_once_in_order():
    n, size = 1234, 100
    bounds = [windows.window_bounds(n, size, k) for k in range(13)]
    covered = np.concatenate([np.arange(a, b) for a, b in bounds])
    assert covered.tolist() == list(range(n))
    assert all(windows.window_of(c, size) == k for k, (a, b) in enumerate(bounds) for c in (a, b - 1))
    with pytest.raises(CubeError, match="windows 0..12"):
        windows.window_bounds(n, size, 13)


def test_downsampling_keeps_each_bins_largest_magnitude_with_its_sign():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(4, 1003))
    values[2, 517] = -40.0  # a one-frame dip, far beyond the noise
    values[1, 10:20] = np.nan  # a bin with no value at all
    step = 10
    binned = windows.downsample_peaks(values, step)
    assert binned.shape == (4, 101)
    assert binned[2, 51] == -40.0
    for r in range(4):
        for b in range(101):
            chunk = values[r, b * step:(b + 1) * step]
            chunk = chunk[np.isfinite(chunk)]
            expected = chunk[np.argmax(np.abs(chunk))] if chunk.size else np.nan
            np.testing.assert_equal(binned[r, b], expected)
    assert np.array_equal(windows.downsample_peaks(values, 1), values, equal_nan=True)


def test_a_long_cube_sends_no_pixels_up_front_and_its_heatmap_keeps_the_spike(long):
    cube, video = long
    explorer = ex.widgets.Explorer(cube, video)
    data = explorer._data
    assert explorer.windowed and data["window"] == {"size": 500, "count": 6, "step": 5}
    assert data["overlay"]["data"] is None and data["labels"]["data"] is None and data["frames"]["jpeg"] is None
    assert data["heat_times"] == {"start": 0, "step": 5, "count": 600}  # frames 0, 5, 10, ...
    mouth = cube["region"].values.tolist().index("mouth")
    row = np.array(data["heat"]["gradcam"]["attribution"][mouth], dtype=float)
    assert int(np.argmax(row)) == 2100 // 5  # the one-frame spike at frame 2100 survives binning
    # the initial payload does not grow with the video (same 600 heat columns)
    longer = ex.widgets.Explorer(long_cube(6000, size=16, video=False)[0])
    shorter = len(json.dumps(ex.widgets.Explorer(cube)._data))
    grown = len(json.dumps(longer._data)) - shorter
    assert abs(grown) < 0.02 * shorter, f"{grown} bytes more for 3000 more frames"  # only the values differ
    # the Python API reads exact values, not the binned ones
    explorer.select(frame=2101, region="mouth", method="saliency")
    assert explorer.current()["mouth"] == pytest.approx(
        float(payload.heat_array(cube)[1, 1, mouth, 2101]))


def test_a_window_message_holds_exactly_that_window(long):
    cube, video = long
    explorer = ex.widgets.Explorer(cube, video)
    sent = []
    explorer.send = lambda content, buffers=None: sent.append((content, buffers))
    explorer._on_window_request(explorer, {"type": "window", "index": 4}, [])
    explorer._on_window_request(explorer, {"type": "window", "index": 99}, [])  # no such window: ignored
    explorer._on_window_request(explorer, {"type": "other"}, [])
    assert explorer.sent_windows == [4] and len(sent) == 1
    header, buffers = sent[0]
    assert (header["start"], header["stop"]) == (2000, 2500)
    part = cube.isel(time=slice(2000, 2500))
    scales, signed = explorer._data["overlay"]["scale"], explorer._data["signed"]
    for name, b in header["overlays"].items():
        codes = np.frombuffer(zlib.decompress(buffers[b]), np.uint8).reshape(500, 16, 16)
        expected = payload.quantise(part["pixels"].sel(explainer=name).values, signed[name], scales[name])
        np.testing.assert_array_equal(codes, expected)
    labels = np.frombuffer(zlib.decompress(buffers[header["labels"]]), np.uint8).reshape(500, 16, 16)
    np.testing.assert_array_equal(labels, part["region_label"].values)
    heat = np.frombuffer(buffers[header["heat"]], "<f4").reshape(2, 3, 12, 500)
    np.testing.assert_allclose(heat, payload.heat_array(cube)[..., 2000:2500], rtol=1e-6)
    lengths = header["frames"]["lengths"]
    assert len(lengths) == 500 and sum(lengths) == len(buffers[header["frames"]["buffer"]])
    # the scale is the whole video's: the same pixel value gives the same code in every window
    assert explorer.window_message(0)[0]["start"] == 0


# --- the standalone HTML -----------------------------------------------------------------


def test_lossy_pixel_maps_state_their_measured_error(long):
    cube, _ = long
    part = cube.isel(time=slice(0, 200))
    signed = payload.signed_explainers(part)
    lossy = payload.overlay_codes(part, signed, lossy=True)
    exact = payload.overlay_codes(part, signed)
    for name in part["explainer"].values.tolist():
        codes = np.frombuffer(zlib.decompress(base64.b64decode(exact["data"][name])), np.uint8).reshape(200, 16, 16)
        blobs = [base64.b64decode(b) for b in lossy["data"][name]]
        decoded = windows.decode_codes_webp(blobs, codes.shape)
        step = 1 / 127 if signed[name] else 1 / 255
        error = np.abs(decoded.astype(int) - codes.astype(int)) * step
        assert lossy["error"][name]["max"] == pytest.approx(error.max(), abs=1e-6)
        assert lossy["error"][name]["mean"] == pytest.approx(error.mean(), abs=1e-6)
        assert 0 < error.mean() < 0.03 and error.max() < 0.3, lossy["error"][name]
        # decoded in units of the scale, the maps stay within the stated error of the exact ones
        gap = np.abs(payload.decode(decoded, signed[name]) - payload.decode(codes, signed[name]))
        assert gap.max() <= lossy["error"][name]["max"] + 1e-6  # stated to 6 decimals


def test_a_time_range_keeps_its_true_frame_numbers_and_times(long, tmp_path):
    cube, video = long
    explorer = ex.widgets.Explorer(cube, video)
    explorer.seek(1000)  # outside the range: the page starts at its first frame
    state = _page_state(explorer.save_html(tmp_path / "range.html", frames=slice(2100, 2150)))
    data = state["_data"]
    assert data["times"] == list(range(2100, 2150)) and state["frame"] == 2100
    assert data["seconds"][0] == pytest.approx(84.0) and data["overlay"]["shape"] == [50, 16, 16]
    assert data["overlay"]["encoding"] == "webp" and data["frames"]["format"] == "webp"
    assert len(data["frames"]["jpeg"]) == 50
    assert any("WebP" in m and "error" in m for m in data["messages"])
    with pytest.raises(CubeError, match="not in the cube"):
        explorer.save_html(tmp_path / "none.html", frames=slice(5000, 6000))
    with pytest.raises(CubeError, match="without a step"):
        explorer.save_html(tmp_path / "step.html", frames=slice(0, 100, 2))


def test_a_page_over_the_cap_is_refused_with_a_range_that_fits(long, tmp_path):
    cube, video = long
    explorer = ex.widgets.Explorer(cube.isel(time=slice(0, 400)), video)
    with pytest.raises(ExplorerSizeError, match=r"frames=slice\(0, (\d+)\)") as refused:
        explorer.save_html(tmp_path / "big.html", max_mb=5.0)
    assert not (tmp_path / "big.html").exists()
    fits = int(re.search(r"frames=slice\(0, (\d+)\)", str(refused.value)).group(1))
    assert 0 < fits < 400
    path = explorer.save_html(tmp_path / "fits.html", frames=slice(0, fits), max_mb=5.0)
    assert path.stat().st_size <= 5e6


def test_lossy_pages_are_several_times_smaller_than_exact_ones(long, tmp_path):
    cube, video = long
    explorer = ex.widgets.Explorer(cube.isel(time=slice(0, 300)), video)
    overhead = len(ex.widgets.explorer.plotly_js())  # the same in both pages
    exact = explorer.save_html(tmp_path / "exact.html", lossy=False).stat().st_size - overhead
    lossy = explorer.save_html(tmp_path / "lossy.html").stat().st_size - overhead
    assert exact / lossy > 2.0, (exact, lossy)


def test_windowed_parts_without_pixels_say_how(long):
    cube, _ = long
    messages = []
    overlay, labels, frames, window = stream.windowed_parts(cube.drop_vars("pixels"), None, 500, messages)
    assert overlay is None and labels is None and frames is None and window["count"] == 6
    assert "keep_pixels=True" in messages[0]
