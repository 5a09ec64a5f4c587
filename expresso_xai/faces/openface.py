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
    import xarray as xr

    path = Path(csv_path)
    if not path.is_file():
        raise OpenFaceFormatError(f"{path}: file not found")
    with path.open(newline="") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise OpenFaceFormatError(f"{path}: file is empty, expected an OpenFace CSV header") from None
        numbered = [(reader.line_num, row) for row in reader if row and any(cell.strip() for cell in row)]
    lines = [line for line, _ in numbered]  # file line of each row, for error messages
    rows = [row for _, row in numbered]
    if not rows:
        raise OpenFaceFormatError(f"{path}: header but no data rows")
    column = {name: i for i, name in enumerate(header)}
    for name in _REQUIRED:
        if name not in column:
            raise OpenFaceFormatError(
                f"{path}: missing column {name!r}; expected an OpenFace 2.0 FeatureExtraction "
                "CSV with 2D landmarks (run FeatureExtraction with -2Dfp or no output filter)"
            )
    intensity_units = sorted(n[:-2] for n in header if n.startswith("AU") and n.endswith("_r"))
    presence_units = sorted(n[:-2] for n in header if n.startswith("AU") and n.endswith("_c"))
    units = sorted(set(intensity_units) | set(presence_units))

    def numbers(name: str) -> np.ndarray:
        index = column[name]
        for r, row in enumerate(rows):
            if index >= len(row):
                raise OpenFaceFormatError(f"{path}: line {lines[r]} is short, has no value for column {name!r}")
        texts = [row[index].strip() for row in rows]
        try:
            values = np.array(texts, dtype=np.float64)
        except ValueError:
            values = None
        if values is None or not np.isfinite(values).all():
            for r, text in enumerate(texts):  # find the first bad cell to name it
                try:
                    ok = math.isfinite(float(text))
                except ValueError:
                    ok = False
                if not ok:
                    raise OpenFaceFormatError(
                        f"{path}: column {name!r}, line {lines[r]}: {text!r} is not a finite number"
                    )
        return values

    frames = numbers("frame").astype(np.int64)
    success = numbers("success") > 0.5
    n = len(rows)
    xs = np.stack([numbers(f"x_{i}") for i in range(68)], axis=1)
    ys = np.stack([numbers(f"y_{i}") for i in range(68)], axis=1)
    landmarks = np.stack([xs, ys], axis=-1).astype(np.float32)
    confidence = numbers("confidence") if "confidence" in column else success.astype(float)
    timestamps = numbers("timestamp") if "timestamp" in column else (frames - 1) / 25.0

    boxes = np.concatenate([landmarks.min(axis=1), landmarks.max(axis=1)], axis=1)
    if frame_size is None:
        valid = landmarks[success]
        if len(valid):
            frame_size = (int(np.ceil(valid[..., 1].max())) + 1, int(np.ceil(valid[..., 0].max())) + 1)
        else:
            frame_size = (0, 0)
    faces = FaceTrack(
        landmarks,
        success,
        np.clip(confidence, 0, 1),
        boxes,
        (success > 0).astype(np.int32),
        frame_size,
        np.ones(n, dtype=bool),
        source=str(path),
        landmarker="openface2",
    )

    intensity = np.full((n, len(units)), np.nan, dtype=np.float32)
    presence = np.full((n, len(units)), np.nan, dtype=np.float32)
    for j, unit in enumerate(units):
        if unit in intensity_units:
            intensity[:, j] = numbers(f"{unit}_r")
        if unit in presence_units:
            presence[:, j] = numbers(f"{unit}_c")
    intensity[~success] = np.nan
    presence[~success] = np.nan
    action_units = xr.DataArray(
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
        attrs={"source": str(path), "description": "OpenFace 2.0 AU intensity (0-5); presence in coord"},
    )
    return faces, action_units
