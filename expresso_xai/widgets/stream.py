"""The live Explorer on a long cube: what the kernel sends a window at a time.

The windowed payload (:func:`expresso_xai.widgets.payload.build` with ``window=``)
carries the shapes and scales of the overlays, labels and frames but none of their
data; the front-end asks for a window with a custom message ``{"type": "window",
"index": k}`` and the kernel answers with :func:`window_message`: a small JSON header
(the ``WindowMessage`` typedef in ``widgets/explorer.js``) and binary buffers, never
base64 or JSON arrays of pixels.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import payload, windows

DEFLATE_LEVEL = 1  # a window is made while the user waits: fast deflate, not small
# a window's frames are cropped and encoded at about this side and scaled up by the
# browser: a quarter of the pixels of the display size, four times faster to make
WINDOW_FRAME_SIDE = 128


def windowed_parts(cube: xr.Dataset, video, size: int, messages: list) -> tuple:
    """The overlay, labels and frames parts of a windowed payload (their shapes and
    scales, no data) and its ``window`` part ``{size, count, step}``.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> overlay, labels, frames, window = windowed_parts(example_cube(pixels=True), None, 5, [])
        >>> overlay["encoding"], overlay["data"], frames, window
        ('window', None, None, {'size': 5, 'count': 4, 'step': 1})
    """
    n = cube.sizes["time"]
    overlay = None
    if "pixels" in cube:
        overlay = {"shape": [n, cube.sizes["y"], cube.sizes["x"]], "scale": payload.overlay_scales(cube),
                   "encoding": "window", "data": None, "error": None, "transparent": 0}
    else:
        messages.append(payload.NO_PIXELS)
    labels = None
    if overlay is not None and "region_label" in cube:
        label = cube["region_label"]
        encoding = label.attrs.get("encoding", "index" if label.dtype == np.uint8 else "bits")
        labels = {"encoding": encoding, "bytes": label.dtype.itemsize, "data": None}
    # two frames tell the display size and whether frames are cropped; the rest come by window
    first = payload.frame_images(cube.isel(time=slice(0, min(n, 2))), video, overlay, messages)
    frames = None if first is None else {**first, "jpeg": None}
    window = {"size": int(size), "count": -(-n // int(size)), "step": windows.peak_bins(n)}
    return overlay, labels, frames, window


def _deflated(array: np.ndarray) -> bytes:
    return payload.deflated(array, DEFLATE_LEVEL)


def window_message(cube: xr.Dataset, video, index: int, size: int, *, signed: dict[str, bool],
                   scales: dict[str, float], heat: np.ndarray, with_frames: bool = True) -> tuple[dict, list[bytes]]:
    """Window ``index`` of ``size`` frames: the header and its buffers. ``heat`` is
    :func:`payload.heat_array` of the whole cube (values whose views span the video,
    e.g. share, are sliced, never recomputed on the window). Buffers: per explainer its
    deflated uint8 codes (scaled like the whole video), the deflated labels, the window's
    heat values as little-endian float32 ``(explainer, value, region, frame)``, and
    (with a ``video`` and ``with_frames``) the frames' JPEGs end to end.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube(pixels=True)
        >>> signed = payload.signed_explainers(cube)
        >>> header, buffers = window_message(cube, None, 1, 5, signed=signed,
        ...     scales=payload.overlay_scales(cube), heat=payload.heat_array(cube))
        >>> header["start"], header["stop"], header["overlays"], len(buffers)
        (5, 10, {'gradcam': 0, 'integrated_gradients': 1}, 3)
    """
    start, stop = windows.window_bounds(cube.sizes["time"], size, index)
    part = cube.isel(time=slice(start, stop))
    buffers: list[bytes] = []

    def add(data: bytes) -> int:
        buffers.append(data)
        return len(buffers) - 1

    header = {"type": "window", "index": int(index), "start": start, "stop": stop, "overlays": {},
              "labels": None, "frames": None}
    if "pixels" in part:
        for name in part["explainer"].values.tolist():
            pixels = part["pixels"].sel(explainer=name).transpose("time", "y", "x").values
            header["overlays"][name] = add(_deflated(payload.quantise(pixels, signed[name], scales[name])))
        if "region_label" in part:
            header["labels"] = add(_deflated(payload.region_labels(part)[0]))
    header["heat"] = add(np.ascontiguousarray(heat[..., start:stop], dtype="<f4").tobytes())
    if video is not None and with_frames:
        images, _ = payload.video_frames(video, part, WINDOW_FRAME_SIDE)
        jpegs = [payload.jpeg_bytes(image) for image in images]
        header["frames"] = {"buffer": add(b"".join(jpegs)), "lengths": [len(j) for j in jpegs]}
    return header, buffers


class WindowCache:
    """Windows made ahead in one background thread and kept (the last ``keep``), so the
    first window is being made while the page loads and the next one while the user
    watches this one; nothing is sent until the page asks.

    Example:
        >>> cache = WindowCache(lambda k: ({"index": k}, []))
        >>> cache.prepare(1)
        >>> cache.get(1)[0], cache.get(2)[0], sorted(cache.held())
        ({'index': 1}, {'index': 2}, [1, 2])
    """

    def __init__(self, make, keep: int = 3):
        from concurrent.futures import ThreadPoolExecutor

        self._make = make
        self._keep = int(keep)
        self._futures: dict = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="expresso-window")

    def prepare(self, index: int) -> None:
        """Start making window ``index`` in the background (once)."""
        if index not in self._futures:
            self._futures[index] = self._pool.submit(self._make, index)
        while len(self._futures) > self._keep:  # the oldest first (dicts keep insertion order)
            self._futures.pop(next(iter(self._futures)))

    def get(self, index: int) -> tuple[dict, list[bytes]]:
        """Window ``index``, made now unless it was prepared."""
        self.prepare(index)
        return self._futures[index].result()

    def held(self) -> list[int]:
        """The windows made or being made."""
        return list(self._futures)
