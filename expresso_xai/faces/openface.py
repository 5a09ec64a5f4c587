"""Importing OpenFace 2.0 ``FeatureExtraction`` CSV files: landmarks and action units.

OpenFace writes one row per frame with a header whose names follow a comma *and a
space* (``frame, face_id, timestamp, confidence, success, ...``). Its 2D landmarks are
``x_0 … x_67`` and ``y_0 … y_67`` in pixels, its action units ``AUxx_r`` (intensity,
0–5) and ``AUxx_c`` (presence, 0 or 1). Frames are numbered from 1.

A CSV is a file anyone may have edited, so the import checks what the rest of the
library relies on: rows are put in ``frame`` order, one row per frame, and a frame whose
landmarks cannot be a face in the video is a frame without a face (see
:func:`read_openface` for the rules).
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import numpy as np

from ..errors import NoFaceWarning, OpenFaceFormatError
from .facetrack import FaceTrack

_REQUIRED = ("frame", "success") + tuple(f"x_{i}" for i in range(68)) + tuple(f"y_{i}" for i in range(68))

#: How far landmarks may lie outside the frame, as a share of its width (x) or height (y).
#: OpenFace places the hidden points of a face cut by the frame edge a little beyond it,
#: never half a frame away.
FRAME_MARGIN = 0.5

#: Larger landmark coordinates are broken values whatever the frame: no video is this many
#: pixels across, and the crop's float32 arithmetic overflows long before 1e300.
MAX_PIXELS = 1e5

#: OpenFace's own frame rate when a CSV has no ``timestamp`` column.
_DEFAULT_FPS = 25.0


def read_openface(csv_path: str | Path, frame_size: tuple[int, int] | None = None):
    """Read an OpenFace 2.0 FeatureExtraction CSV.

    Args:
        csv_path: the CSV file.
        frame_size: ``(height, width)`` of the video; default: estimated from the
            landmarks (OpenFace does not record it). Pass it whenever you know it: only
            then can landmarks be checked against the frame.

    Returns:
        ``(faces, action_units)``: a :class:`FaceTrack` (rows with ``success == 0`` get
        ``face_found=False``; ``confidence`` from the CSV) and an ``xarray.DataArray``
        ``(time, au)`` of intensities (``AUxx_r``, NaN for units OpenFace only detects,
        such as AU28) with a ``presence`` coordinate ``(time, au)`` from ``AUxx_c``
        (NaN where OpenFace gives no presence). ``time`` is the 0-based frame index and
        ``seconds`` the CSV's timestamp.

    The rules for rows and landmarks:

    - Rows are taken in the order of their ``frame`` numbers, not of the file; frame
      ``n`` is ``time`` ``n - 1``. A frame number must be a whole number from 1, and
      appear once.
    - A frame number with no row (a gap, or a first row after frame 1) gets
      ``face_found=False``, NaN action units and an interpolated ``seconds``, with a
      :class:`~expresso_xai.errors.NoFaceWarning` that counts such frames. A file in
      which they would outnumber the rows is refused: OpenFace writes a row for every
      frame (with ``success`` 0 where it lost the face).
    - A row whose landmarks are not all finite, or lie beyond ``MAX_PIXELS``, or,
      when ``frame_size`` is given, beyond the frame by more than ``FRAME_MARGIN``
      of its width or height, is a frame with ``face_found=False`` (and NaN action
      units), with a ``NoFaceWarning`` that counts them. When that leaves no face in a
      file where OpenFace found one, the file is refused.

    Raises:
        OpenFaceFormatError: a landmark column is missing; a value is not a number, or
            (outside the landmarks) not a finite one; a frame number is repeated or not
            a whole number from 1 (each message names the CSV, the column and line or
            the frame); most frames have no row; or no frame has usable landmarks.

    Example:
        >>> import expresso_xai as ex
        >>> faces, aus = ex.faces.read_openface(ex.samples.sample_path("participant_low", "openface"))
        >>> aus.dims, "AU45" in aus.au.values, faces.landmarks.shape[1:]
        (('time', 'au'), True, (68, 2))
    """
    frame_size = _checked_frame_size(frame_size)
    table = _Table.read(Path(csv_path))
    frames = _frame_numbers(table)
    landmarks = _landmarks(table)
    success = _usable_faces(table, frames, landmarks, table.numbers("success") > 0.5, frame_size)
    landmarks[~success] = np.nan  # before float32: a refused 1e300 would overflow the cast
    confidence = table.numbers("confidence") if "confidence" in table.column else success.astype(float)
    timestamps = table.numbers("timestamp") if "timestamp" in table.column else (frames - 1) / _DEFAULT_FPS
    by_frame = _ByFrame(frames, table.path)
    faces = _face_track(by_frame.spread(landmarks.astype(np.float32), np.nan), by_frame.spread(success, False),
                        by_frame.spread(confidence, 0.0), frame_size, source=str(table.path))
    return faces, _action_units(table, by_frame, _seconds(frames, timestamps), faces.face_found)


def read_openface_for(csv_path: str | Path, video, max_frames: int | None = None, streamed: bool = False):
    """:func:`read_openface` for one video: the frame size is the video's, and the CSV
    must have one row per frame of the video (with ``max_frames``, the video was read
    only that far and the CSV is cut to match). Returns ``(faces, action_units)``.
    ``streamed=True``: ``video`` is only the file's first frame (the file is explained
    streamed), so the rows are checked against the frame count the file announces (and
    the run checks them against the frames it decodes).

    Raises:
        OpenFaceFormatError: the row count differs from the video's frames (naming both).

    Example:
        >>> import expresso_xai as ex
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=10)
        >>> faces, aus = read_openface_for(ex.samples.sample_path("participant_low", "openface"), video, max_frames=10)
        >>> len(faces), aus.sizes["time"]
        (10, 10)
    """
    faces, action_units = read_openface(csv_path, frame_size=(video.height, video.width))
    if streamed:
        if video.n_frames_expected not in (None, len(faces)):
            raise OpenFaceFormatError(f"{csv_path}: {len(faces)} rows but {video.source or 'the video'} has "
                                      f"{video.n_frames_expected} frames")
        return faces, action_units
    if max_frames is not None and len(faces) >= video.n_frames:
        faces, action_units = faces[: video.n_frames], action_units.isel(time=slice(0, video.n_frames))
    if len(faces) != video.n_frames:
        raise OpenFaceFormatError(f"{csv_path}: {len(faces)} rows but {video.source or 'the video'} has "
                                  f"{video.n_frames} frames")
    return faces, action_units


def _checked_frame_size(frame_size) -> tuple[int, int] | None:
    if frame_size is None:
        return None
    try:
        height, width = (float(side) for side in frame_size)
    except (TypeError, ValueError):
        height = width = math.nan
    if not (height >= 1 and width >= 1 and math.isfinite(height * width)):
        raise OpenFaceFormatError(f"frame_size must be the video's (height, width) in pixels, not {frame_size!r}")
    return int(height), int(width)


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

    def reorder(self, order: np.ndarray) -> None:
        """Put the rows (and their line numbers) in ``order``."""
        self.lines = [self.lines[i] for i in order]
        self.rows = [self.rows[i] for i in order]

    def numbers(self, name: str, finite: bool = True) -> np.ndarray:
        """The column as float64, every row present and a number (and finite, unless
        ``finite=False`` lets ``nan`` and ``inf`` through)."""
        index = self.column[name]
        for line, row in zip(self.lines, self.rows):
            if index >= len(row):
                raise OpenFaceFormatError(f"{self.path}: line {line} is short, has no value for column {name!r}")
        texts = [row[index].strip() for row in self.rows]
        try:
            values = np.array(texts, dtype=np.float64)
        except ValueError:
            values = None
        if values is None or (finite and not np.isfinite(values).all()):
            self._refuse_first_bad_cell(name, texts, finite)
        return values

    def _refuse_first_bad_cell(self, name: str, texts: list[str], finite: bool) -> None:
        for line, text in zip(self.lines, texts):
            try:
                ok = math.isfinite(float(text)) or not finite
            except ValueError:
                ok = False
            if not ok:
                raise OpenFaceFormatError(f"{self.path}: column {name!r}, line {line}: {text!r} is not a finite number")


def _frame_numbers(table: _Table) -> np.ndarray:
    """OpenFace's frame numbers, whole, from 1 and each once, in increasing order; the
    table's rows are put in the same order."""
    frames = table.numbers("frame")
    bad = np.flatnonzero((frames < 1) | (frames != np.floor(frames)))
    if len(bad):
        raise OpenFaceFormatError(f"{table.path}: column 'frame', line {table.lines[bad[0]]}: {frames[bad[0]]:g} "
                                  "is not a frame number (OpenFace numbers frames 1, 2, 3, ...)")
    # Checked before any array of that length is made: a frame number of 1e12 would not fit in memory.
    if frames.max() > 2 * len(table):
        raise OpenFaceFormatError(
            f"{table.path}: frame numbers run to {frames.max():.0f} but there are only {len(table)} rows; OpenFace "
            "writes a row for every frame (success 0 where it lost the face), so keep the rows it wrote")
    order = np.argsort(frames, kind="stable")
    table.reorder(order)
    frames = frames[order].astype(np.int64)
    repeated = np.flatnonzero(np.diff(frames) == 0)
    if len(repeated):
        first = repeated[0]
        raise OpenFaceFormatError(f"{table.path}: frame {frames[first]} has two rows (lines {table.lines[first]} and "
                                  f"{table.lines[first + 1]}); keep one row per frame")
    return frames


