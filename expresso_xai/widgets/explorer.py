"""``ex.widgets.Explorer``: the video, its attributions and the region x time heatmap,
linked, and the evaluation of the methods when there is one, in JupyterLab (an
anywidget) or as a standalone HTML file."""

from __future__ import annotations

import html
import json
from functools import lru_cache
from pathlib import Path

import anywidget
import numpy as np
import pandas as pd
import traitlets
import xarray as xr

from ..cube import check_cube
from ..cube.views import DEFAULT_VALUE, VALUES
from ..errors import CubeError, ExplorerSizeError
from ..files import atomic_path
from . import payload, stream, windows

FRONTEND = Path(__file__).resolve().parent / "frontend"
COLOURS = ("auto", "signed", "magnitude")
HTML_CAP_MB = 200.0  # a standalone page above this is refused: browsers struggle to open it


def _frontend_file(name: str) -> Path:
    path = FRONTEND / name
    if not path.is_file():  # pragma: no cover - a broken install
        raise FileNotFoundError(f"the Explorer's front-end file {path} is missing; reinstall expresso-xai")
    return path


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js as shipped inside the plotly Python package (no CDN, no network)."""
    from importlib.util import find_spec

    # found, not imported: the Python package itself is not needed to open an Explorer
    path = Path(find_spec("plotly").origin).parent / "package_data" / "plotly.min.js"
    return path.read_text(encoding="utf-8")


class Explorer(anywidget.AnyWidget):
    """Explore an attribution cube: a frame player with the attribution drawn over the
    face, a region x time heatmap linked to it both ways, per-region time series, and
    every explainer side by side with their rank agreement (Spearman); given the cube's
    evaluation (``ex.evaluate``), a panel with its perturbation curves (MoRF, LeRF and
    random orders per method, deletion or insertion) and its method x metric table.

    A cube of up to ``window`` seconds is encoded once when the Explorer is made (frames
    as JPEG, pixel maps as deflated uint8), so moving between frames never waits for the
    kernel. A longer one is streamed: the browser holds one window of ``window`` seconds
    of frames and pixel maps, asks the kernel for another (in binary buffers) when the
    user moves outside it (the frame asked for first when the window is not made yet),
    and fetches the next one ahead while playing; the heatmap and
    time series show the whole video, downsampled to the screen keeping each column's
    peak. ``sent_windows`` lists the windows the kernel sent. Overlays need the cube's pixel maps (``ex.explain(..., keep_pixels=True)``);
    without them the Explorer says so and shows the heatmap and time series alone.

    Args:
        cube: an attribution cube (``ex.explain`` or ``ex.open_cube``).
        video: the video the cube was made from (a :class:`~expresso_xai.Video` or a
            path), to draw the overlays on the frames the model saw; optional.
        method: the explainer shown first (default: the cube's first).
        evaluation: the cube's evaluation dataset (``ex.evaluate(model, video, cube)``)
            or the path of one saved with ``to_netcdf``; optional. One made for other
            explainers, another model or another video is refused
            (:class:`~expresso_xai.errors.EvaluationError`).
        window: seconds of video the browser holds at once when the cube is longer
            (default 20); None sends everything at once whatever the length.

    The state is in traits, synced with the browser both ways: ``frame`` (a frame index
    of the video, one of ``cube.time``), ``method``, ``region`` (``""`` for none),
    ``value`` (``"density"``, the default, ``"attribution"`` or ``"share"``), ``colour`` (``"auto"``:
    diverging for signed methods and sequential for magnitudes; ``"signed"``;
    ``"magnitude"``), ``opacity``, ``outlines``, ``playing`` and ``speed``.

    Example:
        >>> import expresso_xai as ex
        >>> from expresso_xai.testing import example_cube
        >>> explorer = ex.widgets.Explorer(example_cube(pixels=True))
        >>> explorer.method, explorer.frame
        ('gradcam', 0)
        >>> explorer.select(frame=5, region="mouth")
        >>> explorer.value  # attribution per pixel, as in figures
        'density'
        >>> explorer.frame, explorer.region, round(float(explorer.current()["mouth"]), 4)
        (5, 'mouth', 0.0114)
    """

    _esm = _frontend_file("explorer.js")
    _css = _frontend_file("explorer.css")

    frame = traitlets.Int(0).tag(sync=True)
    method = traitlets.Unicode("").tag(sync=True)
    region = traitlets.Unicode("").tag(sync=True)
    value = traitlets.Unicode(DEFAULT_VALUE).tag(sync=True)
    colour = traitlets.Unicode("auto").tag(sync=True)
    opacity = traitlets.CFloat(0.6).tag(sync=True)
    outlines = traitlets.Bool(True).tag(sync=True)
    playing = traitlets.Bool(False).tag(sync=True)
    speed = traitlets.CFloat(1.0).tag(sync=True)
    _data = traitlets.Dict().tag(sync=True)
    _plotly = traitlets.Unicode("").tag(sync=True)

    def __init__(self, cube: xr.Dataset, video=None, *, method: str | None = None, evaluation=None,
                 window: float | None = windows.WINDOW_SECONDS, **kwargs):
        if not isinstance(cube, xr.Dataset):
            raise CubeError(f"Explorer needs an attribution cube (xarray.Dataset), got {type(cube).__name__}")
        check_cube(cube)
        self._cube = cube
        self._times = cube["time"].values.astype(np.int64)
        self._position = {int(t): i for i, t in enumerate(self._times)}  # frame number -> column
        explainers = cube["explainer"].values.tolist()
        if method is not None and method not in explainers:
            raise CubeError(f"method {method!r} is not in the cube; it has {explainers}")
        if isinstance(evaluation, (str, Path)):
            from ..evaluate import open_evaluation

            evaluation = open_evaluation(evaluation)
        self._evaluation = evaluation
        self._video = video
        self._window = None if window is None else windows.window_size(payload.playback(cube)[1], window)
        if self._window is not None and self._window >= len(self._times):
            self._window = None
        self._heat = payload.heat_array(cube)
        self._sent_windows: list[int] = []
        self._first_head = None  # (column, future) of the first frames, made ahead
        data = payload.build(cube, video, evaluation, window=self._window)
        kwargs.setdefault("frame", int(self._times[0]))
        super().__init__(_data=data, _plotly=plotly_js(), method=method or explainers[0], **kwargs)
        if self._window is not None:
            self._windows = stream.WindowCache(self.window_message)
            # made while the page loads: the first frames, then their whole window
            start = self._position[int(self.frame)]
            self._first_head = (start, self._windows.submit(
                lambda: self._head_message(windows.window_of(start, self._window), start)))
            self._windows.prepare(windows.window_of(start, self._window))
            self.on_msg(self._on_window_request)

    def _on_window_request(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict) or content.get("type") != "window":
            return
        index = int(content.get("index", -1))
        if not 0 <= index < self._data["window"]["count"]:
            return  # a page of an older cube, or a bad request: nothing to send
        column = content.get("column")
        if isinstance(column, int) and not self._windows.ready(index):
            # the frame asked for first, the rest of its window while it is drawn
            first, self._first_head = self._first_head, None
            if first is not None and first[0] == column:
                self.send(*first[1].result())
            else:
                self.send(*self._head_message(index, column))
        header, buffers = self._windows.get(index)
        self._sent_windows.append(index)
        self.send(header, buffers=buffers)
        if index + 1 < self._data["window"]["count"]:  # the window ahead, made while this one is watched
            self._windows.prepare(index + 1)

    def _head_message(self, index: int, column: int) -> tuple[dict, list[bytes]]:
        columns = stream.head_bounds(len(self._times), self._window, index, column)
        return self._window_message(index, columns)

    def _window_message(self, index: int, columns: tuple[int, int] | None = None) -> tuple[dict, list[bytes]]:
        return stream.window_message(self._cube, self._video, int(index), self._window, signed=self._data["signed"],
                                     scales=self._data["overlay"]["scale"] if self._data["overlay"] else {},
                                     heat=self._heat, with_frames=self._data["frames"] is not None, columns=columns)

    def window_message(self, index: int) -> tuple[dict, list[bytes]]:
        """What the kernel sends for window ``index`` of a streamed cube: a JSON header
        and binary buffers (``expresso_xai.widgets.stream.window_message``).

        Example:
            >>> import expresso_xai as ex
            >>> from expresso_xai.testing import example_cube
            >>> explorer = ex.widgets.Explorer(example_cube(n_frames=60, pixels=True), window=1.0)
            >>> explorer.windowed, explorer.window_message(2)[0]["start"], explorer.sent_windows
            (True, 50, [])
        """
        if self._window is None:
            raise CubeError("this Explorer is not streamed: everything was sent at once")
        return self._window_message(index)

    # --- validation: the browser and Python get the same errors ---------------------

    @traitlets.validate("frame")
    def _valid_frame(self, proposal):
        frame = int(proposal["value"])
        if frame not in self._position:
            raise traitlets.TraitError(
                f"frame {frame} is not in the cube; it has frames {self._times[0]}..{self._times[-1]}")
        return frame

    @traitlets.validate("method")
    def _valid_method(self, proposal):
        explainers = self._cube["explainer"].values.tolist()
        if proposal["value"] not in explainers:
            raise traitlets.TraitError(f"method {proposal['value']!r} is not in the cube; it has {explainers}")
        return proposal["value"]

    @traitlets.validate("region")
    def _valid_region(self, proposal):
        regions = self._cube["region"].values.tolist()
        if proposal["value"] and proposal["value"] not in regions:
            raise traitlets.TraitError(f"region {proposal['value']!r} is not in the cube; it has {regions}")
        return proposal["value"]

    @traitlets.validate("value")
    def _valid_value(self, proposal):
        if proposal["value"] not in VALUES:
            raise traitlets.TraitError(f"value must be one of {VALUES}, got {proposal['value']!r}")
        return proposal["value"]

    @traitlets.validate("colour")
    def _valid_colour(self, proposal):
        if proposal["value"] not in COLOURS:
            raise traitlets.TraitError(f"colour must be one of {COLOURS}, got {proposal['value']!r}")
        return proposal["value"]

    @traitlets.validate("opacity")
    def _valid_opacity(self, proposal):
        if not 0.0 <= proposal["value"] <= 1.0:
            raise traitlets.TraitError(f"opacity must be between 0 and 1, got {proposal['value']}")
        return float(proposal["value"])

    @traitlets.validate("speed")
    def _valid_speed(self, proposal):
        if not 0 < proposal["value"] < float("inf"):
            raise traitlets.TraitError(f"speed must be a positive number, got {proposal['value']}")
        return float(proposal["value"])

    # --- Python API -----------------------------------------------------------------

    @property
    def cube(self) -> xr.Dataset:
        """The cube being explored."""
        return self._cube

    @property
    def evaluation(self) -> xr.Dataset | None:
        """The evaluation dataset shown in the evaluation panel, or None.

        Example:
            >>> import expresso_xai as ex
            >>> from expresso_xai.testing import example_cube, example_evaluation
            >>> explorer = ex.widgets.Explorer(example_cube(), evaluation=example_evaluation())
            >>> explorer.evaluation.sizes["metric"], ex.widgets.Explorer(example_cube()).evaluation is None
            (13, True)
        """
        return self._evaluation

    @property
    def windowed(self) -> bool:
        """Whether the cube is streamed to the browser a window at a time."""
        return self._window is not None

    @property
    def sent_windows(self) -> list[int]:
        """The windows the kernel sent to the browser, in order (a copy)."""
        return list(self._sent_windows)

    @property
    def has_overlays(self) -> bool:
        """Whether the cube has pixel maps to draw over the frames."""
        return self._data.get("overlay") is not None

    @property
    def has_video(self) -> bool:
        """Whether video frames are shown under the overlays."""
        return self._data.get("frames") is not None

    @property
    def messages(self) -> list[str]:
        """What the Explorer tells the user about missing pieces (pixels, video, crop)."""
        return list(self._data.get("messages", []))

    @property
    def cautions(self) -> list[str]:
        """What the numbers must be read with, shown above the player, e.g. a prediction
        outside the model's declared output range (``expresso_xai.cube.views.range_caution``).

        Example:
            >>> import expresso_xai as ex
            >>> from expresso_xai.testing import example_cube
            >>> ex.widgets.Explorer(example_cube()).cautions
            []
        """
        return list(self._data.get("cautions", []))

    def seek(self, frame: int) -> None:
        """Show frame ``frame`` (a frame index of the video, one of ``cube.time``)."""
        self.frame = int(frame)

    def select(self, frame: int | None = None, region: str | None = None, method: str | None = None) -> None:
        """Choose what is shown, as a click on the heatmap does (``frame`` and ``region``).

        Example:
            >>> import expresso_xai as ex
            >>> from expresso_xai.testing import example_cube
            >>> explorer = ex.widgets.Explorer(example_cube())
            >>> explorer.select(frame=2, region="nose", method="integrated_gradients")
            >>> explorer.frame, explorer.region, explorer.method
            (2, 'nose', 'integrated_gradients')
        """
        with self.hold_sync():
            if method is not None:
                self.method = method
            if frame is not None:
                self.frame = int(frame)
            if region is not None:
                self.region = region

    def current(self) -> pd.Series:
        """The shown method's values (``value``) for each region at the shown frame."""
        explainer = self._cube["explainer"].values.tolist().index(self.method)
        heat = self._heat[explainer, VALUES.index(self.value), :, self._position[self.frame]]
        return pd.Series(heat, index=self._cube["region"].values.tolist(), name=f"{self.method} {self.value}")

    # --- standalone HTML ------------------------------------------------------------

    def save_html(self, path: str | Path, frames: slice | None = None, *, max_mb: float = HTML_CAP_MB,
                  lossy: bool = True) -> Path:
        """Write a standalone HTML file of this Explorer that works without a kernel or
        network (plotly.js, the data and the front-end are all inside it), for sharing
        and supplementary material. The current state (frame, method, ...) is kept.

        With ``lossy`` (the default) the pixel maps' uint8 codes are stored as 8-bit
        lossy WebP (quality 80) and the video frames as WebP (quality 70), about 3x
        smaller than exact deflated codes and JPEG frames. The error this adds to the
        maps is measured while saving and stated in the page, in units of each map's
        scale (the value at the end of its colour bar): on the shipped sample
        (participant_mid, demo model) a mean of 0.006 (gradcam) to 0.018 (integrated
        gradients) and a maximum of 0.06 to 0.17. Region values (heatmap, series) are
        exact. ``lossy=False`` keeps the codes exact and frames as JPEG.

        Args:
            path: the HTML file (``.html`` is added when missing).
            frames: a time range of the video, ``slice(a, b)`` = frames ``a`` to ``b - 1``
                (frame numbers, as in ``cube.time``); the page then holds only those,
                with their true frame numbers and times.
            max_mb: the size cap; a larger page is refused with
                :class:`~expresso_xai.errors.ExplorerSizeError`, which says which time
                range fits.
            lossy: pixel maps and frames as lossy WebP (True) or exact codes and JPEG.

        Example:
            >>> import expresso_xai as ex, tempfile, pathlib
            >>> from expresso_xai.testing import example_cube
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "explorer.html"
            >>> explorer = ex.widgets.Explorer(example_cube(pixels=True))
            >>> explorer.save_html(path, frames=slice(4, 8)).stat().st_size > 1_000_000
            True
            >>> explorer.save_html(path, max_mb=1)
            Traceback (most recent call last):
            ...
            expresso_xai.errors.ExplorerSizeError: the page would be 4.9 MB for 16 frames, above max_mb=1 ...
        """
        path = Path(path).expanduser()
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a directory; give the HTML file's name, e.g. {path / 'explorer.html'}")
        if path.suffix.lower() not in (".html", ".htm"):
            path = path.with_name(path.name + ".html")
        cube = self._time_range(frames)
        data = payload.build(cube, self._video, self._evaluation, lossy=lossy)
        if lossy and data["overlay"] is not None:
            data["messages"].append(lossy_note(data["overlay"]))
        state = {name: getattr(self, name) for name in
                 ("frame", "method", "region", "value", "colour", "opacity", "outlines", "speed")}
        if state["frame"] not in data["times"]:
            state["frame"] = data["times"][0]
        state["playing"] = False
        state["_data"] = data
        document = standalone_page(state)
        size_mb = len(document.encode("utf-8")) / 1e6
        if size_mb > max_mb:
            # a page of one frame: what does not grow with the frames, to say which range fits
            one = payload.build(cube.isel(time=[0]), self._video, self._evaluation, lossy=lossy)
            one_mb = len(standalone_page({**state, "_data": one}).encode("utf-8")) / 1e6
            raise ExplorerSizeError(_too_large(size_mb, one_mb, max_mb, data["times"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as partial:
            partial.write_text(document, encoding="utf-8")
        return path

    def _time_range(self, frames: slice | None) -> xr.Dataset:
        if frames is None:
            return self._cube
        if not isinstance(frames, slice) or frames.step not in (None, 1):
            raise CubeError(f"frames must be a slice of frame numbers without a step, e.g. slice(0, 1500); "
                            f"got {frames!r}")
        low = self._times[0] if frames.start is None else int(frames.start)
        high = self._times[-1] + 1 if frames.stop is None else int(frames.stop)
        kept = np.flatnonzero((self._times >= low) & (self._times < high))
        if kept.size == 0:
            raise CubeError(f"frames {low}..{high - 1} are not in the cube; it has frames "
                            f"{self._times[0]}..{self._times[-1]}")
        return self._cube.isel(time=kept)


def lossy_note(overlay: dict) -> str:
    """What the page says about its lossy pixel maps: the measured error per explainer.

    Example:
        >>> lossy_note({"error": {"gradcam": {"max": 0.06, "mean": 0.006}}}).split(": ")[-1]
        'gradcam max 0.060, mean 0.0060. Region values are exact.'
    """
    errors = ", ".join(f"{name} max {e['max']:.3f}, mean {e['mean']:.4f}" for name, e in overlay["error"].items())
    return (f"Pixel maps are stored as 8-bit lossy WebP (quality {windows.MAP_QUALITY}) to keep this page small; "
            f"their error, in units of each map's colour-bar scale: {errors}. Region values are exact.")


def _too_large(size_mb: float, one_mb: float, max_mb: float, times: list[int]) -> str:
    per_frame = max(size_mb - one_mb, 1e-9) / max(len(times) - 1, 1)
    fits = max(1, 1 + int(0.95 * (max_mb - one_mb) / per_frame))  # 5% spare: frames differ
    first = int(times[0])
    return (f"the page would be {size_mb:.1f} MB for {len(times)} frames, above max_mb={max_mb:g} "
            f"(about {per_frame * 1000:.0f} kB a frame): export a time range, e.g. "
            f"save_html(path, frames=slice({first}, {first + fits})) (about {fits} frames fit), "
            f"or raise max_mb")


def _script_safe(text: str) -> str:
    # "</script" would end the element and "<!--" followed by "<script" would stop the
    # next "</script>" from ending it (the page goes blank): neither may appear.
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def standalone_page(state: dict) -> str:
    """The standalone HTML document of an Explorer's ``state`` (its traits and
    ``_data``): the front-end driven by ``standaloneModel``, no kernel, no network.

    Example:
        >>> page = standalone_page({"frame": 0, "_data": {"title": "a </script> title"}})
        >>> page.startswith("<!DOCTYPE html>"), "a &lt;/script&gt; title" in page, page.count("</script>")
        (True, True, 3)
    """
    state_json = json.dumps(state, allow_nan=False).replace("<", "\\u003c")  # no markup inside
    esm = _frontend_file("explorer.js").read_text(encoding="utf-8")
    css = _frontend_file("explorer.css").read_text(encoding="utf-8")
    title = html.escape(state["_data"].get("title", "expresso-xai explorer"))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{css}</style>
<script>{_script_safe(plotly_js())}</script>
</head>
<body class="xe-standalone">
<div id="xe-root"></div>
<script type="application/json" id="xe-state">{state_json}</script>
<script type="module">
{esm}
const model = standaloneModel(JSON.parse(document.getElementById("xe-state").textContent));
const widget = createWidget();
await widget.initialize({{ model }});
widget.render({{ model, el: document.getElementById("xe-root") }});
</script>
</body>
</html>
"""
