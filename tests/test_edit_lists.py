"""Edit lists and frame rates: a valid file is not called truncated, and its rate is the
one its frames step at (issue #11, item 10).

Cameras, editors and FFmpeg write MP4s whose edit list (``moov/trak/edts/elst``) shows
fewer frames than are stored, and whose header rate is lowered by one long last frame.
The files here are written by OpenCV and their boxes patched in Python: frame ``i`` shows
``i`` in binary as black and white bars, so each decoded frame says which stored frame it is.
"""

from __future__ import annotations

import struct
import warnings

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import expresso_xai as ex
from expresso_xai.errors import ExpressoError, TruncatedVideoWarning
from expresso_xai.mp4 import read_timing

N_STORED = 98
FPS = 24
BITS = 8  # frames are 8 bars of 8 pixels: frame i shows i in binary
TRAK = ["moov", "trak"]
STBL = TRAK + ["mdia", "minf", "stbl"]


# --- writing and patching MP4 boxes ---------------------------------------------------


def _boxes_on(data: bytes, path: list[str]) -> list[tuple[int, int]]:
    """``(offset, size)`` of each box along ``path`` (``["moov", "trak", ...]``)."""
    found, offset, end = [], 0, len(data)
    for kind in path:
        while True:
            assert offset < end, f"no {kind} box"
            size, name = struct.unpack(">I4s", data[offset:offset + 8])
            if name == kind.encode():
                break
            offset += size
        found.append((offset, size))
        offset, end = offset + 8, offset + size
    return found


def _patched(data: bytes, path: list[str], box: bytes, append: bool = False) -> bytes:
    """The file with the box at ``path`` replaced by ``box`` (or ``box`` appended inside
    it), every enclosing box's size fixed. The index follows the media in OpenCV's files,
    so no chunk offset moves."""
    out, chain = bytearray(data), _boxes_on(data, path)
    offset, size = chain[-1]
    out[offset + size * append:offset + size] = box
    grows = len(box) - size * (not append)
    for outer, outer_size in chain[:-1] + chain[-1:] * append:
        out[outer:outer + 4] = struct.pack(">I", outer_size + grows)
    return bytes(out)


def _timescales(data: bytes) -> tuple[int, int]:
    """``(movie, media)`` timescales, from ``mvhd`` and the video track's ``mdhd`` (version 0)."""
    mvhd = _boxes_on(data, ["moov", "mvhd"])[-1][0]
    mdhd = _boxes_on(data, TRAK + ["mdia", "mdhd"])[-1][0]
    return tuple(struct.unpack(">I", data[box + 20:box + 24])[0] for box in (mvhd, mdhd))


def _edit_list(entries, version: int = 0) -> bytes:
    """An ``elst`` box of ``(segment duration, media time)`` entries at rate 1."""
    layout = ">Qqhh" if version else ">Iihh"
    body = struct.pack(">B3xI", version, len(entries)) + b"".join(struct.pack(layout, d, t, 1, 0) for d, t in entries)
    return struct.pack(">I4s", 8 + len(body), b"elst") + body


def _table(kind: bytes, entries) -> bytes:
    """A run-length table box (``stts``, ``ctts``) of ``(count, value)`` entries."""
    body = struct.pack(">II", 0, len(entries)) + b"".join(struct.pack(">II", *entry) for entry in entries)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _faststart(data: bytes) -> bytes:
    """The index moved before the media, as cameras and web files have it (chunk offsets
    shifted), so cutting the file's end loses frames but keeps the index."""
    (moov_at, moov_size), = _boxes_on(data, ["moov"])
    (mdat_at, _), = _boxes_on(data, ["mdat"])
    moov = bytearray(data[moov_at:moov_at + moov_size])
    stco = _boxes_on(bytes(moov), STBL + ["stco"])[-1][0]
    count = struct.unpack(">I", moov[stco + 12:stco + 16])[0]
    offsets = np.frombuffer(bytes(moov[stco + 16:stco + 16 + 4 * count]), ">u4") + moov_size
    moov[stco + 16:stco + 16 + 4 * count] = offsets.astype(">u4").tobytes()
    rest = data[:moov_at] + data[moov_at + moov_size:]
    return rest[:mdat_at] + bytes(moov) + rest[mdat_at:]


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> bytes:
    """A 98-frame 24 fps MP4 as OpenCV writes it (with a one-entry edit list showing all)."""
    bits = (np.arange(N_STORED)[:, None] >> np.arange(BITS)) & 1  # frame i shows i in binary
    frames = np.repeat(np.repeat(bits * 255, 8, axis=1)[:, None, :, None], 48, axis=1).repeat(3, axis=3)
    path = ex.samples.write_video(frames.astype(np.uint8), tmp_path_factory.mktemp("edits") / "a.mp4", FPS)
    return path.read_bytes()


