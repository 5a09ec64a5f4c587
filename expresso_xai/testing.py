"""What tests, benchmarks and docstring examples share: tiny models, example cubes and the
helpers that drive a real browser.

Nothing here is needed to explain a model; it is public so that users can write tests
of their own pipelines with the same small pieces (a model that runs in milliseconds on
a CPU, a cube made without any model).
"""

from __future__ import annotations

import numpy as np

# --- tiny models ----------------------------------------------------------------------


def tiny_cnn(widths=(4,), outputs: int = 1, seed: int = 0, strides=None):
    """A small 3-D CNN taking ``(N, 3, T, H, W)``: 3×3×3 convolutions of ``widths``
    channels (each followed by ReLU, with ``strides`` per convolution, default 1), global
    average pooling and a linear head of ``outputs`` outputs; weights seeded by ``seed``.

    Example:
        >>> import torch
        >>> net = tiny_cnn(widths=(8, 8), strides=(1, 2))
        >>> net(torch.zeros(2, 3, 16, 64, 64)).shape
        torch.Size([2, 1])
    """
    import torch

    torch.manual_seed(seed)
    strides = strides or (1,) * len(widths)
    layers, channels = [], 3
    for width, stride in zip(widths, strides):
        layers += [torch.nn.Conv3d(channels, width, 3, padding=1, stride=stride), torch.nn.ReLU()]
        channels = width
    layers += [torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(channels, outputs)]
    return torch.nn.Sequential(*layers)


def tiny_model(input_size=(64, 64), widths=(4,), outputs: int = 1, seed: int = 0, strides=None,
               name: str = "tiny"):
    """:func:`tiny_cnn` wrapped as a :class:`~expresso_xai.models.VideoModel` taking
    16-frame clips of ``input_size``.

    Example:
        >>> model = tiny_model(input_size=(64, 64))
        >>> model.name, model.input_size, model.clip_length
        ('tiny', (64, 64), 16)
    """
    from .models import wrap

    net = tiny_cnn(widths=widths, outputs=outputs, seed=seed, strides=strides)
    return wrap(net, input_size=tuple(input_size), name=name)


def white_box(mask: np.ndarray):
    """A white-box model that reads only the pixels under ``mask``
    ``(T, H, W)``: a fixed mask, then a 1×3×3 convolution with positive weights and no
    bias and a head summing its channels, so nothing outside the mask can matter.

    Example:
        >>> import torch
        >>> mask = np.zeros((16, 64, 64), bool); mask[4:8, 10:20, 10:20] = True
        >>> net = white_box(mask)
        >>> x = torch.rand(1, 3, 16, 64, 64)
        >>> y = x.clone(); y[..., ~torch.from_numpy(mask)] = 0
        >>> bool(torch.allclose(net(x), net(y)))
        True
    """
    import torch

    class WhiteBox(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mask", torch.from_numpy(mask.astype(np.float32))[None, None])
            self.conv = torch.nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1), bias=False)
            self.relu = torch.nn.ReLU()
            self.head = torch.nn.Linear(4, 1, bias=False)
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                self.conv.weight.copy_(torch.rand(self.conv.weight.shape, generator=generator) / 9)
                self.head.weight.fill_(1.0)

        def forward(self, x):
            features = self.relu(self.conv(x * self.mask + 3.0 * self.mask))
            return self.head(features.sum(dim=(2, 3, 4)) / 100.0)

    return WhiteBox()


def clip_inputs(input_size=(64, 64), n_frames: int = 16, sample: str = "participant_low"):
    """``(model, frames, faces, crop)`` for one clip of a shipped sample: a
    :func:`tiny_model`, the first ``n_frames`` frames, their face track and face crop;
    what :func:`expresso_xai.explain.prepare_clip` takes.

    Example:
        >>> model, frames, faces, crop = clip_inputs()
        >>> frames.shape, len(faces), crop.size
        ((16, 192, 192, 3), 16, (64, 64))
    """
    from . import samples
    from .crop import FaceCrop
    from .faces import track_faces
    from .video import load_video

    video = load_video(samples.sample_path(sample), max_frames=n_frames)
    faces = track_faces(video, progress=False)
    model = tiny_model(input_size=input_size)
    return model, video.frames, faces, FaceCrop.from_track(faces, size=model.input_size)


