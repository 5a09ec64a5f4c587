"""What the Explorer sends to the browser: everything encoded once, compact.

The front-end (``widgets/explorer.js``) never asks the kernel for anything after it
starts, so the same data drive the live widget and the standalone HTML file:

- video frames cropped like the model saw them, at display size, as JPEG;
- each explainer's pixel maps quantised to uint8 with one scale per explainer (the
  99.5th percentile of |attribution| over the whole video, so frames compare), deflated;
- each pixel's region (uint8 indices or uint16 bit flags), deflated, for outlines;
- the region x time values (attribution, density, share) and the rank agreement.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import CubeError, VideoReadError
from ..regions import REGION_COLOURS, FaceCrop

DISPLAY_SIZE = 256  # the player's side in pixels (model input scaled by a whole factor)
LARGE_PAYLOAD_MB = 250  # beyond this, a browser tab struggles: warn and suggest a stretch
VALUES = ("attribution", "density", "share")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _deflate(array: np.ndarray) -> str:
    return _b64(zlib.compress(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes(), 6))


def _hex(colour) -> str:
    return "#%02x%02x%02x" % tuple(int(c) for c in colour)


def _lut(name: str) -> list[list[int]]:
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(int).tolist()


def _finite(values: np.ndarray) -> list:
    """A float array as nested lists with NaN as None (JSON has no NaN)."""
    values = np.asarray(values, dtype=np.float64)
    out = values.astype(object)
    out[~np.isfinite(values)] = None
    return out.tolist()


def heat_values(cube: xr.Dataset) -> dict[str, dict[str, np.ndarray]]:
    """``{explainer: {value: (region, time) array}}`` for the heatmap and time series:
    the cube's attribution and its ``.xai`` views (density per pixel, share of the total)."""
    views = {"attribution": cube["attribution"].astype(np.float64), "density": cube.xai.density(),
             "share": cube.xai.share()}
    views = {value: view.transpose("explainer", "region", "time").values for value, view in views.items()}
    return {name: {value: view[e] for value, view in views.items()}
            for e, name in enumerate(cube["explainer"].values.tolist())}


