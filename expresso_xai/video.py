"""Reading video: decoding with OpenCV, frame rate, timestamps, streaming and clips.

This module owns the first step of the data flow. Everything downstream receives a
:class:`Video` whose ``frames`` are ``(T, H, W, 3)`` uint8 RGB, whatever the file held
(grayscale, BGR, BGRA), with the timestamps the container gave for each frame.

Long videos never need to fit in memory: :func:`stream_video` yields chunks (each a
:class:`Video` that knows its ``start`` frame), and :func:`iter_clips` slides fixed-length
clips over either an in-memory video or a file, holding only one clip's worth of frames.
"""

from __future__ import annotations

import hashlib
import logging
import math
import numbers
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from .errors import TruncatedVideoWarning, VideoLayoutError, VideoReadError
from .mp4 import DEFAULT_FPS, checked_rate, rate_from_timestamps, read_timing

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


@dataclass(eq=False)
class Video:
    """Frames of a video with their timing.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB.
        fps: frames per second: the container's nominal rate, or the rate its timestamps
            step at when they disagree with it.
        timestamps: ``(T,)`` float64 seconds of each frame, from the container when it
            gives them, else ``index / fps``.
        source: the file the frames came from, or ``None`` for an array.
        start: index in the source of the first frame (non-zero for streamed chunks).
        n_frames_expected: the frame count the container announced, or the frames its
            edit list shows (``None`` if unknown).

    Example:
        >>> import numpy as np, expresso_xai as ex
        >>> video = ex.Video.from_array(np.zeros((16, 64, 64, 3), np.uint8), fps=25)
        >>> video.n_frames, video.height, video.width, float(video.timestamps[-1])
        (16, 64, 64, 0.6)
    """

    frames: np.ndarray
    fps: float = DEFAULT_FPS
    timestamps: np.ndarray | None = None
    source: str | None = None
    start: int = 0
    n_frames_expected: int | None = None
    _hash: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        frames, name = np.asarray(self.frames), self.source or "array"
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise VideoLayoutError(f"Video.frames must be (T, H, W, 3) uint8 RGB, got {frames.dtype} {frames.shape}; "
                                   "build videos with Video.from_array(), which converts")
        if frames.shape[0] == 0:
            raise VideoReadError(f"{name}: video has zero frames")
        self.frames = frames
        self.fps = _checked_fps(self.fps, name)
        if self.timestamps is None:
            self.timestamps = (self.start + np.arange(len(frames))) / float(self.fps)
        try:
            self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        except (TypeError, ValueError):
            raise VideoLayoutError(f"{name}: timestamps must be numbers (seconds)") from None
        if self.timestamps.shape != (len(frames),):
            raise VideoLayoutError(f"{name}: timestamps must have shape ({len(frames)},), got {self.timestamps.shape}")

    # --- construction -------------------------------------------------------------
    @classmethod
    def from_array(
        cls,
        frames: np.ndarray,
        fps: float = DEFAULT_FPS,
        *,
        source: str | None = None,
        channel_order: str = "RGB",
    ) -> "Video":
        """Make a video from an array of frames.

        Accepts ``(T, H, W)`` grayscale, ``(T, H, W, 1)``, ``(T, H, W, 3)`` and
        ``(T, H, W, 4)`` (alpha dropped), uint8, integers in ``[0, 255]`` or floats in
        ``[0, 1]`` (times 255, rounded). ``channel_order`` says whether colour frames are
        ``"RGB"`` (default) or ``"BGR"`` (as from OpenCV).
        A channels-first array such as ``(T, 3, H, W)`` is refused with a hint, and so is
        one colour image ``(H, W, 3)`` (it would become H frames of W × 3 pixels): use
        :meth:`from_image` or ``image[None]``.

        Example:
            >>> import numpy as np, expresso_xai as ex
            >>> gray = np.full((4, 32, 48), 200, np.uint8)
            >>> ex.Video.from_array(gray, fps=30).frames.shape
            (4, 32, 48, 3)
            >>> ex.Video.from_array(np.zeros((64, 48, 3), np.uint8))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            expresso_xai.errors.VideoLayoutError: array: shape (64, 48, 3) is one colour image, not frames ...
        """
        name = source or "array"
        fps = _checked_fps(fps, name)
        try:
            frames = np.asarray(frames)
        except (ValueError, TypeError, RuntimeError) as exc:  # ragged lists, tensors that need grad
            raise VideoLayoutError(f"{name}: frames must be one array (T, H, W[, C]), got {type(frames).__name__}: "
                                   f"{exc}") from None
        if frames.ndim == 3 and frames.shape[-1] in (3, 4) and min(frames.shape[:2]) > 4:
            raise VideoLayoutError(f"{name}: shape {frames.shape} is one colour image, not frames (T, H, W): use "
                                   "Video.from_image(image) or Video.from_array(image[None]) for a one-frame video")
        if frames.ndim == 3:
            frames = frames[..., None]
        if frames.ndim != 4:
            raise VideoLayoutError(f"{name}: frames must be (T, H, W) or (T, H, W, C); got shape {frames.shape}")
        if frames.shape[-1] not in (1, 3, 4):
            if frames.shape[1] in (1, 3, 4):
                raise VideoLayoutError(f"{name}: frames of shape {frames.shape} look channels-first (T, C, H, W); "
                                       "pass frames.transpose(0, 2, 3, 1) for (T, H, W, C)")
            raise VideoLayoutError(f"{name}: last axis must be 1, 3 or 4 channels; got shape {frames.shape}")
        if 0 in frames.shape[1:3]:
            raise VideoLayoutError(f"{name}: frames of shape {frames.shape} have no pixels")
        if frames.shape[0] == 0:
            raise VideoReadError(f"{name}: video has zero frames")
        frames = _as_uint8(frames, name)
        frames = _to_rgb(frames, channel_order)
        return cls(np.ascontiguousarray(frames), fps, source=source)

    @classmethod
    def from_image(cls, image: np.ndarray, fps: float = DEFAULT_FPS, *, source: str | None = None,
                   channel_order: str = "RGB") -> "Video":
        """A one-frame video of one image ``(H, W)``, ``(H, W, 1|3|4)`` (as :meth:`from_array`
        takes frames). Explaining it explains the image: the engine pads it to a clip by
        repeating it and averages the copies' attributions back into the one frame.

        Example:
            >>> import numpy as np, expresso_xai as ex
            >>> ex.Video.from_image(np.zeros((64, 48, 3), np.uint8)).frames.shape
            (1, 64, 48, 3)
        """
        image = np.asarray(image)
        if image.ndim not in (2, 3):
            raise VideoLayoutError(f"{source or 'image'}: an image is (H, W) or (H, W, C); got shape {image.shape}")
        frames = image[None]
        if image.ndim == 3 and image.shape[-1] not in (1, 3, 4):
            raise VideoLayoutError(f"{source or 'image'}: last axis must be 1, 3 or 4 channels; got {image.shape}")
        if image.ndim == 3 and image.shape[-1] == 1:
            frames = frames[..., 0]
        return cls.from_array(frames, fps, source=source, channel_order=channel_order)

    # --- basic properties ---------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def duration(self) -> float:
        """Seconds covered by the frames (``n_frames / fps``)."""
        return self.n_frames / self.fps

    @property
    def frame_indices(self) -> np.ndarray:
        """Index of each frame in the source video."""
        return self.start + np.arange(self.n_frames)

    def __len__(self) -> int:
        return self.n_frames

    def __getitem__(self, index: slice) -> "Video":
        """Slice frames (``video[10:26]``); the result remembers where it starts."""
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("Video supports contiguous slices only, e.g. video[10:26]")
        begin, end, _ = index.indices(self.n_frames)
        return Video(
            self.frames[begin:end],
            self.fps,
            self.timestamps[begin:end],
            source=self.source,
            start=self.start + begin,
        )

    def mirrored(self) -> "Video":
        """The video flipped left–right (the subject's left becomes the image's left)."""
        return Video(
            np.ascontiguousarray(self.frames[:, :, ::-1]),
            self.fps,
            self.timestamps.copy(),
            source=self.source,
            start=self.start,
        )

    def content_hash(self) -> str:
        """SHA-256 of the decoded frames (stable across containers with the same pixels);
        the same as a :class:`FrameHasher` fed the frames of the file clip by clip."""
        if self._hash is None:
            hasher = FrameHasher()
            hasher.update(self.frames, np.arange(len(self.frames)))
            self._hash = hasher.hexdigest()
        return self._hash

    def __repr__(self) -> str:
        """One line: the file's name, frames (and where a piece starts), size, rate, seconds.

        Example:
            >>> import numpy as np
            >>> video = Video(np.zeros((98, 360, 640, 3), np.uint8), 24, source="/data/a.mp4")
            >>> video
            <Video 'a.mp4' 98 frames 640x360 @ 24 fps, 4.1 s>
            >>> video[10:26]
            <Video 'a.mp4' 16 frames from frame 10, 640x360 @ 24 fps, 0.7 s>
        """
        name = repr(Path(self.source).name) if self.source else "array"
        start = f" from frame {self.start}," if self.start else ""
        return (f"<Video {name} {self.n_frames} frames{start} {self.width}x{self.height} @ {self.fps:.4g} fps, "
                f"{self.duration:.1f} s>")


