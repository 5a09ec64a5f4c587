"""What the Explorer sends to the browser: everything encoded once, compact.

The front-end (``widgets/explorer.js``) never asks the kernel for anything after it
starts, so the same data drive the live widget and the standalone HTML file:

- video frames cropped like the model saw them, at display size, as JPEG (WebP in a
  lossy standalone page);
- each explainer's pixel maps quantised to uint8 with one scale per explainer (the
  99.5th percentile of |attribution| over the whole video, so frames compare), deflated;
- each pixel's region (uint8 indices or uint16 bit flags), deflated, for outlines;
- the region x time values (attribution, density, share) and the rank agreement;
- given an evaluation dataset, its method x metric table and perturbation curves
  (:mod:`expresso_xai.widgets.evaluation`).

The payload's shape is written down once, as the JSDoc ``@typedef Payload`` at the top
of ``widgets/explorer.js``; :func:`build` makes exactly that object. The conventions in
it are decided here, in Python, from their one home each: the value names and views
(:mod:`expresso_xai.cube.views`: ``VALUES``, ``value_view``), whether an explainer is
signed (``is_signed``) and the region label encoding (:mod:`expresso_xai.regions`:
``relabel``); the front-end only follows them.
"""

from __future__ import annotations

import base64
import json
import warnings
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import xarray as xr

from ..cube.views import (VALUE_LABELS, VALUES, check_video_frame_size, display_crop, is_signed, range_caution,
                          region_labels, value_view)
from ..errors import CubeError, ExpressoWarning, VideoReadError
from ..regions import REGION_COLOURS
from . import evaluation as evaluation_panel
from . import windows

DISPLAY_SIZE = 256  # the player's side in pixels (model input scaled by a whole factor)
LUT_MAPS = {"diverging": "RdBu_r", "sequential": "inferno"}  # the matplotlib maps in frontend/luts.json
LARGE_PAYLOAD_MB = 250  # beyond this, a browser tab struggles: warn and suggest a stretch

NO_PIXELS = ("This cube has no pixel maps, so there is no overlay: explain with "
             "ex.explain(..., keep_pixels=True) to draw attributions on the frames.")
NO_CROP = ("The cube has no crop_matrix, so its pixel maps cannot be placed on the video: "
           "the overlay is drawn on a plain background.")
NO_VIDEO = ("No video given: overlays are drawn on a plain background "
            "(Explorer(cube, video) shows them on the frames).")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def deflated(array: np.ndarray, level: int = 6) -> bytes:
    """``array``'s bytes, little-endian (what the page's typed arrays read), deflated.

    Example:
        >>> import zlib
        >>> np.frombuffer(zlib.decompress(deflated(np.arange(3, dtype=">u2"))), "<u2").tolist()
        [0, 1, 2]
    """
    return zlib.compress(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes(), level)


def _deflate(array: np.ndarray) -> str:
    return _b64(deflated(array))


def _hex(colour) -> str:
    return "#%02x%02x%02x" % tuple(int(c) for c in colour)


@lru_cache(maxsize=1)
def colour_luts() -> dict[str, list[list[int]]]:
    """The overlay's colour maps, 256 ``[r, g, b]`` each: ``diverging`` (matplotlib's
    RdBu_r) and ``sequential`` (inferno), read from ``frontend/luts.json``, written once
    from matplotlib (importing it costs a quarter of a second on the first open).

    Example:
        >>> luts = colour_luts()
        >>> sorted(luts), luts["sequential"][0], luts["diverging"][-1]
        (['diverging', 'sequential'], [0, 0, 4], [103, 0, 31])
    """
    stored = json.loads((Path(__file__).resolve().parent / "frontend" / "luts.json").read_text(encoding="utf-8"))
    return {kind: stored[kind] for kind in LUT_MAPS}


def _finite(values: np.ndarray, digits: int | None = None) -> list:
    """A float array as nested lists with NaN as None (JSON has no NaN), rounded to
    ``digits`` significant digits when given (a third of the characters)."""
    values = np.asarray(values, dtype=np.float64)
    if digits is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            magnitude = np.floor(np.log10(np.abs(values)))
        factor = 10.0 ** np.where(np.isfinite(magnitude), np.minimum(digits - 1 - magnitude, 300), 0)
        values = np.round(values * factor) / factor
    out = values.astype(object)
    out[~np.isfinite(values)] = None
    return out.tolist()


