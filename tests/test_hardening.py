"""Hardening: whatever a user hands the first steps (an array as video, an OpenFace CSV,
a clip in some tensor layout), the answer is right or one of our typed errors, never a
traceback from OpenCV, numpy or torch (issue #11).

Property-based (hypothesis): each test draws inputs, computes what the answer must be
from the documented rules, independently of the code, and checks the code gives exactly
that, or raises an :class:`~expresso_xai.errors.ExpressoError` where the rules refuse.
"""

from __future__ import annotations

import csv
import io
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import expresso_xai as ex
from expresso_xai.errors import ExpressoError, OpenFaceFormatError
from expresso_xai.faces.openface import read_openface_for

# Few examples each, no deadline: the whole file runs in seconds on two cores.
FEW = settings(max_examples=60, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SOME = settings(FEW, max_examples=25)


def _outcome(call):
    """``("ok", value)`` or ``("refused", error)`` for one of our errors; anything else
    (an error from OpenCV, numpy, torch or Python itself) fails the test as it is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return "ok", call()
        except ExpressoError as error:
            return "refused", error


# --- video arrays --------------------------------------------------------------------------


DTYPES = ["uint8", "int16", "uint16", "float16", "float32", "float64", "bool"]


@st.composite
def frame_arrays(draw):
    """Arrays a user may take for frames: 2- to 5-D, 1 to 6 on a side, no channel axis or
    1-5 channels first or last, any of :data:`DTYPES`, floats with NaN, inf and values
    outside [0, 1], integers outside [0, 255]."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    t, h, w = (draw(st.integers(1, 6)) for _ in range(3))
    channels = draw(st.sampled_from([None, 1, 2, 3, 4, 5]))
    if channels is None:
        shape = draw(st.sampled_from([(t, h, w), (h, w), (t, h, w, 1, 1)]))
    else:
        shape = (t, channels, h, w) if draw(st.booleans()) else (t, h, w, channels)
    if dtype.kind == "f":
        elements = st.one_of(st.floats(0, 1, width=16), st.sampled_from([np.nan, np.inf, -0.5, 1.5]))
        elements = elements if draw(st.booleans()) else st.floats(0, 1, width=16)
    elif dtype.kind == "b":
        elements = st.booleans()
    else:
        low, high = (-300, 300) if draw(st.booleans()) and dtype.kind == "i" else (0, 255)
        elements = st.integers(max(low, np.iinfo(dtype).min), min(high, np.iinfo(dtype).max))
    return draw(hnp.arrays(dtype, shape, elements=elements))


def expected_frames(array: np.ndarray, channel_order: str) -> np.ndarray | None:
    """What ``Video.from_array`` must give by its documented rules, or ``None`` where it
    must refuse: ``(T, H, W)`` gray or ``(T, H, W, C)`` with C of 1, 3 or 4 (alpha
    dropped), uint8 or integers in [0, 255] or finite floats in [0, 1] (times 255,
    rounded); never one colour image ``(H, W, 3|4)`` taken as frames."""
    if array.ndim == 3 and array.shape[-1] in (3, 4) and min(array.shape[:2]) > 4:
        return None
    frames = array[..., None] if array.ndim == 3 else array
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4) or frames.dtype == bool:
        return None
    if frames.dtype.kind == "f":
        if not (np.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1):
            return None
        frames = np.round(frames.astype(np.float64) * 255)
    elif frames.min() < 0 or frames.max() > 255:
        return None
    frames = frames.astype(np.uint8)
    if frames.shape[-1] == 1:
        return np.repeat(frames, 3, axis=-1)
    return frames[..., 2::-1] if channel_order == "BGR" else frames[..., :3]


@FEW
@given(array=frame_arrays(), channel_order=st.sampled_from(["RGB", "BGR"]))
def test_any_array_becomes_the_frames_the_rules_say_or_a_typed_error(array, channel_order):
    kind, video = _outcome(lambda: ex.Video.from_array(array, fps=25, channel_order=channel_order))
    want = expected_frames(array, channel_order)
    assert kind == ("refused" if want is None else "ok"), (array.dtype, array.shape, video)
    if want is not None:
        np.testing.assert_array_equal(video.frames, want)
        assert video.frames.dtype == np.uint8 and video.frames.flags.c_contiguous
        assert np.all(np.diff(video.timestamps) > 0) and len(video.timestamps) == len(want)
        assert "\n" not in repr(video) and "frames" in repr(video)


