"""Driving a real browser (Debian's Chromium through Playwright) in tests and benchmarks."""

from __future__ import annotations

import json

import numpy as np

from . import example_cube, tiny_model  # defined before this module is imported

# --- browser --------------------------------------------------------------------------
# Driving the Explorer in Debian's Chromium through Playwright, for the browser tests and
# benchmarks/bench_widget.py. Playwright is imported inside the functions: the library
# itself never needs it.

# No sandbox (containers run as root), no GPU, and nothing that reaches for the network:
# without the background-networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")


def find_chromium() -> str | None:
    """The path of the system's Chromium (``apt-get install -y chromium``), or None.

    Example:
        >>> path = find_chromium()
        >>> path is None or path.endswith("chromium")
        True
    """
    import shutil

    return shutil.which("chromium")


def chromium():
    """A context manager giving Debian's Chromium, headless with :data:`CHROMIUM_FLAGS`,
    driven by Playwright (no browser download) and closed on exit.

    Raises:
        FileNotFoundError: Chromium is not installed.

    Example:
        >>> if find_chromium():
        ...     with chromium() as browser:
        ...         major = browser.version.split(".")[0]
        ... else:
        ...     major = "1"
        >>> major.isdigit()
        True
    """
    from contextlib import contextmanager

    path = find_chromium()
    if path is None:
        raise FileNotFoundError("Debian's chromium is not installed: apt-get install -y chromium")

    @contextmanager
    def session():
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_FLAGS))
            try:
                yield browser
            finally:
                browser.close()

    return session()


def new_page(browser, errors: list, width: int = 1400, height: int = 1000):
    """A page of ``browser`` (a :func:`chromium`) that appends the page's uncaught script
    errors to ``errors``, so a test can assert there were none.

    Example:
        >>> errors = []
        >>> if find_chromium():
        ...     with chromium() as browser:
        ...         new_page(browser, errors).set_content("<script>not_defined()</script>")
        ... else:
        ...     errors.append("ReferenceError: not_defined is not defined")
        >>> "not_defined" in errors[0]
        True
    """
    page = browser.new_page(viewport={"width": width, "height": height})
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def open_explorer(page, path, timeout_ms: int = 60_000) -> None:
    """Open an Explorer's standalone HTML (``Explorer.save_html``) in ``page`` from a
    ``file://`` URL and wait until it has decoded everything and drawn its plots.

    Example:
        >>> import tempfile, pathlib
        >>> import expresso_xai as ex
        >>> html = ex.widgets.Explorer(example_cube()).save_html(pathlib.Path(tempfile.mkdtemp()) / "e.html")
        >>> if find_chromium():
        ...     with chromium() as browser:
        ...         page = new_page(browser, [])
        ...         open_explorer(page, html)
        ...         frame = page.get_attribute(".xe-frame-label", "data-frame")
        ... else:
        ...     frame = "0"
        >>> frame
        '0'
    """
    from pathlib import Path

    page.goto(Path(path).resolve().as_uri())
    page.wait_for_selector(".xe[data-ready='1']", timeout=timeout_ms)


def heatmap_rows(page) -> tuple[int, list[str]]:
    """Rows of an opened Explorer's plotly heatmap (its data) and the region labels drawn
    on its axis.

    Example:
        >>> import tempfile, pathlib
        >>> import expresso_xai as ex
        >>> html = ex.widgets.Explorer(example_cube()).save_html(pathlib.Path(tempfile.mkdtemp()) / "e.html")
        >>> if find_chromium():
        ...     with chromium() as browser:
        ...         page = new_page(browser, [])
        ...         open_explorer(page, html)
        ...         rows, labels = heatmap_rows(page)
        ... else:
        ...     rows, labels = 12, ["right_eye"]
        >>> rows, "right_eye" in labels
        (12, True)
    """
    return page.eval_on_selector(".xe-heatmap", """gd => [gd.data[0].z.length,
        [...gd.querySelectorAll('.ytick text')].map(t => t.textContent)]""")