def _sampled_pixels(cube: xr.Dataset, name: str) -> np.ndarray:
    return cube["pixels"].sel(explainer=name).isel(time=windows.sampled_frames(cube.sizes["time"])).values


def _scale(values: np.ndarray) -> float:
    magnitude = np.abs(values[np.isfinite(values)])
    magnitude = magnitude[magnitude > 0]
    return float(np.percentile(magnitude, 99.5)) if magnitude.size else 1.0


def quantise(pixels: np.ndarray, signed: bool, scale: float) -> np.ndarray:
    """uint8 codes of a pixel map, ``value / scale`` clipped: signed maps use 1..255 with
    0 at exactly 128 (so a zero is transparent), magnitudes use 0..255.

    Example:
        >>> quantise(np.array([-2.0, 0.0, 0.5]), signed=True, scale=1.0).tolist()
        [1, 128, 192]
    """
    v = np.nan_to_num(np.asarray(pixels, np.float64) / scale)
    if signed:
        return np.round(128 + 127 * np.clip(v, -1, 1)).astype(np.uint8)
    return np.round(255 * np.clip(v, 0, 1)).astype(np.uint8)


def decode(codes: np.ndarray, signed: bool) -> np.ndarray:
    """The inverse of :func:`quantise`, in units of the scale (what explorer.js does).

    Example:
        >>> decode(np.array([1, 128, 255]), signed=True).tolist()
        [-1.0, 0.0, 1.0]
    """
    codes = np.asarray(codes, np.float64)
    return np.clip((codes - 128) / 127, -1, 1) if signed else codes / 255


# --- the parts of the payload --------------------------------------------------------


def signed_explainers(cube: xr.Dataset) -> dict[str, bool]:
    """``{explainer: signed}``: whether its region values or its pixel maps go below zero
    (:func:`expresso_xai.cube.views.is_signed`). Colours and overlay codes follow it.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> signed_explainers(example_cube())
        {'gradcam': True, 'integrated_gradients': True}
    """
    signed = {}
    for name in cube["explainer"].values.tolist():
        values = [cube["attribution"].sel(explainer=name).values]
        if "pixels" in cube:
            values.append(_sampled_pixels(cube, name))
        signed[name] = any(is_signed(v) for v in values)
    return signed


def heat_array(cube: xr.Dataset) -> np.ndarray:
    """Every value's view of the cube (:func:`expresso_xai.cube.views.value_view`) as one
    float64 array ``(explainer, value, region, time)``, values in :data:`VALUES` order.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> heat_array(example_cube()).shape
        (2, 3, 12, 16)
    """
    return np.stack([value_view(cube, value).transpose("explainer", "region", "time").values for value in VALUES],
                    axis=1)


def heat_rows(cube: xr.Dataset, step: int = 1) -> dict[str, dict[str, list]]:
    """``{explainer: {value: rows (region, time)}}`` for the heatmap and time series, each
    value's view of the cube (:func:`heat_array`), NaN as None; with ``step > 1``, in
    bins of ``step`` frames keeping each bin's peak (:func:`windows.downsample_peaks`).

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> rows = heat_rows(example_cube())["gradcam"]["share"]
        >>> len(rows), len(rows[0]), len(heat_rows(example_cube(), step=5)["gradcam"]["share"][0])
        (12, 16, 4)
    """
    views = windows.downsample_peaks(heat_array(cube), step)
    digits = 5 if step > 1 else None  # a long cube's columns are for the eye; exact values come by window
    return {name: {value: _finite(views[e, v], digits) for v, value in enumerate(VALUES)}
            for e, name in enumerate(cube["explainer"].values.tolist())}


def overlay_scales(cube: xr.Dataset) -> dict[str, float]:
    """Each explainer's scale (the value of code ±1): the 99.5th percentile of its
    |pixel attribution|, over every frame of a short cube and over
    :func:`windows.sampled_frames` of a long one.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> {name: round(scale, 2) for name, scale in overlay_scales(example_cube(pixels=True)).items()}
        {'gradcam': 2.84, 'integrated_gradients': 2.65}
    """
    return {name: _scale(_sampled_pixels(cube, name)) for name in cube["explainer"].values.tolist()}


