"""The Explorer in a real browser: Debian's Chromium driven by Playwright.

1. The standalone HTML of a 300-frame cube, opened from a file URL (no server, no
   kernel): heatmap, player, clicks, method switch, and the time a frame change takes.
2. JupyterLab on localhost: the quickstart notebook opened, every cell run, and the
   widget checked the way a person would check it; the kernel sees the clicks.

Screenshots and timings go to ``test-artifacts/browser/``. Without Chromium these tests
are skipped with a loud reason (``make test`` installs it with apt where it can).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.testing import browser_cube, find_chromium, new_page, open_explorer, time_frame_changes
from expresso_xai.testing.browser import (KERNEL, click_heatmap_cell, heatmap_rows, jupyterlab as lab_server,
                                         open_notebook, run_cell, run_in_kernel)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"  # where the browser fixture (conftest.py) puts screenshots
N_REGIONS = 12


# --- what a person checks, as page functions -------------------------------------------

def canvas_stats(page, selector=".xe-canvas") -> dict:
    """Mean, spread and a checksum of a canvas's pixels."""
    return page.eval_on_selector(selector, """c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let sum = 0, sq = 0, hash = 0;
        for (let i = 0; i < d.length; i += 4) {
            const g = (d[i] + d[i + 1] + d[i + 2]) / 3;
            sum += g; sq += g * g; hash = (hash * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) % 1000000007;
        }
        const n = d.length / 4, mean = sum / n;
        return {mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)), hash, width: c.width, height: c.height};
    }""")


def shown_frame(page) -> int:
    return int(page.get_attribute(".xe-frame-label", "data-frame"))


def frame_change_times(page, n: int = 60) -> dict:
    """Scrub to ``n`` different frames in random order, timing each change."""
    frames = int(page.get_attribute(".xe-slider", "max")) + 1
    order = np.random.default_rng(0).permutation(frames)[:n].tolist()
    assert len(set(order)) == len(order) == min(n, frames)
    return time_frame_changes(page, order)


def _summary(timings: dict) -> dict:
    out = {"frames": timings["frames"], "changes": len(timings["sync"])}
    for key in ("sync", "painted"):
        values = np.asarray(timings[key])
        out[key] = {"median_ms": round(float(np.median(values)), 2),
                    "p95_ms": round(float(np.percentile(values, 95)), 2), "max_ms": round(float(values.max()), 2)}
    return out


def check_explorer(page, name: str, frame: int, region: str, other_method: str) -> None:
    """The checks a person makes, with screenshots."""
    explorer = page.locator(".xe")
    explorer.scroll_into_view_if_needed()
    explorer.screenshot(path=ARTIFACTS / f"{name}_1_ready.png")

    player = canvas_stats(page)
    assert player["std"] > 10, f"the player looks blank: {player}"

    rows, labels = heatmap_rows(page)
    assert rows == N_REGIONS and len(labels) == N_REGIONS, (rows, labels)

    before = shown_frame(page)
    assert before != frame
    click_heatmap_cell(page, frame, region)
    page.wait_for_function(f"() => document.querySelector('.xe-frame-label').dataset.frame === '{frame}'",
                           timeout=5000)
    assert shown_frame(page) == frame
    assert region in page.text_content(".xe-region-label")
    explorer.screenshot(path=ARTIFACTS / f"{name}_2_clicked.png")

    # the cursor on the heatmap follows the player: one step right moves it one column
    cursor = page.eval_on_selector(".xe-heatmap + .xe-cursor", "c => parseFloat(c.style.left)")
    page.click(".xe-next")
    assert shown_frame(page) == frame + 1
    column = page.eval_on_selector(".xe-heatmap", "gd => gd._fullLayout.xaxis.l2p(1) - gd._fullLayout.xaxis.l2p(0)")
    moved = page.eval_on_selector(".xe-heatmap + .xe-cursor", "c => parseFloat(c.style.left)") - cursor
    assert moved == pytest.approx(column, rel=0.05)
    page.click(".xe-prev")
    assert shown_frame(page) == frame

    # play, then pause: the frames advance at about the video's rate, then stop
    page.click(".xe-play")
    page.wait_for_timeout(800)
    page.click(".xe-play")
    stopped = shown_frame(page)
    assert 5 <= stopped - frame <= 40, (frame, stopped)
    page.wait_for_timeout(300)
    assert shown_frame(page) == stopped
    click_heatmap_cell(page, frame, region)
    page.wait_for_function(f"() => document.querySelector('.xe-frame-label').dataset.frame === '{frame}'",
                           timeout=5000)

    overlay = canvas_stats(page)
    page.select_option(".xe-method", other_method)
    page.wait_for_function(f"() => document.querySelector('.xe-compare-item.xe-selected').dataset.explainer "
                           f"=== '{other_method}'", timeout=5000)
    switched = canvas_stats(page)
    assert switched["hash"] != overlay["hash"], "the method selector did not change the overlay"
    assert shown_frame(page) == frame  # same frame, other method
    explorer.screenshot(path=ARTIFACTS / f"{name}_3_method.png")