# --- example cubes --------------------------------------------------------------------


def example_cube(
    explainers=("gradcam", "integrated_gradients"),
    n_frames: int = 16,
    fps: float = 25.0,
    seed: int = 0,
    pixels: bool = False,
):
    """A small synthetic cube over the 12 partition regions, for examples and tests.

    The attribution is noise plus a planted positive signal in ``mouth`` on every
    explainer; frame 3 has no face (all pixels ``background``). With ``pixels=True`` it
    carries random 8x8 pixel maps.

    Example:
        >>> cube = example_cube()
        >>> cube.xai.explainers, len(cube.xai.regions), cube.sizes["time"]
        (('gradcam', 'integrated_gradients'), 12, 16)
        >>> cube.xai.top(k=1, by="attribution").region.tolist()
        ['mouth', 'mouth']
    """
    from .cube import make_cube
    from .regions import PARTITION_REGIONS

    rng = np.random.default_rng(seed)
    E, T, R = len(explainers), int(n_frames), len(PARTITION_REGIONS)
    area = rng.integers(80, 600, size=(T, R))
    face_found = np.ones(T, bool)
    if T > 3:
        face_found[3] = False
    background = PARTITION_REGIONS.index("background")
    area[~face_found] = 0
    area[:, background] = 112 * 112 - area.sum(axis=1) + area[:, background]
    attribution = rng.normal(0.0, 1.0, size=(E, T, R)) * np.sqrt(area)[None] * 0.01
    attribution[:, face_found, PARTITION_REGIONS.index("mouth")] += 2.0
    pixel_values = rng.normal(size=(E, T, 8, 8)) if pixels else None
    return make_cube(
        attribution, explainers=list(explainers), time=np.arange(T), seconds=np.arange(T) / fps,
        regions=PARTITION_REGIONS, region_area=area, face_found=face_found,
        prediction=rng.normal(10.0, 1.0, size=T), target="regression", pixels=pixel_values,
        attrs={"model_name": "synthetic", "region_scheme": "partition", "video_source": "synthetic",
               "methods": {name: {} for name in explainers}},
    )


# --- example evaluations --------------------------------------------------------------


def example_evaluation(explainers=("gradcam", "integrated_gradients"), steps: int = 8, seed: int = 0):
    """A small synthetic evaluation dataset with the layout :func:`expresso_xai.evaluate`
    gives (scores of every default metric, deletion/insertion curves, per-layer
    randomisation similarity), made without any model, for examples and tests of what
    reads evaluations (figures, the Explorer).

    The first explainer is the faithful one: its MoRF curves drop fast and its scores
    beat the second's.

    Example:
        >>> ev = example_evaluation()
        >>> ev.score.dims, ev.curve.dims
        (('explainer', 'metric'), ('explainer', 'kind', 'order', 'step'))
        >>> float(ev.score.sel(explainer="gradcam", metric="deletion_morf")) > 0
        True
    """
    import xarray as xr

    from .evaluate import METRICS, MetricResult
    from .evaluate.dataset import build_dataset
    from .evaluate.run import EvaluationRun
    from .regions import get_scheme

    rng = np.random.default_rng(seed)
    cube = example_cube(explainers=explainers)
    names = ("deletion", "insertion", "mprt", "random", "pointing_game", "relevance_mass", "off_face")
    run = EvaluationRun(None, cube, None, None, None, get_scheme("partition"), list(names), None, 4, "blur",
                        steps, 8, seed, None, None, "cpu", False)
    fraction = np.linspace(0.0, 1.0, steps + 1)
    sharpness = np.linspace(6.0, 1.2, len(explainers))  # the first explainer is the most faithful
    curves = np.empty((len(explainers), 2, 3, steps + 1))
    for i, k in enumerate(sharpness):
        for j, kind in enumerate(("deletion", "insertion")):
            morf, lerf, rand = np.exp(-k * fraction), 1 - (1 - np.exp(-fraction / k)) * 0.3, 1 - fraction
            if kind == "insertion":
                morf, lerf, rand = 1 - morf, 1 - lerf, fraction
            curves[i, j] = 10.0 + 20.0 * np.stack([morf, lerf, rand])
    coords = {"explainer": list(explainers), "kind": ["deletion", "insertion"], "order": ["morf", "lerf", "random"],
              "step": fraction}
    curve = xr.DataArray(curves, dims=("explainer", "kind", "order", "step"), coords=coords,
                         attrs={"long_name": "model output", "units": "output"})
    ci = curves[:, :, 2:3, :] + np.array([-1.0, 1.0])[None, None, :, None]
    curve_ci = xr.DataArray(ci, dims=("explainer", "kind", "bound", "step"),
                            coords={**{k: coords[k] for k in ("explainer", "kind", "step")}, "bound": ["lower", "upper"]})
    layers = ["head", "block2", "block1", "stem"]
    similarity = np.clip(rng.uniform(0.0, 0.3, size=(len(explainers), 2, len(layers), 2)) +
                         np.linspace(0.9, 0.1, len(layers))[None, None, :, None], 0, 1)
    randomisation = xr.DataArray(similarity, dims=("explainer", "mode", "layer", "similarity"),
                                 coords={"explainer": list(explainers), "mode": ["cascading", "independent"],
                                         "layer": layers, "similarity": ["spearman", "ssim"]})
    results = []
    for name in names:
        scores = {score.name: {e: float(rng.uniform(0.05, 0.9) * (1 - 0.3 * i)) for i, e in enumerate(explainers)}
                  for score in METRICS[name].scores}
        variables = {"deletion": {"curve": curve, "curve_ci": curve_ci}, "mprt": {"randomisation": randomisation}}
        results.append(MetricResult(scores, variables.get(name, {})))
    return build_dataset(run, results)


