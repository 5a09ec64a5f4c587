"""Importing OpenFace: a researcher already ran OpenFace 2.0 and reads its CSV.

The shipped sample's CSV was written from a ground truth (AU45 intensity is 5 × the
eye-closure track), so the import can be checked against known values; broken copies
of the same CSV must raise a typed error that says which column and line is wrong.
"""

from __future__ import annotations

import contextlib
import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import expresso_xai as ex
from expresso_xai.errors import NoFaceWarning, OpenFaceFormatError
from expresso_xai.faces import FaceTrack, read_openface

N_FRAMES = 250


@pytest.fixture(scope="module")
def csv_path() -> Path:
    return ex.samples.sample_path("participant_low", "openface")


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads(ex.samples.sample_path("participant_low", "truth").read_text())


@pytest.fixture(scope="module")
def table(csv_path) -> tuple[list[str], list[list[str]]]:
    """The CSV's header and rows as text, parsed independently of the library."""
    with csv_path.open(newline="") as handle:
        rows = list(csv.reader(handle, skipinitialspace=True))
    return [name.strip() for name in rows[0]], [row for row in rows[1:] if row]


@pytest.fixture(scope="module")
def imported(csv_path):
    return read_openface(csv_path)


def column_values(table, name: str) -> np.ndarray:
    header, rows = table
    index = header.index(name)
    return np.array([float(row[index]) for row in rows])


def write_edited(tmp_path: Path, table, edit, name: str = "edited.openface.csv") -> Path:
    """Write a copy of the sample CSV, in OpenFace's ", " style, after ``edit(header, rows)``."""
    header, rows = table
    header = list(header)
    rows = [list(row) for row in rows]
    edit(header, rows)
    path = tmp_path / name
    path.write_text("\n".join(", ".join(line) for line in [header] + rows) + "\n")
    return path


def set_cell(column: str, data_row: int, value: str):
    def edit(header, rows):
        rows[data_row][header.index(column)] = value

    return edit


# --- the sample ---------------------------------------------------------------------------


def test_landmarks_are_the_csv_values_in_ibug_order(imported, table):
    faces, _ = imported
    assert isinstance(faces, FaceTrack)
    assert faces.landmarks.shape == (N_FRAMES, 68, 2)
    assert faces.landmarker == "openface2"
    for point in (0, 8, 36, 45, 67):
        np.testing.assert_array_equal(
            faces.landmarks[:, point, 0], column_values(table, f"x_{point}").astype(np.float32)
        )
        np.testing.assert_array_equal(
            faces.landmarks[:, point, 1], column_values(table, f"y_{point}").astype(np.float32)
        )
    xs = np.stack([column_values(table, f"x_{i}") for i in range(68)], axis=1)
    ys = np.stack([column_values(table, f"y_{i}") for i in range(68)], axis=1)
    np.testing.assert_allclose(faces.landmarks, np.stack([xs, ys], axis=-1), atol=1e-4)


def test_every_sample_frame_has_a_face_with_the_csv_confidence(imported, table):
    faces, _ = imported
    assert faces.face_found.all()
    np.testing.assert_allclose(faces.confidence, column_values(table, "confidence"), atol=1e-6)
    # The box encloses the landmarks and the estimated frame holds them all.
    assert (faces.boxes[:, :2] <= faces.landmarks.min(axis=1)).all()
    assert (faces.boxes[:, 2:] >= faces.landmarks.max(axis=1)).all()
    height, width = faces.frame_size
    assert faces.landmarks[..., 0].max() < width and faces.landmarks[..., 1].max() < height


def test_action_units_are_a_time_by_au_dataarray_from_frame_zero(imported, table):
    _, aus = imported
    assert aus.dims == ("time", "au")
    assert aus.shape[0] == N_FRAMES
    np.testing.assert_array_equal(aus.time.values, np.arange(N_FRAMES))  # OpenFace counts from 1
    np.testing.assert_allclose(aus.seconds.values, column_values(table, "timestamp"))
    header, _ = table
    expected_units = sorted({name[:-2] for name in header if name.startswith("AU")})
    assert list(aus.au.values) == expected_units
    assert {"AU01", "AU12", "AU28", "AU45"} <= set(aus.au.values)
    assert aus.face_found.values.all()


