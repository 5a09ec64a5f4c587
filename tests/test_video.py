"""Reading video: a researcher loads a face video, streams a long one, and cuts clips.

Each test is a step of that story and checks a property that would be false if the
reader were wrong: the colours come out RGB, timestamps follow the frame rate, a broken
file raises a typed error naming the file, streamed chunks add up to the whole video and
clips cover every frame.
"""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.errors import TruncatedVideoWarning, VideoLayoutError, VideoReadError

SAMPLE_FRAMES = 250
SAMPLE_SIZE = 192
SAMPLE_FPS = 25.0


# --- helpers --------------------------------------------------------------------------


def write_video(
    path: Path,
    frames_bgr: np.ndarray,
    fourcc: str = "MJPG",
    fps: float = 25.0,
    is_color: bool = True,
) -> Path:
    """Write frames (OpenCV's BGR order, or (T, H, W) gray) with cv2.VideoWriter."""
    height, width = frames_bgr.shape[1:3]
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height), isColor=is_color
    )
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for frame in frames_bgr:
        writer.write(frame)
    writer.release()
    assert path.stat().st_size > 0
    return path


def noise_frames(n: int, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def numbered_video(n: int, size: int = 4) -> ex.Video:
    """A video whose frame ``i`` is filled with the value ``i`` (so content shows its index)."""
    values = np.arange(n, dtype=np.uint8)[:, None, None, None]
    return ex.Video.from_array(np.broadcast_to(values, (n, size, size, 3)).copy(), fps=25)


@pytest.fixture(scope="module")
def sample_path() -> Path:
    return ex.samples.sample_path("participant_low")


@pytest.fixture(scope="module")
def sample_video(sample_path) -> ex.Video:
    return ex.load_video(sample_path)


@pytest.fixture(scope="module")
def mjpg_avi(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A valid 60-frame MJPG .avi of seeded noise and the frames it decodes to."""
    path = write_video(tmp_path_factory.mktemp("avi") / "noise.avi", noise_frames(60))
    return path, ex.load_video(path).frames


# --- reading a file ---------------------------------------------------------------------


def test_shipped_sample_loads_as_uint8_rgb_with_its_frame_rate(sample_video, sample_path):
    assert sample_video.frames.shape == (SAMPLE_FRAMES, SAMPLE_SIZE, SAMPLE_SIZE, 3)
    assert sample_video.frames.dtype == np.uint8
    assert sample_video.frames.flags["C_CONTIGUOUS"]
    assert sample_video.fps == pytest.approx(SAMPLE_FPS)
    assert sample_video.n_frames_expected == SAMPLE_FRAMES
    assert sample_video.source == str(sample_path)
    assert sample_video.start == 0
    assert (sample_video.n_frames, sample_video.height, sample_video.width) == (250, 192, 192)
    assert sample_video.duration == pytest.approx(10.0)
    # A real face video, not a blank decode.
    assert sample_video.frames.std() > 10


def test_timestamps_increase_and_follow_the_frame_rate(sample_video):
    stamps = sample_video.timestamps
    assert stamps.shape == (SAMPLE_FRAMES,)
    assert stamps.dtype == np.float64
    assert stamps[0] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(stamps) > 0)
    np.testing.assert_allclose(stamps, np.arange(SAMPLE_FRAMES) / SAMPLE_FPS, atol=1e-3)


def test_max_frames_reads_only_the_beginning(sample_video, sample_path):
    first = ex.load_video(sample_path, max_frames=16)
    assert first.n_frames == 16
    np.testing.assert_array_equal(first.frames, sample_video.frames[:16])
    np.testing.assert_allclose(first.timestamps, sample_video.timestamps[:16])


@pytest.mark.parametrize("name, fourcc", [("red.avi", "MJPG"), ("red.mp4", "mp4v")])
def test_a_pure_red_video_comes_out_red_in_channel_0(tmp_path, name, fourcc):
    red_bgr = np.zeros((5, 48, 64, 3), np.uint8)
    red_bgr[..., 2] = 255  # OpenCV writes BGR: red is its last channel
    video = ex.load_video(write_video(tmp_path / name, red_bgr, fourcc))
    mean_rgb = video.frames.reshape(-1, 3).mean(axis=0)
    assert mean_rgb[0] > 240, mean_rgb
    assert mean_rgb[1] < 15 and mean_rgb[2] < 15, mean_rgb


def test_a_grayscale_file_loads_as_three_equal_channels(tmp_path):
    gray = np.random.default_rng(1).integers(0, 256, (10, 48, 64), dtype=np.uint8)
    video = ex.load_video(write_video(tmp_path / "gray.avi", gray, "MJPG", is_color=False))
    assert video.frames.shape == (10, 48, 64, 3)
    assert video.frames.dtype == np.uint8
    np.testing.assert_array_equal(video.frames[..., 0], video.frames[..., 1])
    np.testing.assert_array_equal(video.frames[..., 0], video.frames[..., 2])
    # The gray values survive (JPEG is lossy, so only roughly).
    assert np.abs(video.frames[..., 0].astype(int) - gray).mean() < 20


def test_written_frames_round_trip_through_a_file(tmp_path):
    """A frame rate other than 25 is read back, and the content matches what was written."""
    smooth_bgr = np.zeros((12, 48, 64, 3), np.uint8)
    smooth_bgr[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)  # blue ramp, left to right
    smooth_bgr[..., 1] = np.arange(12, dtype=np.uint8)[:, None, None] * 20
    video = ex.load_video(write_video(tmp_path / "ramp.avi", smooth_bgr, "MJPG", fps=30))
    assert video.fps == pytest.approx(30.0)
    assert video.n_frames == 12
    np.testing.assert_allclose(video.timestamps, np.arange(12) / 30.0, atol=1e-3)
    expected_rgb = smooth_bgr[..., ::-1].astype(int)
    assert np.abs(video.frames.astype(int) - expected_rgb).mean() < 4


# --- arrays -----------------------------------------------------------------------------


def test_from_array_keeps_rgb_frames_and_makes_timestamps():
    frames = np.random.default_rng(2).integers(0, 256, (16, 32, 48, 3), dtype=np.uint8)
    video = ex.Video.from_array(frames, fps=20)
    np.testing.assert_array_equal(video.frames, frames)
    assert video.fps == 20.0 and video.source is None and video.start == 0
    np.testing.assert_allclose(video.timestamps, np.arange(16) / 20.0)


def test_from_array_bgr_order_is_swapped_to_rgb():
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[..., 0] = 200  # blue, in OpenCV's order
    video = ex.Video.from_array(frames, channel_order="BGR")
    assert (video.frames[..., 2] == 200).all() and (video.frames[..., 0] == 0).all()


@pytest.mark.parametrize("shape", [(6, 20, 30), (6, 20, 30, 1)])
def test_from_array_gray_becomes_three_equal_channels(shape):
    gray = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    video = ex.Video.from_array(gray)
    assert video.frames.shape == (6, 20, 30, 3)
    for channel in range(3):
        np.testing.assert_array_equal(video.frames[..., channel], gray.reshape(6, 20, 30))


def test_from_array_drops_alpha():
    rgba = np.random.default_rng(4).integers(0, 256, (3, 10, 12, 4), dtype=np.uint8)
    video = ex.Video.from_array(rgba)
    assert video.frames.shape == (3, 10, 12, 3)
    np.testing.assert_array_equal(video.frames, rgba[..., :3])


def test_from_array_float_in_unit_range_is_scaled_to_uint8():
    floats = np.random.default_rng(5).random((4, 8, 8, 3))
    floats[0, 0, 0] = [0.0, 1.0, 0.5]
    video = ex.Video.from_array(floats)
    assert video.frames.dtype == np.uint8
    np.testing.assert_array_equal(video.frames[0, 0, 0], [0, 255, 128])
    assert np.abs(video.frames.astype(float) - floats * 255).max() <= 0.5 + 1e-9


def test_channels_first_is_refused_with_a_hint():
    with pytest.raises(VideoLayoutError, match="channels-first") as excinfo:
        ex.Video.from_array(np.zeros((8, 3, 32, 32), np.uint8))
    assert "transpose(0, 2, 3, 1)" in str(excinfo.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_float_frames_are_refused(bad):
    floats = np.full((2, 8, 8, 3), 0.5)
    floats[1, 4, 4, 1] = bad
    with pytest.raises(VideoLayoutError, match="NaN or infinity"):
        ex.Video.from_array(floats)


def test_float_frames_outside_unit_range_are_refused():
    with pytest.raises(VideoLayoutError, match=r"\[0, 1\]"):
        ex.Video.from_array(np.full((2, 8, 8, 3), 2.0))


def test_wrong_rank_is_refused():
    with pytest.raises(VideoLayoutError):
        ex.Video.from_array(np.zeros((8, 8), np.uint8))


# --- slicing and mirroring --------------------------------------------------------------


def test_a_slice_remembers_where_it_starts(sample_video):
    part = sample_video[10:26]
    assert part.n_frames == 16 and part.start == 10
    np.testing.assert_array_equal(part.frames, sample_video.frames[10:26])
    np.testing.assert_array_equal(part.timestamps, sample_video.timestamps[10:26])
    np.testing.assert_array_equal(part.frame_indices, np.arange(10, 26))
    inner = part[4:8]  # a slice of a slice still counts from the source
    assert inner.start == 14
    np.testing.assert_array_equal(inner.frames, sample_video.frames[14:18])
    np.testing.assert_array_equal(sample_video[-4:].frame_indices, np.arange(246, 250))


@pytest.mark.parametrize("index", [3, slice(0, 10, 2)])
def test_only_contiguous_slices_are_allowed(sample_video, index):
    with pytest.raises(TypeError, match="contiguous slices"):
        sample_video[index]


def test_mirrored_flips_left_right_and_keeps_timing():
    video = ex.Video.from_array(
        np.random.default_rng(6).integers(0, 256, (5, 6, 9, 3), dtype=np.uint8), fps=30
    )[1:5]
    mirror = video.mirrored()
    np.testing.assert_array_equal(mirror.frames[:, :, 0], video.frames[:, :, -1])
    np.testing.assert_array_equal(mirror.frames, video.frames[:, :, ::-1])
    np.testing.assert_array_equal(mirror.timestamps, video.timestamps)
    assert (mirror.start, mirror.fps) == (1, 30.0)
    np.testing.assert_array_equal(mirror.mirrored().frames, video.frames)


# --- bad files --------------------------------------------------------------------------


def _bad_file(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "missing_clip.mp4"
    if kind == "empty":
        path = tmp_path / "empty_clip.mp4"
        path.write_bytes(b"")
        return path
    if kind == "text":
        path = tmp_path / "notes_clip.mp4"
        path.write_text("this is a note, not a video\n" * 20)
        return path
    if kind == "directory":
        path = tmp_path / "folder_clip.mp4"
        path.mkdir()
        return path
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "directory"])
@pytest.mark.parametrize("reader", ["load_video", "stream_video", "iter_clips"])
def test_a_bad_file_raises_video_read_error_naming_the_file(tmp_path, kind, reader):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(VideoReadError) as excinfo:
        if reader == "load_video":
            ex.load_video(path)
        elif reader == "stream_video":
            list(ex.stream_video(path))
        else:
            list(ex.iter_clips(path))
    assert path.name in str(excinfo.value)
    assert not isinstance(excinfo.value, cv2.error)
    assert isinstance(excinfo.value, OSError)  # callers catching OSError still catch it


def test_a_truncated_avi_returns_the_frames_before_the_cut_with_a_warning(tmp_path, mjpg_avi):
    path, full = mjpg_avi
    data = path.read_bytes()
    cut = tmp_path / "cut_noise.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.warns(TruncatedVideoWarning) as record:
        video = ex.load_video(cut)
    n = video.n_frames
    assert 20 < n < 60  # some, but fewer than the header announces
    assert video.n_frames_expected == 60
    message = str(record[0].message)
    assert cut.name in message
    assert f"decoded {n} of the 60 frames" in message
    # The frames before the cut are the original ones (the last may be half-decoded).
    np.testing.assert_array_equal(video.frames[: n - 1], full[: n - 1])
    assert np.all(np.diff(video.timestamps) > 0)


def test_a_truncated_avi_streams_the_same_frames_and_warns_once(tmp_path, mjpg_avi):
    path, _ = mjpg_avi
    data = path.read_bytes()
    cut = tmp_path / "cut_stream.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.warns(TruncatedVideoWarning):
        whole = ex.load_video(cut)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        chunks = list(ex.stream_video(cut, chunk_size=7))
    truncations = [w for w in record if issubclass(w.category, TruncatedVideoWarning)]
    assert len(truncations) == 1
    np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks]), whole.frames)


def test_an_avi_cut_before_its_first_frame_raises(tmp_path, mjpg_avi):
    path, _ = mjpg_avi
    data = path.read_bytes()
    movi = data.find(b"movi")
    assert movi > 0
    cut = tmp_path / "header_only.avi"
    cut.write_bytes(data[: movi + 4])  # header and index start, no frame data
    with pytest.raises(VideoReadError, match="no frame could be decoded") as excinfo:
        ex.load_video(cut)
    assert cut.name in str(excinfo.value)


def test_a_truncated_mp4_without_its_index_raises(tmp_path):
    # OpenCV's mp4 writer puts the index (moov) at the end: cut it and nothing decodes.
    path = write_video(tmp_path / "whole.mp4", noise_frames(60), "mp4v")
    data = path.read_bytes()
    cut = tmp_path / "cut_clip.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoReadError) as excinfo:
        ex.load_video(cut)
    assert cut.name in str(excinfo.value)


# --- streaming --------------------------------------------------------------------------


def test_streamed_chunks_add_up_to_the_loaded_video(sample_video, sample_path):
    chunks = list(ex.stream_video(sample_path, chunk_size=64))
    assert [len(c) for c in chunks] == [64, 64, 64, 58]
    assert [c.start for c in chunks] == [0, 64, 128, 192]
    np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks]), sample_video.frames)
    np.testing.assert_array_equal(
        np.concatenate([c.timestamps for c in chunks]), sample_video.timestamps
    )
    for chunk in chunks:
        np.testing.assert_array_equal(
            chunk.frame_indices, np.arange(chunk.start, chunk.start + len(chunk))
        )
        assert chunk.fps == sample_video.fps and chunk.source == str(sample_path)


def test_stream_max_frames_stops_early_without_a_truncation_warning(sample_video, sample_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedVideoWarning)
        chunks = list(ex.stream_video(sample_path, chunk_size=30, max_frames=100))
    assert [len(c) for c in chunks] == [30, 30, 30, 10]
    assert [c.start for c in chunks] == [0, 30, 60, 90]
    np.testing.assert_array_equal(
        np.concatenate([c.frames for c in chunks]), sample_video.frames[:100]
    )


def test_a_stream_from_a_later_frame_gives_the_same_frames_numbered_from_there(sample_video, sample_path):
    chunks = list(ex.stream_video(sample_path, chunk_size=64, max_frames=200, first=70))
    assert [(c.start, len(c)) for c in chunks] == [(70, 64), (134, 64), (198, 2)]
    np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks]), sample_video.frames[70:200])
    np.testing.assert_array_equal(np.concatenate([c.timestamps for c in chunks]), sample_video.timestamps[70:200])
    assert list(ex.stream_video(sample_path, first=5000)) == []  # past the end: nothing, no error
    with pytest.raises(ValueError):
        next(ex.stream_video(sample_path, first=-1))


def test_stream_max_frames_beyond_the_end_reads_everything(sample_path):
    chunks = list(ex.stream_video(sample_path, chunk_size=100, max_frames=1000))
    assert [len(c) for c in chunks] == [100, 100, 50]


def test_stream_chunk_size_must_be_positive(sample_path):
    with pytest.raises(ValueError):
        next(ex.stream_video(sample_path, chunk_size=0))


def test_stopping_a_stream_early_is_not_reported_as_truncation(sample_path):
    """Reading only the first chunk of a good file must not warn that the file is cut."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        stream = ex.stream_video(sample_path, chunk_size=10)
        first = next(stream)
        stream.close()
        clips = ex.iter_clips(sample_path, length=16, stride=8, chunk_size=7)
        next(clips)
        clips.close()
        gc.collect()
    assert len(first) == 10
    truncations = [str(w.message) for w in record if issubclass(w.category, TruncatedVideoWarning)]
    assert truncations == []


# --- clips ------------------------------------------------------------------------------


def _check_clip_content(clips, video: ex.Video, length: int, covers: int | None = None) -> None:
    """Each clip holds the video's frames at its indices; with ``covers``, the clips
    together cover frames 0..covers-1."""
    for clip in clips:
        assert clip.frames.shape == (length,) + video.frames.shape[1:]
        assert clip.indices.shape == (length,)
        np.testing.assert_array_equal(clip.frames, video.frames[clip.indices - video.start])
    if covers is not None:
        covered = np.unique(np.concatenate([c.indices for c in clips]))
        np.testing.assert_array_equal(covered, np.arange(covers))


def test_clips_slide_by_stride_and_cover_every_frame():
    video = numbered_video(40)
    clips = list(ex.iter_clips(video, length=16, stride=8))
    assert [int(c.indices[0]) for c in clips] == [0, 8, 16, 24]
    assert all(c.n_valid == 16 for c in clips)
    for clip in clips:
        np.testing.assert_array_equal(clip.indices, np.arange(clip.indices[0], clip.indices[0] + 16))
    _check_clip_content(clips, video, 16, covers=40)


def test_a_final_clip_is_aligned_to_the_end():
    video = numbered_video(43)
    clips = list(ex.iter_clips(video, length=16, stride=8))
    assert [int(c.indices[0]) for c in clips] == [0, 8, 16, 24, 27]
    np.testing.assert_array_equal(clips[-1].indices, np.arange(27, 43))
    assert int(clips[-1].indices[-1]) == 42 and clips[-1].n_valid == 16
    _check_clip_content(clips, video, 16, covers=43)


def test_a_short_video_gives_one_padded_clip():
    video = numbered_video(10)
    clips = list(ex.iter_clips(video, length=16, stride=8))
    assert len(clips) == 1
    clip = clips[0]
    assert clip.n_valid == 10
    np.testing.assert_array_equal(clip.indices, list(range(10)) + [9] * 6)
    _check_clip_content(clips, video, 16)
    np.testing.assert_array_equal(clip.frames[10:], np.repeat(video.frames[9:10], 6, axis=0))


def test_a_video_exactly_one_clip_long_gives_one_clip():
    clips = list(ex.iter_clips(numbered_video(16), length=16, stride=8))
    assert len(clips) == 1
    np.testing.assert_array_equal(clips[0].indices, np.arange(16))
    assert clips[0].n_valid == 16


def test_clips_of_a_slice_are_cut_from_the_slice():
    """A slice keeps its ``start``; its clips cover exactly its frames, in source indices."""
    source = numbered_video(50)
    part = source[10:50]
    clips = list(ex.iter_clips(part, length=16, stride=8))
    assert clips, "no clips"
    for clip in clips:
        assert clip.frames.shape == (16, 4, 4, 3)
        # frame i of the numbered video is filled with i: content must match its index
        np.testing.assert_array_equal(clip.frames[:, 0, 0, 0], clip.indices)
    assert [int(c.indices[0]) for c in clips] == [10, 18, 26, 34]
    covered = np.unique(np.concatenate([c.indices for c in clips]))
    np.testing.assert_array_equal(covered, np.arange(10, 50))


@pytest.mark.parametrize("length, stride", [(16, 8), (16, 16), (5, 3), (16, 20)])
def test_clips_streamed_from_a_file_equal_clips_of_the_loaded_video(
    tmp_path, length, stride
):
    path = write_video(tmp_path / "noise43.avi", noise_frames(43, seed=7))
    video = ex.load_video(path)
    in_memory = list(ex.iter_clips(video, length=length, stride=stride))
    streamed = list(ex.iter_clips(path, length=length, stride=stride, chunk_size=7))
    assert len(streamed) == len(in_memory) > 0
    for a, b in zip(streamed, in_memory):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.frames, b.frames)
        assert a.n_valid == b.n_valid
    _check_clip_content(streamed, video, length)


def test_clips_streamed_from_the_sample_equal_clips_in_memory(sample_video, sample_path):
    in_memory = list(ex.iter_clips(sample_video, length=16, stride=8))
    streamed = list(ex.iter_clips(sample_path, length=16, stride=8, chunk_size=7))
    assert [int(c.indices[0]) for c in streamed] == list(range(0, 235, 8)) + [234]
    assert len(streamed) == len(in_memory)
    for a, b in zip(streamed, in_memory):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.frames, b.frames)