@SOME
@given(image=frame_arrays())
def test_any_image_becomes_one_frame_or_a_typed_error(image):
    kind, video = _outcome(lambda: ex.Video.from_image(image))
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3, 4)):
        assert kind == "refused"
        return
    frames = image[None] if image.ndim == 2 or image.shape[-1] != 1 else image[None, ..., 0]
    want = expected_frames(frames[..., None] if frames.ndim == 3 else frames, "RGB")
    assert kind == ("refused" if want is None else "ok")
    if want is not None:
        np.testing.assert_array_equal(video.frames, want)


@SOME
@given(fps=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 120), st.none(),
                     st.booleans(), st.text(max_size=3)))
def test_a_frame_rate_is_a_positive_number_or_a_typed_error(fps):
    kind, video = _outcome(lambda: ex.Video.from_array(np.zeros((2, 4, 4, 3), np.uint8), fps=fps))
    is_number = isinstance(fps, (int, float)) and not isinstance(fps, bool)
    assert kind == ("ok" if is_number and np.isfinite(fps) and fps > 0 else "refused"), fps
    if kind == "ok":
        np.testing.assert_allclose(video.timestamps, [0, 1 / fps])


@pytest.mark.parametrize("value", [np.zeros((0, 4, 4, 3), np.uint8), np.zeros((2, 0, 4, 3), np.float32),
                                   np.zeros((2, 4, 0), np.int16), [[1, 2], [3]], None, "frames.mp4"])
def test_empty_ragged_and_non_arrays_are_refused(value):
    assert _outcome(lambda: ex.Video.from_array(value))[0] == "refused"


@pytest.mark.parametrize("option", [{"chunk_size": 0}, {"chunk_size": "8"}, {"chunk_size": 2.5}, {"chunk_size": True},
                                    {"max_frames": 0}, {"max_frames": -3}, {"max_frames": 1.5}])
def test_stream_options_that_are_not_counts_are_refused(option):
    path = ex.samples.sample_path("participant_low")
    assert _outcome(lambda: next(ex.stream_video(path, **option)))[0] == "refused"


@SOME
@given(n_frames=st.integers(1, 40), length=st.integers(1, 20), stride=st.integers(1, 20),
       side=st.integers(1, 3))
def test_clips_of_any_video_cover_every_frame_in_order(n_frames, length, stride, side):
    """1-frame and 1×1-pixel videos included: every clip has ``length`` frames cut from
    the video in order, padding repeats the last frame, and every frame is in a clip
    (when the stride does not skip frames)."""
    values = np.arange(n_frames, dtype=np.uint8)[:, None, None, None]
    video = ex.Video.from_array(np.broadcast_to(values, (n_frames, side, side, 3)), fps=10)
    clips = list(ex.iter_clips(video, length=length, stride=min(stride, length)))
    covered = set()
    for clip in clips:
        assert clip.frames.shape == (length, side, side, 3)
        np.testing.assert_array_equal(clip.frames[:, 0, 0, 0], clip.indices)
        assert np.all(np.diff(clip.indices) >= 0) and clip.n_valid == min(length, n_frames)
        covered |= set(clip.indices.tolist())
    assert covered == set(range(n_frames))


@pytest.mark.parametrize("shape", [(3, 1, 1, 3), (1, 8, 8, 3), (2, 1, 40, 3)])
def test_a_video_too_small_for_a_face_has_none_and_is_not_explained(shape):
    from expresso_xai.errors import NoFaceError
    from expresso_xai.testing import tiny_model

    video = ex.Video.from_array(np.full(shape, 128, np.uint8))
    kind, faces = _outcome(lambda: ex.track_faces(video, progress=False))
    assert kind == "ok" and len(faces) == shape[0] and not faces.face_found.any()
    kind, error = _outcome(lambda: ex.explain(tiny_model(), video, methods=["saliency"], progress=False))
    assert kind == "refused" and isinstance(error, NoFaceError)


@pytest.mark.parametrize("value", [np.zeros((4, 8, 8, 3), np.uint8), [np.zeros((8, 8, 3), np.uint8)], 3])
def test_clips_of_something_that_is_not_a_video_are_refused(value):
    assert _outcome(lambda: next(ex.iter_clips(value)))[0] == "refused"


# --- OpenFace CSVs ------------------------------------------------------------------------


LANDMARKS = [f"{axis}_{i}" for axis in "xy" for i in range(68)]
AUS = ["AU01_r", "AU45_r", "AU45_c", "AU28_c"]
HEADER = ["frame", "face_id", "timestamp", "confidence", "success"] + LANDMARKS + AUS
FRAME = (360, 640)
BAD_CELLS = ["nan", "inf", "-inf", "1e400", "", "abc"]


