"""The timing table of an MP4/MOV file's video track, read from its boxes.

OpenCV reports a frame rate derived from the container's total duration and frame
count; a timing table with frame durations of 0 (a broken muxer, a hand-edited file)
silently gives a wrong rate. Reading the table itself lets :mod:`expresso_xai.video`
see that and say so.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl"}


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


def _track_timing(data: bytes, start: int, end: int):
    mdia = _find(data, start, end, "mdia")
    if mdia is None:
        return None
    hdlr, mdhd = _find(data, *mdia, "hdlr"), _find(data, *mdia, "mdhd")
    if hdlr is None or mdhd is None or data[hdlr[0] + 8:hdlr[0] + 12] != b"vide":
        return None
    version = data[mdhd[0]]
    timescale = struct.unpack(">I", data[mdhd[0] + (20 if version == 1 else 12):][:4])[0]
    stts = None
    for kind in ("minf", "stbl", "stts"):
        stts = _find(data, *(stts or mdia), kind)
        if stts is None:
            return None
    count = struct.unpack(">I", data[stts[0] + 4:stts[0] + 8])[0]
    table = np.frombuffer(data[stts[0] + 8:stts[0] + 8 + 8 * count], dtype=">u4").reshape(-1, 2)
    return timescale, np.repeat(table[:, 1], table[:, 0]).astype(np.int64)


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
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".mov", ".m4v"):
        return None
    try:
        moov = _read_moov(path)
    except (OSError, struct.error):
        return None
    if moov is None:
        return None
    header = 16 if struct.unpack(">I", moov[:4])[0] == 1 else 8
    for kind, start, end in _boxes(moov, header, len(moov)):
        if kind == "trak":
            timing = _track_timing(moov, start, end)
            if timing is not None and timing[0] > 0:
                return timing
    return None
