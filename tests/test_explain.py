"""The explanation engine: methods find planted signals, agree with Captum, conserve sums."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import expresso_xai as ex
from expresso_xai.errors import MethodError, ModelError, ModelOutputError, NoFaceError, NoFaceWarning
from expresso_xai.explain import METHODS
from expresso_xai.testing import tiny_cnn, white_box

SIZE = (64, 64)


@pytest.fixture(scope="module")
def clip_video():
    return ex.load_video(ex.samples.sample_path("participant_low"), max_frames=16)


@pytest.fixture(scope="module")
def clip_faces(clip_video):
    return ex.track_faces(clip_video, progress=False)


@pytest.fixture(scope="module")
def clip_crop(clip_faces):
    return ex.FaceCrop.from_track(clip_faces, size=SIZE)


@pytest.fixture(scope="module")
def clip_regions(clip_faces, clip_crop):
    return ex.region_map(clip_faces, clip_crop)


def small_cnn(seed: int = 0, outputs: int = 1) -> torch.nn.Module:
    return tiny_cnn(widths=(8, 8), strides=(1, 2), outputs=outputs, seed=seed)


ALL_METHODS = ["gradcam", "guided_gradcam", "saliency", "input_x_gradient", "integrated_gradients",
               "smoothgrad", "deeplift", "occlusion", "shapley"]


def test_every_method_is_registered():
    assert set(ALL_METHODS) <= set(METHODS)


@pytest.mark.slow
@pytest.mark.parametrize("region, frames", [("left_eye", range(4, 8)), ("mouth", range(8, 12))])
def test_white_box_signal_is_found_in_its_region_and_frames(clip_video, clip_faces, clip_crop, clip_regions,
                                                           region, frames):
    mask = np.zeros(clip_regions.labels.shape, bool)
    mask[list(frames)] = clip_regions.mask(region)[list(frames)]
    model = ex.models.wrap(white_box(mask), input_size=SIZE, name="white-box")
    cube = ex.explain(model, clip_video, faces=clip_faces, methods=ALL_METHODS, stride=16, progress=False,
                      shapley={"n_samples": 3, "window": 4})
    for explainer in ALL_METHODS:
        values = cube.attribution.sel(explainer=explainer)
        magnitude = np.abs(values)
        inside = magnitude.sel(region=region, time=list(frames)).sum()
        share = float(inside / magnitude.sum())
        # Grad-CAM reads a 3x3 conv layer: its map spills a pixel over the mask edge.
        assert share > (0.6 if "gradcam" in explainer else 0.97), f"{explainer}: {share:.1%} on {region} {list(frames)}"
        positive_total = float(values.clip(min=0).sum())
        if positive_total > 0:  # signed methods may find only negative evidence against the baseline
            positive = float(values.clip(min=0).sel(region=region, time=list(frames)).sum()) / positive_total
            assert positive > 0.6, f"{explainer}: {positive:.1%} of positive attribution on target"
    # Shapley over whole clips finds the region, though not the moment
    whole_clip = ex.explain(model, clip_video, faces=clip_faces, methods=["shapley"], stride=16, progress=False,
                            shapley={"n_samples": 3}).attribution.sel(explainer="shapley")
    assert float(np.abs(whole_clip.sel(region=region)).sum() / np.abs(whole_clip).sum()) > 0.97
    occlusion = cube.attribution.sel(explainer="occlusion")
    # Occluding what the model never reads changes nothing (up to the float noise of
    # batched forwards, far below the signal).
    signal = float(np.abs(occlusion.sel(region=region, time=list(frames))).max())
    elsewhere = occlusion.drop_sel(region=region)
    assert float(np.abs(elsewhere).max()) < 1e-4 * signal, "occluding unread regions must change nothing"
    outside_frames = occlusion.sel(region=region).drop_sel(time=list(frames))
    assert float(np.abs(outside_frames).max()) < 1e-4 * signal


def test_integrated_gradients_meets_completeness_by_default(clip_video, clip_faces):
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    cube = ex.explain(model, clip_video, faces=clip_faces, methods=["integrated_gradients"], stride=16,
                      progress=False, keep_pixels=True)
    assert bool(cube.integrated_gradients_converged.all())
    assert float(cube.integrated_gradients_completeness_error.max()) <= 0.01
    assert int(cube.integrated_gradients_steps[0]) >= 8


def test_integrated_gradients_flags_a_clip_that_does_not_converge(clip_video, clip_faces):
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    cube = ex.explain(model, clip_video, faces=clip_faces, methods=["integrated_gradients"], stride=16,
                      progress=False, integrated_gradients={"tolerance": 1e-9, "max_steps": 16})
    assert not bool(cube.integrated_gradients_converged.any())
    assert int(cube.integrated_gradients_steps[0]) == 16
    assert float(cube.integrated_gradients_completeness_error[0]) > 1e-9


def test_trapezoid_rule_reuses_gradients_and_converges(clip_video, clip_faces):
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    cube = ex.explain(model, clip_video, faces=clip_faces, methods=["integrated_gradients"], stride=16,
                      progress=False, integrated_gradients={"rule": "trapezoid"})
    steps = int(cube.integrated_gradients_steps[0])
    assert bool(cube.integrated_gradients_converged[0])
    import json

    assert json.loads(cube.attrs["passes"])["integrated_gradients"] == steps + 1  # nested: n + 1 gradients


def _pool(values: torch.Tensor, model, regions) -> np.ndarray:
    return regions.pool(model.to_pixels(values)[0])


def test_gradcam_saliency_and_ig_equal_direct_captum_calls(clip_video, clip_faces, clip_crop, clip_regions):
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency

    model = ex.models.wrap(small_cnn(3), input_size=SIZE)
    cube = ex.explain(model, clip_video, faces=clip_faces, methods=["gradcam", "saliency", "integrated_gradients"],
                      stride=16, progress=False)
    frames = clip_crop.apply(clip_video)
    x = model.preprocess(frames)
    layer = model.gradcam_layer
    cam = LayerGradCam(model, layer).attribute(x, target=0, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="trilinear").detach()
    expected = {
        "gradcam": clip_regions.pool(cam[0, 0].double().numpy()),
        "saliency": _pool(Saliency(model).attribute(x, target=0, abs=True), model, clip_regions),
    }
    import cv2

    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), max(SIZE) / 20.0) for f in frames])
    steps = int(cube.integrated_gradients_steps[0])
    ig = IntegratedGradients(model).attribute(x, baselines=model.preprocess(blurred), target=0, n_steps=steps,
                                              method="gausslegendre").detach()
    expected["integrated_gradients"] = _pool(ig, model, clip_regions)
    for explainer, values in expected.items():
        ours = cube.attribution.sel(explainer=explainer).values
        scale = np.abs(values).max()
        np.testing.assert_allclose(ours, values, rtol=0, atol=1e-5 * scale, err_msg=explainer)


def test_gradient_methods_share_one_forward_backward_pass(clip_video, clip_faces):
    import json

    net = small_cnn()
    calls = {"forward": 0, "backward": 0}
    net.register_forward_hook(lambda *_: calls.__setitem__("forward", calls["forward"] + 1))
    net.register_full_backward_hook(lambda *_: calls.__setitem__("backward", calls["backward"] + 1))
    model = ex.models.wrap(net, input_size=SIZE)
    cube = ex.explain(model, clip_video, faces=clip_faces, methods=["gradcam", "saliency", "input_x_gradient"],
                      stride=16, progress=False)
    passes = json.loads(cube.attrs["passes"])
    assert passes["shared_gradient"] == 1
    assert passes["gradcam"] == passes["saliency"] == passes["input_x_gradient"] == 0
    # the one clip's forward gives the prediction and the gradients: no other pass at all
    # (wrapping checks the model on a probe input once, before the run)
    before = dict(calls)
    again = ex.explain(model, clip_video, faces=clip_faces, methods=["gradcam", "saliency", "input_x_gradient"],
                       stride=16, progress=False)
    assert {key: calls[key] - before[key] for key in calls} == {"forward": 1, "backward": 1}
    np.testing.assert_array_equal(again.attribution.values, cube.attribution.values)
    assert float(again.prediction[0]) == float(cube.prediction[0])


def test_region_sums_add_up_to_the_pixel_total(clip_video, clip_faces):
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    methods = ["saliency", "input_x_gradient", "occlusion"]
    cube = ex.explain(model, clip_video, faces=clip_faces, methods=methods, stride=16, progress=False,
                      keep_pixels=True)
    for explainer in methods:
        regions_total = cube.attribution.sel(explainer=explainer).sum("region").values.astype(np.float64)
        pixel_total = cube.pixels.sel(explainer=explainer).sum(("y", "x")).values.astype(np.float64)
        np.testing.assert_allclose(regions_total, pixel_total, rtol=1e-4, atol=1e-6 * np.abs(pixel_total).max())


def test_frames_get_the_mean_of_the_clips_covering_them(clip_video, clip_faces, clip_crop):
    video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=24)
    faces = ex.track_faces(video, progress=False)
    crop = ex.FaceCrop.from_track(faces, size=SIZE)
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    whole = ex.explain(model, video, faces=faces, crop=crop, methods=["saliency"], stride=8, progress=False)
    first = ex.explain(model, video[0:16], faces=faces[0:16], crop=crop[0:16], methods=["saliency"],
                       stride=16, progress=False)
    second = ex.explain(model, video[8:24], faces=faces[8:24], crop=crop[8:24], methods=["saliency"],
                        stride=16, progress=False)
    a, b, w = (c.attribution.sel(explainer="saliency").values for c in (first, second, whole))
    np.testing.assert_allclose(w[:8], a[:8], rtol=1e-5)
    np.testing.assert_allclose(w[8:16], (a[8:] + b[:8]) / 2, rtol=1e-5)
    np.testing.assert_allclose(w[16:], b[8:], rtol=1e-5)
    assert list(whole.clip_start.values) == [0, 8]


def test_same_cube_with_a_fixed_seed_and_any_batch_size(clip_video, clip_faces):
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    methods = ["smoothgrad", "occlusion", "shapley"]
    options = {"shapley": {"n_samples": 2}, "smoothgrad": {"samples": 3}, "occlusion": {"window": 8}}
    run = lambda size, seed=7: ex.explain(model, clip_video, faces=clip_faces, methods=methods, stride=16,  # noqa: E731
                                          progress=False, seed=seed, batch_size=size, **options)
    first, again, batched, other_seed = run(1), run(1), run(4), run(1, seed=8)
    np.testing.assert_array_equal(first.attribution.values, again.attribution.values)
    np.testing.assert_allclose(first.attribution.values, batched.attribution.values, rtol=1e-4, atol=1e-7)
    assert not np.array_equal(first.attribution.sel(explainer="smoothgrad").values,
                              other_seed.attribution.sel(explainer="smoothgrad").values)


def test_explaining_a_file_equals_explaining_the_loaded_video():
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    path = ex.samples.sample_path("participant_mid")
    video = ex.load_video(path, max_frames=40)
    faces = ex.track_faces(video, progress=False)
    in_memory = ex.explain(model, video, faces=faces, methods=["saliency"], progress=False)
    # a file is decoded clip by clip; give it the same 40 frames
    import shutil
    import tempfile

    from expresso_xai.samples import write_video

    with tempfile.TemporaryDirectory() as folder:
        short = write_video(video.frames, f"{folder}/short.avi", video.fps)
        decoded = ex.load_video(short)
        expected = ex.explain(model, decoded, faces=faces, methods=["saliency"], progress=False)
        streamed = ex.explain(model, short, faces=faces, methods=["saliency"], progress=False)
        shutil.rmtree(folder, ignore_errors=True)
    assert in_memory.attribution.shape == streamed.attribution.shape == (1, 40, 12)
    np.testing.assert_allclose(streamed.attribution.values, expected.attribution.values, rtol=1e-5)
    np.testing.assert_allclose(streamed.seconds.values, decoded.timestamps)


# --- bad input ------------------------------------------------------------------------


class BadOutput(torch.nn.Module):
    def __init__(self, output):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 2, 3, padding=1)
        self.output = output

    def forward(self, x):
        features = self.conv(x).mean(dim=(2, 3, 4))
        if self.output == "3d":
            return features[:, :, None].expand(-1, -1, 3)
        if self.output == "nan":
            return features[:, :1] * float("nan")
        return features


def test_a_model_output_of_the_wrong_shape_is_refused(clip_video, clip_faces):
    with pytest.raises(ModelOutputError, match=r"bad returned shape \(1, 2, 3\)"):
        ex.models.wrap(BadOutput("3d"), input_size=SIZE, name="bad")  # wrap() probes the model
    model = ex.models.wrap(BadOutput("3d"), input_size=SIZE, name="bad", check=False)
    with pytest.raises(ModelOutputError, match=r"bad returned shape \(1, 2, 3\)"):
        ex.explain(model, clip_video, faces=clip_faces, methods=["saliency"], progress=False)


def test_nan_in_the_model_output_is_refused(clip_video, clip_faces):
    model = ex.models.wrap(BadOutput("nan"), input_size=SIZE)
    with pytest.raises(ModelOutputError, match="NaN"):
        ex.explain(model, clip_video, faces=clip_faces, methods=["saliency"], progress=False)


def test_targets_must_exist(clip_video, clip_faces):
    model = ex.models.wrap(small_cnn(outputs=3), input_size=SIZE, output="logits")
    with pytest.raises(ModelError, match="target 5 is out of range.*3 outputs"):
        ex.explain(model, clip_video, faces=clip_faces, methods=["saliency"], target=5, progress=False)
    with pytest.raises(ModelError, match="3 outputs; pass target="):
        ex.explain(model, clip_video, faces=clip_faces, methods=["saliency"], progress=False)
    cube = ex.explain(model, clip_video, faces=clip_faces, methods=["saliency"], target="predicted", progress=False)
    assert cube.attrs["target"] == "predicted" and set(cube.clip_target.values) <= {0, 1, 2}


def test_a_missing_gradcam_layer_lists_the_candidates(clip_video, clip_faces):
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    with pytest.raises(ModelError, match=r"no layer 'layer4'.*\['0', '1', '2', '3'\]"):
        ex.explain(model, clip_video, faces=clip_faces, methods=["gradcam"], progress=False,
                   gradcam={"layer": "layer4"})


def test_unknown_methods_and_options_list_what_exists(clip_video, clip_faces):
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    with pytest.raises(MethodError, match="unknown method 'lime'.*integrated_gradients"):
        ex.explain(model, clip_video, faces=clip_faces, methods=["lime"], progress=False)
    with pytest.raises(MethodError, match="occlusion does not take.*window=4"):
        ex.explain(model, clip_video, faces=clip_faces, methods=["occlusion"], progress=False,
                   occlusion={"windows": 8})
    with pytest.raises(MethodError, match="overlap"):
        ex.explain(model, clip_video, faces=clip_faces, methods=["occlusion"], regions="boxes", progress=False)


def test_frames_without_a_face_are_marked_and_a_video_without_any_refused(clip_video):
    frames = clip_video.frames.copy()
    frames[4:8] = 128
    video = ex.Video.from_array(frames, fps=25, source="gap.mp4")
    with pytest.warns(NoFaceWarning):
        faces = ex.track_faces(video, progress=False)
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    with pytest.warns(NoFaceWarning, match="no face in 4 of 16 frames"):
        cube = ex.explain(model, video, faces=faces, methods=["saliency"], progress=False)
    assert not cube.face_found.values[4:8].any() and cube.face_found.values[8:].all()
    face_regions = cube.attribution.sel(explainer="saliency", time=slice(4, 7)).drop_sel(region="background")
    assert float(np.abs(face_regions).max()) == 0.0  # everything is background there
    blank = ex.Video.from_array(np.full((16, 96, 96, 3), 128, np.uint8), source="blank.mp4")
    with pytest.warns(NoFaceWarning), pytest.raises(NoFaceError, match="blank.mp4"):
        ex.explain(model, blank, methods=["saliency"], progress=False)


def test_boxes_scheme_pools_gradient_methods(clip_video, clip_faces):
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    cube = ex.explain(model, clip_video, faces=clip_faces, methods=["saliency"], regions="boxes", progress=False)
    assert list(cube.region.values) == list(ex.regions.BOX_REGIONS)
    assert cube.attrs["region_scheme"] == "boxes"


def test_an_interrupted_run_resumes_from_its_checkpoint_and_gives_the_same_cube(tmp_path, fragile_saliency):
    video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=48)
    faces = ex.track_faces(video, progress=False)
    model = ex.models.wrap(small_cnn(), input_size=SIZE)
    fragile = fragile_saliency("fragile_saliency", model, on_call=4)
    calls = fragile.calls
    methods = ["fragile_saliency", "integrated_gradients"]
    checkpoint = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        ex.explain(model, video, faces=faces, methods=methods, progress=False, checkpoint=checkpoint,
                   checkpoint_every=1e9)
    assert checkpoint.exists(), "the clips finished before Ctrl-C must be saved"
    fragile.interrupt = False
    calls.clear()
    resumed = ex.explain(model, video, faces=faces, methods=methods, progress=False, checkpoint=checkpoint)
    assert len(calls) == 2, "only the clips not yet done are computed again"
    assert not checkpoint.exists(), "a complete cube needs no checkpoint"
    calls.clear()
    fresh = ex.explain(model, video, faces=faces, methods=methods, progress=False)
    assert len(calls) == 5
    np.testing.assert_array_equal(resumed.attribution.values, fresh.attribution.values)
    np.testing.assert_array_equal(resumed.integrated_gradients_steps.values,
                                  fresh.integrated_gradients_steps.values)
    np.testing.assert_array_equal(resumed.clip_start.values, fresh.clip_start.values)


def test_occlusion_equals_captum_feature_ablation_on_the_same_mask(clip_video, clip_crop, clip_regions):
    from captum.attr import FeatureAblation

    from expresso_xai.explain import ClipContext
    from expresso_xai.explain.features import feature_mask, mask_tensor, values_per_feature
    from expresso_xai.explain.occlusion import ablate

    model = ex.models.wrap(small_cnn(5), input_size=SIZE)
    frames = clip_crop.apply(clip_video)
    ctx = ClipContext(model=model, x=model.preprocess(frames), frames=frames, region_map=clip_regions, target=0)
    mask = feature_mask(clip_regions, 4)
    baseline = ctx.baseline("blur")
    with torch.no_grad():
        captum = FeatureAblation(model).attribute(ctx.x, baselines=baseline, target=0,
                                                  feature_mask=mask_tensor(model, mask, "cpu"))
    expected = values_per_feature(captum, mask, model)
    output = float(ctx.output()[0])
    for per_eval in (1, 3):
        ours = ablate(ctx, mask, baseline, per_eval)
        # both are differences of float32 outputs: equal to a few units in the last place
        np.testing.assert_allclose(ours, expected, rtol=0, atol=8 * np.finfo(np.float32).eps * abs(output))