def _face_rows(n_rows: int, seed: int) -> list[dict]:
    """Rows OpenFace could write for a 640×360 video: a face of 68 points inside the frame."""
    rng = np.random.default_rng(seed)
    rows = []
    for frame in range(1, n_rows + 1):
        points = rng.uniform((200, 100), (440, 300), size=(68, 2))
        row = {"frame": frame, "face_id": 0, "timestamp": (frame - 1) / 25, "confidence": 0.98, "success": 1,
               "AU01_r": rng.uniform(0, 5), "AU45_r": rng.uniform(0, 5), "AU45_c": 1, "AU28_c": 0}
        row.update({f"x_{i}": points[i, 0] for i in range(68)})
        row.update({f"y_{i}": points[i, 1] for i in range(68)})
        rows.append({name: str(value) for name, value in row.items()})
    return rows


@st.composite
def openface_csvs(draw):
    """An OpenFace CSV and the edits made to it: rows out of order, columns reordered,
    dropped and added, ``success`` 0 on some rows, broken cells."""
    n_rows = draw(st.integers(1, 6))
    rows = _face_rows(n_rows, draw(st.integers(0, 3)))
    columns = draw(st.permutations(HEADER))
    dropped = draw(st.lists(st.sampled_from(HEADER), max_size=2, unique=True)) if draw(st.booleans()) else []
    extra = draw(st.lists(st.sampled_from(["pose_Rx", "gaze_0_x", "X_0", "p_scale", "note"]), unique=True,
                          max_size=3))
    failed = draw(st.sets(st.integers(1, n_rows), max_size=n_rows))
    broken = draw(st.lists(st.tuples(st.integers(0, n_rows - 1), st.sampled_from(HEADER), st.sampled_from(BAD_CELLS)),
                           max_size=2)) if draw(st.booleans()) else []
    for row in rows:
        row["success"] = "0" if int(row["frame"]) in failed else "1"
        row.update({name: "1.5" for name in extra})
    for index, column, value in broken:
        rows[index][column] = value
    rows = draw(st.permutations(rows))
    header = [name for name in columns if name not in dropped] + extra
    text = io.StringIO()
    text.write(", ".join(header) + "\n")  # OpenFace puts a space after each comma
    csv.writer(text, lineterminator="\n").writerows([[row[name] for name in header] for row in rows])
    return text.getvalue(), rows, dropped, broken


def _is_number(text: str, finite: bool = True) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return np.isfinite(value) or not finite


def expected_faces(rows: list[dict], dropped: list[str], broken) -> dict | None:
    """``{frame: landmarks or None}`` by the documented rules, or ``None`` for a refusal:
    a required column missing, a cell that is not a number (outside the landmarks, not a
    finite one), or no usable face left where OpenFace found one."""
    if {"frame", "success", *LANDMARKS} & set(dropped):
        return None
    broken_columns = {column for _, column, _ in broken} - set(dropped) - {"face_id"}  # face_id is not read
    for row in rows:
        for column in broken_columns:
            if not _is_number(row[column], finite=column not in LANDMARKS):
                return None
    faces = {}
    for row in rows:
        points = np.array([float(row[name]) for name in LANDMARKS]).reshape(2, 68).T
        faces[int(row["frame"])] = points if row["success"] == "1" and np.isfinite(points).all() else None
    found_any = any(row["success"] == "1" for row in rows)
    if found_any and all(points is None for points in faces.values()):
        return None
    return faces


@FEW
@given(case=openface_csvs())
def test_any_openface_csv_is_read_as_the_rules_say_or_refused(tmp_path_factory, case):
    text, rows, dropped, broken = case
    path = tmp_path_factory.mktemp("openface") / "edited.openface.csv"
    path.write_text(text)
    kind, result = _outcome(lambda: ex.faces.read_openface(path, frame_size=FRAME))
    want = expected_faces(rows, dropped, broken)
    assert kind == ("refused" if want is None else "ok"), (dropped, broken, result)
    if want is None:
        assert isinstance(result, OpenFaceFormatError) and str(path) in str(result)
        return
    faces, action_units = result
    assert len(faces) == action_units.sizes["time"] == len(rows)
    for frame, points in want.items():
        assert faces.face_found[frame - 1] == (points is not None)
        if points is not None:
            np.testing.assert_allclose(faces.landmarks[frame - 1], points, rtol=1e-6)
    assert faces.frame_size == FRAME


