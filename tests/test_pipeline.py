"""The engine as a pipeline: arguments checked before any work, the public clip step
giving what explain() stores, the running state saved and restored."""

from __future__ import annotations

import time

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.errors import MethodError, ModelError
from expresso_xai.explain import ExplainState, get_method, prepare_clip, run_methods
from expresso_xai.testing import tiny_model

SIZE = (64, 64)


@pytest.fixture(scope="module")
def clip_video(short_video):
    return short_video[:16]


@pytest.fixture(scope="module")
def clip_faces(clip_video):
    return ex.track_faces(clip_video, progress=False)


class Untouchable:
    """A video and face track that fail if anything reads them."""

    def __len__(self):
        raise AssertionError("the video was read before the arguments were checked")


@pytest.mark.parametrize("options, message", [
    ({"occlusion": {"window": 0}}, "occlusion option window=0: use a whole number"),
    ({"occlusion": {"baseline": "gray"}}, r"baseline='gray': use one of \['black', 'blur', 'mean', 'zero'\]"),
    ({"integrated_gradients": {"rule": "simpson"}}, "rule='simpson': use one of"),
    ({"integrated_gradients": {"tolerance": float("nan")}}, "tolerance=nan: use a finite number above 0"),
    ({"smoothgrad": {"samples": 2.5}}, "samples=2.5: use a whole number"),
    ({"saliency": {"abs": "yes"}}, "abs='yes': use True or False"),
    ({"gradcam": {"layer": 3}}, "layer=3: use the name of one of the model's layers"),
])
def test_every_option_value_is_checked_before_the_video_is_touched(options, message):
    methods = list(options)
    started = time.perf_counter()
    with pytest.raises(MethodError, match=message):
        ex.explain(tiny_model(), "/nonexistent/video.mp4", faces=Untouchable(), methods=methods, progress=False,
                   **options)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("arguments, error, message", [
    ({"stride": 0}, MethodError, "stride must be a whole number of at least 1, got 0"),
    ({"stride": -3}, MethodError, "stride must be"),
    ({"batch_size": 0}, MethodError, "batch_size must be"),
    ({"clip_length": 2.5}, MethodError, "clip_length must be"),
    ({"keep_pixels": "yes"}, MethodError, "keep_pixels must be True or False"),
    ({"target": True}, ModelError, "target must be None, an output index"),
    ({"target": -1}, ModelError, "target must be None, an output index"),
    ({"target": "top"}, ModelError, "target must be"),
    ({"device": "gpu:7"}, ModelError, "device 'gpu:7' is not a torch device"),
    ({"methods": []}, MethodError, "no methods given"),
    ({"methods": ["saliency", "saliency"]}, MethodError, "named twice"),
])
def test_run_arguments_are_checked_before_the_video_is_touched(arguments, error, message):
    arguments = {"methods": ["saliency"], **arguments}
    with pytest.raises(error, match=message):
        ex.explain(tiny_model(), "/nonexistent/video.mp4", faces=Untouchable(), progress=False, **arguments)


