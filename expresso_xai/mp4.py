"""The timing of a video file: an MP4/MOV video track's, read from its boxes, and the
frame rate that decoded timestamps step at.

OpenCV reports a frame rate derived from the container's total duration and frame
count, and a frame count that is the number of stored samples. Both can mislead: a
timing table with frame durations of 0 (a broken muxer, a hand-edited file) gives a
wrong rate, and an edit list (``moov/trak/edts/elst``, written by cameras, editors and
FFmpeg) shows fewer frames than are stored, so a whole file would look truncated.
Reading the boxes themselves lets :mod:`expresso_xai.video` see both.
"""

from __future__ import annotations

import logging
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import VideoTimingWarning

log = logging.getLogger(__name__)

#: The frame rate assumed when a container gives none (one home: video.py uses it too).
DEFAULT_FPS = 25.0


def _boxes(data: bytes, start: int, end: int):
    """``(type, body_start, box_end)`` of the boxes between ``start`` and ``end``."""
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        header = 8
        if size == 1 and offset + 16 <= end:  # 64-bit size
            size, header = struct.unpack(">Q", data[offset + 8:offset + 16])[0], 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            return
        yield kind.decode("latin1"), offset + header, offset + size
        offset += size


def _find(data: bytes, start: int, end: int, kind: str):
    return next(((s, e) for k, s, e in _boxes(data, start, end) if k == kind), None)


def _find_path(data: bytes, start: int, end: int, kinds: str):
    """The body of the box at ``kinds`` (``"minf/stbl/stts"``) below ``(start, end)``."""
    span = (start, end)
    for kind in kinds.split("/"):
        span = _find(data, *span, kind)
        if span is None:
            return None
    return span


def _timescale(data: bytes, body: tuple[int, int]) -> int:
    """The timescale of an ``mvhd`` or ``mdhd`` box (its place depends on the version)."""
    return struct.unpack(">I", data[body[0] + (20 if data[body[0]] == 1 else 12):][:4])[0]


#: More samples than a video track holds (a month at 25 fps): a table that claims more is
#: broken, and expanding it would exhaust memory.
MAX_SAMPLES = 1 << 26


def _runs(data: bytes, body: tuple[int, int], dtype: str) -> np.ndarray:
    """A run-length table (``stts``, ``ctts``): its ``(count, value)`` entries expanded."""
    count = struct.unpack(">I", data[body[0] + 4:body[0] + 8])[0]
    table = np.frombuffer(data[body[0] + 8:body[0] + 8 + 8 * count], dtype=dtype).reshape(-1, 2)
    counts = table[:, 0].astype(np.uint32).astype(np.int64)
    if counts.sum() > MAX_SAMPLES:
        raise ValueError("timing table claims more samples than any video has")
    return np.repeat(table[:, 1].astype(np.int64), counts)