def test_a_short_file_streams_as_one_padded_clip(tmp_path):
    path = write_video(tmp_path / "short.avi", noise_frames(10, seed=8))
    video = ex.load_video(path)
    clips = list(ex.iter_clips(path, length=16, stride=8, chunk_size=3))
    assert len(clips) == 1 and clips[0].n_valid == 10
    np.testing.assert_array_equal(clips[0].indices, list(range(10)) + [9] * 6)
    np.testing.assert_array_equal(clips[0].frames[:10], video.frames)


@pytest.mark.parametrize("length, stride", [(0, 8), (16, 0)])
def test_clip_length_and_stride_must_be_positive(length, stride):
    with pytest.raises(ValueError):
        next(ex.iter_clips(numbered_video(20), length=length, stride=stride))


def _with_timing_table(data: bytes, entries) -> bytes:
    """An MP4 (as OpenCV writes it, the index after the media) whose video track's
    time-to-sample table is replaced by ``entries`` of (frame count, duration)."""
    import struct

    out = bytearray(data)

    def chain(start, end, path):
        offset = start
        while offset < end:
            size, kind = struct.unpack(">I4s", out[offset:offset + 8])
            if kind.decode("latin1") == path[0]:
                return [(offset, size)] + (chain(offset + 8, offset + size, path[1:]) if path[1:] else [])
            offset += size
        raise AssertionError(f"no {path[0]} box")

    boxes = chain(0, len(out), ["moov", "trak", "mdia", "minf", "stbl", "stts"])
    offset, size = boxes[-1]
    body = struct.pack(">II", 0, len(entries)) + b"".join(struct.pack(">II", *entry) for entry in entries)
    table = struct.pack(">I4s", 8 + len(body), b"stts") + body
    out[offset:offset + size] = table
    for outer, outer_size in boxes[:-1]:
        out[outer:outer + 4] = struct.pack(">I", outer_size + len(table) - size)
    return bytes(out)