def measure_frame_changes(page, name: str) -> dict:
    """Frame-change timings, written to the artifacts and printed."""
    timings = _summary(frame_change_times(page))
    (ARTIFACTS / f"{name}_frame_timing.json").write_text(json.dumps(timings, indent=2))
    print(f"\n{name}: frame change {timings}")
    return timings


# --- 1. standalone HTML, 300 frames ---------------------------------------------------


@pytest.fixture(scope="module")
def cube_300():
    """A 300-frame cube at 112x112 with pixel maps, and its video (made by the generator)."""
    cube, video = browser_cube(300)
    assert cube.sizes["time"] == 300
    return cube, video


def test_standalone_html_from_a_file_url(browser, cube_300, tmp_path):
    cube, video = cube_300
    path = ex.widgets.Explorer(cube, video).save_html(tmp_path / "explorer.html")
    errors: list = []
    page = new_page(browser, errors)
    try:
        open_explorer(page, path)
        assert not errors, errors
        check_explorer(page, "standalone", frame=200, region="mouth", other_method="input_x_gradient")
        timings = measure_frame_changes(page, "standalone")
        assert timings["frames"] == 300
        # reported, not a tight bound (shared machines are noisy); the goal is <= 50 ms
        assert timings["painted"]["median_ms"] < 250, timings
        page.screenshot(path=ARTIFACTS / "standalone_page.png", full_page=True)
        assert not errors, errors
    finally:
        page.close()


def test_standalone_without_pixels_says_how_and_marks_no_face_frames(browser, tmp_path):
    from expresso_xai.testing import example_cube

    path = ex.widgets.Explorer(example_cube()).save_html(tmp_path / "bare.html")  # frame 3 has no face
    errors: list = []
    page = new_page(browser, errors)
    try:
        open_explorer(page, path)
        assert "keep_pixels=True" in page.text_content(".xe-messages")
        assert heatmap_rows(page)[0] == N_REGIONS
        assert not page.is_visible(".xe-badge")
        for _ in range(3):
            page.click(".xe-next")
        assert shown_frame(page) == 3 and page.is_visible(".xe-badge")  # "no face"
        page.click(".xe-next")
        assert not page.is_visible(".xe-badge")
        # the no-face frame is shaded on the heatmap and the time series
        shapes = page.eval_on_selector(".xe-heatmap", "gd => gd.layout.shapes.map(s => [s.x0, s.x1])")
        assert shapes == [[2.5, 3.5]]
        page.locator(".xe").screenshot(path=ARTIFACTS / "standalone_without_pixels.png")
        assert not errors, errors
    finally:
        page.close()


# --- 2. JupyterLab ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """JupyterLab on localhost over a copy of the notebooks; shut down whatever happens."""
    if find_chromium() is None:
        pytest.skip("BROWSER TESTS SKIPPED: Debian's chromium is not installed (see the module docstring)")
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns("outputs", ".ipynb_checkpoints"))
    try:
        with lab_server(root, base) as lab:
            yield lab
    finally:
        if ARTIFACTS.exists() and (base / "server.log").exists():
            shutil.copy(base / "server.log", ARTIFACTS / "jupyterlab_server.log")


