"""The GPU path: several clips per forward+backward (``clips_per_batch``) and bfloat16
autocast. Everything but the CUDA-only sizing runs on a CPU: the batched code path is
chosen by ``clips_per_batch``, not by the device."""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
import torch

import expresso_xai as ex
from expresso_xai.errors import MethodError, PrecisionWarning
from expresso_xai.explain.base import shared_gradients
from expresso_xai.explain.batched import forward_batch
from expresso_xai.explain.clip import crop_clip, forward_clip
from expresso_xai.explain.plan import plan_explain
from expresso_xai.testing import tiny_model

NO_CUDA = "needs a CUDA device: the memory-budget sizing of clips_per_batch='auto' and autocast on CUDA"
GRADIENT_FAMILY = ["gradcam", "saliency", "input_x_gradient"]


@pytest.fixture(scope="module")
def video():
    return ex.load_video(ex.samples.sample_path("participant_low"), max_frames=40)  # 4 clips at stride 8


@pytest.fixture(scope="module")
def faces(video):
    return ex.track_faces(video, progress=False)


def three_outputs():
    return tiny_model(input_size=(64, 64), widths=(4, 4), outputs=3)


def run(model, video, faces, methods, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)
        return ex.explain(model, video, faces=faces, methods=methods, progress=False, batch_size=4, **options)


def assert_same_cube(batched, alone):
    """Equal up to the last bits: a convolution over N clips may sum in another order
    than over one (measured: at most ~5e-8 of the largest value, most values identical)."""
    scale = float(np.abs(alone.attribution.values).max())
    np.testing.assert_allclose(batched.attribution.values, alone.attribution.values, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(batched.prediction.values, alone.prediction.values, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(batched.clip_target.values, alone.clip_target.values)
    np.testing.assert_array_equal(batched.clip_start.values, alone.clip_start.values)
    assert json.loads(batched.attrs["passes"]) == json.loads(alone.attrs["passes"])


def test_a_cube_batched_three_clips_at_a_time_is_the_cube_clip_by_clip(video, faces):
    model = three_outputs()
    methods = GRADIENT_FAMILY + ["integrated_gradients"]
    options = dict(target="predicted", integrated_gradients={"n_steps": 4})
    alone = run(model, video, faces, methods, clips_per_batch=1, **options)
    batched = run(model, video, faces, methods, clips_per_batch=3, **options)  # a batch of 3, then of 1
    assert_same_cube(batched, alone)
    # the shared pass is counted per clip as before: four clips, four shared passes
    assert json.loads(batched.attrs["passes"])["shared_gradient"] == 4


def test_methods_with_their_own_passes_give_the_same_cube_inside_batches(video, faces):
    model = three_outputs()
    short = video[:24]  # two clips
    methods = ["guided_gradcam", "smoothgrad", "saliency"]
    options = dict(target=1, smoothgrad={"samples": 2}, seed=3)
    alone = run(model, short, faces[:24], methods, clips_per_batch=1, **options)
    batched = run(model, short, faces[:24], methods, clips_per_batch=2, **options)
    assert_same_cube(batched, alone)  # smoothgrad's noise is still seeded per clip


def test_one_forward_and_one_backward_per_batch_of_clips(video, faces):
    model = three_outputs()
    calls = {"forward": 0, "backward": 0}
    model.module.register_forward_hook(lambda *_: calls.__setitem__("forward", calls["forward"] + 1))
    model.module.register_full_backward_hook(lambda *_: calls.__setitem__("backward", calls["backward"] + 1))
    run(model, video, faces, GRADIENT_FAMILY, target=0, clips_per_batch=3)  # the adapter probes the model once
    before = dict(calls)
    cube = run(model, video, faces, GRADIENT_FAMILY, target=0, clips_per_batch=3)
    # 4 clips: a batch of 3 and a batch of 1, and no other pass (the prediction is the batch's)
    assert {key: calls[key] - before[key] for key in calls} == {"forward": 2, "backward": 2}
    passes = json.loads(cube.attrs["passes"])
    assert passes["shared_gradient"] == 4 and all(passes[name] == 0 for name in GRADIENT_FAMILY)


def test_predicted_targets_are_resolved_per_clip_inside_a_batch(video, faces):
    # a model whose top output is 0 for bright clips and 1 for dark ones
    net = torch.nn.Sequential(torch.nn.Conv3d(3, 2, 1, bias=False), torch.nn.AdaptiveAvgPool3d(1),
                              torch.nn.Flatten())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1, 1).expand(2, 3, 1, 1, 1))
    model = ex.models.wrap(net, input_size=(64, 64), gradcam_layer="0")
    crop = ex.FaceCrop.from_track(faces[:16], size=(64, 64))
    bright = crop_clip(model, np.full_like(video.frames[:16], 230), faces[:16], crop)
    dark = crop_clip(model, np.full_like(video.frames[:16], 20), faces[:16], crop)
    contexts = forward_batch(model, [bright, dark, bright], target="predicted", gradient_layer=model.gradcam_layer)
    assert [ctx.target for ctx in contexts] == [0, 1, 0]
    for ctx, clip in zip(contexts, [bright, dark, bright]):
        alone = forward_clip(model, clip, target="predicted", gradient_layer=model.gradcam_layer)
        assert ctx.target == alone.target and ctx.prediction == pytest.approx(alone.prediction, rel=1e-6)
        expected = shared_gradients(alone)
        for key in ("input_gradient", "layer_gradient", "activation"):
            torch.testing.assert_close(ctx.cache["gradients"][key], expected[key], rtol=1e-5, atol=1e-9)