def test_au45_intensity_follows_the_planted_eye_closure(imported, truth):
    _, aus = imported
    eye_closure = np.asarray(truth["tracks"]["eye_closure"], dtype=float)
    assert eye_closure.shape == (N_FRAMES,)
    assert eye_closure.max() > 0.5  # the sample really closes its eyes
    au45 = aus.sel(au="AU45").values
    np.testing.assert_allclose(au45, 5 * eye_closure, atol=0.0051)  # CSV has 2 decimals
    assert np.argmax(au45) == np.argmax(eye_closure)


def test_intensity_and_presence_match_their_columns(imported, table):
    _, aus = imported
    for unit in ("AU01", "AU12", "AU25", "AU45"):
        np.testing.assert_allclose(
            aus.sel(au=unit).values, column_values(table, f"{unit}_r"), atol=1e-6
        )
    assert aus.presence.dims == ("time", "au")
    for unit in ("AU04", "AU28", "AU45"):
        np.testing.assert_array_equal(
            aus.presence.sel(au=unit).values, column_values(table, f"{unit}_c")
        )
    assert set(np.unique(aus.presence.values)) <= {0.0, 1.0}
    assert aus.presence.sel(au="AU45").values.sum() > 0  # closures are detected somewhere


def test_au28_is_detected_only_so_its_intensity_is_nan(imported, table):
    header, _ = table
    assert "AU28_c" in header and "AU28_r" not in header
    _, aus = imported
    assert np.isnan(aus.sel(au="AU28").values).all()
    assert not np.isnan(aus.presence.sel(au="AU28").values).any()


# --- frames without a face -----------------------------------------------------------------


def test_rows_without_success_have_no_face_and_nan_landmarks(tmp_path, table):
    lost = [3, 4, 5, 120]

    def drop_face(header, rows):
        for r in lost:
            rows[r][header.index("success")] = "0"

    faces, aus = read_openface(write_edited(tmp_path, table, drop_face))
    expected_found = np.ones(N_FRAMES, bool)
    expected_found[lost] = False
    np.testing.assert_array_equal(faces.face_found, expected_found)
    assert np.isnan(faces.landmarks[lost]).all()
    assert not np.isnan(faces.landmarks[expected_found]).any()
    assert (faces.confidence[lost] == 0).all()
    assert np.isnan(faces.boxes[lost]).all()
    np.testing.assert_array_equal(aus.face_found.values, expected_found)
    assert np.isnan(aus.values[lost]).all() and np.isnan(aus.presence.values[lost]).all()
    assert not np.isnan(aus.sel(au="AU45").values[expected_found]).any()
    # The other frames are untouched.
    np.testing.assert_array_equal(
        faces.landmarks[6:120, 36, 0], column_values(table, "x_36")[6:120].astype(np.float32)
    )


# --- broken files ---------------------------------------------------------------------------


def test_a_missing_landmark_column_is_named(tmp_path, table):
    def drop_column(header, rows):
        index = header.index("y_30")
        del header[index]
        for row in rows:
            del row[index]

    path = write_edited(tmp_path, table, drop_column)
    with pytest.raises(OpenFaceFormatError, match="missing column 'y_30'") as excinfo:
        read_openface(path)
    assert path.name in str(excinfo.value)