def _landmarks(table: _Table) -> np.ndarray:
    """``(rows, 68, 2)`` float64 from the columns ``x_0 … x_67`` and ``y_0 … y_67``; ``nan`` and
    ``inf`` are let through, for :func:`_usable_faces` to judge the row."""
    xs = np.stack([table.numbers(f"x_{i}", finite=False) for i in range(68)], axis=1)
    ys = np.stack([table.numbers(f"y_{i}", finite=False) for i in range(68)], axis=1)
    return np.stack([xs, ys], axis=-1)


def _usable_faces(table: _Table, frames: np.ndarray, landmarks: np.ndarray, success: np.ndarray,
                  frame_size: tuple[int, int] | None) -> np.ndarray:
    """``success`` less the rows whose landmarks cannot be a face in the video (rules in
    :func:`read_openface`), with a warning that counts them, or an error if none is left."""
    usable = (np.abs(landmarks) <= MAX_PIXELS).all(axis=(1, 2))  # False for nan and inf too
    broken = f"not finite or beyond {MAX_PIXELS:.0f} pixels"
    if frame_size is not None:
        extent = np.array(frame_size[::-1], dtype=np.float64)  # (width, height), as landmarks are (x, y)
        inside = (landmarks >= -FRAME_MARGIN * extent) & (landmarks <= (1 + FRAME_MARGIN) * extent)
        usable &= inside.all(axis=(1, 2))
        broken = (f"not finite, or outside the {frame_size[0]}x{frame_size[1]} frame by more than "
                  f"{FRAME_MARGIN:.0%} of its size")
    refused = success & ~usable
    if not refused.any():
        return success
    if not (success & usable).any():
        raise OpenFaceFormatError(
            f"{table.path}: every frame with a face ({int(refused.sum())}) has landmarks that are {broken}; "
            "check that the CSV belongs to this video and holds OpenFace's 2D landmarks in pixels")
    warnings.warn(f"{table.path}: {_count(frames[refused], int(success.sum()))} with a face have landmarks that "
                  f"are {broken}; they get face_found=False", NoFaceWarning, stacklevel=3)
    return success & usable