def _edits(data: bytes, trak: tuple[int, int]):
    """``(segment duration, media time, rate)`` of each entry of the track's edit list,
    durations in the movie's timescale; ``None`` without an edit list."""
    elst = _find_path(data, *trak, "edts/elst")
    if elst is None:
        return None
    layout = ">Qqhh" if data[elst[0]] == 1 else ">Iihh"
    size, start = struct.calcsize(layout), elst[0] + 8
    count = min(struct.unpack(">I", data[elst[0] + 4:start])[0], (elst[1] - start) // size)
    entries = (struct.unpack(layout, data[start + i * size:start + (i + 1) * size]) for i in range(count))
    return tuple((duration, media_time, rate) for duration, media_time, rate, _fraction in entries)


@dataclass(frozen=True, eq=False)
class Timing:
    """The timing of one video track, from its boxes.

    Attributes:
        timescale: ticks per second of the track's media times.
        durations: ``(N,)`` each stored sample's duration in ticks, in decoding order (``stts``).
        offsets: ``(N,)`` each sample's presentation offset in ticks (``ctts``; zeros without one).
        edits: the edit list's ``(duration, media time)`` entries with durations in ticks of
            the track (media time ``-1``: an empty edit, a delay), or ``None`` without an
            edit list; ``()`` when an entry cannot be followed (a rate other than 1).
    """

    timescale: int
    durations: np.ndarray
    offsets: np.ndarray
    edits: tuple | None

    @property
    def times(self) -> np.ndarray:
        """``(N,)`` each sample's presentation time in ticks."""
        return np.concatenate([[0], np.cumsum(self.durations)[:-1]]) + self.offsets

    def shown(self) -> np.ndarray | None:
        """How many times each stored sample is shown ``(N,)``: once without an edit
        list, else once for each edit whose media window ``[time, time + duration)``
        holds its presentation time (frames an edit skips are decoded but never shown);
        ``None`` for an edit list that cannot be followed or shows nothing."""
        if self.edits is None:
            return np.ones(len(self.durations), dtype=np.int64)
        if self.edits == ():
            return None
        times, shown = self.times, np.zeros(len(self.durations), dtype=np.int64)
        for duration, media_time in self.edits:
            if media_time >= 0:  # -1: an empty edit (a delay) shows no frame
                shown += (times >= media_time) & (times < media_time + duration)
        return shown if shown.any() else None

    def n_shown(self) -> int | None:
        """The number of frames a player shows (the stored samples the edit list keeps);
        ``None`` for an edit list that cannot be followed or shows nothing.

        Example:
            >>> import expresso_xai as ex
            >>> read_timing(ex.samples.sample_path("participant_low")).n_shown()
            250
        """
        shown = self.shown()
        return None if shown is None else int(shown.sum())


def _track_timing(data: bytes, trak: tuple[int, int], movie_timescale: int) -> Timing | None:
    mdia = _find(data, *trak, "mdia")
    if mdia is None:
        return None
    hdlr, mdhd = _find(data, *mdia, "hdlr"), _find(data, *mdia, "mdhd")
    if hdlr is None or mdhd is None or data[hdlr[0] + 8:hdlr[0] + 12] != b"vide":
        return None
    timescale = _timescale(data, mdhd)
    stts = _find_path(data, *mdia, "minf/stbl/stts")
    if stts is None or timescale <= 0:
        return None
    durations = _runs(data, stts, ">u4")
    ctts = _find_path(data, *mdia, "minf/stbl/ctts")
    offsets = np.zeros_like(durations)
    if ctts is not None:
        # Version 0 offsets are unsigned, but writers put negative ones there too.
        found = _runs(data, ctts, ">i4")[:len(durations)]
        offsets[:len(found)] = found
    edits = _edits(data, trak)
    if edits is not None:
        scale = timescale / movie_timescale if movie_timescale > 0 else None
        followable = scale is not None and all(rate == 1 for _, _, rate in edits)
        edits = tuple((round(duration * scale), media_time) for duration, media_time, _ in edits) \
            if followable else ()
    return Timing(timescale, durations, offsets, edits)


def _read_moov(path: Path, limit: int = 64 << 20) -> bytes | None:
    """The ``moov`` box's bytes, found by skipping from box header to box header (the
    media data before it is never read)."""
    with open(path, "rb") as handle:
        while True:
            header = handle.read(16)
            if len(header) < 8:
                return None
            size, kind = struct.unpack(">I4s", header[:8])
            skip = 8
            if size == 1 and len(header) == 16:
                size, skip = struct.unpack(">Q", header[8:16])[0], 16
            if kind == b"moov":
                if size > limit or size < skip:
                    return None
                handle.seek(-len(header), 1)
                return handle.read(size)
            if size < skip:  # size 0 (to the end) or garbage: no moov to find
                return None
            handle.seek(size - len(header), 1)


def read_timing(path: str | Path) -> Timing | None:
    """The :class:`Timing` of the first video track of an MP4/MOV file, or ``None`` for
    another container or a file whose boxes cannot be read.

    Example:
        >>> import expresso_xai as ex
        >>> timing = read_timing(ex.samples.sample_path("participant_low"))
        >>> len(timing.durations), timing.timescale / float(timing.durations[0])
        (250, 25.0)
    """
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".mov", ".m4v"):
        return None
    try:
        moov = _read_moov(path)
        if moov is None:
            return None
        header = 16 if struct.unpack(">I", moov[:4])[0] == 1 else 8
        mvhd = _find(moov, header, len(moov), "mvhd")
        movie_timescale = _timescale(moov, mvhd) if mvhd is not None else 0
        for kind, start, end in _boxes(moov, header, len(moov)):
            if kind == "trak":
                timing = _track_timing(moov, (start, end), movie_timescale)
                if timing is not None:
                    return timing
    except (OSError, struct.error, ValueError):
        return None
    return None


