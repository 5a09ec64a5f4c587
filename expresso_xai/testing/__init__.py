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
    from ..models import wrap

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
    from .. import samples
    from ..crop import FaceCrop
    from ..faces import track_faces
    from ..video import load_video

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
    from ..cube import make_cube
    from ..regions import PARTITION_REGIONS

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

    from ..evaluate import METRICS, MetricResult
    from ..evaluate.dataset import build_dataset
    from ..evaluate.run import EvaluationRun
    from ..regions import get_scheme

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


# the rest of the toolkit for tests, by topic
from .browser import (CHROMIUM_FLAGS, browser_cube, chromium, find_chromium, new_page, open_explorer,  # noqa: E402
                      time_frame_changes)
from .cohort import example_cohort  # noqa: E402
from .scenes import SCENE_LOOKS, face_appears, group_scene, occluded_face, pan_offsets  # noqa: E402
