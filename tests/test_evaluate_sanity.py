"""Sanity and robustness checks of explanations: model-parameter randomisation, the
data-independence checks for video, max-sensitivity and temporal consistency.

Each test plants something whose answer is known: a "method" that never looks at the
model (the input's edge map), a model that cannot see the order of frames, a linear
model whose gradient does not depend on the input.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

import expresso_xai as ex
from expresso_xai.evaluate import open_run, save_evaluation
from expresso_xai.evaluate.randomisation import (
    map_ssim,
    randomisation_layers,
    randomised_parameters,
    spearman,
    ssim,
)
from expresso_xai.evaluate.robustness import NOISE_RADIUS, noisy_inputs
from expresso_xai.explain import METHODS, Method, MethodResult, register
from expresso_xai.testing import tiny_model


@pytest.fixture(scope="module")
def test_methods():
    """``edge_map`` (Sobel magnitude of the model input, channels summed: it never looks at
    the model), ``zeros`` (an all-zero map) and ``spy_layers`` (records which layers of the
    model it is given differ from the model in ``SpyLayers.reference``), registered for
    this module's tests and removed afterwards."""

    class EdgeMap(Method):
        name = "edge_map"

        def attribute(self, ctx):
            frames = ctx.model.to_pixels(ctx.x)[0]  # each frame alone: scipy's 3-D Sobel would smooth over time
            return MethodResult(pixels=np.stack([np.hypot(ndimage.sobel(f, 0), ndimage.sobel(f, 1)) for f in frames]))

    class Zeros(Method):
        name = "zeros"

        def attribute(self, ctx):
            return MethodResult(pixels=np.zeros((len(ctx.frames), *ctx.frames.shape[1:3])))

    class SpyLayers(Method):
        name = "spy_layers"
        reference = None
        seen: list = []

        def attribute(self, ctx):
            original = dict(SpyLayers.reference.module.named_parameters())
            given = dict(ctx.model.module.named_parameters())
            changed = {name.split(".")[0] for name in given if not torch.equal(given[name], original[name])}
            SpyLayers.seen.append((ctx.model is SpyLayers.reference, changed))
            return EdgeMap().attribute(ctx)

    made = [register(cls) for cls in (EdgeMap, Zeros, SpyLayers)]
    yield {cls.name: cls for cls in made}
    for cls in made:
        METHODS.pop(cls.name, None)


@pytest.fixture(scope="module")
def high16():
    video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=16)
    return video, ex.track_faces(video, progress=False)


@pytest.fixture(scope="module")
def high24():
    """24 frames: two clips (0-15 and 8-23) sharing frames 8-15."""
    video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=24)
    return video, ex.track_faces(video, progress=False)


def _evaluate(model, clip, methods, metrics, **options):
    video, faces = clip
    cube = ex.explain(model, video, faces=faces, methods=methods, progress=False)
    return ex.evaluate(model, video, cube, faces=faces, metrics=metrics, progress=False, **options)


# --- similarity measures ----------------------------------------------------------------


def test_ssim_is_one_for_identical_maps_near_zero_for_independent_noise_and_matches_the_closed_form():
    rng = np.random.default_rng(0)
    image, other = rng.random((64, 64)), rng.random((64, 64))
    assert ssim(image, image) == 1.0
    assert abs(ssim(image, other)) < 0.05
    # constant images: no contrast, no structure, only luminance (2 μa μb + C1) / (μa² + μb² + C1)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.6 * 0.2 + c1) / (0.6 ** 2 + 0.2 ** 2 + c1)
    assert ssim(np.full((40, 40), 0.6), np.full((40, 40), 0.2)) == pytest.approx(expected, abs=1e-12)


def test_ssim_agrees_with_scikit_image_on_the_same_window():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    image = ndimage.gaussian_filter(rng.random((48, 56)), 2)
    other = 0.7 * image + 0.3 * rng.random((48, 56))
    theirs = structural_similarity(image, other, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False)
    assert ssim(image, other) == pytest.approx(theirs, abs=1e-10)