class FrameHasher:
    """SHA-256 of a video's decoded frames fed in order, in overlapping pieces (clips
    streamed from a file), so a file's content can be hashed while it is explained,
    with flat memory. Frames already fed (clip overlaps, padding) are skipped.

    Example:
        >>> import numpy as np
        >>> frames = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
        >>> whole, pieces = FrameHasher(), FrameHasher()
        >>> whole.update(frames, np.arange(5))
        >>> pieces.update(frames[:3], np.arange(3)); pieces.update(frames[2:], np.arange(2, 5))
        >>> whole.hexdigest() == pieces.hexdigest(), pieces.n_frames
        (True, 5)
    """

    def __init__(self):
        self._digest = hashlib.sha256()
        self.n_frames = 0
        self._frame_shape: tuple = ()

    def update(self, frames: np.ndarray, indices: np.ndarray) -> None:
        """Feed ``frames`` whose positions in the video (counted from the first frame fed)
        are ``indices``; only the next unseen frames are hashed."""
        for frame, index in zip(frames, np.asarray(indices)):
            if index == self.n_frames:
                self._digest.update(np.ascontiguousarray(frame).tobytes())
                self._frame_shape = frame.shape
                self.n_frames += 1

    def hexdigest(self) -> str:
        """The hash of the frames fed so far (their count and shape included)."""
        digest = self._digest.copy()
        digest.update(f"{self.n_frames}x{'x'.join(map(str, self._frame_shape))}".encode())
        return digest.hexdigest()