@pytest.mark.parametrize("entries, rate", [([(19, 512), (1, 0)], 25.0), ([(20, 0)], 25.0)])
def test_frames_of_duration_zero_in_the_timing_table_are_reported_and_the_rate_kept(tmp_path, entries, rate):
    """OpenCV derives 26.3 fps (one zero-duration frame) or 1.25 fps (all zero) from such
    files; we warn and take the rate from the table's other frames (or the default)."""
    from expresso_xai.errors import VideoTimingWarning
    from expresso_xai.samples import write_video

    frames = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=20).frames
    good = write_video(frames, tmp_path / "good.mp4", 25)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(_with_timing_table(good.read_bytes(), entries))
    with pytest.warns(VideoTimingWarning, match="duration of 0"):
        video = ex.load_video(broken)
    assert video.fps == rate and video.n_frames == 20
    np.testing.assert_allclose(np.diff(video.timestamps), 1 / rate)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ex.load_video(good).fps == 25.0  # a sound file says nothing


def test_one_colour_image_is_refused_as_frames_and_taken_by_from_image():
    image = np.zeros((64, 48, 3), np.uint8)
    with pytest.raises(ex.errors.VideoLayoutError, match=r"one colour image.*from_image.*image\[None\]"):
        ex.Video.from_array(image)
    video = ex.Video.from_image(image, fps=10)
    assert video.frames.shape == (1, 64, 48, 3) and video.fps == 10
    assert ex.Video.from_image(np.zeros((64, 48), np.uint8)).frames.shape == (1, 64, 48, 3)
    with pytest.raises(ex.errors.VideoLayoutError):
        ex.Video.from_image(np.zeros((2, 64, 48, 3), np.uint8))
