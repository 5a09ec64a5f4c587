"""Driving a real browser (Debian's Chromium through Playwright) in tests and benchmarks."""

from __future__ import annotations

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


