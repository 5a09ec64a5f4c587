"""Following one subject: the face asked for, never another one when it leaves, found
again when it comes back; and a detector that backs off while no face is in view but
still finds the exact frame where one appears."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.errors import FaceTrackError, NoFaceWarning, OtherFacesWarning
from expresso_xai.faces import Detection, FaceTrack
from expresso_xai.testing import face_appears, group_scene


def _error_in_iod(landmarks: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean point distance per frame in inter-ocular distances of the truth."""
    iod = np.linalg.norm(truth[..., 36, :] - truth[..., 45, :], axis=-1)
    return np.linalg.norm(landmarks - truth, axis=-1).mean(axis=-1) / iod


def _track(video, **options) -> FaceTrack:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoFaceWarning)
        warnings.simplefilter("ignore", OtherFacesWarning)
        return ex.track_faces(video, progress=False, **options)


@pytest.fixture(scope="module")
def group():
    """Three different faces; the camera pans until the leftmost is out of view, and back."""
    return group_scene()


def test_the_subject_is_never_swapped_for_another_face_and_is_found_again(group):
    video, truth = group
    with pytest.warns(OtherFacesWarning, match=r"faces other than the subject in 48 of 48 frames"):
        faces = ex.track_faces(video, subject=0, progress=False)
    subject = truth[0]
    out_of_view = subject[..., 0].max(axis=-1) < 0
    in_view = subject[..., 0].min(axis=-1) >= 0
    assert out_of_view[18:28].all() and in_view[:8].all() and in_view[40:].all()
    assert not faces.face_found[out_of_view].any(), "another face was taken for the subject"
    assert faces.face_found[in_view].all(), f"subject missed on {np.flatnonzero(in_view & ~faces.face_found)}"
    # Every frame with a face is the subject's, not one of the others (1.4-3 IODs away).
    error = _error_in_iod(faces.landmarks, subject)[faces.face_found]
    assert error.max() < 0.15, f"{error.max():.2f} IOD from the subject"
    # Same track id on consecutive frames: the face never jumps.
    centre = faces.landmarks[:, 27:36].mean(axis=1)
    same = (faces.track_id[1:] == faces.track_id[:-1]) & (faces.track_id[1:] >= 0)
    jump = np.linalg.norm(np.diff(centre, axis=0), axis=-1) / faces.inter_ocular_distance()[1:]
    assert jump[same].max() < 1.0
    # Found again after the loss: a new stretch of the same subject.
    assert faces.track_id[:8].max() == 0 and (faces.track_id[40:] >= 1).all()


@pytest.mark.parametrize("subject", [1, "box"])
def test_subject_picks_the_requested_face_and_follows_it_through_the_pan(group, subject):
    video, truth = group
    index = 1 if subject == "box" else subject
    if subject == "box":  # a loose box around the middle face at the first frame
        low, high = truth[1, 0].min(axis=0), truth[1, 0].max(axis=0)
        subject = (low[0] - 20, low[1] - 10, high[0] + 20, high[1] + 10)
    faces = _track(video, subject=subject)
    assert faces.face_found.all()
    assert _error_in_iod(faces.landmarks, truth[index]).max() < 0.15
    assert (faces.track_id == 0).all()


def test_a_still_with_several_faces_respects_subject():
    video, truth = group_scene(n_frames=1, pan=False, view=None)
    still = ex.Video.from_image(video.frames[0])
    for index in range(3):
        faces = _track(still, subject=index)
        assert faces.n_faces[0] == 3 and faces.face_found[0]
        assert _error_in_iod(faces.landmarks, truth[index]).max() < 0.15, index
    with pytest.warns(NoFaceWarning):
        assert not ex.track_faces(still, subject=3, progress=False).face_found.any()
    with pytest.raises(FaceTrackError, match="not a subject"):
        ex.track_faces(still, subject="leftmost", progress=False)


def test_a_different_face_is_not_taken_for_the_subject_after_a_cut():
    """The subject, then a cut to another person elsewhere in the frame, then the subject
    again: the other person's frames have no face; the subject is found again."""
    video, truth = group_scene(n_frames=36, count=2, pan=False, view=None)
    frames = video.frames.copy()
    width = truth[0, ..., 0].max() + 10
    background = frames[:, :, -8:].mean(axis=(0, 1, 2)).astype(np.uint8)
    frames[:12, :, int(width):] = background  # the subject alone
    frames[12:24, :, : int(width)] = background  # the other person alone
    frames[24:, :, int(width):] = background  # the subject alone again
    cut = ex.Video.from_array(frames, fps=25)
    faces = _track(cut, subject=0)
    assert faces.face_found[:12].all() and faces.face_found[24:].all()
    assert not faces.face_found[12:24].any(), "the other person was followed"
    assert _error_in_iod(faces.landmarks, truth[0])[faces.face_found].max() < 0.15
    assert set(faces.track_id[24:]) == {1}