def test_quickstart_notebook_in_jupyterlab(browser, jupyterlab):
    errors: list = []
    page = new_page(browser, errors)
    try:
        page.goto(f"{jupyterlab['url']}/lab/tree/01_quickstart.ipynb?token={jupyterlab['token']}")
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        page.wait_for_function(f"() => {{ try {{ return {KERNEL}.status === 'idle'; }} catch (e) {{ return false; }} }}",
                               timeout=90_000)
        page.screenshot(path=ARTIFACTS / "jupyterlab_0_opened.png")
        assert page.locator(".jp-Dialog").count() == 0, "a dialog (kernel choice?) blocks the notebook"

        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_selector(".xe[data-ready='1']", timeout=600_000)
        page.wait_for_function(
            f"""() => {KERNEL}.status === 'idle' &&
                [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].every(
                    p => /\\[\\d+\\]/.test(p.textContent))""", timeout=600_000)
        cells = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.toJSON().cells")
        code_cells = [c for c in cells if c["cell_type"] == "code"]
        failures = [o for c in code_cells for o in c["outputs"] if o["output_type"] == "error"]
        assert not failures, [f"{o['ename']}: {o['evalue']}" for o in failures]
        assert all(c["execution_count"] for c in code_cells)
        page.screenshot(path=ARTIFACTS / "jupyterlab_1_ran.png")

        # the notebook selected frame 120 / left_eye from Python: the browser shows it
        assert page.get_attribute(".xe-frame-label", "data-frame") == run_in_kernel(
            page, "print(explorer.frame, end='')")
        check_explorer(page, "jupyterlab", frame=70, region="right_eye", other_method="occlusion")
        # and the kernel heard the click and the method change
        assert run_in_kernel(page, "print(explorer.frame, explorer.region, explorer.method)").split() == [
            "70", "right_eye", "occlusion"]
        timings = measure_frame_changes(page, "jupyterlab")
        assert timings["frames"] == 250
        assert not errors, errors
    finally:
        page.screenshot(path=ARTIFACTS / "jupyterlab_9_last.png")
        page.close()


# --- 2b. a long video in JupyterLab: the Explorer streams windows from the kernel --------


LONG_SETUP = """import expresso_xai as ex
from expresso_xai.testing.browser import long_cube
cube, video = long_cube(3000)  # 2 min at 25 fps: 6 windows of 20 s (500 frames)"""


def _write_notebook(path: Path, *sources: str) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_a_long_video_streams_only_the_windows_asked_for(browser, jupyterlab):
    _write_notebook(jupyterlab["root"] / "long.ipynb", "# a long video, streamed")
    errors: list = []
    page = new_page(browser, errors)
    try:
        open_notebook(page, jupyterlab, "long.ipynb")
        assert run_in_kernel(page, LONG_SETUP + "\nprint(len(video), end='')") == "3000"
        opened = run_cell(page, "explorer = ex.widgets.Explorer(cube, video)\nexplorer", ".xe[data-window='0']")
        page.wait_for_selector(".xe[data-ready='1']", timeout=60_000)
        assert shown_frame(page) == 0
        first = canvas_stats(page)
        assert first["std"] > 5, f"the first window's frame looks blank: {first}"
        # the heatmap shows the whole video, binned (600 columns of 5 frames), and a click
        # far outside the first window loads that window
        assert page.eval_on_selector(".xe-heatmap", "gd => [gd.data[0].x.length, gd.data[0].x.at(-1)]") == [600, 2995]
        click_heatmap_cell(page, 2100, "mouth")
        page.wait_for_selector(".xe[data-window='4'][data-frame='2100']", timeout=20_000)
        assert shown_frame(page) == 2100
        assert "frame 2100 · 84.00 s" in page.text_content(".xe-frame-label")
        label = page.text_content(".xe-region-label")
        assert label.startswith("mouth: ") and "–" not in label.split("(")[0], label  # the window's exact value
        jumped = canvas_stats(page)
        assert jumped["std"] > 5 and jumped["hash"] != first["hash"], (first, jumped)
        page.locator(".xe").screenshot(path=ARTIFACTS / "long_jumped.png")
        # the frame asked for may come first (the window's head): the whole window follows
        page.wait_for_selector(".xe[data-window='4'][data-partial='0']", timeout=20_000)
        # frame changes inside the window never ask the kernel
        inside = time_frame_changes(page, [2000 + (37 * k) % 500 for k in range(30)])
        last = str(2000 + (37 * 29) % 500)
        for _ in range(50):  # ipywidgets holds back syncs while the kernel is busy: the last one comes
            kernel = run_in_kernel(page, "print(explorer.sent_windows, explorer.frame, explorer.region)").split()
            if kernel[2] == last:
                break
            page.wait_for_timeout(100)
        assert kernel == ["[0,", "4]", last, "mouth"]
        painted = float(np.median(inside["painted"]))
        (ARTIFACTS / "long_timing.json").write_text(json.dumps(
            {"open_s": opened, "inside_window_painted_median_ms": painted,
             "inside_window_painted_max_ms": float(np.max(inside["painted"]))}, indent=2))
        print(f"\nlong video: opened in {opened:.2f} s, frame change inside a window {painted:.1f} ms (median)")
        assert painted < 250, inside  # reported; the goal is <= 50 ms on an idle machine
        assert not errors, errors
    finally:
        page.screenshot(path=ARTIFACTS / "long_9_last.png")
        page.close()
