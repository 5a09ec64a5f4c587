"""Long videos in the Explorer: windows of frames, series downsampled for the screen,
and pixel maps encoded lossily for the standalone HTML.

- A window is a run of consecutive cube columns (e.g. 20 s of frames) that the live
  widget asks the kernel for, in binary buffers, as the user scrubs or plays; the
  heatmap and time series keep showing the whole video, downsampled in time.
- Downsampling keeps, per screen column, the value of largest magnitude (its sign kept),
  so a one-frame peak is still drawn when many frames share a column.
- Lossy overlays (the standalone HTML): the uint8 codes of
  :func:`expresso_xai.widgets.payload.quantise`, frames stacked into tall 8-bit lossy
  WebP images (quality :data:`MAP_QUALITY`); the error against the lossless codes is
  measured at encoding time and sent with them. Measured on the shipped sample
  (participant_mid, 48 frames, demo model, 64x64): 5.3x smaller than deflated codes for
  gradcam (error max 0.063, mean 0.006 of the scale), 2.7x for saliency (0.082, 0.011),
  3.5x for integrated gradients (0.17, 0.018).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CubeError

WINDOW_SECONDS = 20.0  # frames the live widget holds at once, in seconds of video
HEAT_COLUMNS = 600  # columns of the downsampled heatmap and series (the plot is ~500 px wide)
MAP_QUALITY = 80  # lossy pixel maps (WebP): 3-5x smaller than deflated codes on gradcam
FRAME_QUALITY = 70  # lossy video frames (WebP): ~3x smaller than the live widget's JPEG at 85
LOSSY_FRAME_SIDE = 128  # lossy frames under an overlay: about half the display size, scaled up by the browser
ATLAS_FRAMES = 64  # frames stacked per image
WEBP_MAX_SIDE = 16383
SCALE_FRAMES = 256  # frames sampled (evenly) for an explainer's scale and sign on a long cube


def window_size(fps: float, seconds: float = WINDOW_SECONDS) -> int:
    """Frames in a window of ``seconds`` at ``fps`` (at least one).

    Example:
        >>> window_size(25.0), window_size(25.0, seconds=0.01)
        (500, 1)
    """
    return max(1, int(round(float(fps) * float(seconds))))


def window_bounds(n_frames: int, size: int, index: int) -> tuple[int, int]:
    """The cube columns ``[start, stop)`` of window ``index`` when ``n_frames`` columns are
    cut into windows of ``size`` (the last one may be shorter).

    Example:
        >>> window_bounds(3000, 500, 0), window_bounds(3000, 500, 5), window_bounds(1010, 500, 2)
        ((0, 500), (2500, 3000), (1000, 1010))
    """
    count = math.ceil(n_frames / size)
    if not 0 <= index < count:
        raise CubeError(f"window {index} does not exist: {n_frames} frames make windows 0..{count - 1} of {size}")
    return index * size, min(n_frames, (index + 1) * size)


def window_of(column: int, size: int) -> int:
    """The window holding cube column ``column``.

    Example:
        >>> window_of(0, 500), window_of(499, 500), window_of(500, 500)
        (0, 0, 1)
    """
    return int(column) // int(size)


def sampled_frames(n_frames: int) -> np.ndarray:
    """Positions of at most :data:`SCALE_FRAMES` frames spread evenly over the cube (all
    frames of a short one): a long cube's scale and sign are read from them, in bounded
    time and memory.

    Example:
        >>> sampled_frames(4).tolist(), len(sampled_frames(15_000)), int(sampled_frames(15_000)[-1])
        ([0, 1, 2, 3], 256, 14999)
    """
    if n_frames <= SCALE_FRAMES:
        return np.arange(n_frames)
    return np.unique(np.linspace(0, n_frames - 1, SCALE_FRAMES).round().astype(np.int64))


def peak_bins(n_frames: int, columns: int = HEAT_COLUMNS) -> int:
    """Frames per downsampled column: 1 while the frames fit in ``columns``.

    Example:
        >>> peak_bins(300), peak_bins(15_000), peak_bins(601, 600)
        (1, 25, 2)
    """
    return max(1, math.ceil(n_frames / columns))


def downsample_peaks(values: np.ndarray, step: int) -> np.ndarray:
    """``values (..., time)`` in bins of ``step`` frames along the last axis, each bin the
    value of largest magnitude in it (its sign kept; NaN where a bin has no finite
    value), so a peak of one frame survives.

    Example:
        >>> downsample_peaks(np.array([0.1, -3.0, 0.2, 0.5, np.nan, np.nan, 7.0]), 2).tolist()
        [-3.0, 0.5, nan, 7.0]
    """
    values = np.asarray(values, np.float64)
    if step <= 1:
        return values
    n = values.shape[-1]
    bins = math.ceil(n / step)
    padded = np.full(values.shape[:-1] + (bins * step,), np.nan)
    padded[..., :n] = values
    padded = padded.reshape(values.shape[:-1] + (bins, step))
    magnitude = np.where(np.isfinite(padded), np.abs(padded), -1.0)
    pick = magnitude.argmax(axis=-1)[..., None]
    return np.take_along_axis(padded, pick, axis=-1)[..., 0]


# --- lossy pixel maps ----------------------------------------------------------------


def _atlas_frames(height: int) -> int:
    return max(1, min(ATLAS_FRAMES, WEBP_MAX_SIDE // max(1, int(height))))


def encode_codes_webp(codes: np.ndarray, quality: int | None = None) -> list[bytes]:
    """uint8 codes ``(time, h, w)`` as lossy WebP images of up to :data:`ATLAS_FRAMES`
    frames stacked vertically (frame k of an image at rows ``k*h .. (k+1)*h``), at
    ``quality`` (default :data:`MAP_QUALITY`).

    Example:
        >>> codes = np.full((70, 8, 8), 128, np.uint8)
        >>> [len(b) > 0 for b in encode_codes_webp(codes)]
        [True, True]
    """
    import cv2

    codes = np.ascontiguousarray(codes, np.uint8)
    t, h, w = codes.shape
    step = _atlas_frames(h)
    out = []
    for start in range(0, t, step):
        atlas = codes[start:start + step].reshape(-1, w)
        ok, data = cv2.imencode(".webp", atlas, [cv2.IMWRITE_WEBP_QUALITY, int(quality or MAP_QUALITY)])
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 image this size
            raise CubeError("could not encode a pixel map as WebP")
        out.append(data.tobytes())
    return out


def decode_codes_webp(blobs: list[bytes], shape: tuple[int, int, int]) -> np.ndarray:
    """The inverse of :func:`encode_codes_webp` (with OpenCV's decoder): codes ``shape``.

    Example:
        >>> codes = np.tile(np.arange(0, 256, 4, dtype=np.uint8).reshape(8, 8), (3, 1, 1))
        >>> back = decode_codes_webp(encode_codes_webp(codes, quality=100), codes.shape)
        >>> back.shape, int(np.abs(back.astype(int) - codes).max()) <= 8
        ((3, 8, 8), True)
    """
    import cv2

    frames = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_GRAYSCALE) for b in blobs]
    return np.concatenate(frames).reshape(shape)


def code_error(codes: np.ndarray, decoded: np.ndarray, signed: bool) -> dict[str, float]:
    """The quantisation error of decoded codes against the lossless ones, in units of the
    map's scale (a code step is 1/127 of the scale for signed maps, 1/255 for magnitudes):
    ``{"max": ..., "mean": ...}``.

    Example:
        >>> code_error(np.array([128, 130]), np.array([128, 127]), signed=True)
        {'max': 0.023622, 'mean': 0.011811}
    """
    step = 1 / 127 if signed else 1 / 255
    diff = np.abs(np.asarray(codes, np.int16) - np.asarray(decoded, np.int16)) * step
    return {"max": round(float(diff.max(initial=0)), 6), "mean": round(float(diff.mean()) if diff.size else 0.0, 6)}
