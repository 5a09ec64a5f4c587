"""The live Explorer on a long cube: what the kernel sends a window at a time.

The windowed payload (:func:`expresso_xai.widgets.payload.build` with ``window=``)
carries the shapes and scales of the overlays, labels and frames but none of their
data; the front-end asks for a window with a custom message ``{"type": "window",
"index": k}`` and the kernel answers with :func:`window_message`: a small JSON header
(the ``WindowMessage`` typedef in ``widgets/explorer.js``) and binary buffers, never
base64 or JSON arrays of pixels.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from . import payload, windows

DEFLATE_LEVEL = 1  # a window is made while the user waits: fast deflate, not small
# a window's frames are cropped and encoded at about this side and scaled up by the
# browser: a quarter of the pixels of the display size, four times faster to make
WINDOW_FRAME_SIDE = 128
# frames of a window sent first when it is not made yet (its "head"): about a tenth of
# its cost, so a jump or the first open draws the frame asked for while the rest is made
HEAD_FRAMES = 50


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


def regular_run(values, tolerance: float = 0.0):
    """``{"start", "step", "count"}`` when ``values`` are ``start + k * step`` (within
    ``tolerance``), else the values as a list: a long cube's frame numbers and seconds in
    a few bytes instead of a few per frame (the front-end's ``expandColumns`` undoes it).

    Example:
        >>> regular_run([10, 12, 14]), regular_run([0.0, 0.04, 0.08], 1e-6), regular_run([1, 2, 4])
        ({'start': 10, 'step': 2, 'count': 3}, {'start': 0.0, 'step': 0.04, 'count': 3}, [1, 2, 4])
    """
    values = np.asarray(values)
    listed = payload._finite(values) if values.dtype.kind == "f" else values.tolist()
    if values.size < 2 or not np.all(np.isfinite(values)):
        return listed
    integer = values.dtype.kind in "iu"
    start = values[0].item()
    step = int(values[1] - values[0]) if integer else round(float(values[-1] - values[0]) / (values.size - 1), 12)
    if np.abs(values - (start + step * np.arange(values.size))).max() > tolerance:
        return listed
    return {"start": start, "step": step, "count": int(values.size)}


def run_lengths(flags) -> dict:
    """``{"first": flag, "runs": [n, ...]}``: booleans as the lengths of their runs,
    alternating from ``first`` (a face is found in long stretches, so a handful of runs).

    Example:
        >>> run_lengths([True, True, False, True])
        {'first': True, 'runs': [2, 1, 1]}
    """
    flags = np.asarray(flags, bool)
    if flags.size == 0:
        return {"first": True, "runs": []}
    edges = np.flatnonzero(flags[1:] != flags[:-1]) + 1
    bounds = np.concatenate([[0], edges, [flags.size]])
    return {"first": bool(flags[0]), "runs": np.diff(bounds).tolist()}


def compact_columns(cube: xr.Dataset, seconds: np.ndarray, step: int) -> dict:
    """The per-frame parts of a windowed payload, in a size that does not grow with the
    video: ``times``, ``seconds`` and ``heat_times`` as :func:`regular_run`, ``face_found`` as
    :func:`run_lengths` and a per-frame ``prediction`` as one mean per heat column.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube()
        >>> parts = compact_columns(cube, cube["seconds"].values, 4)
        >>> parts["times"], parts["face_found"]["runs"]
        ({'start': 0, 'step': 1, 'count': 16}, [3, 1, 12])
    """
    times = cube["time"].values.astype(np.int64)
    seconds = np.asarray(seconds, np.float64)
    listed = regular_run(seconds, 1e-6)
    if isinstance(listed, list):  # irregular: ~8 characters a frame, not 18
        listed = payload._finite(np.round(seconds, 4))
    out = {"times": regular_run(times), "seconds": listed, "face_found": run_lengths(cube["face_found"].values),
           "heat_times": regular_run(times[::step]) if step > 1 else None}
    if "prediction" in cube and cube["prediction"].ndim == 1:
        values = np.asarray(cube["prediction"].values, np.float64)
        padded = np.full(-(-values.size // step) * step, np.nan)
        padded[:values.size] = values
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a bin without any prediction is NaN
            out["prediction"] = payload._finite(np.nanmean(padded.reshape(-1, step), axis=1), 6)
    return out


def _deflated(array: np.ndarray) -> bytes:
    return payload.deflated(array, DEFLATE_LEVEL)


def head_bounds(n_frames: int, size: int, index: int, column: int, head: int = HEAD_FRAMES) -> tuple[int, int]:
    """The columns ``[start, stop)`` of window ``index``'s head: ``head`` frames from
    ``column`` (moved back to fit in the window), sent before the whole window so the
    frame asked for is drawn without waiting for the rest.

    Example:
        >>> head_bounds(3000, 500, 4, 2100, 50), head_bounds(3000, 500, 4, 2490, 50), head_bounds(3000, 500, 0, -5, 50)
        ((2100, 2150), (2450, 2500), (0, 50))
    """
    start, stop = windows.window_bounds(n_frames, size, index)
    first = min(max(int(column), start), max(start, stop - int(head)))
    return first, min(stop, first + int(head))


def window_message(cube: xr.Dataset, video, index: int, size: int, *, signed: dict[str, bool],
                   scales: dict[str, float], heat: np.ndarray, with_frames: bool = True,
                   columns: tuple[int, int] | None = None) -> tuple[dict, list[bytes]]:
    """Window ``index`` of ``size`` frames: the header and its buffers. ``heat`` is
    :func:`payload.heat_array` of the whole cube (values whose views span the video,
    e.g. share, are sliced, never recomputed on the window). Buffers: per explainer its
    deflated uint8 codes (scaled like the whole video), the deflated labels, the window's
    heat values as little-endian float32 ``(explainer, value, region, frame)``, and
    (with a ``video`` and ``with_frames``) the frames' JPEGs end to end. With
    ``columns`` (:func:`head_bounds`), only those columns of the window, marked
    ``partial``: the whole window follows.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube(pixels=True)
        >>> signed = payload.signed_explainers(cube)
        >>> header, buffers = window_message(cube, None, 1, 5, signed=signed,
        ...     scales=payload.overlay_scales(cube), heat=payload.heat_array(cube))
        >>> header["start"], header["stop"], header["overlays"], len(buffers)
        (5, 10, {'gradcam': 0, 'integrated_gradients': 1}, 3)
    """
    start, stop = windows.window_bounds(cube.sizes["time"], size, index) if columns is None else columns
    part = cube.isel(time=slice(start, stop))
    buffers: list[bytes] = []

    def add(data: bytes) -> int:
        buffers.append(data)
        return len(buffers) - 1

    header = {"type": "window", "index": int(index), "start": int(start), "stop": int(stop), "overlays": {},
              "labels": None, "frames": None, "partial": columns is not None}
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

    def submit(self, make):
        """Run ``make()`` in the cache's thread, in turn with the windows: its future."""
        return self._pool.submit(make)

    def ready(self, index: int) -> bool:
        """Whether window ``index`` is made (asking for it would not wait)."""
        return index in self._futures and self._futures[index].done()

    def get(self, index: int) -> tuple[dict, list[bytes]]:
        """Window ``index``, made now unless it was prepared."""
        self.prepare(index)
        return self._futures[index].result()

    def held(self) -> list[int]:
        """The windows made or being made."""
        return list(self._futures)