def test_map_ssim_ignores_sign_and_scale_and_frames_past_the_real_ones():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(4, 32, 32))
    other = maps.copy()
    other[3] = rng.normal(size=(32, 32))  # a padding frame that differs
    assert map_ssim(maps, -5 * other, n_frames=3) == 1.0
    assert map_ssim(maps, other) < 0.8
    assert np.isnan(map_ssim(maps, None))


def test_spearman_matches_scipy_and_is_nan_for_constant_maps():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    a = rng.normal(size=50)
    b = a + rng.normal(size=50)
    b[::7] = b[0]  # ties
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert np.isnan(spearman(np.zeros(10), a[:10]))
    assert spearman([1.0, np.nan, 3.0, 2.0], [2.0, 100.0, 6.0, 4.0]) == 1.0  # NaN units are left out


# --- model-parameter randomisation ------------------------------------------------------


def test_a_trained_models_explanations_change_when_its_weights_are_randomised_an_edge_map_does_not(
        test_methods, high16):
    model = ex.models.load("demo")
    weights = model.weights_hash()
    ev = _evaluate(model, high16, ["gradcam", "saliency", "edge_map"], ["mprt"])
    assert model.weights_hash() == weights  # randomised copies, never the user's model
    curve = ev.randomisation
    assert curve.dims == ("explainer", "mode", "layer", "similarity")
    assert curve.layer.values.tolist() == ["head", "block2", "block1", "stem"]
    full = curve.sel(mode="cascading", layer="stem")
    for method in ("gradcam", "saliency"):  # measured: Spearman -0.18 and 0.21, SSIM 0.10 and 0.17
        assert float(full.sel(explainer=method, similarity="spearman")) < 0.3
        assert float(full.sel(explainer=method, similarity="ssim")) < 0.3
    assert bool((curve.sel(explainer="edge_map") > 0.9).all())
    assert ev.score.sel(metric="mprt_spearman").values.tolist() == \
        pytest.approx(full.sel(similarity="spearman").values.tolist())
    assert ev.passed.sel(metric="mprt_spearman").values.tolist() == [1.0, 1.0, 0.0]
    assert ev.attrs["evaluation"].count("redrawn from a normal distribution") == 1


def test_cascading_randomises_from_the_top_down_and_independent_one_layer_at_a_time(test_methods, high16):
    spy = test_methods["spy_layers"]
    model = tiny_model(widths=(4, 4))
    spy.reference, spy.seen = model, []
    assert randomisation_layers(model) == ["6", "2", "0"]  # linear head, second and first convolution
    ev = _evaluate(model, high16, ["spy_layers", "zeros"], ["mprt"])
    calls = spy.seen[2:]  # the first two: the cube, then the evaluation's own re-explanation
    assert spy.seen[:2] == [(True, set()), (True, set())]
    assert calls == [(False, {"6"}), (False, {"6", "2"}), (False, {"2"}), (False, {"6", "2", "0"}), (False, {"0"})]
    zeros = ev.sel(explainer="zeros")
    assert np.isnan(float(zeros.score.sel(metric="mprt_spearman")))  # a constant map has no ranks
    assert np.isnan(float(zeros.passed.sel(metric="mprt_spearman")))
    assert np.isnan(float(zeros.score.sel(metric="mprt_ssim")))  # nor any structure
    assert '"constant_maps": {"zeros": 1}' in ev.attrs["evaluation"]


def test_layers_are_read_through_a_wrapper_and_a_modules_own_parameters_form_the_last_layer():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.token = torch.nn.Parameter(torch.zeros(3))
            self.embed, self.act, self.head = torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)

    wrapper = torch.nn.Sequential(Net())
    assert randomisation_layers(wrapper) == ["0.head", "0.embed", "(own)"]
    assert sorted(randomised_parameters(wrapper)) == sorted(name for name, _ in wrapper.named_parameters())


