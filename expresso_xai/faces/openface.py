"""Importing OpenFace 2.0 ``FeatureExtraction`` CSV files: landmarks and action units.

OpenFace writes one row per frame with a header whose names follow a comma *and a
space* (``frame, face_id, timestamp, confidence, success, ...``). Its 2D landmarks are
``x_0 … x_67`` and ``y_0 … y_67`` in pixels, its action units ``AUxx_r`` (intensity,
0–5) and ``AUxx_c`` (presence, 0 or 1). Frames are numbered from 1.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..errors import OpenFaceFormatError
from .facetrack import FaceTrack

_REQUIRED = ("frame", "success") + tuple(f"x_{i}" for i in range(68)) + tuple(f"y_{i}" for i in range(68))


def read_openface(csv_path: str | Path, frame_size: tuple[int, int] | None = None):
    """Read an OpenFace 2.0 FeatureExtraction CSV.

    Args:
        csv_path: the CSV file.
        frame_size: ``(height, width)`` of the video; default: estimated from the
            landmarks (OpenFace does not record it).

    Returns:
        ``(faces, action_units)``: a :class:`FaceTrack` (rows with ``success == 0`` get
        ``face_found=False``; ``confidence`` from the CSV) and an ``xarray.DataArray``
        ``(time, au)`` of intensities (``AUxx_r``, NaN for units OpenFace only detects,
        such as AU28) with a ``presence`` coordinate ``(time, au)`` from ``AUxx_c``
        (NaN where OpenFace gives no presence). ``time`` is the 0-based frame index and
        ``seconds`` the CSV's timestamp.

    Raises:
        OpenFaceFormatError: a landmark column is missing, or a value is not a finite
        number (the message names the column and the CSV line).

    Example:
        >>> import expresso_xai as ex
        >>> faces, aus = ex.faces.read_openface(ex.samples.sample_path("participant_low", "openface"))
        >>> aus.dims, "AU45" in aus.au.values, faces.landmarks.shape[1:]
        (('time', 'au'), True, (68, 2))
    """
    table = _Table.read(Path(csv_path))
    frames = table.numbers("frame").astype(np.int64)
    success = table.numbers("success") > 0.5
    landmarks = _landmarks(table)
    confidence = table.numbers("confidence") if "confidence" in table.column else success.astype(float)
    timestamps = table.numbers("timestamp") if "timestamp" in table.column else (frames - 1) / 25.0
    faces = _face_track(landmarks, success, confidence, frame_size, source=str(table.path))
    return faces, _action_units(table, frames, timestamps, success)


class _Table:
    """The data rows of an OpenFace CSV and their line numbers in the file, with numeric
    columns read by name (an error names the column and the line)."""

    def __init__(self, path: Path, header: list[str], numbered: list[tuple[int, list[str]]]):
        self.path, self.header = path, header
        self.column = {name: i for i, name in enumerate(header)}
        self.lines = [line for line, _ in numbered]  # file line of each row, for error messages
        self.rows = [row for _, row in numbered]

    @classmethod
    def read(cls, path: Path) -> "_Table":
        """Read the file and check that it has rows and the frame, success and landmark columns."""
        if not path.is_file():
            raise OpenFaceFormatError(f"{path}: file not found")
        with path.open(newline="") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            try:
                header = [name.strip() for name in next(reader)]
            except StopIteration:
                raise OpenFaceFormatError(f"{path}: file is empty, expected an OpenFace CSV header") from None
            # line_num is read after each row, so it is that row's (last) line in the file
            numbered = [(reader.line_num, row) for row in reader if row and any(cell.strip() for cell in row)]
        if not numbered:
            raise OpenFaceFormatError(f"{path}: header but no data rows")
        table = cls(path, header, numbered)
        for name in _REQUIRED:
            if name not in table.column:
                raise OpenFaceFormatError(
                    f"{path}: missing column {name!r}; expected an OpenFace 2.0 FeatureExtraction "
                    "CSV with 2D landmarks (run FeatureExtraction with -2Dfp or no output filter)"
                )
        return table

    def __len__(self) -> int:
        return len(self.rows)

    def numbers(self, name: str) -> np.ndarray:
        """The column as float64, every row present and finite."""
        index = self.column[name]
        for line, row in zip(self.lines, self.rows):
            if index >= len(row):
                raise OpenFaceFormatError(f"{self.path}: line {line} is short, has no value for column {name!r}")
        texts = [row[index].strip() for row in self.rows]
        try:
            values = np.array(texts, dtype=np.float64)
        except ValueError:
            values = None
        if values is None or not np.isfinite(values).all():
            self._refuse_first_bad_cell(name, texts)
        return values

    def _refuse_first_bad_cell(self, name: str, texts: list[str]) -> None:
        for line, text in zip(self.lines, texts):
            try:
                ok = math.isfinite(float(text))
            except ValueError:
                ok = False
            if not ok:
                raise OpenFaceFormatError(f"{self.path}: column {name!r}, line {line}: {text!r} is not a finite number")


def _landmarks(table: _Table) -> np.ndarray:
    """``(T, 68, 2)`` float32 from the columns ``x_0 … x_67`` and ``y_0 … y_67``."""
    xs = np.stack([table.numbers(f"x_{i}") for i in range(68)], axis=1)
    ys = np.stack([table.numbers(f"y_{i}") for i in range(68)], axis=1)
    return np.stack([xs, ys], axis=-1).astype(np.float32)


def _face_track(landmarks: np.ndarray, success: np.ndarray, confidence: np.ndarray,
                frame_size: tuple[int, int] | None, source: str) -> FaceTrack:
    """The track of the rows OpenFace succeeded on; without ``frame_size``, the smallest
    frame that holds their landmarks (OpenFace does not record it)."""
    if frame_size is None:
        valid = landmarks[success]
        frame_size = (0, 0)
        if len(valid):
            frame_size = (int(np.ceil(valid[..., 1].max())) + 1, int(np.ceil(valid[..., 0].max())) + 1)
    return FaceTrack(
        landmarks=landmarks,
        face_found=success,
        confidence=np.clip(confidence, 0, 1),
        boxes=np.concatenate([landmarks.min(axis=1), landmarks.max(axis=1)], axis=1),
        n_faces=(success > 0).astype(np.int32),
        frame_size=frame_size,
        detected=np.ones(len(landmarks), dtype=bool),
        source=source,
        landmarker="openface2",
    )


def _action_units(table: _Table, frames: np.ndarray, timestamps: np.ndarray, success: np.ndarray):
    """``(time, au)`` intensities from ``AUxx_r`` with presence from ``AUxx_c``; NaN where a
    unit has no such column and on rows without a face."""
    import xarray as xr

    intensity_units = sorted(n[:-2] for n in table.header if n.startswith("AU") and n.endswith("_r"))
    presence_units = sorted(n[:-2] for n in table.header if n.startswith("AU") and n.endswith("_c"))
    units = sorted(set(intensity_units) | set(presence_units))
    intensity = np.full((len(table), len(units)), np.nan, dtype=np.float32)
    presence = np.full((len(table), len(units)), np.nan, dtype=np.float32)
    for j, unit in enumerate(units):
        if unit in intensity_units:
            intensity[:, j] = table.numbers(f"{unit}_r")
        if unit in presence_units:
            presence[:, j] = table.numbers(f"{unit}_c")
    intensity[~success] = np.nan
    presence[~success] = np.nan
    return xr.DataArray(
        intensity,
        dims=("time", "au"),
        coords={
            "time": frames - 1,
            "au": units,
            "seconds": ("time", timestamps),
            "presence": (("time", "au"), presence),
            "face_found": ("time", success),
        },
        name="au_intensity",
        attrs={"source": str(table.path), "description": "OpenFace 2.0 AU intensity (0-5); presence in coord"},
    )