@pytest.mark.parametrize(
    "column, data_row, value",
    [("x_12", 4, "abc"), ("confidence", 0, "high"), ("AU45_r", 200, "1.2.3"), ("frame", 9, "ten")],
)
def test_a_non_numeric_value_is_named_by_column_and_line(tmp_path, table, column, data_row, value):
    path = write_edited(tmp_path, table, set_cell(column, data_row, value))
    with pytest.raises(OpenFaceFormatError) as excinfo:
        read_openface(path)
    message = str(excinfo.value)
    assert f"column {column!r}" in message
    assert f"line {data_row + 2}" in message  # line 1 is the header
    assert repr(value) in message
    assert path.name in message


@pytest.mark.parametrize(
    "column, value", [("AU12_r", ""), ("AU12_r", "nan"), ("AU12_r", "NaN"), ("AU12_r", "inf"), ("y_40", "")]
)
def test_an_empty_or_non_finite_value_is_refused(tmp_path, table, value, column):
    """Outside the landmarks; a non-finite landmark only costs its frame (see below)."""
    path = write_edited(tmp_path, table, set_cell(column, 7, value))
    with pytest.raises(OpenFaceFormatError, match="not a finite number") as excinfo:
        read_openface(path)
    message = str(excinfo.value)
    assert f"column {column!r}" in message and "line 9" in message


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.openface.csv"
    path.write_text("")
    with pytest.raises(OpenFaceFormatError, match="empty") as excinfo:
        read_openface(path)
    assert path.name in str(excinfo.value)


def test_a_header_without_rows_is_refused(tmp_path, table):
    path = write_edited(tmp_path, table, lambda header, rows: rows.clear())
    with pytest.raises(OpenFaceFormatError, match="no data rows"):
        read_openface(path)


def test_a_missing_file_is_refused(tmp_path):
    path = tmp_path / "never_written.openface.csv"
    with pytest.raises(OpenFaceFormatError, match="not found") as excinfo:
        read_openface(path)
    assert path.name in str(excinfo.value)


def test_errors_are_value_errors_for_callers_that_catch_those(tmp_path):
    with pytest.raises(ValueError):
        read_openface(tmp_path / "absent.csv")


def test_an_empty_last_cell_is_refused(tmp_path, table):
    path = write_edited(tmp_path, table, set_cell("AU45_c", 3, ""))
    with pytest.raises(OpenFaceFormatError, match=r"column 'AU45_c', line 5"):
        read_openface(path)


def test_a_short_row_is_named_by_line(tmp_path, table):
    def cut_row(header, rows):
        del rows[4][100:]

    path = write_edited(tmp_path, table, cut_row)
    with pytest.raises(OpenFaceFormatError, match=r"line 6 is short") as excinfo:
        read_openface(path)
    assert path.name in str(excinfo.value)


def test_the_line_named_is_the_line_in_the_file_even_after_a_blank_line(tmp_path, table):
    """A blank line is skipped, but the line number given must still be the file's own."""
    path = write_edited(tmp_path, table, set_cell("x_5", 7, "abc"))  # file line 9
    lines = path.read_text().splitlines()
    lines.insert(3, "")  # a blank file line 4: the bad value moves to file line 10
    path.write_text("\n".join(lines) + "\n")
    assert path.read_text().splitlines()[9].split(", ")[table[0].index("x_5")] == "abc"
    with pytest.raises(OpenFaceFormatError) as excinfo:
        read_openface(path)
    assert "column 'x_5', line 10:" in str(excinfo.value)


# --- rows out of order, and landmarks that cannot be a face in the video --------------------

FRAME_SIZE = (192, 192)  # the sample video's (height, width)
LANDMARKS = [f"{axis}_{i}" for axis in "xy" for i in range(68)]


@pytest.fixture(scope="module")
def sample_rows(csv_path) -> pd.DataFrame:
    return pd.read_csv(csv_path, skipinitialspace=True)


@contextlib.contextmanager
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def write_rows(tmp_path: Path, rows: pd.DataFrame, name: str = "edited.openface.csv") -> Path:
    path = tmp_path / name
    rows.to_csv(path, index=False)
    return path


