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
from ..errors import CubeError
from ..files import atomic_path
from . import payload

FRONTEND = Path(__file__).resolve().parent / "frontend"
COLOURS = ("auto", "signed", "magnitude")


def _frontend_file(name: str) -> Path:
    path = FRONTEND / name
    if not path.is_file():  # pragma: no cover - a broken install
        raise FileNotFoundError(f"the Explorer's front-end file {path} is missing; reinstall expresso-xai")
    return path


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js as shipped inside the plotly Python package (no CDN, no network)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path.read_text(encoding="utf-8")


class Explorer(anywidget.AnyWidget):
    """Explore an attribution cube: a frame player with the attribution drawn over the
    face, a region x time heatmap linked to it both ways, per-region time series, and
    every explainer side by side with their rank agreement (Spearman); given the cube's
    evaluation (``ex.evaluate``), a panel with its perturbation curves (MoRF, LeRF and
    random orders per method, deletion or insertion) and its method x metric table.

    Everything the browser needs is encoded once when the Explorer is made (frames as
    JPEG, pixel maps as deflated uint8), so moving between frames never waits for the
    kernel. Overlays need the cube's pixel maps (``ex.explain(..., keep_pixels=True)``);
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

    def __init__(self, cube: xr.Dataset, video=None, *, method: str | None = None, evaluation=None, **kwargs):
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
        data = payload.build(cube, video, evaluation)
        kwargs.setdefault("frame", int(self._times[0]))
        super().__init__(_data=data, _plotly=plotly_js(), method=method or explainers[0], **kwargs)

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
        """What the numbers must be read with, shown above the player: e.g. a prediction
        outside the model's declared output range (:func:`~expresso_xai.cube.views.range_caution`).

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
        # what the heatmap shows (null, JSON's NaN, back to NaN)
        rows = np.asarray(self._data["heat"][self.method][self.value], dtype=np.float64)
        heat = rows[:, self._position[self.frame]]
        return pd.Series(heat, index=self._cube["region"].values.tolist(), name=f"{self.method} {self.value}")

    # --- standalone HTML ------------------------------------------------------------

    def save_html(self, path: str | Path) -> Path:
        """Write a standalone HTML file of this Explorer that works without a kernel or
        network (plotly.js, the data and the front-end are all inside it), for sharing
        and supplementary material. The current state (frame, method, ...) is kept.

        Example:
            >>> import expresso_xai as ex, tempfile, pathlib
            >>> from expresso_xai.testing import example_cube
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "explorer.html"
            >>> ex.widgets.Explorer(example_cube()).save_html(path).stat().st_size > 1_000_000
            True
        """
        path = Path(path).expanduser()
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a directory; give the HTML file's name, e.g. {path / 'explorer.html'}")
        if path.suffix.lower() not in (".html", ".htm"):
            path = path.with_name(path.name + ".html")
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {name: getattr(self, name) for name in
                 ("frame", "method", "region", "value", "colour", "opacity", "outlines", "speed")}
        state["playing"] = False
        state["_data"] = self._data

        def script_safe(text: str) -> str:
            # "</script" would end the element and "<!--" followed by "<script" would stop
            # the next "</script>" from ending it (the page goes blank): neither may appear.
            return text.replace("</", "<\\/").replace("<!--", "<\\!--")

        state_json = json.dumps(state, allow_nan=False).replace("<", "\\u003c")  # no markup inside
        esm = _frontend_file("explorer.js").read_text(encoding="utf-8")
        css = _frontend_file("explorer.css").read_text(encoding="utf-8")
        title = html.escape(self._data.get("title", "expresso-xai explorer"))
        document = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{css}</style>
<script>{script_safe(plotly_js())}</script>
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
        with atomic_path(path) as partial:
            partial.write_text(document, encoding="utf-8")
        return path
