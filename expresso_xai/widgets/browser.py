"""Driving the Explorer in a real browser (Debian's Chromium through Playwright), for the
browser tests and ``benchmarks/bench_widget.py``.

Example:
    >>> from expresso_xai.widgets.browser import CHROMIUM_FLAGS
    >>> "--headless" in CHROMIUM_FLAGS
    True
"""

from __future__ import annotations

import shutil

# No sandbox (containers run as root), no GPU, and nothing that reaches for the network:
# without the background-networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")


def find_chromium() -> str | None:
    """The path of the system's Chromium (``apt-get install -y chromium``), or None."""
    return shutil.which("chromium")


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
    (``painted``, ms; headless Chromium draws at 60 Hz, so ~16.7 ms is its floor)."""
    return page.eval_on_selector(".xe-slider", _FRAME_CHANGES, [int(p) for p in positions])