def test_randomisation_is_seeded_and_keeps_each_parameters_mean_and_spread():
    model = ex.models.load("demo")
    original = dict(model.module.named_parameters())
    drawn, again, other = (randomised_parameters(model, seed) for seed in (0, 0, 1))
    assert all(torch.equal(drawn[name], again[name]) for name in drawn)
    assert not torch.equal(drawn["block2.0.weight"], other["block2.0.weight"])
    weight, new = original["block2.0.weight"].detach(), drawn["block2.0.weight"]
    assert float(new.mean()) == pytest.approx(float(weight.mean()), abs=3 * float(weight.std()) / weight.numel() ** 0.5)
    assert float(new.std()) == pytest.approx(float(weight.std()), rel=0.02)
    assert abs(float(torch.corrcoef(torch.stack([weight.ravel(), new.ravel()]))[0, 1])) < 0.02


def test_the_same_seed_gives_the_same_randomisation_dataset_and_another_seed_another(test_methods, high16, tmp_path):
    model = tiny_model(widths=(4,))
    weights = model.weights_hash()
    video, faces = high16
    cube = ex.explain(model, video, faces=faces, methods=["saliency"], progress=False)
    runs = [ex.evaluate(model, video, cube, faces=faces, metrics=["mprt"], seed=seed, progress=False)
            for seed in (0, 0, 1)]
    assert np.array_equal(runs[0].randomisation.values, runs[1].randomisation.values)
    assert not np.array_equal(runs[0].randomisation.values, runs[2].randomisation.values)
    saved = ex.open_evaluation(save_evaluation(runs[0], tmp_path / "eval.nc"))
    assert np.array_equal(saved.randomisation.values, runs[0].randomisation.values)
    assert model.weights_hash() == weights


# --- data randomisation -----------------------------------------------------------------


class TimeAverage(torch.nn.Module):
    """Averages the frames before anything else: blind to their order."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 1)

    def forward(self, x):
        features = torch.relu(self.conv(x.mean(dim=2)))
        return self.head(features.mean(dim=(2, 3)))


class TemporalDifference(torch.nn.Module):
    """Reads the change between consecutive frames."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1))
        self.head = torch.nn.Linear(4, 1)

    def forward(self, x):
        features = torch.relu(self.conv(x[:, :, 1:] - x[:, :, :-1]))
        return self.head(features.mean(dim=(2, 3, 4)))


def test_shuffled_frames_leave_an_order_blind_models_saliency_alone_but_not_a_motion_readers(test_methods, high16):
    blind = ex.models.wrap(TimeAverage(), input_size=(64, 64), name="time_average")
    motion = ex.models.wrap(TemporalDifference(), input_size=(64, 64), name="temporal_difference")
    scores = {name: _evaluate(model, high16, ["saliency", "edge_map"], ["random"]).score
              for name, model in (("blind", blind), ("motion", motion))}
    assert float(scores["blind"].sel(explainer="saliency", metric="shuffled_frames")) > 0.99
    # measured 0.33: the differences between neighbouring frames change when the frames are shuffled
    assert float(scores["motion"].sel(explainer="saliency", metric="shuffled_frames")) < 0.8
    for score in scores.values():  # a frame's edge map, mapped back to its frame, is that frame's
        assert float(score.sel(explainer="edge_map", metric="shuffled_frames")) == pytest.approx(1.0, abs=1e-9)
    assert scores["blind"].better.sel(metric="static_clip").item() == "neither"


def test_a_static_clip_of_one_repeated_frame_explains_like_the_clip_when_every_frame_is_that_frame(test_methods):
    video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=1)
    still = ex.Video.from_array(np.repeat(video.frames, 16, axis=0), fps=25)
    faces = ex.track_faces(still, progress=False)
    model = tiny_model(widths=(4,))
    ev = _evaluate(model, (still, faces), ["saliency", "gradcam"], ["random"])
    assert np.allclose(ev.score.sel(metric="static_clip").values, 1.0)
    # shuffling a still clip changes nothing in the input, yet each frame's explanation moves with its
    # position (the convolutions pad the clip's ends with zeros): shuffled_frames sees that, honestly
    assert bool((ev.score.sel(metric="shuffled_frames") < 0.95).all())


