"""Fixed-length clips slid over a video, in memory or streamed from a file: what a clip
model sees, one window at a time, with bounded memory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .errors import VideoLayoutError
from .video import PathLike, Video, stream_video


@dataclass(frozen=True, eq=False)
class Clip:
    """A fixed-length run of frames cut from a video.

    Attributes:
        frames: ``(L, H, W, 3)`` uint8 RGB.
        indices: ``(L,)`` index of each frame in the source video. When the video is
            shorter than the clip, the last frame is repeated and so is its index.
        n_valid: how many frames are real (the rest repeat the last frame).
        timestamps: ``(L,)`` seconds of each frame (as the indices, repeats included).
    """

    frames: np.ndarray
    indices: np.ndarray
    n_valid: int
    timestamps: np.ndarray | None = None


def iter_clips(
    video: Video | PathLike,
    length: int = 16,
    stride: int = 8,
    *,
    chunk_size: int = 256,
) -> Iterator[Clip]:
    """Slide fixed-length clips over a video, in memory or streamed from a file.

    Clips start at ``0, stride, 2*stride, ...``; when the last clip would stop short of
    the end, one more clip aligned to the last frame is added, so every frame is
    covered when ``stride <= length`` (a longer stride skips the frames between clips).
    A video shorter than ``length`` gives one clip padded by repeating its last frame
    (``Clip.n_valid`` says how many frames are real). When ``video`` is a path the file
    is streamed and only about ``length + chunk_size`` frames are held.

    Example:
        >>> import numpy as np, expresso_xai as ex
        >>> video = ex.Video.from_array(np.zeros((40, 64, 64, 3), np.uint8))
        >>> [int(c.indices[0]) for c in ex.iter_clips(video, length=16, stride=8)]
        [0, 8, 16, 24]
    """
    if length < 1 or stride < 1:
        raise VideoLayoutError(f"clip length and stride must be at least 1, got {length} and {stride}")
    if not isinstance(video, (Video, str, os.PathLike)):
        raise VideoLayoutError(f"iter_clips takes a Video or a video file's path, got {type(video).__name__}; "
                               "make frames a video with Video.from_array(frames, fps)")
    chunks = [video] if isinstance(video, Video) else stream_video(video, chunk_size=chunk_size)
    buffer: np.ndarray | None = None  # frames not yet fully consumed
    stamps: np.ndarray | None = None  # their timestamps
    buffer_start = 0  # source index of buffer[0]
    next_start = 0  # source index where the next clip starts
    last_emitted_end = -1
    emitted = False
    for chunk in chunks:
        if buffer is None:
            buffer, stamps, buffer_start = chunk.frames, chunk.timestamps, chunk.start
            next_start = last_emitted_end = chunk.start
        else:
            buffer = np.concatenate([buffer, chunk.frames])
            stamps = np.concatenate([stamps, chunk.timestamps])
        buffer_end = buffer_start + len(buffer)
        while next_start + length <= buffer_end:
            offset = next_start - buffer_start
            yield Clip(
                buffer[offset : offset + length].copy(),
                np.arange(next_start, next_start + length),
                length,
                stamps[offset : offset + length].copy(),
            )
            last_emitted_end = next_start + length
            emitted = True
            next_start += stride
        keep_from = min(next_start, max(buffer_end - length, 0)) - buffer_start
        keep_from = max(keep_from, 0)
        buffer, stamps = buffer[keep_from:], stamps[keep_from:]
        buffer_start += keep_from
    if buffer is None:
        return
    total = buffer_start + len(buffer)  # one past the last source index
    if not emitted:  # the whole video is shorter than one clip
        pad = length - len(buffer)
        frames = np.concatenate([buffer, np.repeat(buffer[-1:], pad, axis=0)])
        indices = np.concatenate([np.arange(buffer_start, total), np.full(pad, total - 1)])
        times = np.concatenate([stamps, np.repeat(stamps[-1:], pad)])
        yield Clip(frames, indices, len(buffer), times)
    elif last_emitted_end < total:
        offset = total - length - buffer_start
        yield Clip(buffer[offset:].copy(), np.arange(total - length, total), length, stamps[offset:].copy())