def test_shuffled_rows_are_read_in_frame_order(tmp_path, sample_rows, imported):
    faces, aus = read_openface(write_rows(tmp_path, sample_rows.sample(frac=1, random_state=0)))
    expected_faces, expected_aus = imported
    np.testing.assert_array_equal(faces.landmarks, expected_faces.landmarks)
    np.testing.assert_array_equal(faces.confidence, expected_faces.confidence)
    np.testing.assert_array_equal(aus.values, expected_aus.values)
    np.testing.assert_array_equal(aus.seconds.values, expected_aus.seconds.values)


def test_a_repeated_frame_names_the_file_the_frame_and_both_lines(tmp_path, sample_rows):
    doubled = pd.concat([sample_rows.iloc[:100], sample_rows.iloc[[41]], sample_rows.iloc[100:]])
    path = write_rows(tmp_path, doubled)
    with pytest.raises(OpenFaceFormatError, match=r"frame 42 has two rows \(lines 43 and 102\)") as excinfo:
        read_openface(path)
    assert path.name in str(excinfo.value)


@pytest.mark.parametrize("frame", ["0", "-3", "2.5"])
def test_a_frame_number_that_is_not_whole_from_one_is_refused(tmp_path, table, frame):
    path = write_edited(tmp_path, table, set_cell("frame", 9, frame))
    with pytest.raises(OpenFaceFormatError, match=rf"column 'frame', line 11: {frame} is not a frame number"):
        read_openface(path)


def test_frames_without_a_row_have_no_face_and_keep_their_place(tmp_path, sample_rows, imported):
    dropped = [0, 10, 11]  # frame 1 (the file starts late) and a gap at frames 11-12
    path = write_rows(tmp_path, sample_rows.drop(index=dropped))
    with pytest.warns(NoFaceWarning, match=r"no row for 3 of 250 frames \(1, 11, 12\)"):
        faces, aus = read_openface(path)
    expected_found = np.ones(N_FRAMES, bool)
    expected_found[dropped] = False
    np.testing.assert_array_equal(faces.face_found, expected_found)
    np.testing.assert_array_equal(aus.face_found.values, expected_found)
    np.testing.assert_array_equal(aus.time.values, np.arange(N_FRAMES))
    assert np.isnan(aus.values[dropped]).all() and np.isnan(faces.landmarks[dropped]).all()
    np.testing.assert_array_equal(faces.landmarks[expected_found], imported[0].landmarks[expected_found])
    # the sample's timestamps are regular, so filled ones must equal the dropped ones
    np.testing.assert_allclose(aus.seconds.values, imported[1].seconds.values, atol=1e-9)


def test_a_file_whose_frame_numbers_mostly_have_no_row_is_refused(tmp_path, sample_rows):
    spaced = sample_rows.assign(frame=sample_rows.frame * 3)
    with pytest.raises(OpenFaceFormatError, match="frame numbers run to 750 but there are only 250 rows"):
        read_openface(write_rows(tmp_path, spaced))
    huge = sample_rows.assign(frame=sample_rows.frame.astype(float) * 1e12)  # must not allocate 1e14 frames
    with pytest.raises(OpenFaceFormatError, match="frame numbers run to"):
        read_openface(write_rows(tmp_path, huge))


@pytest.mark.parametrize(
    "value, frame_size",
    [("1e300", None), ("1e300", FRAME_SIZE), ("nan", None), ("inf", FRAME_SIZE), ("-500", FRAME_SIZE),
     ("-1e6", None)],
)
def test_a_row_whose_landmarks_cannot_be_a_face_is_a_frame_without_one(tmp_path, table, value, frame_size,
                                                                       imported):
    path = write_edited(tmp_path, table, set_cell("x_30", 12, value))
    with pytest.warns(NoFaceWarning, match=r"1 of 250 frames \(13\) with a face have landmarks"):
        faces, aus = read_openface(path, frame_size=frame_size)
    expected_found = np.arange(N_FRAMES) != 12
    np.testing.assert_array_equal(faces.face_found, expected_found)
    np.testing.assert_array_equal(aus.face_found.values, expected_found)
    assert np.isnan(aus.values[12]).all() and np.isnan(faces.landmarks[12]).all()
    np.testing.assert_array_equal(faces.landmarks[expected_found], imported[0].landmarks[expected_found])
    assert faces.frame_size == (frame_size or imported[0].frame_size)