def test_a_cut_to_another_person_in_the_same_place_is_not_followed():
    """As in an interview cut from one speaker to the other: the other person's face
    overlaps where the subject was, which continuity alone would take for the subject."""
    video, truth = group_scene(n_frames=48, count=2, pan=False, view=None)
    shift = int(round(truth[1, 0, 27:36, 0].mean() - truth[0, 0, 27:36, 0].mean()))
    frames = video.frames[:, :, : video.width - shift].copy()
    frames[16:32] = video.frames[16:32, :, shift:]  # the other person, moved to the subject's place
    frames[:, :, int(truth[0, ..., 0].max()) + 30:] = 120  # nobody else in view
    faces = _track(ex.Video.from_array(frames, fps=25), subject=0)
    assert not faces.face_found[16:32].any(), "the other person was taken for the subject"
    assert faces.face_found[:16].all() and faces.face_found[32:].all()
    assert (faces.track_id[:16] == 0).all() and (faces.track_id[32:] == 1).all()


def test_track_ids_survive_slicing_concatenating_and_saving(group):
    video, _ = group
    faces = _track(video, subject=0)
    joined = FaceTrack.concatenate([faces[:20], faces[20:]])
    np.testing.assert_array_equal(joined.track_id, faces.track_id)
    back = FaceTrack.from_arrays(faces.to_arrays())
    np.testing.assert_array_equal(back.track_id, faces.track_id)
    np.testing.assert_array_equal(back.detected, faces.detected)
    assert repr(faces).startswith("FaceTrack(48 frames, face in ") and "420x192" in repr(faces)


# --- back-off while no face is in view ----------------------------------------------------


class CountingLandmarker:
    """The default landmarker, counting the detector's runs."""

    def __init__(self):
        self.inner = ex.faces.default_landmarker()
        self.name = self.inner.name
        self.calls = 0

    def detect(self, gray):
        self.calls += 1
        return self.inner.detect(gray)

    def fit(self, gray, box):
        return self.inner.fit(gray, box)


class ScheduleLandmarker:
    """A face where ``present[frame]`` (the frame index is in pixel (0, 0)), nowhere else."""

    name = "schedule"

    def __init__(self, present: np.ndarray):
        self.present = present
        self.calls = 0
        self.shape = ex.samples.base_face()[1].astype(np.float32) * 0.5 + 20
        self.box = (*self.shape.min(axis=0), *self.shape.max(axis=0))

    def detect(self, gray):
        self.calls += 1
        return [Detection(self.box, 0.9)] if self.present[int(gray[0, 0])] else []

    def fit(self, gray, box):
        """The shape placed in the box (which may be a window's, not the frame's)."""
        return self.shape + np.array(box[:2], np.float32) - self.box[:2]


def test_a_face_appearing_after_a_long_empty_stretch_is_found_on_its_exact_first_frame():
    video = face_appears(first=37, n_frames=64)
    every, backed_off = CountingLandmarker(), CountingLandmarker()
    per_frame = _track(video, landmarker=every, detect_every=1)
    tracked = _track(video, landmarker=backed_off)
    assert int(np.argmax(per_frame.face_found)) == 37 == int(np.argmax(tracked.face_found))
    assert tracked.face_found[37:].all() and not tracked.face_found[:37].any()
    assert every.calls == 64
    # Runs at 0, 2, 6, 14, 29, 44, bisection over 30-43 (4), then one at 52.
    assert backed_off.calls <= 12, backed_off.calls
    assert int(tracked.detected[:37].sum()) <= 8


@pytest.mark.parametrize("seed", range(4))
def test_every_switch_frame_matches_per_frame_detection(seed):
    """Faces present and absent in runs of random lengths (at least the longest back-off
    gap): every frame's face_found is what detecting on every frame gives."""
    rng = np.random.default_rng(seed)
    runs = rng.integers(8, 30, size=8)
    present = np.concatenate([np.full(n, i % 2 == int(seed % 2)) for i, n in enumerate(runs)])
    # Textured where the face is (so optical flow tracks it), flat where it is not (so
    # tracking fails there, as it does when a face leaves); the frame index in pixel (0, 0).
    texture = rng.integers(0, 255, size=(128, 128, 1))
    frames = np.where(present[:, None, None, None], texture, 128).repeat(3, axis=-1).astype(np.uint8)
    frames[:, 0, 0] = np.arange(len(present))[:, None]
    video = ex.Video.from_array(frames, fps=25)
    backed_off = ScheduleLandmarker(present)
    faces = _track(video, landmarker=backed_off, detect_every=4, max_search_gap=8)
    every = _track(video, landmarker=ScheduleLandmarker(present), detect_every=1)
    np.testing.assert_array_equal(every.face_found, present)
    np.testing.assert_array_equal(faces.face_found, present)
    assert backed_off.calls < 0.6 * len(present)
    assert faces.track_id.max() == (np.diff(present.astype(int)) == 1).sum() + present[0] - 1


def test_streamed_chunks_give_the_same_back_off_as_in_memory(tmp_path):
    path = ex.samples.write_video(face_appears(first=21, n_frames=40, size=192).frames, tmp_path / "late.avi", 25)
    in_memory = _track(ex.load_video(path))
    streamed = _track(path, chunk_size=6)
    np.testing.assert_array_equal(streamed.face_found, in_memory.face_found)
    np.testing.assert_array_equal(streamed.detected, in_memory.detected)
    np.testing.assert_array_equal(streamed.landmarks, in_memory.landmarks)
    assert int(np.argmax(in_memory.face_found)) == 21