def _ticks(data: bytes, frames: float, clock: str) -> int:
    """``frames`` frame durations in ticks of the movie's or the media's clock."""
    movie, media = _timescales(data)
    return round(frames * (movie if clock == "movie" else media) / FPS)


def _stored_indices(video: ex.Video) -> np.ndarray:
    """Which stored frame each decoded frame is (read from its bars, black 0 and white 1)."""
    bars = video.frames[:, 8:40, :, 0].reshape(video.n_frames, 32, BITS, 8)[:, :, :, 2:6].mean(axis=(1, 3))
    return ((bars > 128) << np.arange(BITS)).sum(axis=1)


def _load_silently(path) -> ex.Video:
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedVideoWarning)
        return ex.load_video(path)


# --- edit lists are not truncation ------------------------------------------------------


EDITS = {  # name: (entries as (shown frames, first media frame), version, stored frames shown)
    "skips the first 3 frames": ([(95, 3)], 0, range(3, 98)),
    "cuts the last 3 frames": ([(95, 0)], 0, range(0, 95)),
    "starts mid-frame": ([(95, 2.8)], 0, range(3, 98)),
    "delays, then shows": ([(12, -1), (95, 3)], 0, range(3, 98)),
    "shows two stretches": ([(24, 0), (24, 40)], 0, list(range(0, 24)) + list(range(40, 64))),
    "is of version 1": ([(95, 3)], 1, range(3, 98)),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_frames_an_edit_list_hides_are_not_reported_as_truncation(tmp_path, stored, name):
    entries, version, shown = EDITS[name]
    ticks = [(_ticks(stored, count, "movie"), -1 if first < 0 else _ticks(stored, first, "media"))
             for count, first in entries]
    path = tmp_path / "edited.mp4"
    path.write_bytes(_patched(stored, TRAK + ["edts", "elst"], _edit_list(ticks, version)))
    video = _load_silently(path)  # a TruncatedVideoWarning would fail here
    np.testing.assert_array_equal(_stored_indices(video), list(shown))
    assert video.n_frames_expected == len(shown) == read_timing(path).n_shown()
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) == N_STORED  # what fooled the old check
    streamed = list(ex.stream_video(path, chunk_size=40))
    assert sum(len(chunk) for chunk in streamed) == len(shown)
    # starting mid-file (the Explorer's windows) counts the frames the edit list shows
    later = list(ex.stream_video(path, chunk_size=40, first=30))
    assert later[0].start == 30
    np.testing.assert_array_equal(np.concatenate([chunk.frames for chunk in later]), video.frames[30:])
    np.testing.assert_array_equal(np.concatenate([chunk.timestamps for chunk in later]), video.timestamps[30:])


def test_a_composition_delay_with_its_edit_list_shows_every_frame(tmp_path, stored):
    """Files with B-frames shift presentation times (``ctts``) and start their edit at the
    shift; every frame is shown. Counting by decoding times would find 96."""
    shift = _ticks(stored, 2, "media")
    edited = _patched(stored, TRAK + ["edts", "elst"], _edit_list([(_ticks(stored, N_STORED, "movie"), shift)]))
    path = tmp_path / "delayed.mp4"
    path.write_bytes(_patched(edited, STBL, _table(b"ctts", [(N_STORED, shift)]), append=True))
    video = _load_silently(path)
    assert video.n_frames == video.n_frames_expected == N_STORED
    np.testing.assert_array_equal(_stored_indices(video), np.arange(N_STORED))


