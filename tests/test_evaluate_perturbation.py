"""Deletion, insertion, faithfulness correlation and infidelity over region × time units:
properties that fail if the maths is wrong (exact values on additive and white-box
models), the fills, and the checks that the cube, model and video belong together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import expresso_xai as ex
from expresso_xai.errors import EvaluationError
from expresso_xai.evaluate import open_evaluation, save_evaluation
from expresso_xai.explain import prepare_clip
from expresso_xai.evaluate.units import _nearest_outside, clip_units, noisy_linear_frames
from expresso_xai.regions import PARTITION_REGIONS
from expresso_xai.testing import tiny_model, white_box

SIZE = (64, 64)


@pytest.fixture(scope="module")
def clip_video(high_video):
    """One 16-frame clip of participant_high (frames 60-75: eyes open, then closing)."""
    return high_video[60:76]


@pytest.fixture(scope="module")
def clip_faces(clip_video):
    return ex.track_faces(clip_video, progress=False)


def _linear_model():
    """An additive model: a fixed linear map of the whole clip, so the effect of filling
    a set of units is the sum of their single effects."""
    generator = torch.Generator().manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * SIZE[0] * SIZE[1], 1, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(net[1].weight.shape, generator=generator) * 1e-3)
    return ex.models.wrap(net, input_size=SIZE, gradcam_layer=False, name="linear")


@pytest.fixture(scope="module")
def additive(clip_video, clip_faces):
    """The linear model explained by occlusion on its own units (window 4, blur): for an
    additive model occlusion's unit values are the exact effects."""
    model = _linear_model()
    cube = ex.explain(model, clip_video, clip_faces, methods=["occlusion", "saliency"], progress=False)
    return model, cube


def _units_of(model, video, faces, window=4):
    crop = ex.FaceCrop.from_track(faces, size=model.input_size)
    ctx = prepare_clip(model, video.frames, faces, crop)
    return ctx, clip_units(ctx.region_map, window)


def test_deletion_curve_of_an_additive_model_removes_the_sorted_unit_effects(additive, clip_video, clip_faces):
    model, cube = additive
    _, units = _units_of(model, clip_video, clip_faces)
    n = len(units)
    ev = ex.evaluate(model, clip_video, cube, faces=clip_faces, metrics=["deletion", "insertion"], steps=n,
                     progress=False)
    effects = units.relevance(cube.attribution.sel(explainer="occlusion").values)
    morf = ev.curve.sel(explainer="occlusion", kind="deletion", order="morf").values
    # Each step removes one unit; its drop is the next largest single effect.
    np.testing.assert_allclose(-np.diff(morf), np.sort(effects)[::-1], rtol=1e-4, atol=1e-4 * np.abs(effects).max())
    assert np.all(np.diff(np.diff(morf)) >= -1e-4 * np.abs(effects).max())  # convex: the effects come sorted
    lerf = ev.curve.sel(explainer="occlusion", kind="deletion", order="lerf").values
    np.testing.assert_allclose(-np.diff(lerf), np.sort(effects), rtol=1e-4, atol=1e-4 * np.abs(effects).max())
    # The exact attribution beats random orders on both ends.
    assert ev.score.sel(explainer="occlusion", metric="deletion_morf") > 0.2
    assert ev.score.sel(explainer="occlusion", metric="deletion_lerf") > 0.2


def test_faithfulness_correlation_and_infidelity_are_exact_for_an_additive_model(additive, clip_video, clip_faces):
    model, cube = additive
    ev = ex.evaluate(model, clip_video, cube, faces=clip_faces, metrics=["faithfulness_correlation", "infidelity"],
                     progress=False)
    assert float(ev.score.sel(explainer="occlusion", metric="faithfulness_correlation")) == pytest.approx(1.0, abs=1e-4)
    assert float(ev.score.sel(explainer="occlusion", metric="infidelity")) == pytest.approx(0.0, abs=1e-4)
    # Saliency of a linear model is |w|: it does not predict the signed drops.
    assert float(ev.score.sel(explainer="saliency", metric="faithfulness_correlation")) < 0.9
    assert float(ev.score.sel(explainer="saliency", metric="infidelity")) > 1e-3