def overlay_codes(cube: xr.Dataset, signed: dict[str, bool], *, lossy: bool = False,
                  scales: dict[str, float] | None = None) -> dict | None:
    """The pixel maps as uint8 codes with a scale per explainer (see :func:`quantise`),
    deflated (``encoding "deflate"``), or with ``lossy`` as WebP images of stacked frames
    (``"webp"``, :func:`windows.encode_codes_webp`) with their measured error in units
    of the scale (``error``); None when the cube has no ``pixels``.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube(pixels=True)
        >>> lossy = overlay_codes(cube, signed_explainers(cube), lossy=True)
        >>> lossy["encoding"], 0 < lossy["error"]["gradcam"]["mean"] < 0.05
        ('webp', True)
    """
    if "pixels" not in cube:
        return None
    scales = scales or overlay_scales(cube)
    out = {"shape": [cube.sizes["time"], cube.sizes["y"], cube.sizes["x"]], "scale": scales,
           "encoding": "webp" if lossy else "deflate", "data": {}, "error": {},
           "transparent": 1 if lossy else 0}  # lossy noise of one code about zero is not drawn
    for name in cube["explainer"].values.tolist():
        codes = quantise(cube["pixels"].sel(explainer=name).transpose("time", "y", "x").values,
                         signed[name], scales[name])
        if not lossy:
            out["data"][name] = _deflate(codes)
            out["error"][name] = {"max": 0.0, "mean": 0.0}
            continue
        blobs = windows.encode_codes_webp(codes)
        out["data"][name] = [_b64(b) for b in blobs]
        out["error"][name] = windows.code_error(codes, windows.decode_codes_webp(blobs, codes.shape), signed[name])
    return out


def label_codes(cube: xr.Dataset) -> dict | None:
    """Each pixel's region for the outlines, deflated, or None without ``region_label``."""
    if "region_label" not in cube:
        return None
    labels, encoding = region_labels(cube)
    return {"encoding": encoding, "bytes": labels.dtype.itemsize, "data": _deflate(labels)}


def agreement(cube: xr.Dataset) -> dict | None:
    """Rank agreement between the explainers: the matrix over region x time and, per
    frame, the mean pairwise Spearman over regions; None with one explainer."""
    n = cube.sizes["explainer"]
    if n < 2:
        return None
    per_frame = cube.xai.agreement(over="region").values
    upper = np.triu_indices(n, 1)
    pairs = per_frame[:, upper[0], upper[1]]  # (time, pair)
    finite = np.isfinite(pairs)
    counts = finite.sum(axis=1)
    mean_pairwise = np.where(counts > 0, np.where(finite, pairs, 0).sum(axis=1) / np.maximum(counts, 1), np.nan)
    return {"matrix": _finite(cube.xai.agreement().values), "per_frame": _finite(mean_pairwise)}


def playback(cube: xr.Dataset) -> tuple[np.ndarray, float]:
    """Each frame's time in seconds, and the rate that plays them in real time (also when
    the cube keeps every other frame)."""
    times = cube["time"].values.astype(np.int64)
    fps = float(cube.attrs.get("video_fps") or 0) or None
    seconds = cube["seconds"].values if "seconds" in cube.coords else times / (fps or 25.0)
    steps = np.diff(np.asarray(seconds, np.float64))
    steps = steps[np.isfinite(steps) & (steps > 0)]
    if steps.size:
        fps = 1.0 / float(np.median(steps))
    return seconds, fps or 25.0


# --- the video -----------------------------------------------------------------------


def display_factor(size: tuple[int, int], side: int = DISPLAY_SIZE) -> int:
    return max(1, int(round(side / max(size))))


def _frames_of(video, times: np.ndarray):
    """The frames ``times`` of ``video`` (a Video or a path, decoded chunk by chunk keeping
    only those), or None if it does not have them all; with its name and frame range."""
    from ..video import Video, stream_video

    if isinstance(video, Video):
        source, first, available = video.source, int(video.start), len(video)
        positions = times - first
        frames = video.frames[positions] if positions.min() >= 0 and positions.max() < available else None
        return frames, source, first, available
    source, available, kept = str(video), 0, []
    wanted = set(times.tolist())
    # the frames before the window are grabbed, not converted (a jump near the end of a
    # long interview decoded and kept every frame before it)
    for chunk in stream_video(Path(video), chunk_size=128, max_frames=int(times.max()) + 1, first=int(times.min())):
        indices = chunk.start + np.arange(len(chunk))
        kept += [chunk.frames[i] for i, index in enumerate(indices) if int(index) in wanted]
        available = int(indices[-1]) + 1
    if not available and times.min() > 0:  # the file ends before the window: say where (counted only here)
        available = sum(len(chunk) for chunk in stream_video(Path(video), chunk_size=128))
    return (np.stack(kept) if len(kept) == len(times) else None), source, 0, available


