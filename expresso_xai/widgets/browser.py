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


def example_explained(n_frames: int = 300, stride: int = 8):
    """A generated face video of ``n_frames`` and its cube with pixel maps: a small random
    3-D CNN at 112x112 (the size of torchvision's video models) explained with gradcam,
    saliency and input x gradient (one shared gradient pass per clip), 12 regions. What
    the browser tests and the widget benchmark open; about 10-20 s on 2 cores.

    Returns:
        ``(cube, video)``.
    """
    import torch

    import expresso_xai as ex

    sample = ex.samples.render(ex.samples.SampleSpec(seed=11, seconds=n_frames / 25.0, score=40, name="browser"))
    video = ex.Video.from_array(sample.frames, fps=25.0, source="generated:browser")
    faces = ex.track_faces(video, progress=False)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv3d(8, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(8, 1))
    model = ex.models.wrap(net, input_size=(112, 112), name="small-112")
    cube = ex.explain(model, video, faces=faces, methods=["gradcam", "saliency", "input_x_gradient"],
                      keep_pixels=True, progress=False, stride=stride)
    return cube, video