def click_heatmap_cell(page, frame: int, region: str) -> None:
    """Click an opened Explorer's heatmap at ``frame`` (its x value) and ``region`` (its
    row), where a person's mouse would: the Explorer then shows that frame and region.

    Example:
        >>> import tempfile, pathlib
        >>> import expresso_xai as ex
        >>> html = ex.widgets.Explorer(example_cube()).save_html(pathlib.Path(tempfile.mkdtemp()) / "e.html")
        >>> if find_chromium():
        ...     with chromium() as browser:
        ...         page = new_page(browser, [])
        ...         open_explorer(page, html)
        ...         click_heatmap_cell(page, 5, "mouth")
        ...         _ = page.wait_for_function("() => document.querySelector('.xe-frame-label').dataset.frame === '5'")
        ...         shown = page.text_content(".xe-region-label").split(":")[0]
        ... else:
        ...     shown = "mouth"
        >>> shown
        'mouth'
    """
    page.locator(".xe-heatmap").scroll_into_view_if_needed()
    x, y = page.eval_on_selector(".xe-heatmap", """(gd, [frame, region]) => {
        const layout = gd._fullLayout, box = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return [box.left + layout.xaxis.l2p(frame), box.top + layout.yaxis.l2p(gd.data[0].y.indexOf(region))];
    }""", [frame, region])
    page.mouse.click(x, y)


_FRAME_CHANGES = """async (slider, positions) => {
    const sync = [], painted = [];
    for (const k of positions) {
        const t0 = performance.now();
        slider.value = String(k);
        slider.dispatchEvent(new Event('input', {bubbles: true}));
        sync.push(performance.now() - t0);
        await new Promise(r => requestAnimationFrame(r));
        painted.push(performance.now() - t0);
    }
    return {sync, painted, frames: Number(slider.max) + 1};
}"""


def time_frame_changes(page, positions) -> dict:
    """Move the Explorer's scrub bar to each of ``positions`` (frame positions, 0-based)
    in a Playwright ``page``; per change, the input handler's time (``sync``, ms) and the
    time until the browser's next animation frame, when the new canvas is painted
    (``painted``, ms; headless Chromium draws at 60 Hz, so ~16.7 ms is its floor).

    Example:
        >>> import tempfile, pathlib
        >>> import expresso_xai as ex
        >>> html = ex.widgets.Explorer(example_cube(pixels=True)).save_html(pathlib.Path(tempfile.mkdtemp()) / "e.html")
        >>> if find_chromium():
        ...     with chromium() as browser:
        ...         page = new_page(browser, [])
        ...         open_explorer(page, html)
        ...         timings = time_frame_changes(page, [5, 9, 2])
        ... else:
        ...     timings = {"sync": [0.0] * 3, "painted": [0.0] * 3, "frames": 16}
        >>> len(timings["painted"]), timings["frames"]
        (3, 16)
    """
    return page.eval_on_selector(".xe-slider", _FRAME_CHANGES, [int(p) for p in positions])


def browser_cube(n_frames: int = 300, stride: int = 8):
    """A generated face video of ``n_frames`` and its cube with pixel maps: a small random
    3-D CNN at 112x112 (the size of torchvision's video models; :func:`tiny_model` with
    widths (8, 8)) explained with gradcam, saliency and input x gradient (one shared
    gradient pass per clip), 12 regions. What the browser tests and the widget benchmark
    open; about 10-20 s for 300 frames on 2 cores.

    Returns:
        ``(cube, video)``.

    Example:
        >>> cube, video = browser_cube(16, stride=16)
        >>> dict(cube.sizes)["time"], dict(cube.sizes)["region"], len(video), cube.sizes["y"]
        (16, 12, 16, 112)
    """
    import expresso_xai as ex

    sample = ex.samples.render(ex.samples.SampleSpec(seed=11, seconds=n_frames / 25.0, score=40, name="browser"))
    video = ex.Video.from_array(sample.frames, fps=25.0, source="generated:browser")
    faces = ex.track_faces(video, progress=False)
    model = tiny_model(input_size=(112, 112), widths=(8, 8), seed=0, name="small-112")
    cube = ex.explain(model, video, faces=faces, methods=["gradcam", "saliency", "input_x_gradient"],
                      keep_pixels=True, progress=False, stride=stride)
    return cube, video




# --- long cubes, made without a model -------------------------------------------------


def _static_labels(size: int, regions) -> np.ndarray:
    """A face-like partition of a ``size`` x ``size`` input: bands and boxes of the
    regions, background around them (uint8 indices into ``regions``)."""
    label = np.full((size, size), regions.index("background"), np.uint8)
    s = size / 16
    boxes = {"forehead": (1, 3, 4, 12), "right_brow": (3, 4, 4, 7), "left_brow": (3, 4, 9, 12),
             "right_eye": (4, 6, 4, 7), "left_eye": (4, 6, 9, 12), "nose": (6, 10, 7, 9),
             "right_cheek": (6, 10, 3, 7), "left_cheek": (6, 10, 9, 13), "mouth": (10, 12, 5, 11),
             "jaw": (12, 14, 4, 12), "face_other": (3, 4, 7, 9)}
    for name, (y0, y1, x0, x1) in boxes.items():
        label[int(y0 * s):int(y1 * s), int(x0 * s):int(x1 * s)] = regions.index(name)
    return label


