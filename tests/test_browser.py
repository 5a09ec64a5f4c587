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
from expresso_xai.testing import browser_cube, chromium, find_chromium, new_page, open_explorer, time_frame_changes
from expresso_xai.testing.browser import KERNEL, jupyterlab as lab_server, open_notebook, run_cell, run_in_kernel

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = find_chromium()
N_REGIONS = 12


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("BROWSER TESTS SKIPPED: Debian's chromium is not installed. `make test` installs it with "
                    "apt-get where apt is available; otherwise run `apt-get install -y chromium`.")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        yield browser


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


def heatmap_rows(page) -> tuple[int, list[str]]:
    """Rows of the plotly heatmap (its data) and the region labels drawn on its axis."""
    return page.eval_on_selector(".xe-heatmap", """gd => [gd.data[0].z.length,
        [...gd.querySelectorAll('.ytick text')].map(t => t.textContent)]""")


def shown_frame(page) -> int:
    return int(page.get_attribute(".xe-frame-label", "data-frame"))


def click_heatmap_cell(page, frame: int, region: str) -> None:
    page.locator(".xe-heatmap").scroll_into_view_if_needed()
    x, y = page.eval_on_selector(".xe-heatmap", """(gd, [frame, region]) => {
        const layout = gd._fullLayout, box = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return [box.left + layout.xaxis.l2p(frame), box.top + layout.yaxis.l2p(gd.data[0].y.indexOf(region))];
    }""", [frame, region])
    page.mouse.click(x, y)


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
    if CHROMIUM is None:
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


# --- 3. the evaluation panel (standalone HTML) -------------------------------------------

EVALUATED = ["gradcam", "integrated_gradients", "saliency"]


def _evaluation_page(browser, tmp_path, evaluation, name: str):
    """The standalone Explorer of a small cube with ``evaluation``, opened; its page and
    the list where uncaught errors and console errors go."""
    from expresso_xai.testing import example_cube

    cube = example_cube(explainers=EVALUATED, pixels=True)
    path = ex.widgets.Explorer(cube, evaluation=evaluation).save_html(tmp_path / f"{name}.html")
    errors: list = []
    page = new_page(browser, errors)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    open_explorer(page, path)
    return page, errors


def shown_curves(page) -> dict:
    """Per method panel, the curves drawn: ``{explainer: {order: y}}`` from the figure's
    data, and how many traces plotly drew in the page (curves and the band)."""
    return page.eval_on_selector_all(".xe-eval-panel", """panels => Object.fromEntries(panels.map(p => {
        const plot = p.querySelector('.xe-eval-plot');
        const curves = Object.fromEntries(plot.data.filter(t => t.meta.role === 'curve').map(t => [t.meta.order, t.y]));
        return [p.dataset.explainer, {curves, drawn: plot.querySelectorAll('.scatterlayer .trace').length,
                                      bands: plot.data.filter(t => t.meta.role === 'band').length}];
    }))""")


def shown_table(page) -> dict:
    """The score table as drawn: metric columns, rows, the cells' text and best cells."""
    return page.eval_on_selector(".xe-eval-table", """table => {
      const headers = [...table.querySelectorAll('th[data-metric]')];
      return {
        metrics: headers.map(th => th.dataset.metric),
        titles: Object.fromEntries(headers.map(th => [th.dataset.metric, th.title])),
        headers: Object.fromEntries(headers.map(th => [th.dataset.metric, th.textContent])),
        rows: [...table.querySelectorAll('tbody tr')].map(tr => tr.dataset.explainer),
        cells: [...table.querySelectorAll('td[data-metric]')].map(td => ({
            explainer: td.dataset.explainer, metric: td.dataset.metric, best: td.classList.contains('xe-best'),
            text: td.querySelector('.xe-score-value').textContent,
            mark: td.querySelector('.xe-pass') ? 'pass' : td.querySelector('.xe-fail') ? 'fail' : ''})),
        images: table.querySelectorAll('img').length,
      };
    }""")