def _count(frames: np.ndarray, out_of: int) -> str:
    """``"2 of 250 frames (13, 14)"``, the first few frame numbers only."""
    shown = ", ".join(str(int(frame)) for frame in frames[:5]) + (", ..." if len(frames) > 5 else "")
    return f"{len(frames)} of {out_of} frames ({shown})"


class _ByFrame:
    """Spreads per-row arrays onto every frame ``1 … max(frame)``, filling frames without a row."""

    def __init__(self, frames: np.ndarray, path: Path):
        self.n_frames = int(frames[-1])
        self.positions = frames - 1
        missing = np.setdiff1d(np.arange(1, self.n_frames + 1), frames)
        if len(missing):
            warnings.warn(f"{path}: no row for {_count(missing, self.n_frames)}; they get face_found=False",
                          NoFaceWarning, stacklevel=3)

    def spread(self, values: np.ndarray, fill) -> np.ndarray:
        full = np.full((self.n_frames,) + values.shape[1:], fill, dtype=values.dtype)
        full[self.positions] = values
        return full


def _seconds(frames: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """The timestamp of every frame ``1 … max(frame)``: the CSV's where it has a row,
    interpolated in gaps, and extrapolated at the CSV's mean rate before its first row."""
    every = np.arange(1, int(frames[-1]) + 1)
    span = frames[-1] - frames[0]
    per_frame = (timestamps[-1] - timestamps[0]) / span if span else 1 / _DEFAULT_FPS
    seconds = np.interp(every, frames, timestamps)
    seconds[every < frames[0]] = timestamps[0] + (every[every < frames[0]] - frames[0]) * per_frame
    seconds[frames - 1] = timestamps
    return seconds


def _face_track(landmarks: np.ndarray, success: np.ndarray, confidence: np.ndarray,
                frame_size: tuple[int, int] | None, source: str) -> FaceTrack:
    """The track of the frames with a face; without ``frame_size``, the smallest frame that
    holds their landmarks (OpenFace does not record it)."""
    estimated = frame_size is None
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
        frame_size_estimated=estimated,
    )


def _action_units(table: _Table, by_frame: _ByFrame, seconds: np.ndarray, face_found: np.ndarray):
    """``(time, au)`` intensities from ``AUxx_r`` with presence from ``AUxx_c``; NaN where a
    unit has no such column and on frames without a face."""
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
    intensity, presence = by_frame.spread(intensity, np.nan), by_frame.spread(presence, np.nan)
    intensity[~face_found] = np.nan
    presence[~face_found] = np.nan
    return xr.DataArray(
        intensity,
        dims=("time", "au"),
        coords={
            "time": np.arange(by_frame.n_frames),
            "au": units,
            "seconds": ("time", seconds),
            "presence": (("time", "au"), presence),
            "face_found": ("time", face_found),
        },
        name="au_intensity",
        attrs={"source": str(table.path), "description": "OpenFace 2.0 AU intensity (0-5); presence in coord"},
    )