def _as_uint8(frames: np.ndarray, name: str) -> np.ndarray:
    """Frames of uint8, integers in [0, 255] or floats in [0, 1] (scaled by 255, rounded)
    as uint8; anything else refused, saying what it is."""
    if frames.dtype == np.uint8:
        return frames
    if np.issubdtype(frames.dtype, np.floating):
        if not np.isfinite(frames).all():
            raise VideoLayoutError(f"{name}: frames contain NaN or infinity")
        if frames.min() < 0 or frames.max() > 1:
            raise VideoLayoutError(f"{name}: float frames must lie in [0, 1]; got range "
                                   f"[{frames.min():.3g}, {frames.max():.3g}] (convert to uint8 first)")
        return np.round(frames.astype(np.float64) * 255).astype(np.uint8)  # float16 would round 255 x wrongly
    if np.issubdtype(frames.dtype, np.integer):
        if frames.min() < 0 or frames.max() > 255:
            raise VideoLayoutError(f"{name}: integer frames must lie in [0, 255]; got range "
                                   f"[{frames.min()}, {frames.max()}] (scale them to uint8 first)")
        return frames.astype(np.uint8)
    raise VideoLayoutError(f"{name}: unsupported frame dtype {frames.dtype}; give uint8, integers in [0, 255] or "
                           "floats in [0, 1] (a bool mask: mask.astype(np.uint8) * 255)")