def test_the_clip_step_gives_what_explain_stores(clip_video, clip_faces):
    """prepare_clip + run_methods on the one clip of a 16-frame video give the cube's
    values exactly: evaluation and cohort runs can rely on the same input."""
    model = tiny_model(input_size=SIZE, widths=(8, 8))
    cube = ex.explain(model, clip_video, faces=clip_faces, methods=["gradcam", "saliency", "occlusion"],
                      progress=False, keep_pixels=True)
    crop = ex.FaceCrop.from_track(clip_faces, size=SIZE)
    ctx = prepare_clip(model, clip_video.frames, clip_faces, crop, frame_indices=clip_video.frame_indices)
    results = run_methods(ctx, ["gradcam", "saliency", "occlusion"])
    for name, result in results.items():
        stored = cube.attribution.sel(explainer=name).values
        np.testing.assert_allclose(result.region_time, stored, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(result.pixel_map, cube.pixels.sel(explainer=name).values, rtol=1e-5, atol=1e-7)
    assert ctx.prediction == pytest.approx(float(cube.prediction[0]), rel=1e-6)
    assert "gradients" in ctx.cache  # gradcam and saliency shared one pass
    np.testing.assert_array_equal(ctx.region_map.labels, cube.region_label.values)


def test_the_clip_step_refuses_a_track_of_another_length(clip_video, clip_faces):
    crop = ex.FaceCrop.from_track(clip_faces, size=SIZE)
    with pytest.raises(ModelError, match="16 frames, 8 face-track frames"):
        prepare_clip(tiny_model(), clip_video.frames, clip_faces[:8], crop)


def test_a_face_track_is_indexed_by_position_arrays_like_the_crop(clip_faces):
    positions = np.array([0, 3, 3, 15])
    subset = clip_faces[positions]
    np.testing.assert_array_equal(subset.landmarks, clip_faces.landmarks[positions])
    np.testing.assert_array_equal(subset.detected, clip_faces.detected[positions])
    assert subset.frame_size == clip_faces.frame_size and subset.source == clip_faces.source
    assert len(clip_faces[2:5]) == 3 and len(clip_faces[-1]) == 1


def test_a_model_declares_whether_it_needs_the_clip_geometry():
    plain = tiny_model()
    assert plain.uses_clip_geometry is False
    plain.prepare_clip(np.zeros((16, 68, 2)))  # a no-op, not a missing attribute
    assert ex.models.MultiStream.__module__  # the multi-stream adapter overrides it
    from expresso_xai.models.multistream import MultiStreamModel

    assert MultiStreamModel.uses_clip_geometry is True


def test_the_running_state_saves_and_restores_every_field(tmp_path):
    state = ExplainState.empty(["gradcam", "occlusion"], n_frames=6, n_regions=3, pixel_size=(4, 4))
    rng = np.random.default_rng(0)
    state.totals[:] = rng.normal(size=state.totals.shape)
    state.pixels[:] = rng.normal(size=state.pixels.shape)
    state.labels[:] = 2
    state.covered[:] = 1
    state.done, state.batch_size, state.shared_passes = 3, 4, 3
    state.clip_starts, state.clip_predictions, state.clip_targets = [0, 2, 4], [0.5, 0.25, 1.0], [0, 0, 0]
    state.clip_stats = {"occlusion_steps": [1, 2, 3]}
    state.passes = {"gradcam": 0, "occlusion": 30}
    path = tmp_path / "run.ckpt.npz"
    state.save(path, "fingerprint-1")
    restored = ExplainState.empty(["gradcam", "occlusion"], n_frames=6, n_regions=3, pixel_size=(4, 4))
    assert restored.load(path, "fingerprint-1")
    for name in ("totals", "pixels", "labels", "covered"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(state, name))
    for name in ("done", "batch_size", "shared_passes", "clip_starts", "clip_predictions", "clip_targets",
                 "clip_stats", "passes"):
        assert getattr(restored, name) == getattr(state, name), name
    other = ExplainState.empty(["gradcam", "occlusion"], n_frames=6, n_regions=3, pixel_size=(4, 4))
    with pytest.warns(UserWarning, match="other inputs or settings"):
        assert not other.load(path, "fingerprint-2")
    assert other.done == 0 and not other.totals.any()


def test_a_truncated_checkpoint_is_set_aside_with_a_warning(tmp_path):
    state = ExplainState.empty(["saliency"], n_frames=4, n_regions=2)
    path = tmp_path / "run.ckpt.npz"
    state.done = 1
    state.save(path, "f")
    path.write_bytes(path.read_bytes()[:100])
    fresh = ExplainState.empty(["saliency"], n_frames=4, n_regions=2)
    with pytest.warns(UserWarning, match="not a readable checkpoint.*starting afresh"):
        assert not fresh.load(path, "f")


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs /proc to read RSS")
def test_memory_stays_flat_over_many_clips_with_gradcam(clip_video, clip_faces):
    """A clip must not leave its autograd graph behind (a hook on the Grad-CAM
    activation once kept about 20 MB per clip at 112 px)."""
    model = tiny_model(input_size=(112, 112), widths=(8, 8))
    crop = ex.FaceCrop.from_track(clip_faces, size=model.input_size)
    methods = {name: get_method(name) for name in ("gradcam", "saliency", "input_x_gradient")}
    readings = []
    for index in range(120):
        ctx = prepare_clip(model, clip_video.frames, clip_faces, crop, gradient_layer=model.gradcam_layer)
        run_methods(ctx, methods)
        if index in (20, 119):
            readings.append(_rss_mb())
    assert readings[1] - readings[0] < 60, f"RSS grew from {readings[0]:.0f} to {readings[1]:.0f} MB over 100 clips"