@SOME
@given(n_rows=st.integers(1, 6), n_frames=st.integers(1, 8))
def test_a_csv_for_a_video_of_another_length_is_refused_naming_both(tmp_path_factory, n_rows, n_frames):
    path = tmp_path_factory.mktemp("openface") / "video.openface.csv"
    rows = _face_rows(n_rows, 0)
    path.write_text(", ".join(HEADER) + "\n" + "\n".join(",".join(row[name] for name in HEADER) for row in rows))
    black = np.broadcast_to(np.zeros(3, np.uint8), (n_frames, *FRAME, 3))  # no pixels stored
    video = ex.Video(black, 25, source="clip.mp4")
    kind, result = _outcome(lambda: read_openface_for(path, video))
    assert kind == ("ok" if n_rows == n_frames else "refused")
    if kind == "refused":
        assert f"{n_rows} rows" in str(result) and f"{n_frames} frames" in str(result)
    else:
        assert len(result[0]) == n_frames and result[0].frame_size == FRAME


# --- tensor layouts at the clip step ---------------------------------------------------------


@pytest.fixture(scope="module")
def clip():
    """A tiny model and one clip of a shipped sample with its track and crop, and the
    clip step's answer for it."""
    from expresso_xai.explain.clip import prepare_clip
    from expresso_xai.testing import clip_inputs

    model, frames, faces, crop = clip_inputs(input_size=(64, 64))
    return model, frames, faces, crop, prepare_clip(model, frames, faces, crop)


LAYOUTS = {  # name: (how the user's frames are made from the right ones, whether they are the same clip)
    "as given (T, H, W, 3) uint8": (lambda f: f, True),
    "a torch uint8 tensor": (lambda f: torch.from_numpy(f.copy()), True),
    "a list of frames": (lambda f: list(f), True),
    "channels first (T, 3, H, W)": (lambda f: f.transpose(0, 3, 1, 2), False),
    "channels and time first (3, T, H, W)": (lambda f: f.transpose(3, 0, 1, 2), False),
    "with a batch axis (1, T, H, W, 3)": (lambda f: f[None], False),
    "model layout (1, 3, T, H, W)": (lambda f: f.transpose(3, 0, 1, 2)[None], False),
    "float in [0, 1]": (lambda f: f / 255.0, False),
    "float32 in [0, 255]": (lambda f: f.astype(np.float32), False),
    "a float tensor that needs grad": (lambda f: torch.tensor(f / 255.0, requires_grad=True), False),
    "gray (T, H, W)": (lambda f: f[..., 0], False),
    "one frame short": (lambda f: f[1:], False),
    "BGRA (T, H, W, 4)": (lambda f: np.concatenate([f, f[..., :1]], axis=-1), False),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_clip_in_any_layout_gives_the_same_answer_or_a_typed_error(clip, layout):
    from expresso_xai.explain.clip import prepare_clip

    model, frames, faces, crop, right = clip
    make, same = LAYOUTS[layout]
    kind, ctx = _outcome(lambda: prepare_clip(model, make(frames), faces, crop))
    assert kind == ("ok" if same else "refused"), ctx
    if same:
        np.testing.assert_array_equal(ctx.frames, right.frames)
        assert ctx.prediction == right.prediction


@SOME
@given(order=st.permutations(range(4)), batch=st.booleans(), dtype=st.sampled_from(["uint8", "float32", "int64"]))
def test_frames_in_any_axis_order_are_taken_only_as_t_h_w_c(clip, order, batch, dtype):
    """``FaceCrop.apply`` (source frames) and ``VideoModel.preprocess`` (model frames)
    take ``(T, H, W, 3)``: another axis order is refused unless it has the same shape
    (a square frame's H and W cannot be told apart); the right order in another number
    type is refused or gives the same answer."""
    model, frames, _, crop, right = clip
    for step, good in ((crop.apply, frames), (model.preprocess, right.frames)):
        given_frames = good.astype(dtype).transpose(order)
        given_frames = given_frames[None] if batch else given_frames
        kind, got = _outcome(lambda: step(given_frames))
        if tuple(order) == (0, 1, 2, 3) and kind == "ok":
            np.testing.assert_array_equal(np.asarray(got), np.asarray(step(good)))
        elif given_frames.shape[-4:] != good.shape:
            assert kind == "refused", (step, given_frames.shape)


@pytest.mark.parametrize("points", [np.zeros((5, 68, 2)), np.zeros((16, 68)), np.zeros((16, 68, 3)), "landmarks"])
def test_landmarks_of_the_wrong_shape_are_refused_by_the_crop(clip, points):
    crop = clip[3]
    assert _outcome(lambda: crop.apply_landmarks(points))[0] == "refused"