def test_curve_ends_are_the_clean_and_the_filled_clip(additive, clip_video, clip_faces):
    model, cube = additive
    ev = ex.evaluate(model, clip_video, cube, faces=clip_faces, metrics=["deletion", "insertion"], steps=5,
                     n_random=3, progress=False)
    ctx, _ = _units_of(model, clip_video, clip_faces)
    clean, filled = float(ctx.output()[0]), float(ctx.output(ctx.baseline("blur"))[0])
    curve = ev.curve
    np.testing.assert_allclose(curve.sel(kind="deletion", step=0.0), clean, rtol=1e-5)
    np.testing.assert_allclose(curve.sel(kind="insertion", step=1.0), clean, rtol=1e-5)
    np.testing.assert_allclose(curve.sel(kind="deletion", step=1.0), filled, rtol=1e-4)
    np.testing.assert_allclose(curve.sel(kind="insertion", step=0.0), filled, rtol=1e-4)
    assert ev.curve.dims == ("explainer", "kind", "order", "step")
    assert (ev.curve_ci.sel(bound="lower") <= ev.curve.sel(order="random") + 1e-9).all()


def test_insertion_in_relevance_order_is_deletion_in_reverse_order(additive, clip_video, clip_faces):
    """With the same fill, inserting the most relevant units first leaves filled what
    deleting the least relevant first removes: the curves mirror and the scores agree."""
    model, cube = additive
    ev = ex.evaluate(model, clip_video, cube, faces=clip_faces, metrics=["deletion", "insertion"], steps=10,
                     progress=False)
    insertion = ev.curve.sel(kind="insertion", order="morf").values
    deletion = ev.curve.sel(kind="deletion", order="lerf").values
    np.testing.assert_allclose(insertion, deletion[:, ::-1], rtol=1e-6)
    np.testing.assert_allclose(ev.score.sel(metric="insertion_morf"), ev.score.sel(metric="deletion_lerf"), atol=1e-9)


class _MouthDetail(torch.nn.Module):
    """A white box that reads only the fine detail (squared differences between
    neighbouring pixels) inside a mask: any blur of the masked pixels lowers it."""

    def __init__(self, mask: np.ndarray):
        super().__init__()
        self.register_buffer("mask", torch.from_numpy(mask.astype(np.float32))[None, None])

    def forward(self, x):
        dx = (x[..., :, 1:] - x[..., :, :-1]) ** 2 * self.mask[..., :, 1:]
        dy = (x[..., 1:, :] - x[..., :-1, :]) ** 2 * self.mask[..., 1:, :]
        return (dx.sum(dim=(1, 2, 3, 4)) + dy.sum(dim=(1, 2, 3, 4)))[:, None] / 100.0