def is_signed(values: np.ndarray) -> bool:
    """Whether an explainer's values go below zero by more than float noise."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return False
    return bool(finite.min() < -1e-6 * max(np.abs(finite).max(), 1e-30))


def _scale(values: np.ndarray) -> float:
    magnitude = np.abs(values[np.isfinite(values)])
    magnitude = magnitude[magnitude > 0]
    return float(np.percentile(magnitude, 99.5)) if magnitude.size else 1.0


def quantise(pixels: np.ndarray, signed: bool, scale: float) -> np.ndarray:
    """uint8 codes of a pixel map, ``value / scale`` clipped: signed maps use 1..255 with
    0 at exactly 128 (so a zero is transparent), magnitudes use 0..255."""
    v = np.nan_to_num(np.asarray(pixels, np.float64) / scale)
    if signed:
        return np.round(128 + 127 * np.clip(v, -1, 1)).astype(np.uint8)
    return np.round(255 * np.clip(v, 0, 1)).astype(np.uint8)


def decode(codes: np.ndarray, signed: bool) -> np.ndarray:
    """The inverse of :func:`quantise`, in units of the scale (what explorer.js does)."""
    codes = np.asarray(codes, np.float64)
    return np.clip((codes - 128) / 127, -1, 1) if signed else codes / 255


def region_labels(cube: xr.Dataset) -> tuple[np.ndarray, str]:
    """``region_label`` renumbered to the cube's current regions (indices, or bits), so a
    cube subset or reordered with ``.sel(region=...)`` still outlines the right regions.
    Pixels of a region no longer in the cube get index 255 / no bit."""
    variable = cube["region_label"]
    labels = variable.transpose("time", "y", "x").values
    encoding = variable.attrs.get("encoding", "index" if labels.dtype == np.uint8 else "bits")
    current = cube["region"].values.tolist()
    stored = [n for n in str(variable.attrs.get("regions", "")).split(",") if n] or current
    if stored == current:
        return labels, encoding
    if encoding == "index":
        lookup = np.array([current.index(n) if n in current else 255 for n in stored] + [255] * (256 - len(stored)),
                          np.uint8)
        return lookup[labels], encoding
    remapped = np.zeros_like(labels, dtype=np.uint16)
    for old, name in enumerate(stored):
        if name in current:
            remapped |= (((labels >> old) & 1) << current.index(name)).astype(np.uint16)
    return remapped, encoding


def display_factor(size: tuple[int, int]) -> int:
    return max(1, int(round(DISPLAY_SIZE / max(size))))


def video_frames(video, cube: xr.Dataset):
    """The cube's frames of ``video`` as (T, H, W, 3) uint8 at display size, cropped like
    the model saw them when the cube has ``crop_matrix``; and whether they are cropped."""
    import cv2

    from ..video import Video, stream_video

    times = cube["time"].values.astype(np.int64)
    if isinstance(video, Video):
        source, first, available = video.source, int(video.start), len(video)
        positions = times - first
        frames = video.frames[positions] if positions.min() >= 0 and positions.max() < available else None
    else:  # decode chunk by chunk, keeping only the cube's frames
        source, first, available, kept = str(video), 0, 0, []
        wanted = set(times.tolist())
        for chunk in stream_video(Path(video), chunk_size=128, max_frames=int(times.max()) + 1):
            indices = chunk.start + np.arange(len(chunk))
            kept += [chunk.frames[i] for i, index in enumerate(indices) if int(index) in wanted]
            available = int(indices[-1]) + 1
        frames = np.stack(kept) if len(kept) == len(times) else None
    if frames is None:
        raise VideoReadError(
            f"{source or 'the video'} has frames {first}..{first + available - 1} but the cube "
            f"covers frames {times.min()}..{times.max()}: pass the video the cube was made from")
    expected = cube.attrs.get("video_frame_size")
    if isinstance(expected, str):  # nested attrs are stored as JSON text
        expected = json.loads(expected) if expected.strip().startswith("[") else None
    if expected is not None and len(expected) == 2 and tuple(int(v) for v in expected) != frames.shape[1:3]:
        raise VideoReadError(
            f"{source or 'the video'} is {frames.shape[2]}x{frames.shape[1]} but the cube was made from a "
            f"{int(expected[1])}x{int(expected[0])} video: pass the video the cube was made from")
    if "crop_matrix" in cube and "pixels" in cube:
        # the model's crop, scaled up by a whole factor about pixel centres
        h, w = cube.sizes["y"], cube.sizes["x"]
        k = display_factor((h, w))
        lift = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5]])
        model_crop = cube["crop_matrix"].values
        display = np.einsum("ij,tjk->tik", lift[:, :2], model_crop)
        display[:, :, 2] += lift[:, 2]
        return FaceCrop(display, (h * k, w * k), frames.shape[1:3]).apply(frames), True
    height, width = frames.shape[1:3]
    k = DISPLAY_SIZE / max(height, width)
    size = (max(1, int(round(width * k))), max(1, int(round(height * k))))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]), False


def _jpeg(frame: np.ndarray, quality: int = 85) -> str:
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise CubeError("could not encode a video frame as JPEG")
    return _b64(data.tobytes())


def build(cube: xr.Dataset, video=None) -> dict:
    """The JSON-able payload of an Explorer (see the module docstring)."""
    explainers = cube["explainer"].values.tolist()
    regions = cube["region"].values.tolist()
    times = cube["time"].values.astype(np.int64)
    heat = heat_values(cube)
    signed = {name: is_signed(heat[name]["attribution"]) for name in explainers}
    messages = []

    overlay = None
    if "pixels" in cube:
        pixels = cube["pixels"].transpose("explainer", "time", "y", "x").values
        shape = list(pixels.shape[1:])
        scales, codes = {}, {}
        for e, name in enumerate(explainers):
            values = pixels[e]
            signed[name] = signed[name] or is_signed(values)
            scales[name] = _scale(values)
            codes[name] = _deflate(quantise(values, signed[name], scales[name]))
        overlay = {"shape": shape, "scale": scales, "data": codes}
    else:
        messages.append("This cube has no pixel maps, so there is no overlay: explain with "
                        "ex.explain(..., keep_pixels=True) to draw attributions on the frames.")

    labels = None
    if "region_label" in cube and overlay is not None:
        label_array, encoding = region_labels(cube)
        labels = {"encoding": encoding, "bytes": label_array.dtype.itemsize, "data": _deflate(label_array)}

    display = [DISPLAY_SIZE, DISPLAY_SIZE]  # the player's canvas, (height, width)
    if overlay is not None:
        display = [n * display_factor(overlay["shape"][1:]) for n in overlay["shape"][1:]]
    frames = None
    if video is not None:
        images, cropped = video_frames(video, cube)
        if overlay is not None and not cropped:
            messages.append("The cube has no crop_matrix, so its pixel maps cannot be placed on the video: "
                            "the overlay is drawn on a plain background.")
            images = None
        if images is not None:
            frames = {"size": list(images.shape[1:3]), "cropped": cropped, "jpeg": [_jpeg(f) for f in images]}
            display = frames["size"]
    elif overlay is not None:
        messages.append("No video given: overlays are drawn on a plain background "
                        "(Explorer(cube, video) shows them on the frames).")

    agreement = None
    if len(explainers) > 1:
        matrix = cube.xai.agreement()
        per_frame = cube.xai.agreement(over="region").values
        upper = np.triu_indices(len(explainers), 1)
        pairs = per_frame[:, upper[0], upper[1]]  # (time, pair)
        finite = np.isfinite(pairs)
        counts = finite.sum(axis=1)
        mean_pairwise = np.where(counts > 0, np.where(finite, pairs, 0).sum(axis=1) / np.maximum(counts, 1), np.nan)
        agreement = {"matrix": _finite(matrix.values), "per_frame": _finite(mean_pairwise)}

    fps = float(cube.attrs.get("video_fps") or 0) or None
    seconds = cube["seconds"].values if "seconds" in cube.coords else times / (fps or 25.0)
    steps = np.diff(np.asarray(seconds, np.float64))
    steps = steps[np.isfinite(steps) & (steps > 0)]
    if steps.size:  # play in real time, also when the cube keeps every other frame
        fps = 1.0 / float(np.median(steps))
    size_mb = (sum(len(j) for j in frames["jpeg"]) if frames else 0) / 1e6
    size_mb += (sum(len(c) for c in overlay["data"].values()) if overlay else 0) / 1e6
    size_mb += (len(labels["data"]) if labels else 0) / 1e6
    if size_mb > LARGE_PAYLOAD_MB:
        import warnings

        from ..errors import ExpressoWarning

        warnings.warn(
            f"the Explorer sends {size_mb:.0f} MB to the browser for {len(times)} frames, more than a browser tab "
            f"handles well; explore a stretch at a time, e.g. Explorer(cube.isel(time=slice(0, 1500)), video)",
            ExpressoWarning, stacklevel=3)
    return {
        "version": 1,
        "title": f"{cube.attrs.get('model_name') or 'model'} on {Path(str(cube.attrs.get('video_source') or 'video')).name}",
        "times": times.tolist(),
        "seconds": _finite(seconds),
        "fps": fps or 25.0,
        "explainers": explainers,
        "regions": regions,
        "colours": {r: _hex(REGION_COLOURS.get(r, (200, 200, 200))) for r in regions},
        "face_found": cube["face_found"].values.astype(bool).tolist(),
        "prediction": _finite(cube["prediction"].values) if "prediction" in cube else None,
        "signed": signed,
        "heat": {name: {v: _finite(heat[name][v]) for v in VALUES} for name in explainers},
        "agreement": agreement,
        "overlay": overlay,
        "labels": labels,
        "frames": frames,
        "display": display,
        "luts": {"diverging": _lut("RdBu_r"), "sequential": _lut("inferno")},
        "messages": messages,
    }