def _checked_fps(fps, name: str) -> float:
    """``fps`` as a float, if it is a finite positive number (not a bool, not a string)."""
    fps = fps.item() if isinstance(fps, np.ndarray) and fps.ndim == 0 else fps
    if isinstance(fps, (bool, np.bool_)) or not isinstance(fps, numbers.Real) or not (
            math.isfinite(fps) and fps > 0):
        raise VideoLayoutError(f"{name}: fps must be a positive number of frames per second, got {fps!r}")
    return float(fps)


def _to_rgb(frames: np.ndarray, channel_order: str = "BGR") -> np.ndarray:
    """Convert ``(..., H, W, C)`` frames with 1, 3 or 4 channels to 3-channel RGB."""
    channels = frames.shape[-1]
    if channels == 1:
        return np.repeat(frames, 3, axis=-1)
    if channel_order not in ("RGB", "BGR"):
        raise VideoLayoutError(f"channel_order must be 'RGB' or 'BGR', got {channel_order!r}")
    colour = frames[..., :3]
    if channel_order == "BGR":
        colour = colour[..., ::-1]
    return np.ascontiguousarray(colour)


# --- decoding ---------------------------------------------------------------------


class _Decoder:
    """One open OpenCV capture, with the checks that turn its silence into errors."""

    def __init__(self, path: PathLike):
        import cv2

        self.path = Path(path)
        name = str(self.path)
        if not self.path.exists():
            raise VideoReadError(f"{name}: file not found")
        if self.path.is_dir():
            raise VideoReadError(f"{name}: is a directory, not a video file")
        if self.path.stat().st_size == 0:
            raise VideoReadError(f"{name}: file is empty (0 bytes)")
        self.capture = cv2.VideoCapture(name, cv2.CAP_FFMPEG)
        if not self.capture.isOpened():
            self.capture.release()
            raise VideoReadError(f"{name}: not a video OpenCV can decode (unknown container or codec, "
                                 "or not a video at all)")
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (math.isfinite(fps) and fps > 0):
            log.warning("%s: container gives no frame rate; assuming %g fps", name, DEFAULT_FPS)
            fps = DEFAULT_FPS
        self.timing = timing = read_timing(self.path)
        self.fps, self.stamps_from_rate = checked_rate(self.path, fps, timing)
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.n_frames_expected = count if count > 0 else None
        self.expected_from = "its header announces"
        shown = timing.n_shown() if timing is not None else None
        if shown is not None and shown != len(timing.durations):
            # An edit list hides stored frames: a player shows only the others, and so does FFmpeg.
            self.n_frames_expected = shown
            self.expected_from = f"its edit list shows (of {len(timing.durations)} stored)"
        self.n_read = 0
        self._last_ts = -math.inf

    def read(self) -> tuple[np.ndarray, float] | None:
        import cv2

        try:
            ok, frame = self.capture.read()
        except cv2.error as exc:  # corrupt streams can make FFmpeg throw mid-read
            log.warning("%s: decoder error after %d frames: %s", self.path, self.n_read, exc)
            return None
        if not ok or frame is None or frame.size == 0:
            return None
        if frame.ndim == 2:
            frame = frame[..., None]
        timestamp = self.n_read / self.fps if self.stamps_from_rate else \
            float(self.capture.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
        # Containers without timing report 0 for every frame: fall back to index / fps.
        if not math.isfinite(timestamp) or timestamp <= self._last_ts:
            timestamp = self.n_read / self.fps if self.n_read else 0.0
            if timestamp <= self._last_ts:
                timestamp = self._last_ts + 1.0 / self.fps
        self._last_ts = timestamp
        self.n_read += 1
        return _to_rgb(frame, "BGR"), timestamp

    def skip(self, n: int) -> int:
        skipped = 0
        for _ in range(n):
            if not self.capture.grab():
                break
            skipped += 1
        self.n_read += skipped
        return skipped

    def finish(self) -> None:
        self.capture.release()
        name = str(self.path)
        if self.n_read == 0:
            raise VideoReadError(
                f"{name}: no frame could be decoded (zero frames, or a truncated or corrupt file)"
            )
        expected = self.n_frames_expected
        if expected is not None and self.n_read < expected:
            warnings.warn(
                f"{name}: decoded {self.n_read} of the {expected} frames {self.expected_from}; "
                "the file looks truncated, the frames read are returned",
                TruncatedVideoWarning,
                stacklevel=3,
            )


def stream_video(
    path: PathLike, chunk_size: int = 256, max_frames: int | None = None, first: int = 0
) -> Iterator[Video]:
    """Decode a video file chunk by chunk.

    Each chunk is a :class:`Video` of up to ``chunk_size`` frames whose ``start`` gives
    its first frame's index in the file, so an hour-long video is processed in bounded
    memory. Raises :class:`~expresso_xai.errors.VideoReadError` for a missing, empty or
    undecodable file, and warns with
    :class:`~expresso_xai.errors.TruncatedVideoWarning` when fewer frames decode than
    the header announces. ``first`` starts at that frame, grabbing those before it one by
    one without converting them (exact numbering); ``max_frames`` counts from frame 0.

    Example:
        >>> import expresso_xai as ex
        >>> path = ex.samples.sample_path("participant_low")
        >>> [len(chunk) for chunk in ex.stream_video(path, chunk_size=100, max_frames=250)]
        [100, 100, 50]
        >>> [(chunk.start, len(chunk)) for chunk in ex.stream_video(path, chunk_size=100, max_frames=250, first=120)]
        [(120, 100), (220, 30)]
    """
    for value, what in ((chunk_size, "chunk_size"), (1 if max_frames is None else max_frames, "max_frames"),
                        (first + 1 if isinstance(first, numbers.Integral) else first, "first + 1")):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise VideoLayoutError(f"{what} must be a whole number of at least 1, got {value!r}")
    decoder = _Decoder(path)
    start = decoder.skip(int(first)) if first else 0
    exhausted = False
    try:
        while max_frames is None or start < max_frames:
            want = chunk_size if max_frames is None else min(chunk_size, max_frames - start)
            frames, stamps = [], []
            for _ in range(want):
                item = decoder.read()
                if item is None:
                    exhausted = True
                    break
                frames.append(item[0])
                stamps.append(item[1])
            if frames:
                if start == first and decoder.timing is None:  # no timing table: the first frames tell the rate
                    decoder.fps = rate_from_timestamps(np.asarray(stamps), decoder.fps, source=path)
                shapes = {f.shape for f in frames}
                if len(shapes) > 1:
                    raise VideoReadError(f"{path}: frame size changes inside the video {shapes}")
                chunk = Video(
                    np.stack(frames),
                    decoder.fps,
                    np.asarray(stamps),
                    source=str(path),
                    start=start,
                    n_frames_expected=decoder.n_frames_expected,
                )
                start += len(frames)
                if exhausted:
                    decoder.finish()  # warns before the last chunk goes out
                yield chunk
            elif exhausted:
                decoder.finish()  # raises when nothing at all could be decoded
            if exhausted:
                break
    finally:
        # Stopping early (max_frames, or the caller closing the generator) is no truncation.
        decoder.capture.release()


def load_video(path: PathLike, max_frames: int | None = None) -> Video:
    """Read a whole video file into memory as RGB frames.

    Args:
        path: a video file OpenCV/FFmpeg can decode (mp4, avi, mov, mkv, ...).
        max_frames: read at most this many frames from the start.

    Raises:
        VideoReadError: the file is missing, empty, not a video, or has no frames.

    Warns:
        TruncatedVideoWarning: fewer frames decoded than the header claims; the frames
        that could be read are returned.

    Example:
        >>> import expresso_xai as ex
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=16)
        >>> video.frames.shape, video.fps
        ((16, 192, 192, 3), 25.0)
    """
    chunks = list(stream_video(path, chunk_size=512, max_frames=max_frames))
    if not chunks:  # pragma: no cover - stream_video raises before this
        raise VideoReadError(f"{path}: no frame could be decoded")
    frames = np.concatenate([c.frames for c in chunks]) if len(chunks) > 1 else chunks[0].frames
    stamps = np.concatenate([c.timestamps for c in chunks])
    return Video(
        frames,
        chunks[0].fps,
        stamps,
        source=str(path),
        n_frames_expected=chunks[0].n_frames_expected,
    )