def test_evaluation_panel_shows_the_curves_and_the_table(browser, tmp_path):
    from expresso_xai.testing import example_evaluation

    ev = example_evaluation(explainers=EVALUATED)
    # planted so that the lowest (best) mprt_spearman is not the highest, and markup in a definition
    ev["score"].loc[dict(metric="mprt_spearman")] = [0.62, 0.08, 0.31]
    definitions = json.loads(ev.attrs["metric_definitions"])
    definitions["relevance_mass"]["definition"] = "<img src=x onerror=\"document.title='pwned'\"> share inside"
    ev = ev.assign_attrs(metric_definitions=json.dumps(definitions))
    page, errors = _evaluation_page(browser, tmp_path, ev, "evaluation")
    try:
        page.wait_for_selector(".xe-eval-curves[data-kind='deletion']", timeout=10_000)
        assert page.is_visible(".xe-evaluation") and page.is_visible(".xe-eval-table")

        # one curve per method and order for the selected kind, the dataset's values, the random band
        for kind in ("deletion", "insertion"):
            if kind != "deletion":
                page.select_option(".xe-eval-kind", kind)
                page.wait_for_selector(f".xe-eval-curves[data-kind='{kind}']", timeout=5000)
            curves = shown_curves(page)
            assert list(curves) == EVALUATED
            for name, shown in curves.items():
                assert list(shown["curves"]) == ["morf", "lerf", "random"]
                assert shown["bands"] == 1 and shown["drawn"] == 4  # three curves and the band
                for order, y in shown["curves"].items():
                    assert y == pytest.approx(ev.curve.sel(explainer=name, kind=kind, order=order).values.tolist())

        table = shown_table(page)
        assert table["rows"] == EVALUATED and sorted(table["metrics"]) == sorted(ev.metric.values.tolist())
        assert len(table["cells"]) == len(EVALUATED) * ev.sizes["metric"]
        for name in EVALUATED:  # one column per metric, in the dataset's order
            assert [c["metric"] for c in table["cells"] if c["explainer"] == name] == ev.metric.values.tolist()
        for cell in table["cells"]:
            value = float(ev.score.sel(explainer=cell["explainer"], metric=cell["metric"]))
            assert abs(float(cell["text"]) - value) <= 0.5e-3 + 1e-12, (cell, value)  # shown with 3 decimals
            passed = float(ev.passed.sel(explainer=cell["explainer"], metric=cell["metric"]))
            assert cell["mark"] == ("" if np.isnan(passed) else "pass" if passed else "fail"), cell
        best = {c["metric"]: c["explainer"] for c in table["cells"] if c["best"]}
        assert best["mprt_spearman"] == "integrated_gradients"  # lower is better: the smallest
        assert "↓" in table["headers"]["mprt_spearman"] and "↑" in table["headers"]["deletion_morf"]
        assert "shuffled_frames" not in best  # no direction, no best
        # the definitions are tooltips, as text: the markup in one is shown, never run
        assert definitions["deletion_morf"]["definition"] in table["titles"]["deletion_morf"]
        assert "<img src=x" in table["titles"]["relevance_mass"] and table["images"] == 0
        assert page.title() != "pwned"

        # a click on a row shows that method above
        page.click(".xe-eval-row[data-explainer='saliency'] th")
        page.wait_for_function("() => document.querySelector('.xe-compare-item.xe-selected').dataset.explainer "
                               "=== 'saliency'", timeout=5000)
        assert page.get_attribute(".xe-eval-panel.xe-selected", "data-explainer") == "saliency"

        page.select_option(".xe-eval-kind", "deletion")
        page.wait_for_selector(".xe-eval-curves[data-kind='deletion']", timeout=5000)
        page.locator(".xe-evaluation").screenshot(path=ARTIFACTS / "evaluation_panel.png")
        assert not errors, errors
    finally:
        page.close()


def test_an_evaluation_without_curves_shows_only_the_table(browser, tmp_path):
    from expresso_xai.testing import example_evaluation

    ev = example_evaluation(explainers=EVALUATED).drop_vars(["curve", "curve_ci"])
    page, errors = _evaluation_page(browser, tmp_path, ev, "evaluation_table")
    try:
        assert page.is_visible(".xe-eval-table") and page.locator(".xe-eval-curves").count() == 0
        assert shown_table(page)["rows"] == EVALUATED
        page.locator(".xe-evaluation").screenshot(path=ARTIFACTS / "evaluation_table_only.png")
        assert not errors, errors
    finally:
        page.close()


# --- 4. what a page shows of names it did not choose -------------------------------------

SCRIPT_IN_NAME = "</script><script>window.__pwned=1</script>"
IMG_IN_NAME = '<img src=x onerror="window.__pwned=1">'
BOLD_IN_NAME = "<b>bold</b>"  # markup plotly itself would draw (as bold text) in its labels