def long_cube(n_frames: int = 3000, size: int = 64, explainers=("gradcam", "saliency"), fps: float = 25.0,
              seed: int = 0, video: bool = True):
    """A long synthetic cube with pixel maps at a model's input size (``size``) and its
    video, made in seconds without a model, for the long-video widget tests and
    benchmarks: per explainer a blob wandering over a static face-like partition (the
    second explainer signed), region sums that add up to the maps, an identity crop
    (frames are ``size`` x ``size``), and a one-frame spike in ``mouth`` at frame
    ``7 * n_frames // 10`` (every explainer) that a downsampled heatmap must keep.

    Returns:
        ``(cube, video)``, video None when ``video`` is False.

    Example:
        >>> cube, video = long_cube(600, size=32)
        >>> dict(cube.sizes)["time"], cube.sizes["y"], len(video), int(cube.attribution.sel(region="mouth").argmax("time")[0])
        (600, 32, 600, 420)
    """
    import expresso_xai as ex
    from ..cube import make_cube
    from ..regions import PARTITION_REGIONS

    regions = list(PARTITION_REGIONS)
    rng = np.random.default_rng(seed)
    T, E = int(n_frames), len(explainers)
    t = np.arange(T, dtype=np.float32)[:, None, None]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    pixels = np.empty((E, T, size, size), np.float32)
    for e in range(E):
        phase = rng.uniform(0, 2 * np.pi, 2)
        cy = size * (0.5 + 0.3 * np.sin(2 * np.pi * t / 173 + phase[0]))
        cx = size * (0.5 + 0.3 * np.cos(2 * np.pi * t / 251 + phase[1]))
        pixels[e] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 8) ** 2))
        if e % 2:  # a signed map: a negative blob mirrored
            pixels[e] -= np.exp(-((yy - (size - cy)) ** 2 + (xx - cx) ** 2) / (2 * (size / 10) ** 2))
    label = _static_labels(size, regions)
    spike = 7 * T // 10
    pixels[:, spike][:, label == regions.index("mouth")] += 5.0
    onehot = (label.reshape(-1)[:, None] == np.arange(len(regions))[None]).astype(np.float32)
    attribution = pixels.reshape(E, T, -1) @ onehot
    area = np.broadcast_to(onehot.sum(axis=0).astype(np.int64), (T, len(regions)))
    crop = np.broadcast_to(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (T, 2, 3))
    cube = make_cube(
        attribution, explainers=list(explainers), time=np.arange(T), seconds=np.arange(T) / fps, regions=regions,
        region_area=area, face_found=np.ones(T, bool), prediction=np.full(T, 20.0), target="regression",
        pixels=pixels, region_label=np.broadcast_to(label, (T, size, size)), crop_matrix=crop,
        attrs={"model_name": "synthetic-long", "region_scheme": "partition", "video_source": "generated:long",
               "video_fps": fps, "video_frame_size": [size, size], "methods": {name: {} for name in explainers}})
    if not video:
        return cube, None
    shade = (60 + 120 * (np.arange(T) % 97) / 96).astype(np.uint8)[:, None, None, None]
    frames = np.broadcast_to(shade, (T, size, size, 3)).copy()
    frames[:, label != regions.index("background")] += 40  # the face is lighter than the room
    return cube, ex.Video.from_array(frames, fps=fps, source="generated:long")