def _check_content(frames: np.ndarray, cube: xr.Dataset, source: str) -> None:
    """Refuse a video of the right size whose frames are not those the cube was made
    from (overlays would sit on the wrong pictures). Checked when the cube still has all
    the frames its ``video_hash`` covers; a part of a cube cannot be checked."""
    from ..video import FrameHasher

    expected, n_frames = cube.attrs.get("video_hash"), cube.attrs.get("video_n_frames")
    times = cube["time"].values
    if not expected or n_frames is None or len(times) != int(n_frames) or np.any(np.diff(times) != 1):
        return
    hasher = FrameHasher()
    hasher.update(frames, np.arange(len(frames)))
    if hasher.hexdigest() != expected:
        raise VideoReadError(f"{source or 'the video'} is not the video the cube was made from (its frames differ "
                             f"from those of {cube.attrs.get('video_source') or 'the cube'}): pass that video")


def video_frames(video, cube: xr.Dataset, side: int = DISPLAY_SIZE):
    """The cube's frames of ``video`` as (T, H, W, 3) uint8 at display size, cropped like
    the model saw them when the cube has ``crop_matrix``; and whether they are cropped."""
    import cv2

    times = cube["time"].values.astype(np.int64)
    frames, source, first, available = _frames_of(video, times)
    if frames is None:
        raise VideoReadError(
            f"{source or 'the video'} has frames {first}..{first + available - 1} but the cube "
            f"covers frames {times.min()}..{times.max()}: pass the video the cube was made from")
    check_video_frame_size(cube, frames, source)
    _check_content(frames, cube, source)
    if "crop_matrix" in cube and "pixels" in cube:
        factor = display_factor((cube.sizes['y'], cube.sizes['x']), side)
        return display_crop(cube, frames.shape[1:3], factor).apply(frames), True
    height, width = frames.shape[1:3]
    k = side / max(height, width)
    size = (max(1, int(round(width * k))), max(1, int(round(height * k))))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]), False