def _cube_with_markup_everywhere():
    """An example cube whose explainers, two regions, model, video file and other attrs
    carry markup, and whose model predicted outside its declared range (a caution)."""
    from expresso_xai.cube.views import range_caution
    from expresso_xai.testing import example_cube

    explainers = [f"gradcam{SCRIPT_IN_NAME}{BOLD_IN_NAME}", f"saliency{IMG_IN_NAME}"]
    cube = example_cube(explainers=explainers, pixels=True)
    renamed = {"mouth": f"mouth{SCRIPT_IN_NAME}", "nose": f"nose{IMG_IN_NAME}", "jaw": f"jaw{BOLD_IN_NAME}"}
    cube = cube.assign_coords(region=[renamed.get(r, r) for r in cube.region.values.tolist()])
    cube = cube.assign_coords(clip=[0]).assign(clip_start=("clip", [0]), clip_prediction=("clip", [99.0]),
                                               prediction_out_of_range=("clip", [True]))
    cube = cube.assign_attrs(model_name=f"model{SCRIPT_IN_NAME}{IMG_IN_NAME}",
                             video_source=f"/videos/clip{IMG_IN_NAME}.mp4", model_output_range="[0, 63]",
                             region_scheme=f"partition{SCRIPT_IN_NAME}", model_weights=IMG_IN_NAME)
    assert range_caution(cube)
    return cube, explainers, list(renamed.values())


def test_markup_in_every_name_shows_as_text_and_runs_nothing(browser, tmp_path):
    """Names, file names and attrs with </script> and <img onerror> in the standalone
    page: nothing runs, no element is made of them, and each shows as written."""
    from expresso_xai.cube.views import range_caution

    cube, explainers, regions = _cube_with_markup_everywhere()
    path = ex.widgets.Explorer(cube).save_html(tmp_path / "markup.html")
    errors: list = []
    page = new_page(browser, errors)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        open_explorer(page, path)
        title = f"model{SCRIPT_IN_NAME}{IMG_IN_NAME} on clip{IMG_IN_NAME}.mp4"
        shown = page.evaluate("""() => ({
            pwned: typeof window.__pwned, images: document.querySelectorAll('img').length,
            scripts: document.querySelectorAll('script').length, title: document.title,
            header: document.querySelector('.xe-title').textContent,
            options: [...document.querySelectorAll('.xe-method option')].map(o => o.textContent),
            captions: [...document.querySelectorAll('.xe-compare-item figcaption')].map(c => c.textContent),
            agreement: [...document.querySelectorAll('.xe-agreement-table tr:first-child th')].map(t => t.textContent),
            plotTitle: document.querySelector('.xe-heatmap .gtitle').textContent,
            legend: [...document.querySelectorAll('.xe-series .legendtext')].map(t => t.textContent),
            caution: [...document.querySelectorAll('.xe-caution')].map(c => c.textContent),
        })""")
        assert shown["pwned"] == "undefined" and shown["images"] == 0 and shown["scripts"] == 3, shown
        assert shown["title"] == shown["header"] == title
        assert shown["options"] == explainers and shown["agreement"][1:] == explainers
        assert [caption.split(" · ")[0] for caption in shown["captions"]] == explainers
        assert shown["plotTitle"].startswith(f"{explainers[0]}: density")
        assert set(regions) <= set(heatmap_rows(page)[1]) and set(regions) <= set(shown["legend"])
        assert shown["caution"] == [f"Caution: {range_caution(cube)}"]
        # a click on a row with markup in its name picks that region, named as written
        click_heatmap_cell(page, 5, regions[0])
        page.wait_for_function("() => document.querySelector('.xe-frame-label').dataset.frame === '5'", timeout=5000)
        assert page.text_content(".xe-region-label").startswith(f"{regions[0]}: ")
        page.locator(".xe").screenshot(path=ARTIFACTS / "markup_in_names.png")
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert not errors, errors
    finally:
        page.close()


def test_a_frame_without_a_face_has_no_top_region(browser, tmp_path):
    """Frame 3 of the example cube has no face: all its pixels are background, so no
    facial region can top it (its zeros would put right_eye, the first row, on top)."""
    from expresso_xai.testing import example_cube

    path = ex.widgets.Explorer(example_cube(pixels=True), value="attribution").save_html(tmp_path / "noface.html")
    errors: list = []
    page = new_page(browser, errors)
    try:
        open_explorer(page, path)
        labels = {}
        for frame in (2, 3, 4):
            page.fill(".xe-slider", str(frame))
            page.wait_for_function(f"() => document.querySelector('.xe-frame-label').dataset.frame === '{frame}'",
                                   timeout=5000)
            labels[frame] = (page.text_content(".xe-region-label"),
                             page.eval_on_selector_all(".xe-compare-item figcaption", "cs => cs.map(c => c.textContent)"))
        assert labels[3][0].startswith("top region: none (no face in this frame)"), labels[3]
        assert all(caption.endswith("top: none (no face in this frame)") for caption in labels[3][1]), labels[3]
        for frame in (2, 4):  # the planted signal is in the mouth
            assert labels[frame][0].startswith("top region: mouth"), labels[frame]
            assert all(caption.endswith("top: mouth") for caption in labels[frame][1]), labels[frame]
        assert not errors, errors
    finally:
        page.close()