def test_models_that_need_each_clips_landmarks_fall_back_to_one_clip_per_batch(video, faces):
    model = tiny_model(input_size=(64, 64))
    model.uses_clip_geometry = True  # as a multi-stream model declares
    plan = plan_explain(model, ["saliency"], {}, clips_per_batch=4)
    assert plan.clips_per_batch == 1
    crop = ex.FaceCrop.from_track(faces[:16], size=(64, 64))
    clip = crop_clip(model, video.frames[:16], faces[:16], crop)
    with pytest.raises(MethodError, match="cannot share a batch"):
        forward_batch(model, [clip, clip])


def test_clips_per_batch_and_autocast_are_checked_before_any_work():
    model = tiny_model(input_size=(64, 64))
    for bad in (0, 2.5, "many", True):
        with pytest.raises(MethodError, match="clips_per_batch"):
            plan_explain(model, ["saliency"], {}, clips_per_batch=bad)
    with pytest.raises(MethodError, match="autocast"):
        plan_explain(model, ["saliency"], {}, autocast="fp16")
    cpu = plan_explain(model, ["saliency"], {})  # "auto" is one clip at a time on a CPU
    assert cpu.clips_per_batch == 1 and not cpu.batches_clips


def test_bf16_autocast_on_cpu_stores_its_completeness_error_and_stays_close(video, faces):
    model = three_outputs()
    methods = ["saliency", "integrated_gradients"]
    options = dict(target=0, integrated_gradients={"n_steps": 8})
    full = run(model, video[:24], faces[:24], methods, **options)
    reduced = run(model, video[:24], faces[:24], methods, autocast="bf16", **options)
    errors = reduced.integrated_gradients_completeness_error.values
    assert np.isfinite(errors).all() and (errors < 0.05).all()
    assert list(reduced.integrated_gradients_autocast.values) == ["bf16", "bf16"]
    # the float32 endpoints cost two more forwards per clip (f(x) too: the clip's own was in bf16)
    assert json.loads(reduced.attrs["passes"])["integrated_gradients"] == 2 * (8 + 2)
    for explainer in methods:
        a = full.attribution.sel(explainer=explainer).values.ravel()
        b = reduced.attribution.sel(explainer=explainer).values.ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.99 and not np.array_equal(a, b)  # it did run in bf16


def test_methods_outside_the_gradient_passes_stay_in_float32_under_autocast(video, faces):
    # occlusion compares perturbed outputs with f(x): a bf16 f(x) would bias every unit
    model = three_outputs()
    options = dict(target=0, occlusion={"window": 8})
    full = run(model, video[:16], faces[:16], ["occlusion"], **options)
    reduced = run(model, video[:16], faces[:16], ["occlusion", "saliency"], autocast="bf16", **options)
    np.testing.assert_allclose(reduced.attribution.sel(explainer="occlusion").values,
                               full.attribution.sel(explainer="occlusion").values, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rule", ["gausslegendre", "trapezoid"])
def test_autocast_warns_flags_and_stops_refining_at_the_rounding_floor(video, faces, rule):
    model = three_outputs()
    adaptive = {"start_steps": 4, "max_steps": 256, "tolerance": 1e-7, "rule": rule}  # a tolerance bf16 cannot reach
    with pytest.warns(PrecisionWarning, match="autocast='bf16'.*above the tolerance"):
        cube = ex.explain(model, video[:16], faces=faces[:16], methods=["integrated_gradients"], progress=False,
                          target=0, autocast="bf16", batch_size=8, integrated_gradients=adaptive)
    assert not cube.integrated_gradients_converged.values.any()
    # a doubling that no longer halves the error ends the refinement long before max_steps
    assert int(cube.integrated_gradients_steps.values.max()) <= 64


def test_auto_sizes_later_batches_by_the_first_clips_peak_memory(video, faces, monkeypatch):
    # the CUDA measure replaced by its numbers: a clip peaks at 1 GiB, 10 GiB are free,
    # so half of it holds 5 clips; the first batch (one clip) is the measure
    from expresso_xai.explain import batched, plan

    @contextmanager
    def one_gib(_device):
        yield {"bytes": 2**30}

    monkeypatch.setattr(batched, "_peak_memory", one_gib)
    monkeypatch.setattr(batched, "_free_bytes", lambda _device: 10 * 2**30)
    monkeypatch.setattr(plan, "clips_per_batch_for", lambda value, model, device: value)  # keep "auto" on a CPU
    model = three_outputs()
    sizes = []
    monkeypatch.setattr(batched, "forward_batch", lambda model, clips, **kw: sizes.append(len(clips)) or
                        forward_batch(model, clips, **kw))
    cube = run(model, video, faces, GRADIENT_FAMILY, target=0, clips_per_batch="auto")
    assert sizes == [1, 3]  # 4 clips: the measure, then up to 5 at a time
    assert_same_cube(cube, run(model, video, faces, GRADIENT_FAMILY, target=0, clips_per_batch=1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_on_cuda_auto_batches_clips_by_memory_and_gives_the_cube_clip_by_clip(video, faces):
    model = three_outputs()
    methods = GRADIENT_FAMILY + ["integrated_gradients"]
    options = dict(target="predicted", device="cuda", integrated_gradients={"n_steps": 4})
    plan = plan_explain(model, methods, {}, device="cuda")
    assert plan.clips_per_batch == "auto" and plan.batches_clips
    alone = run(model, video, faces, methods, clips_per_batch=1, **options)
    batched = run(model, video, faces, methods, clips_per_batch="auto", **options)
    assert_same_cube(batched, alone)
    reduced = run(model, video, faces, methods, clips_per_batch="auto", autocast="bf16", **options)
    assert (reduced.integrated_gradients_completeness_error.values < 0.05).all()
