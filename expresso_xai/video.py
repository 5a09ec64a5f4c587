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
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from .errors import TruncatedVideoWarning, VideoLayoutError, VideoReadError, VideoTimingWarning

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

DEFAULT_FPS = 25.0


@dataclass(eq=False)
class Video:
    """Frames of a video with their timing.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB.
        fps: frames per second (nominal rate of the container).
        timestamps: ``(T,)`` float64 seconds of each frame, from the container when it
            gives them, else ``index / fps``.
        source: the file the frames came from, or ``None`` for an array.
        start: index in the source of the first frame (non-zero for streamed chunks).
        n_frames_expected: the frame count the container announced (``None`` if unknown).

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
        frames = np.asarray(self.frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise VideoLayoutError(
                f"Video.frames must be (T, H, W, 3) uint8 RGB, got {frames.dtype} "
                f"{frames.shape}; build videos with Video.from_array(), which converts"
            )
        if frames.shape[0] == 0:
            raise VideoReadError(f"{self.source or 'array'}: video has zero frames")
        self.frames = frames
        if not (self.fps and math.isfinite(self.fps) and self.fps > 0):
            raise VideoLayoutError(f"{self.source or 'array'}: fps must be a positive number, got {self.fps!r}")
        if self.timestamps is None:
            self.timestamps = (self.start + np.arange(len(frames))) / float(self.fps)
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        if self.timestamps.shape != (len(frames),):
            raise VideoLayoutError(
                f"{self.source or 'array'}: timestamps must have shape ({len(frames)},), got {self.timestamps.shape}"
            )

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
        ``(T, H, W, 4)`` (alpha dropped), uint8 or float in ``[0, 1]``. ``channel_order``
        says whether colour frames are ``"RGB"`` (default) or ``"BGR"`` (as from OpenCV).
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
        frames = np.asarray(frames)
        name = source or "array"
        if frames.ndim == 3 and frames.shape[-1] in (3, 4) and min(frames.shape[:2]) > 4:
            raise VideoLayoutError(
                f"{name}: shape {frames.shape} is one colour image, not frames (T, H, W): use "
                "Video.from_image(image) or Video.from_array(image[None]) for a one-frame video"
            )
        if frames.ndim == 3:
            frames = frames[..., None]
        if frames.ndim != 4:
            raise VideoLayoutError(
                f"{name}: frames must be (T, H, W) or (T, H, W, C); got shape {frames.shape}"
            )
        if frames.shape[-1] not in (1, 3, 4):
            if frames.shape[1] in (1, 3, 4):
                raise VideoLayoutError(
                    f"{name}: frames of shape {frames.shape} look channels-first "
                    "(T, C, H, W); pass frames.transpose(0, 2, 3, 1) for (T, H, W, C)"
                )
            raise VideoLayoutError(
                f"{name}: last axis must be 1, 3 or 4 channels; got shape {frames.shape}"
            )
        if frames.dtype != np.uint8:
            if np.issubdtype(frames.dtype, np.floating):
                if not np.isfinite(frames).all():
                    raise VideoLayoutError(f"{name}: frames contain NaN or infinity")
                if frames.min() < 0 or frames.max() > 1:
                    raise VideoLayoutError(
                        f"{name}: float frames must lie in [0, 1]; got range "
                        f"[{frames.min():.3g}, {frames.max():.3g}] (convert to uint8 first)"
                    )
                frames = np.round(frames * 255).astype(np.uint8)
            elif np.issubdtype(frames.dtype, np.integer) and frames.min() >= 0 and frames.max() <= 255:
                frames = frames.astype(np.uint8)
            else:
                raise VideoLayoutError(f"{name}: unsupported frame dtype {frames.dtype}")
        frames = _to_rgb(frames, channel_order)
        return cls(np.ascontiguousarray(frames), float(fps), source=source)

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
        return (
            f"Video({self.n_frames} frames, {self.width}x{self.height}, {self.fps:g} fps, "
            f"start={self.start}, source={self.source!r})"
        )


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


def _checked_rate(path: Path, fps: float) -> tuple[float, bool]:
    """The frame rate to use, and whether timestamps must come from it: the container's
    rate, unless its timing table gives frames a duration of 0 (OpenCV's rate is then
    wrong, e.g. 0.52 fps); then the table's typical frame duration, with a warning."""
    from .mp4 import frame_durations

    timing = frame_durations(path)
    if timing is None or not (timing[1] == 0).any():
        return fps, False
    timescale, durations = timing
    steps = durations[durations > 0]
    rate = timescale / float(np.median(steps)) if steps.size else DEFAULT_FPS
    warnings.warn(f"{path}: {int((durations == 0).sum())} of {len(durations)} frames have a duration of 0 in the "
                  f"container's timing table, so its frame rate ({fps:.3g} fps) cannot be trusted; using {rate:g} fps"
                  + ("" if steps.size else " (the default)") + " and evenly spaced timestamps",
                  VideoTimingWarning, stacklevel=4)
    return rate, True


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
            raise VideoReadError(
                f"{name}: not a video OpenCV can decode (unknown container or codec, "
                "or not a video at all)"
            )
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (math.isfinite(fps) and fps > 0):
            log.warning("%s: container gives no frame rate; assuming %g fps", name, DEFAULT_FPS)
            fps = DEFAULT_FPS
        self.fps, self.stamps_from_rate = _checked_rate(self.path, fps)
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.n_frames_expected = count if count > 0 else None
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
                f"{name}: decoded {self.n_read} of the {expected} frames its header "
                "announces; the file looks truncated, the frames read are returned",
                TruncatedVideoWarning,
                stacklevel=3,
            )


def stream_video(
    path: PathLike, chunk_size: int = 256, max_frames: int | None = None
) -> Iterator[Video]:
    """Decode a video file chunk by chunk.

    Each chunk is a :class:`Video` of up to ``chunk_size`` frames whose ``start`` gives
    its first frame's index in the file, so an hour-long video is processed in bounded
    memory. Raises :class:`~expresso_xai.errors.VideoReadError` for a missing, empty or
    undecodable file, and warns with
    :class:`~expresso_xai.errors.TruncatedVideoWarning` when fewer frames decode than
    the header announces.

    Example:
        >>> import expresso_xai as ex
        >>> path = ex.samples.sample_path("participant_low")
        >>> [len(chunk) for chunk in ex.stream_video(path, chunk_size=100, max_frames=250)]
        [100, 100, 50]
    """
    if chunk_size < 1:
        raise VideoLayoutError(f"chunk_size must be a whole number of at least 1, got {chunk_size!r}")
    decoder = _Decoder(path)
    start = 0
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