def frame_durations(path: str | Path):
    """``(timescale, durations)`` of the first video track of an MP4/MOV file: each
    frame's duration in ticks of ``1 / timescale`` seconds, from its ``stts`` table; or
    ``None`` for another container or a file whose boxes cannot be read.

    Example:
        >>> import expresso_xai as ex
        >>> timescale, durations = frame_durations(ex.samples.sample_path("participant_low"))
        >>> len(durations), timescale / float(durations[0])
        (250, 25.0)
    """
    timing = read_timing(path)
    return None if timing is None else (timing.timescale, timing.durations)


# --- frame rates ------------------------------------------------------------------------


#: A frame rate read from the timestamps replaces the header's when they differ by more
#: than this share: containers derive their rate from the total duration, which one long
#: last frame (common in phone and edited files) lowers, e.g. 23.67 for a 24 fps clip.
RATE_TOLERANCE = 0.005


def checked_rate(path: Path, fps: float, timing: Timing | None) -> tuple[float, bool]:
    """The frame rate to use, and whether timestamps must come from it: the container's
    rate ``fps``, or the rate the timing table's shown frames step at where the two
    differ (:func:`rate_from_timestamps`: known before any frame is decoded, however
    few are read); but if the table gives frames a duration of 0 (OpenCV's rate is then
    wrong, e.g. 0.52 fps), the table's typical frame duration, with a warning.

    Example:
        >>> checked_rate(Path("clip.mp4"), 23.67, None)  # no timing table: the rate stands
        (23.67, False)
        >>> steps = np.array([512] * 97 + [1210])  # a 24 fps clip with one long last frame
        >>> checked_rate(Path("clip.mp4"), 23.67, Timing(12288, steps, 0 * steps, None))
        (24.0, False)
    """
    if timing is None:
        return fps, False
    shown = timing.shown()
    if not (timing.durations == 0).any():
        stamps = np.sort(timing.times[shown > 0]) / timing.timescale if shown is not None else ()
        return rate_from_timestamps(stamps, fps, path), False
    durations = timing.durations
    steps = durations[durations > 0]
    rate = timing.timescale / float(np.median(steps)) if steps.size else DEFAULT_FPS
    warnings.warn(f"{path}: {int((durations == 0).sum())} of {len(durations)} frames have a duration of 0 in the "
                  f"container's timing table, so its frame rate ({fps:.3g} fps) cannot be trusted; using {rate:g} fps"
                  + ("" if steps.size else " (the default)") + " and evenly spaced timestamps",
                  VideoTimingWarning, stacklevel=4)
    return rate, True


def _snapped(rate: float) -> float:
    """A measured rate as the nominal one it is (24, or NTSC's 30000/1001) when it is
    within 0.01% of it, else to three decimals.

    Example:
        >>> _snapped(1 / 0.041666667), round(_snapped(1 / 0.033366667), 5)
        (24.0, 29.97003)
    """
    for nominal in (round(rate), round(rate * 1.001) / 1.001):
        if nominal > 0 and abs(rate - nominal) <= 1e-4 * rate:
            return float(nominal)
    return round(rate, 3)


def rate_from_timestamps(timestamps: np.ndarray, fps: float, source=None) -> float:
    """The frame rate the ``timestamps`` (seconds) step at, when it differs from the
    header's ``fps`` by more than :data:`RATE_TOLERANCE`; else ``fps``. The median step
    is used, so one long or short frame does not move it; fewer than three timestamps
    say nothing. A replaced rate is logged, naming ``source``.

    Example:
        >>> stamps = np.arange(10) / 24.0  # a 24 fps clip whose header says 23.67
        >>> rate_from_timestamps(stamps, 23.67), rate_from_timestamps(stamps, 24.05)
        (24.0, 24.05)
    """
    steps = np.diff(np.asarray(timestamps, dtype=np.float64))
    if len(steps) < 2 or not float(np.median(steps)) > 0:
        return fps
    rate = _snapped(1.0 / float(np.median(steps)))
    if abs(rate - fps) <= RATE_TOLERANCE * rate:
        return fps
    log.info("%s: the header says %.4g fps but the timestamps step at 1/%g s; using %g fps",
             source or "video", fps, rate, rate)
    return rate