@pytest.fixture(scope="module")
def mouth_reader(clip_video, clip_faces):
    """A white-box model that reads only the mouth, in every frame, and a cube whose
    first explainer is exactly that and whose others are shuffles of it."""
    ctx, _ = _units_of(tiny_model(input_size=SIZE), clip_video, clip_faces)
    mouth = PARTITION_REGIONS.index("mouth")
    mask = ctx.region_map.labels == mouth
    model = ex.models.wrap(_MouthDetail(mask), input_size=SIZE, gradcam_layer=False, name="mouth_reader")
    methods = ["saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "deeplift", "occlusion"]
    cube = ex.explain(model, clip_video, clip_faces, methods=methods, progress=False)
    exact = np.zeros(cube.attribution.shape[1:])
    exact[:, mouth] = 1.0
    rng = np.random.default_rng(0)
    values = [exact] + [rng.permuted(exact.ravel()).reshape(exact.shape) for _ in methods[1:]]
    cube["attribution"] = (cube.attribution.dims, np.stack(values).astype(np.float32))
    return model, cube


def test_exact_attribution_of_a_white_box_beats_random_and_shuffles_do_not(mouth_reader, clip_video, clip_faces):
    model, cube = mouth_reader
    ev = ex.evaluate(model, clip_video, cube, faces=clip_faces, metrics=["deletion", "insertion"], progress=False)
    exact = ev.score.sel(explainer="saliency")
    assert float(exact.sel(metric="deletion_morf")) > 0.3  # random orders score about half the drop: 0.5 is the ceiling
    raw = ev.aopc.sel(explainer="saliency", kind="deletion")
    drop = float(ev.curve.sel(explainer="saliency", kind="deletion", order="morf", step=0.0)
                 - ev.curve.sel(explainer="saliency", kind="deletion", order="morf", step=1.0))
    assert float(raw.sel(order="lerf")) < 0.1 * drop  # removing what the model does not read changes nothing
    assert float(raw.sel(order="morf")) > 0.9 * drop > 1.5 * float(raw.sel(order="random"))
    shuffled = ev.score.sel(metric="deletion_morf").drop_sel(explainer="saliency").values
    # one shuffled order is one random draw (sd about 0.1 here): their mean is near 0
    assert abs(shuffled.mean()) < 0.1 and shuffled.max() < float(exact.sel(metric="deletion_morf")) - 0.1


def test_same_seed_same_dataset_and_netcdf_round_trip(additive, clip_video, clip_faces, tmp_path):
    model, cube = additive
    kwargs = dict(faces=clip_faces, metrics=["deletion", "infidelity"], steps=4, n_random=3, progress=False)
    first = ex.evaluate(model, clip_video, cube, seed=1, **kwargs)
    second = ex.evaluate(model, clip_video, cube, seed=1, **kwargs)
    other = ex.evaluate(model, clip_video, cube, seed=2, **kwargs)
    np.testing.assert_array_equal(first.curve.values, second.curve.values)
    assert not np.array_equal(first.curve.sel(order="random").values, other.curve.sel(order="random").values)
    path = save_evaluation(first, tmp_path / "eval.nc")
    back = open_evaluation(path)
    np.testing.assert_array_equal(back.score.values, first.score.values)
    np.testing.assert_array_equal(back.curve.values, first.curve.values)
    assert back.attrs["model_hash"] == cube.attrs["model_hash"] and "metric_definitions" in back.attrs
    assert list(back.better.values) == list(first.better.values)


def test_nearest_frame_outside_the_window():
    assert _nearest_outside(8, 4).tolist() == [4, 4, 4, 4, 3, 3, 3, 3]
    assert _nearest_outside(12, 4).tolist() == [4, 4, 4, 4, 3, 3, 8, 8, 7, 7, 7, 7]
    with pytest.raises(EvaluationError, match="covers the whole"):
        _nearest_outside(4, 4)


def test_noisy_linear_fill_reproduces_a_linear_ramp_and_ignores_the_region_itself():
    """A discrete harmonic function is its own imputation: a ramp comes back exactly
    whatever the region held."""
    ramp = np.broadcast_to(np.linspace(20, 220, 24)[None, :, None], (24, 24, 3))
    frames = np.repeat(np.round(ramp)[None], 2, axis=0).astype(np.uint8)
    labels = np.zeros((2, 24, 24), np.int64)
    labels[:, 6:15, 8:18] = 1
    scribbled = frames.copy()
    scribbled[:, 6:15, 8:18] = 255 - scribbled[:, 6:15, 8:18]
    filled = noisy_linear_frames(scribbled, labels, np.random.default_rng(0), noise=0.0)
    inside = labels == 1
    assert np.abs(filled[inside].astype(int) - frames[inside].astype(int)).max() <= 1
    noisy = noisy_linear_frames(scribbled, labels, np.random.default_rng(0))
    assert 1.0 < np.std(noisy[inside].astype(float) - filled[inside]) < 4.0  # 1% of 255


def test_temporal_fill_removes_an_event_confined_to_a_window(clip_video, clip_faces):
    """A unit filled from the frames around its window: the clip with an event drawn in
    one window becomes the clip without it."""
    from expresso_xai.evaluate.units import fill_tensor

    model = tiny_model(input_size=SIZE)
    ctx, _ = _units_of(model, clip_video, clip_faces)
    frames = ctx.frames.copy()
    still = np.repeat(frames[:1], 16, axis=0)
    event = still.copy()
    event[4:8, 20:40, 20:40] = 255  # a flash in the second window only
    ctx.frames = event
    ctx.x = model.preprocess(event)
    filled = fill_tensor(ctx, "temporal", 4, np.random.default_rng(0))
    # the event's window is filled from frames 3 and 8, which do not have it
    assert torch.equal(filled[:, :, 4:8], model.preprocess(still)[:, :, 4:8])
    assert not torch.equal(ctx.x[:, :, 4:8], filled[:, :, 4:8])


@pytest.mark.parametrize("fill", ["temporal", "noisy_linear"])
def test_every_fill_runs_end_to_end(fill, additive, clip_video, clip_faces):
    model, cube = additive
    ev = ex.evaluate(model, clip_video, cube, faces=clip_faces, metrics=["deletion"], fill=fill, steps=4, n_random=2,
                     progress=False)
    assert np.isfinite(ev.score.values).all() and ev.attrs["evaluation"].count(f'"fill": "{fill}"') == 1


def test_the_cube_model_and_video_must_belong_together(additive, clip_video, clip_faces, high_video):
    model, cube = additive
    run = dict(faces=clip_faces, metrics=["deletion"], progress=False)
    with pytest.raises(EvaluationError, match="computed with linear"):
        ex.evaluate(tiny_model(input_size=SIZE), clip_video, cube, **run)
    with pytest.raises(EvaluationError, match="not the video the cube was computed from"):
        ex.evaluate(model, high_video[100:116], cube, **run)
    with pytest.raises(EvaluationError, match="unknown metric 'delation'"):
        ex.evaluate(model, clip_video, cube, metrics=["delation"])
    with pytest.raises(EvaluationError, match="fill='smudge'"):
        ex.evaluate(model, clip_video, cube, metrics=["deletion"], fill="smudge")
    with pytest.raises(EvaluationError, match="window=17 is longer"):
        ex.evaluate(model, clip_video, cube, metrics=["deletion"], window=17)
    with pytest.raises(EvaluationError, match="pointing_game needs truth="):
        ex.evaluate(model, clip_video, cube, metrics=["pointing_game"])
    with pytest.raises(EvaluationError, match="n_random must be a whole number of at least 2"):
        ex.evaluate(model, clip_video, cube, metrics=["deletion"], n_random=1)
    with pytest.raises(EvaluationError, match="pass the model and the video"):
        ex.evaluate(None, None, cube, metrics=["deletion"])


def test_units_need_a_partition(clip_video, clip_faces):
    model = tiny_model(input_size=SIZE)
    cube = ex.explain(model, clip_video, clip_faces, methods=["saliency"], regions="boxes", progress=False)
    with pytest.raises(EvaluationError, match="non-overlapping regions"):
        ex.evaluate(model, clip_video, cube, faces=clip_faces, metrics=["deletion"])


def test_a_video_file_is_streamed_and_its_content_checked(high_video, tmp_path):
    from expresso_xai.samples.files import write_video

    model = tiny_model(input_size=SIZE)
    path = write_video(high_video.frames[:24], tmp_path / "clip.mp4", 25.0)
    faces = ex.track_faces(path, progress=False)
    cube = ex.explain(model, path, faces, methods=["saliency"], progress=False)
    kwargs = dict(faces=faces, metrics=["deletion"], steps=2, n_random=2, progress=False)
    from_file = ex.evaluate(model, path, cube, **kwargs)
    in_memory = ex.evaluate(model, ex.load_video(path), cube, **kwargs)
    np.testing.assert_array_equal(from_file.curve.values, in_memory.curve.values)
    write_video(high_video.frames[100:124], path, 25.0)  # same length, other frames
    with pytest.raises(EvaluationError, match="not the video the cube was computed from"):
        ex.evaluate(model, path, cube, **kwargs)


def test_another_face_track_is_refused(additive, clip_video, clip_faces):
    """Regions drawn from other landmarks (an OpenFace CSV against a re-tracked face)
    would evaluate other units than those explained."""
    model, cube = additive
    moved = clip_faces[np.arange(len(clip_faces))]
    moved.landmarks = moved.landmarks + 1.0
    with pytest.raises(EvaluationError, match="not the one the cube was explained with"):
        ex.evaluate(model, clip_video, cube, faces=moved, metrics=["deletion"], progress=False)


def test_re_explanations_reproduce_the_cube_at_its_recorded_integrated_gradient_steps(clip_video, clip_faces):
    """A one-clip cube: the clip explained again by the evaluation is the cube, integrated
    gradients at the number of steps the cube records for the clip."""
    from expresso_xai.evaluate import open_run

    model = tiny_model(input_size=SIZE)
    cube = ex.explain(model, clip_video, clip_faces, methods=["integrated_gradients", "saliency"], progress=False)
    run = open_run(model, clip_video, cube, faces=clip_faces, metrics=["mprt"], progress=False)
    (clip,) = list(run.clips())
    again = clip.explained()
    for index, name in enumerate(run.explainers):
        np.testing.assert_allclose(again[name].region_time, cube.attribution.values[index], rtol=1e-5, atol=1e-6)
    assert again["integrated_gradients"].stats["steps"] == int(cube.integrated_gradients_steps[0])