def jpeg_bytes(frame: np.ndarray, quality: int = 85, image_format: str = "jpeg") -> bytes:
    """An RGB frame as JPEG (or ``image_format="webp"``) bytes.

    Example:
        >>> frame = np.zeros((8, 8, 3), np.uint8)
        >>> jpeg_bytes(frame)[:3] == b"\\xff\\xd8\\xff", jpeg_bytes(frame, 70, "webp")[8:12]
        (True, b'WEBP')
    """
    import cv2

    flag = cv2.IMWRITE_WEBP_QUALITY if image_format == "webp" else cv2.IMWRITE_JPEG_QUALITY
    ok, data = cv2.imencode(f".{image_format[:4]}", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [flag, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise CubeError(f"could not encode a video frame as {image_format}")
    return data.tobytes()


def frame_images(cube: xr.Dataset, video, overlay: dict | None, messages: list[str], lossy: bool = False) -> dict | None:
    """The video's frames as JPEG (``lossy``: WebP at :data:`windows.FRAME_QUALITY`), or
    None (no video, or an overlay that cannot be placed on uncropped frames); what is
    missing is added to ``messages``."""
    if video is None:
        if overlay is not None:
            messages.append(NO_VIDEO)
        return None
    # lossy frames under an overlay at half the display size: the browser scales them up
    side = windows.LOSSY_FRAME_SIDE if lossy and overlay is not None else DISPLAY_SIZE
    images, cropped = video_frames(video, cube, side)
    if overlay is not None and not cropped:
        messages.append(NO_CROP)
        return None
    image_format, quality = ("webp", windows.FRAME_QUALITY) if lossy else ("jpeg", 85)
    size = _display(overlay, None) if overlay is not None else list(images.shape[1:3])
    return {"size": size, "cropped": cropped, "format": image_format,
            "jpeg": [_b64(jpeg_bytes(f, quality, image_format)) for f in images]}


# --- the whole payload ---------------------------------------------------------------


def _display(overlay: dict | None, frames: dict | None) -> list[int]:
    """The player's canvas, (height, width): the frames' size, else the pixel maps'
    scaled up by a whole factor."""
    if frames is not None:
        return frames["size"]
    if overlay is not None:
        return [n * display_factor(overlay["shape"][1:]) for n in overlay["shape"][1:]]
    return [DISPLAY_SIZE, DISPLAY_SIZE]


def _encoded_mb(frames: dict | None, overlay: dict | None, labels: dict | None) -> float:
    """Megabytes of the encoded frames, pixel maps and labels."""
    size = sum(map(len, frames["jpeg"])) if frames else 0
    for data in (overlay["data"] or {}).values() if overlay else ():
        size += len(data) if isinstance(data, str) else sum(map(len, data))
    size += len(labels["data"] or "") if labels else 0
    return size / 1e6


def _warn_if_large(n_frames: int, size_mb: float) -> None:
    if size_mb > LARGE_PAYLOAD_MB:
        warnings.warn(
            f"the Explorer sends {size_mb:.0f} MB to the browser for {n_frames} frames, more than a browser tab "
            f"handles well; explore a stretch at a time, e.g. Explorer(cube.isel(time=slice(0, 1500)), video)",
            ExpressoWarning, stacklevel=4)


def build(cube: xr.Dataset, video=None, evaluation=None, *, window: int | None = None, lossy: bool = False) -> dict:
    """The JSON-able payload of an Explorer: the ``Payload`` typedef at the top of
    ``widgets/explorer.js``. An ``evaluation`` dataset of the cube adds its panel
    (refused with :class:`~expresso_xai.errors.EvaluationError` if it is not the cube's).
    ``lossy`` encodes pixel maps and frames as WebP (:func:`overlay_codes`). With ``window``
    (frames per window, fewer than the cube's), the payload holds no pixel maps, labels
    or frames (the kernel sends them a window at a time, :mod:`.stream`) and the heatmap
    rows are downsampled to about :data:`windows.HEAT_COLUMNS` columns keeping peaks,
    and the per-frame times, seconds, face flags and predictions are compacted
    (:func:`.stream.compact_columns`), so it does not grow with the video.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> data = build(example_cube(pixels=True))
        >>> [value for value, label in data["values"]], data["labels"], data["overlay"]["shape"]
        (['attribution', 'density', 'share'], None, [16, 8, 8])
    """
    regions = cube["region"].values.tolist()
    evaluated = evaluation_panel.panel(cube, evaluation)  # refused before any decoding
    messages: list[str] = []
    signed = signed_explainers(cube)
    seconds, fps = playback(cube)
    step, windowed = 1, window is not None and window < cube.sizes["time"]
    if windowed:
        from .stream import windowed_parts

        overlay, labels, frames, window_part = windowed_parts(cube, video, window, messages)
        step = window_part["step"]
    else:
        overlay = overlay_codes(cube, signed, lossy=lossy)
        if overlay is None:
            messages.append(NO_PIXELS)
        labels = label_codes(cube) if overlay is not None else None
        frames = frame_images(cube, video, overlay, messages, lossy)
        window_part = None
        _warn_if_large(cube.sizes["time"], _encoded_mb(frames, overlay, labels))
    source = Path(str(cube.attrs.get("video_source") or "video")).name
    times = cube["time"].values.astype(np.int64)
    shared = agreement(cube)
    if shared is not None and step > 1:
        shared["per_frame"] = _finite(windows.downsample_peaks(np.array(shared["per_frame"], np.float64), step))
    data = {
        "version": 1,
        "title": f"{cube.attrs.get('model_name') or 'model'} on {source}",
        "times": cube["time"].values.astype(np.int64).tolist(),
        "seconds": _finite(seconds),
        "fps": fps,
        "explainers": cube["explainer"].values.tolist(),
        "regions": regions,
        "colours": {r: _hex(REGION_COLOURS.get(r, (200, 200, 200))) for r in regions},
        "face_found": cube["face_found"].values.astype(bool).tolist(),
        "prediction": _finite(cube["prediction"].values) if "prediction" in cube else None,
        "values": [[value, VALUE_LABELS[value]] for value in VALUES],
        "signed": signed,
        "heat": heat_rows(cube, step),
        "heat_times": times[::step].tolist() if step > 1 else None,
        "window": window_part,
        "agreement": shared,
        "overlay": overlay,
        "labels": labels,
        "frames": frames,
        "display": _display(overlay, frames),
        "luts": colour_luts(),
        "messages": messages,
        "cautions": [f"Caution: {caution}" for caution in [range_caution(cube)] if caution],
        "evaluation": evaluated,
    }
    if windowed:  # per-frame parts in a size that does not grow with the video
        from .stream import compact_columns

        data.update(compact_columns(cube, seconds, step))
    return data