def test_landmarks_a_little_outside_the_frame_are_kept(tmp_path, sample_rows):
    """A face cut by the frame edge: OpenFace places its hidden points beyond it."""
    shifted = sample_rows.copy()
    shifted.loc[5:9, [f"x_{i}" for i in range(68)]] -= 120  # the jaw's left end moves to about x = -70
    with no_warnings():
        faces, _ = read_openface(write_rows(tmp_path, shifted), frame_size=FRAME_SIZE)
    assert faces.face_found.all() and faces.landmarks[5:10, :, 0].min() < -60


def test_without_frame_size_only_finite_and_sane_values_are_checked(tmp_path, table):
    path = write_edited(tmp_path, table, set_cell("x_30", 12, "-500"))
    with no_warnings():
        faces, _ = read_openface(path)
    assert faces.face_found.all()
    with pytest.warns(NoFaceWarning, match=r"\(13\)"):
        assert not read_openface(path, frame_size=FRAME_SIZE)[0].face_found[12]


def test_a_rejected_row_without_success_does_not_warn(tmp_path, table):
    def lose_face_with_garbage(header, rows):
        rows[12][header.index("success")] = "0"
        rows[12][header.index("x_30")] = "1e300"

    with no_warnings():
        faces, _ = read_openface(write_edited(tmp_path, table, lose_face_with_garbage), frame_size=FRAME_SIZE)
    assert faces.face_found.sum() == N_FRAMES - 1


@pytest.mark.parametrize("frame_size", [None, FRAME_SIZE])
def test_a_file_with_no_usable_landmarks_is_refused_by_name(tmp_path, sample_rows, frame_size):
    path = write_rows(tmp_path, sample_rows.assign(x_0=1e30))
    with pytest.raises(OpenFaceFormatError, match="every frame with a face .250. has landmarks") as excinfo:
        read_openface(path, frame_size=frame_size)
    assert path.name in str(excinfo.value)


@pytest.mark.parametrize("frame_size", [(0, 192), (192,), "big", (float("nan"), 192)])
def test_a_frame_size_that_is_not_a_size_is_refused(csv_path, frame_size):
    with pytest.raises(OpenFaceFormatError, match="frame_size must be the video's"):
        read_openface(csv_path, frame_size=frame_size)


def test_one_broken_value_does_not_blank_the_frames_around_it_in_a_cube(tmp_path, table):
    """The bug this guards: a 1e300 landmark made the smoothed crop NaN for 13 frames,
    which the cube then gave all to background while saying face_found=True."""
    video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=32)
    with pytest.warns(NoFaceWarning):
        faces, _ = read_openface(write_edited(tmp_path, table, set_cell("x_30", 10, "1e300")), frame_size=FRAME_SIZE)
        cube = ex.explain(ex.models.load("demo"), video, faces=faces[:32], methods=["gradcam"], progress=False)
    all_background = (cube.region_area.sel(region="background") == cube.region_area.sum("region")).values
    np.testing.assert_array_equal(all_background, ~cube.face_found.values)
    assert np.flatnonzero(all_background).tolist() == [10]


def test_the_cli_says_what_is_wrong_with_the_csv_in_one_line(tmp_path, sample_rows, capsys):
    from expresso_xai.cli import main

    path = write_rows(tmp_path, sample_rows.assign(x_0=1e30))
    video = ex.samples.sample_path("participant_low")
    code = main(["explain", str(video), "--openface", str(path), "--out", str(tmp_path / "cube.nc")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and path.name in err and "Traceback" not in err and "cv2" not in err

