"""Importing OpenFace: a researcher already ran OpenFace 2.0 and reads its CSV.

The shipped sample's CSV was written from a ground truth (AU45 intensity is 5 × the
eye-closure track), so the import can be checked against known values; broken copies
of the same CSV must raise a typed error that says which column and line is wrong.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.errors import OpenFaceFormatError
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


@pytest.mark.parametrize("value", ["", "nan", "NaN", "inf"])
@pytest.mark.parametrize("column", ["y_40", "AU12_r"])
def test_an_empty_or_non_finite_value_is_refused(tmp_path, table, value, column):
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