# --- robustness -------------------------------------------------------------------------


def test_temporal_consistency_is_one_for_a_method_that_depends_only_on_the_frame(test_methods, high24):
    model = tiny_model(widths=(4,))
    ev = _evaluate(model, high24, ["edge_map", "saliency"], ["temporal_consistency"])
    assert float(ev.score.sel(explainer="edge_map", metric="temporal_consistency")) == pytest.approx(1.0, abs=1e-9)
    assert float(ev.score.sel(explainer="saliency", metric="temporal_consistency")) < 1.0
    assert '"frames_compared": 8' in ev.attrs["evaluation"]
    alone = _evaluate(model, high24, ["edge_map"], ["temporal_consistency"], max_clips=1)
    assert np.isnan(alone.score.sel(explainer="edge_map", metric="temporal_consistency").item())
    assert "no two consecutive evaluated clips share a frame" in alone.attrs["evaluation"]


def test_max_sensitivity_of_a_linear_model_is_zero_for_saliency_and_the_hand_computed_ratio_for_input_x_gradient(
        test_methods, high16):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 64 * 64, 1))
    model = ex.models.wrap(net, input_size=(64, 64), gradcam_layer=False, name="linear")
    video, faces = high16
    cube = ex.explain(model, video, faces=faces, methods=["saliency", "input_x_gradient", "edge_map"],
                      progress=False)
    ev = ex.evaluate(model, video, cube, faces=faces, metrics=["max_sensitivity"], n_random=3, progress=False)
    score = ev.score.sel(metric="max_sensitivity")
    assert float(score.sel(explainer="saliency")) == 0.0  # the gradient of a linear model is its weights

    # input × gradient is linear in the input: e(x + δ) − e(x) = pooled δ·w, for the very draws the metric made
    run = open_run(model, video, cube, faces=faces, metrics=["max_sensitivity"], n_random=3, progress=False)
    clip = next(run.clips())
    weight = net[1].weight.detach().reshape(clip.ctx.x.shape)
    pooled = lambda x: clip.ctx.region_map.pool(model.to_pixels(x * weight)[0])  # noqa: E731
    expected = max(np.linalg.norm(pooled(noisy - clip.ctx.x)) / np.linalg.norm(pooled(clip.ctx.x))
                   for noisy in noisy_inputs(clip.ctx.x, 3, clip.rng("max_sensitivity")))
    assert float(score.sel(explainer="input_x_gradient")) == pytest.approx(expected, rel=1e-4)
    # and within the bound |Σ δ·w| ≤ r Σ |w| in every unit
    radius = NOISE_RADIUS * float(clip.ctx.x.max() - clip.ctx.x.min())
    bound = radius * np.linalg.norm(clip.ctx.region_map.pool(model.to_pixels(weight.abs())[0])) / \
        np.linalg.norm(pooled(clip.ctx.x))
    assert expected <= bound
    # the edge map changes by at most |Sobel δ| a pixel: ≤ 8√2 · 3r (3 channels summed, |kernel| sums to 8)
    edges = test_methods["edge_map"]().attribute(clip.ctx).pixels
    area = clip.ctx.region_map.area().values
    edge_bound = 8 * np.sqrt(2) * 3 * radius * np.linalg.norm(area) / np.linalg.norm(clip.ctx.region_map.pool(edges))
    edge = float(score.sel(explainer="edge_map"))  # measured 0.008, noise radius 0.02 of the range
    assert 0.0 < edge <= edge_bound
    assert 0.1 * NOISE_RADIUS < edge < NOISE_RADIUS