# --- cohort ---------------------------------------------------------------------------


def _example_boxes(rng, n_frames: int, count: int, length: int = 4, gap: int = 2) -> np.ndarray:
    """``(time,)`` 0/1 with ``count`` events of ``length`` frames in distinct slots, each
    after ``gap`` quiet frames (so every event has an onset, and frame 0 is quiet)."""
    slot = length + gap
    series = np.zeros(n_frames)
    for start in rng.choice(n_frames // slot, size=min(count, n_frames // slot), replace=False) * slot:
        series[start + gap : start + slot] = 1.0
    return series


def _example_participant(rng, name: str, closed: float, explainers, n_frames: int, lag: int, au_source: str,
                         prediction: float):
    """One participant's cube: eye attribution follows its closures (AU45) ``lag`` frames
    later; smiles (AU12) and AU04 are independent of everything."""
    import xarray as xr

    from .cube import make_cube
    from .regions import PARTITION_REGIONS

    regions = list(PARTITION_REGIONS)
    closure = _example_boxes(rng, n_frames, int(round(closed * n_frames / 4)))
    smile = _example_boxes(rng, n_frames, int(rng.integers(1, 4)))
    intensity = np.stack([rng.uniform(0.0, 0.8, n_frames), 2.5 * smile + rng.uniform(0, 0.3, n_frames),
                          3.0 * closure + rng.uniform(0, 0.3, n_frames)], axis=1)
    if au_source == "landmarks":  # proxies on a scale of their own (e.g. an eye aspect ratio)
        intensity = 0.3 + 0.02 * intensity
    face_found = np.arange(n_frames) > 0
    intensity[~face_found] = np.nan
    eyes, background = [regions.index("right_eye"), regions.index("left_eye")], regions.index("background")
    responding = np.concatenate([np.zeros(lag), closure[: n_frames - lag]])
    frames = np.where(np.arange(len(regions)) == background, 0.5, 1.0) + rng.normal(
        0, 0.3, (len(explainers), n_frames, len(regions)))
    frames[:, :, eyes] += 0.1 * rng.normal() + 3.0 * responding[None, :, None]
    frames[:, ~face_found] = np.eye(len(regions))[background]
    attribution = frames * rng.uniform(0.5, 1.5) / (1.0 + np.arange(len(explainers)))[:, None, None]
    clip_start = np.arange(0, n_frames - 15, 8)
    clip_noise = rng.normal(0, 1.0, len(clip_start))
    cube = make_cube(attribution, explainers=list(explainers), time=np.arange(n_frames),
                     seconds=np.arange(n_frames) / 25.0, regions=regions, face_found=face_found, prediction=prediction,
                     region_area=np.where(face_found[:, None], np.full(len(regions), 300), 0), clip_start=clip_start,
                     clip_prediction=prediction + clip_noise - clip_noise.mean(), target="regression",
                     attrs={"model_name": "synthetic", "region_scheme": "partition", "video_source": name,
                            "methods": {e: {} for e in explainers}, "participant": name, "au_source": au_source})
    cube = cube.assign_coords(au=["AU04", "AU12", "AU45"])
    cube["au_intensity"] = xr.DataArray(intensity.astype(np.float32), dims=("time", "au"),
                                        attrs={"long_name": "action-unit intensity", "au_source": au_source})
    return cube


def _example_cohort_dataset(cubes: dict, explainers, scores, splits, time_bins: int):
    """The cohort Dataset of ``cubes``, built by ``expresso_xai.cohort.open``'s own layout."""
    from .cohort.dataset import binned_attribution, cohort_dataset
    from .cohort.task import summary

    first = next(iter(cubes.values()))
    markers = [{**summary(cube), "score": float(score), "split": split}
               for cube, score, split in zip(cubes.values(), scores, splits)]
    binned = np.stack([binned_attribution(cube.attribution.values, time_bins) for cube in cubes.values()])
    cohort = cohort_dataset(list(cubes), markers, binned, [str(e) for e in first.explainer.values],
                            [str(r) for r in first.region.values], time_bins,
                            settings={"methods": list(explainers)})
    return cohort.assign(attribution=cohort.attribution.chunk({"participant": 8}))


def example_cohort(n_participants: int = 24, explainers=("gradcam", "integrated_gradients"), n_frames: int = 60,
                   time_bins: int = 10, effect: float = 1.0, lag: int = 0, au_source: str = "openface",
                   seed: int = 0):
    """A synthetic analysed cohort made without any model or store: ``(cohort, cubes)``,
    the Dataset that :func:`expresso_xai.cohort.open` gives (``attribution`` dask-backed)
    and ``{participant: cube}`` with ``au_intensity(time, au)`` (AU04, AU12, AU45).

    Planted: participants take turns through the BDI-II bands (a score drawn inside its
    band) and close their eyes (AU45, events of 4 frames) for a fraction ``0.05 + 0.4 *
    (effect * score / 63 + (1 - effect) * u)`` of the frames (``u`` uniform, independent
    of the score); each eye's attribution rises by 3 ``lag`` frames after AU45 rises. So
    with ``effect=1`` the eye share rises with the score and AU45 correlates with the
    eyes; with ``effect=0`` nothing attributed depends on the score (the null cohort).
    AU12 and AU04 are independent of everything; frame 0 has no face; the prediction is
    the score plus noise (sd 7); ``au_source="landmarks"`` scales intensities arbitrarily.

    Example:
        >>> cohort, cubes = example_cohort(n_participants=8)
        >>> dict(cohort.attribution.sizes)
        {'participant': 8, 'explainer': 2, 'time_bin': 10, 'region': 12}
        >>> cohort.band.values[:4].tolist(), cubes["p002"].au_intensity.attrs["au_source"]
        (['minimal', 'mild', 'moderate', 'severe'], 'openface')
    """
    from .models.clustered import BDI_BANDS

    rng = np.random.default_rng(seed)
    bands = list(BDI_BANDS.values())
    scores = [float(rng.integers(bands[i % 4][0], bands[i % 4][1] + 1)) for i in range(n_participants)]
    splits = [("train", "val", "test")[i % 3] for i in range(n_participants)]
    cubes = {}
    for i, score in enumerate(scores):
        closed, prediction = 0.05 + 0.4 * (effect * score / 63 + (1 - effect) * rng.uniform()), score + rng.normal(0, 7)
        cubes[f"p{i:03d}"] = _example_participant(rng, f"p{i:03d}", closed, explainers, n_frames, lag, au_source,
                                                  prediction)
    return _example_cohort_dataset(cubes, explainers, scores, splits, time_bins), cubes


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