# --- JupyterLab on localhost ------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_server(server, url: str, token: str) -> None:
    import os
    import signal
    import subprocess
    import urllib.request

    try:  # the server's own shutdown also stops the kernels it started
        request = urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST")
        urllib.request.urlopen(request, timeout=5).read()
        server.wait(timeout=20)
    except Exception:  # noqa: BLE001 - whatever failed, the process group is stopped below
        pass
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def jupyterlab(root, base):
    """A context manager running JupyterLab on localhost over the folder ``root``, with
    its settings, runtime files and ``server.log`` under ``base`` (no news prompt, no
    update checks), giving ``{"url", "token", "root", "log"}``; shut down whatever happens.
    Used by the browser tests and ``benchmarks/bench_widget.py``.

    Example:
        >>> import tempfile, pathlib
        >>> base = pathlib.Path(tempfile.mkdtemp())
        >>> callable(jupyterlab(base, base).__enter__)
        True
    """
    import json
    import os
    import secrets
    import subprocess
    import sys
    import time
    import urllib.request
    from contextlib import contextmanager
    from pathlib import Path

    base = Path(base)

    @contextmanager
    def server_session():
        settings = base / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"), "JUPYTER_CONFIG_DIR": str(base / "config"),
               "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
        port, token = _free_port(), secrets.token_hex(16)
        log_path = base / "server.log"
        with open(log_path, "w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
                 "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                 "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly",
                 "--ServerApp.open_browser=False"],
                cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            url = f"http://127.0.0.1:{port}"
            try:
                deadline = time.time() + 90
                while True:
                    try:
                        urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).read()
                        break
                    except OSError:
                        if server.poll() is not None or time.time() > deadline:
                            raise RuntimeError(f"JupyterLab did not start; see {log_path}:\n"
                                               + log_path.read_text()[-3000:])
                        time.sleep(0.5)
                yield {"url": url, "token": token, "root": Path(root), "log": log_path}
            finally:
                _stop_server(server, url, token)

    return server_session()


KERNEL = "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"


def open_notebook(page, lab: dict, name: str, timeout_ms: int = 90_000) -> None:
    """Open notebook ``name`` (under ``lab["root"]``) of a :func:`jupyterlab` in ``page``
    and wait for its kernel to be idle."""
    page.goto(f"{lab['url']}/lab/tree/{name}?token={lab['token']}")
    page.wait_for_selector(".jp-Notebook", timeout=timeout_ms)
    # JupyterLab restores the notebooks an earlier test left open before it shows this one:
    # wait until this one is the current tab, or cells would go to a hidden notebook.
    current = "window.jupyterapp.shell.currentWidget.context.path"
    page.wait_for_function(f"() => {{ try {{ return {current} === {json.dumps(name)} && {KERNEL}.status === 'idle'; }} "
                           "catch (e) { return false; } }", timeout=timeout_ms)


def run_in_kernel(page, code: str) -> str:
    """Run ``code`` in the open notebook's kernel (nothing shown) and return what it printed."""
    return page.evaluate("""async (code) => {
        const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        const future = kernel.requestExecute({code, store_history: false});
        let text = '';
        future.onIOPub = (msg) => { if (msg.header.msg_type === 'stream') text += msg.content.text; };
        await future.done;
        return text;
    }""", code)


def run_cell(page, code: str, selector: str, timeout_ms: int = 120_000) -> float:
    """Add a cell of ``code`` at the end of the open notebook, run it, and wait until
    ``selector`` is in the page; the seconds from the run to then (measured in the page).
    With ``code`` that shows an Explorer and ``selector`` ``.xe[data-ready='1']``, the
    time the user waits for it to open."""
    return page.evaluate("""async ([code, selector, timeout]) => {
        const app = window.jupyterapp, panel = app.shell.currentWidget, notebook = panel.content;
        notebook.activeCellIndex = notebook.widgets.length - 1;
        await app.commands.execute('notebook:insert-cell-below');
        notebook.activeCell.model.sharedModel.setSource(code);
        const started = performance.now();
        await app.commands.execute('notebook:run-cell');
        while (!document.querySelector(selector)) {
            if (performance.now() - started > timeout) throw new Error(`${selector} did not appear`);
            await new Promise((r) => setTimeout(r, 10));
        }
        return (performance.now() - started) / 1000;
    }""", [code, selector, timeout_ms])


_WINDOW_JUMPS = """async ([positions, size]) => {
    const slider = document.querySelector('.xe-slider'), root = document.querySelector('.xe');
    const out = [];
    for (const k of positions) {
        const t0 = performance.now();
        slider.value = String(k);
        slider.dispatchEvent(new Event('input', {bubbles: true}));
        while (root.dataset.window !== String(Math.floor(k / size))) await new Promise((r) => setTimeout(r, 2));
        await new Promise((r) => requestAnimationFrame(r));
        out.push(performance.now() - t0);
    }
    return out;
}"""


def time_window_jumps(page, positions, size: int) -> list[float]:
    """Move a streamed Explorer's scrub bar to each of ``positions``, each in a window of
    ``size`` frames not yet held, and time (ms) until that window is drawn: the kernel's
    answer, its decode and the next paint."""
    return page.evaluate(_WINDOW_JUMPS, [[int(p) for p in positions], int(size)])