# --- the frame rate ---------------------------------------------------------------------


def test_the_frame_rate_comes_from_the_timestamps_when_the_header_disagrees(tmp_path, stored):
    """One long last frame (2.4 durations) lowers the header's rate to 23.67 fps while
    every frame steps at 1/24 s (the issue's file)."""
    frame = _ticks(stored, 1, "media")
    path = tmp_path / "long_last_frame.mp4"
    path.write_bytes(_patched(stored, STBL + ["stts"], _table(b"stts", [(N_STORED - 1, frame), (1, 1210)])))
    header = cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS)
    assert header == pytest.approx(23.67, abs=0.01)
    video = _load_silently(path)
    assert video.fps == FPS and video.n_frames == N_STORED
    np.testing.assert_allclose(np.diff(video.timestamps), 1 / FPS, atol=1e-6)
    assert video.duration == pytest.approx(N_STORED / FPS)
    assert {chunk.fps for chunk in ex.stream_video(path, chunk_size=30)} == {FPS}
    assert ex.load_video(path, max_frames=1).fps == FPS  # from the timing table, not the frames read


def test_a_header_rate_the_timestamps_nearly_agree_with_is_kept(tmp_path, stored):
    """Frames of 1/24 s ± 0.2% (most of them long): the header says 23.99 fps, the median
    step 23.95; within the tolerance the header's rate stands, no rate is made from
    jitter. The sample's 25 fps stays 25."""
    frame = _ticks(stored, 1, "media")
    path = tmp_path / "jitter.mp4"
    path.write_bytes(_patched(stored, STBL + ["stts"], _table(b"stts", [(60, frame + 1), (38, frame - 1)])))
    header = cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS)
    assert header == pytest.approx(23.99, abs=0.005)
    assert _load_silently(path).fps == header
    assert ex.load_video(ex.samples.sample_path("participant_low"), max_frames=8).fps == 25.0


# --- real truncation still warns ----------------------------------------------------------


@pytest.mark.parametrize("edited, expected", [(False, N_STORED), (True, 95)])
def test_a_cut_file_still_warns_counting_the_frames_it_should_show(tmp_path, stored, edited, expected):
    data = stored
    if edited:
        entry = (_ticks(stored, 95, "movie"), _ticks(stored, 3, "media"))
        data = _patched(stored, TRAK + ["edts", "elst"], _edit_list([entry]))
    whole = _faststart(data)
    (tmp_path / "whole.mp4").write_bytes(whole)
    assert _load_silently(tmp_path / "whole.mp4").n_frames == expected
    path = tmp_path / "cut.mp4"
    path.write_bytes(whole[: int(len(whole) * 0.6)])
    with pytest.warns(TruncatedVideoWarning) as record:
        video = ex.load_video(path)
    assert 20 < video.n_frames < expected
    assert f"decoded {video.n_frames} of the {expected} frames" in str(record[0].message)
    assert _stored_indices(video)[0] == (3 if edited else 0)


# --- broken boxes ---------------------------------------------------------------------------


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 1 << 12), st.integers(0, 255)), min_size=1, max_size=4))
def test_a_file_with_broken_index_boxes_loads_or_raises_a_typed_error(tmp_path_factory, stored, edits):
    """Bytes of the index (``moov``, at the end of OpenCV's files) overwritten: the timing
    is read or given up (``None``), and the file loads or raises a typed error."""
    (moov_at, moov_size), = _boxes_on(stored, ["moov"])
    broken = bytearray(stored)
    for offset, value in edits:
        broken[moov_at + offset % moov_size] = value
    path = tmp_path_factory.mktemp("broken") / "broken.mp4"
    path.write_bytes(bytes(broken))
    timing = read_timing(path)
    assert timing is None or len(timing.durations) == len(timing.offsets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            video = ex.load_video(path)
        except ExpressoError:
            return
    assert video.n_frames >= 1 and np.all(np.diff(video.timestamps) > 0) and video.fps > 0
