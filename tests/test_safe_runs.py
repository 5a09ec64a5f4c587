"""Runs that must never give a silently wrong cube: a checkpoint resumed into a replaced
video, a clip padded from a short video, a model left in training mode, a leaking pass."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.samples import write_video
from expresso_xai.testing import tiny_model

SIZE = (64, 64)


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory):
    """Two 40-frame files of the same size and length but different people."""
    folder = tmp_path_factory.mktemp("videos")
    first = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=40)
    second = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=40)
    return write_video(first.frames, folder / "a.mp4", 25), write_video(second.frames, folder / "b.mp4", 25)


def test_a_path_cube_records_the_hash_of_the_decoded_frames(two_videos):
    path = two_videos[0]
    faces = ex.track_faces(path, progress=False)
    cube = ex.explain(tiny_model(), path, faces=faces, methods=["saliency"], progress=False)
    assert cube.attrs["video_hash"] == ex.load_video(path).content_hash()
    assert cube.attrs["video_hash"] != ex.load_video(two_videos[1]).content_hash()


def test_a_checkpoint_is_not_resumed_into_a_replaced_video(two_videos, tmp_path, fragile_saliency):
    first, second = two_videos
    path = tmp_path / "interview.mp4"
    shutil.copy(first, path)
    faces = ex.track_faces(path, progress=False)
    model = tiny_model()
    fragile = fragile_saliency("fragile_saliency_video", model, on_call=3)
    checkpoint = tmp_path / "run.npz"
    run = dict(faces=faces, methods=["fragile_saliency_video"], progress=False, checkpoint=checkpoint)
    with pytest.raises(KeyboardInterrupt):
        ex.explain(model, path, **run)
    assert checkpoint.exists()
    shutil.copy(second, path)  # same name, size and length: another person
    fragile.interrupt = False
    with pytest.warns(UserWarning, match="not the one the checkpoint was made from"):
        resumed = ex.explain(model, path, **run)
    fresh = ex.explain(model, path, faces=faces, methods=["fragile_saliency_video"], progress=False)
    np.testing.assert_array_equal(resumed.attribution.values, fresh.attribution.values)
    assert resumed.attrs["video_hash"] == ex.load_video(second).content_hash()


def test_a_checkpoint_of_the_same_file_still_resumes(two_videos, tmp_path):
    path = two_videos[0]
    faces = ex.track_faces(path, progress=False)
    model = tiny_model()
    checkpoint = tmp_path / "run.npz"
    state_cube = ex.explain(model, path, faces=faces, methods=["saliency"], progress=False)
    # a checkpoint of the first 2 clips, saved by an identical run stopped there
    from expresso_xai.explain import engine

    plan = engine.plan_explain(model, ["saliency"], {})
    source = engine.VideoSource.open(path, faces, progress=False)
    crop = engine._crop_for(model, faces, None)
    state = engine.new_state(plan, len(faces))
    for positions, clip in source.clips(plan, state):
        ctx = engine._prepare(plan, state, engine.clip_input(plan, clip, positions, faces, crop))
        state.add(ctx, engine.run_methods(ctx, plan.methods), positions)
        state.video_digest = source.digest_after(state.done)
        if state.done == 2:
            break
    state.save(checkpoint, engine.fingerprint(plan, source, crop))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "starting afresh"
        resumed = ex.explain(model, path, faces=faces, methods=["saliency"], progress=False, checkpoint=checkpoint)
    np.testing.assert_array_equal(resumed.attribution.values, state_cube.attribution.values)


def test_a_still_image_is_not_attributed_once_per_padded_copy(short_video):
    """A 1-frame video is padded to a 16-frame clip by repeating the frame: the frame's
    attribution is the mean over the copies, i.e. exactly the mean over the frames of the
    same image repeated to a full clip, not their sum (16 times as large)."""
    image = short_video[:1]
    repeated = ex.Video.from_array(np.repeat(image.frames, 16, axis=0), fps=image.fps)
    faces = ex.track_faces(image, progress=False)
    repeated_faces = ex.FaceTrack(np.repeat(faces.landmarks, 16, 0), np.repeat(faces.face_found, 16),
                                  np.repeat(faces.confidence, 16), np.repeat(faces.boxes, 16, 0),
                                  np.repeat(faces.n_faces, 16), faces.frame_size)
    model = tiny_model(widths=(8, 8))
    methods = ["gradcam", "saliency", "occlusion"]
    still = ex.explain(model, image, faces=faces, methods=methods, progress=False)
    full = ex.explain(model, repeated, faces=repeated_faces, methods=methods, progress=False)
    assert still.sizes["time"] == 1
    np.testing.assert_allclose(still.attribution.isel(time=0).values, full.attribution.mean("time").values,
                               rtol=1e-5, atol=1e-6)


def test_a_three_frame_video_gets_comparable_saliency_in_every_frame(short_video):
    video = short_video[:3]
    cube = ex.explain(tiny_model(), video, methods=["saliency"], progress=False)
    per_frame = np.abs(cube.attribution.sel(explainer="saliency")).sum("region").values
    assert per_frame.max() < 3 * per_frame.min(), per_frame  # was 70, 101, 1782


def test_a_model_in_training_mode_is_explained_in_eval_mode_with_a_warning(short_video):
    import torch

    net = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.Dropout(0.5), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 1))
    model = ex.models.wrap(net, input_size=SIZE)
    video = short_video[:16]
    faces = ex.track_faces(video, progress=False)
    reference = ex.explain(model, video, faces=faces, methods=["saliency"], progress=False)
    model.module.train()
    with pytest.warns(UserWarning, match="training mode; it is put in eval mode"):
        again = ex.explain(model, video, faces=faces, methods=["saliency"], progress=False)
    np.testing.assert_array_equal(again.attribution.values, reference.attribution.values)
    assert not model.module.training


def test_a_model_failing_mid_run_raises_our_error_with_the_cause_and_keeps_the_checkpoint(short_video, tmp_path):
    import torch

    from expresso_xai.errors import ExpressoError

    class Flaky(torch.nn.Module):
        """Fails on its 4th forward (the 4th clip), as a model with a data-dependent bug would."""

        def __init__(self):
            super().__init__()
            self.net, self.calls = tiny_model().module, 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 4:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return self.net(x)

    model = ex.models.wrap(Flaky(), input_size=SIZE, check=False)
    checkpoint = tmp_path / "run.npz"
    with pytest.raises(ExpressoError, match=r"failed on frames \d+-\d+: RuntimeError: CUDA error") as caught:
        ex.explain(model, short_video, methods=["saliency"], progress=False, checkpoint=checkpoint)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert checkpoint.exists(), "the clips finished before the failure are kept"


def test_a_face_track_of_another_length_is_refused_naming_both(short_video, short_faces):
    from expresso_xai.errors import FaceTrackError

    with pytest.raises(FaceTrackError, match=r"face track has 47 frames but .* has 48"):
        ex.explain(tiny_model(input_size=(64, 64)), short_video, faces=short_faces[:47], methods=["saliency"],
                   progress=False)
    longer = short_faces[np.r_[np.arange(48), np.arange(4)]]
    with pytest.raises(FaceTrackError, match=r"52 frames but .* has 48.*faces\[:48\]"):
        ex.explain(tiny_model(input_size=(64, 64)), short_video, faces=longer, methods=["saliency"], progress=False)


def test_landmarks_of_a_larger_copy_of_the_video_are_refused(short_video, short_faces):
    from expresso_xai.errors import FaceTrackError

    import dataclasses

    other = dataclasses.replace(short_faces, landmarks=short_faces.landmarks * 3.0)  # a 576x576 copy's CSV
    with pytest.raises(FaceTrackError, match=r"far outside .*192x192 frame"):
        ex.explain(tiny_model(input_size=(64, 64)), short_video, faces=other, methods=["saliency"], progress=False)


def test_inputs_the_property_tests_found_get_our_errors_up_front():
    import torch

    from expresso_xai.errors import MethodError, ModelError, VideoLayoutError

    model = tiny_model(input_size=(64, 64))
    frames = np.zeros((16, 64, 64, 3), np.uint8)
    with pytest.raises(VideoLayoutError, match=r"Video.from_array"):
        ex.explain(model, frames, methods=["saliency"], progress=False)  # an array, not a Video
    video = ex.Video.from_array(np.zeros((40, 64, 64, 3), np.uint8), fps=25)
    with pytest.raises(MethodError, match=r"stride 20 is longer than the clip length 16"):
        ex.explain(model, video, methods=["saliency"], stride=20, progress=False)
    with pytest.raises(ModelError, match=r"uint8 .* float64"):
        model.preprocess(frames / 255.0)  # [0, 1] floats would be divided by 255 again
    with pytest.raises(ModelError, match=r"takes a preprocessed batch \(N, 3, T, H, W\)"):
        model(torch.zeros(1, 16, 3, 64, 64))  # NTCHW given to an NCTHW model
    assert ex.faces.read_openface_for is not None


def test_a_face_track_of_another_length_than_a_video_file_is_refused_naming_both(tmp_path, short_video,
                                                                                  short_faces):
    from expresso_xai.errors import FaceTrackError

    path = ex.samples.files.write_video(short_video.frames, tmp_path / "v.mp4", fps=short_video.fps)
    model = tiny_model(input_size=(64, 64))
    longer = ex.faces.FaceTrack.concatenate([short_faces, short_faces[:8]])
    with pytest.raises(FaceTrackError, match=r"face track has 56 frames but .*v.mp4 has 48"):
        ex.explain(model, path, faces=longer, methods=["saliency"], progress=False)
    with pytest.raises(FaceTrackError, match=r"face track has 40 frames but .*v.mp4 has more"):
        ex.explain(model, path, faces=short_faces[:40], methods=["saliency"], progress=False)


def test_a_face_track_of_another_frame_size_is_refused_naming_both_unless_its_size_was_estimated(short_video,
                                                                                               short_faces):
    from dataclasses import replace

    from expresso_xai.errors import FaceTrackError

    model = tiny_model(input_size=(64, 64))
    height, width = short_video.height, short_video.width
    other = replace(short_faces, frame_size=(height + 8, width + 8))  # landmarks still inside the frame
    with pytest.raises(FaceTrackError, match=rf"{width + 8}x{height + 8} frames but .* is {width}x{height}"):
        ex.explain(model, short_video, faces=other, methods=["saliency"], progress=False)
    estimated = replace(other, frame_size_estimated=True)  # e.g. read_openface(csv) without the video
    cube = ex.explain(model, short_video, faces=estimated, methods=["saliency"], progress=False)
    assert cube.sizes["time"] == short_video.n_frames
    assert ex.FaceTrack.from_arrays(estimated.to_arrays()).frame_size_estimated
