"""Print figures (matplotlib), for papers and reports: attribution cubes, region maps and
evaluations (perturbation curves, the method × metric table).

Figures read a cube through its views (:mod:`expresso_xai.cube.views`) and never change
it. The value names, their labels and the test "is this signed?" come from there, so a
figure and the Explorer colour the same method alike: signed values get a diverging
colour map centred at 0 with symmetric limits (red and blue mean the same magnitude),
values that are ≥ 0 up to float noise a sequential one. Evaluation figures take the
table's conventions (direction arrows, which method is best, decimals, the curves' axis
labels) from :mod:`expresso_xai.evaluate.table`, so the print table and the Explorer's
panel mark the same cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from .crop import FaceCrop
from .cube.views import VALUE_LABELS, VALUES, check_explainer, frame_seconds, is_signed, regions, value_view
from .errors import EvaluationError, RegionError
from .faces.facetrack import FaceTrack
from .files import atomic_path
from .regions import REGION_COLOURS, RegionMap, in_region, label_encoding, region_map
from .video import Video

NO_FACE_HATCH = {"facecolor": "white", "hatch": "///", "edgecolor": "#555555"}


# --- the region x time heatmap --------------------------------------------------------


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _time_ticks(n_frames: int, most: int = 8) -> np.ndarray:
    step = max(1, int(np.ceil(n_frames / most)))
    return np.arange(0, n_frames, step)


def _colour_scale(values: np.ndarray, cmap: str | None = None) -> tuple[float, float, str]:
    """``(vmin, vmax, cmap)``: symmetric limits and ``RdBu_r`` for signed values
    (:func:`~expresso_xai.cube.views.is_signed`), else ``0..max`` and ``viridis``;
    ``cmap`` overrides the map's name. NaN values are ignored."""
    finite = values[np.isfinite(values)]
    if is_signed(finite):
        limit = float(np.abs(finite).max()) or 1.0
        return -limit, limit, cmap or "RdBu_r"
    vmax = float(finite.max()) if finite.size else 1.0
    return 0.0, vmax or 1.0, cmap or "viridis"


def _heatmap_grid(cube: xr.Dataset, explainer: str, value: str) -> xr.DataArray:
    """``(region, time)`` values of one explainer, ``background`` the last row."""
    rows = list(regions(cube))
    if "background" in rows:
        rows = [name for name in rows if name != "background"] + ["background"]
    return value_view(cube, value).sel(explainer=explainer).transpose("region", "time").sel(region=rows)


def _hatch_frames_without_face(ax, cube: xr.Dataset, frames: np.ndarray) -> None:
    from matplotlib.patches import Patch

    if "face_found" not in cube.variables:
        return
    runs = _runs(~cube["face_found"].sel(time=frames).values.astype(bool))
    for start, stop in runs:
        ax.axvspan(start - 0.5, stop - 0.5, alpha=0.35, linewidth=0, **NO_FACE_HATCH)
    if runs:
        ax.legend(handles=[Patch(label="no face", **NO_FACE_HATCH)], loc="lower right",
                  bbox_to_anchor=(1.0, 1.0), borderaxespad=0.2, fontsize=8, frameon=False)


def _save(figure, path: str | Path | None) -> None:
    """Save to ``path``; without a suffix both ``.png`` and ``.pdf``. PDF text is
    TrueType (editable and searchable in a journal's tools), not matplotlib's Type 3."""
    import matplotlib

    if path is None:
        return
    path = Path(path)
    for target in [path.with_suffix(".png"), path.with_suffix(".pdf")] if not path.suffix else [path]:
        with atomic_path(target) as partial, matplotlib.rc_context({"pdf.fonttype": 42}):
            figure.savefig(partial, dpi=150, bbox_inches="tight", format=target.suffix[1:])


def region_time_heatmap(
    cube: xr.Dataset,
    explainer: str,
    *,
    value: str = "attribution",
    path: str | Path | None = None,
    ax=None,
    cmap: str | None = None,
    title: str | None = None,
):
    """Heatmap of one explainer's regions (rows) over time (columns).

    Rows follow the cube's region order with ``background`` last; columns are frames,
    labelled with their time in seconds and frame index. Frames without a face are
    hatched. ``value`` is one of :data:`~expresso_xai.cube.views.VALUES`:
    ``"attribution"``, ``"density"`` (per pixel; cells without pixels are grey) or
    ``"share"`` (of the explainer's total |attribution|).

    Args:
        cube: an attribution cube.
        explainer: which explainer to show.
        path: save the figure there; without a suffix both ``.png`` and ``.pdf``.
        ax: draw into this matplotlib Axes (its figure is returned) instead of a new figure.
        cmap: colour map name; default ``RdBu_r`` for signed values, ``viridis`` otherwise.
        title: default ``"<explainer>: <value>"`` with the model's name when known.

    Returns:
        The matplotlib Figure.

    Raises:
        CubeError: unknown explainer or value.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> from expresso_xai.figures import region_time_heatmap
        >>> figure = region_time_heatmap(example_cube(), "gradcam", value="density")
        >>> [label.get_text() for label in figure.axes[0].get_yticklabels()][-1]
        'background'
        >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    import matplotlib
    import matplotlib.pyplot as plt

    check_explainer(cube, explainer)
    grid = _heatmap_grid(cube, explainer, value)
    values, rows, frames = grid.values, grid["region"].values.tolist(), grid["time"].values
    seconds = frame_seconds(cube)
    vmin, vmax, cmap = _colour_scale(values, cmap)
    if ax is None:
        width = float(np.clip(3.0 + 0.12 * len(frames), 6.0, 14.0))
        figure, ax = plt.subplots(figsize=(width, 1.4 + 0.32 * len(rows)))
    else:
        figure = ax.figure
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", interpolation="nearest", origin="upper",
                      cmap=matplotlib.colormaps[cmap].with_extremes(bad="#d9d9d9"), vmin=vmin, vmax=vmax)
    ax.set_yticks(np.arange(len(rows)), labels=rows)
    ticks = _time_ticks(len(frames))
    ax.set_xticks(ticks, labels=[f"{seconds[i]:.2f}\n{int(frames[i])}" for i in ticks])
    ax.set_xlabel("time (s) / frame")
    ax.set_ylabel("region")
    _hatch_frames_without_face(ax, cube, frames)
    figure.colorbar(image, ax=ax, pad=0.02).set_label(VALUE_LABELS[value])
    if title is None:
        model = cube.attrs.get("model_name") or ""
        title = f"{explainer}: {value} by region and time" + (f" ({model})" if model else "")
    ax.set_title(title, loc="left")
    _save(figure, path)
    return figure


# --- region maps ----------------------------------------------------------------------


def draw_region_map(
    frame: np.ndarray, labels: np.ndarray, names: Sequence[str], alpha: float = 0.45,
    outlines: bool = True, exclusive: bool = True,
) -> np.ndarray:
    """Blend region colours over one ``(H, W, 3)`` uint8 RGB frame; ``background`` stays
    clear. ``labels`` are in the encoding of ``exclusive`` regions
    (:func:`~expresso_xai.regions.label_encoding`).

    Example:
        >>> from expresso_xai.regions import PARTITION_REGIONS
        >>> labels = np.zeros((8, 8), np.uint8)  # all right_eye
        >>> draw_region_map(np.zeros((8, 8, 3), np.uint8), labels, PARTITION_REGIONS).shape
        (8, 8, 3)
    """
    import cv2

    encoding = label_encoding(exclusive)
    image = frame.astype(np.float32).copy()
    for i, name in enumerate(names):
        inside = in_region(labels, i, encoding)
        if name == "background" or not inside.any():
            continue
        colour = np.array(REGION_COLOURS.get(name, (255, 255, 255)), np.float32)
        image[inside] = (1 - alpha) * image[inside] + alpha * colour
        if outlines:
            contours, _ = cv2.findContours(inside.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            outline = np.zeros(labels.shape, np.uint8)
            cv2.drawContours(outline, contours, -1, 1, 1)
            image[outline > 0] = colour
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw_landmarks_and_crop(axis, video: Video, faces: FaceTrack, crop: FaceCrop, frame: int) -> None:
    axis.imshow(video.frames[frame])
    if faces.face_found[frame]:
        points = faces.landmarks[frame]
        axis.scatter(points[:, 0], points[:, 1], s=4, c="#00ff66")
        h, w = crop.size
        corners = crop[frame : frame + 1].invert_points(
            np.array([[[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5], [-0.5, -0.5]]])
        )
        axis.plot(*corners[0].T, c="white", lw=1)
    axis.set_title(f"frame {frame}: landmarks and crop")


def _draw_regions(axis, video: Video, regions_: RegionMap, crop: FaceCrop, frame: int) -> None:
    from matplotlib.patches import Patch

    model_input = crop[frame : frame + 1].apply(video.frames[frame : frame + 1])[0]
    axis.imshow(draw_region_map(model_input, regions_.labels[frame], regions_.names, exclusive=regions_.exclusive))
    axis.set_title(f"model input {crop.size[1]}x{crop.size[0]}: regions ({regions_.scheme})")
    present = [n for n in regions_.names if n != "background" and regions_.mask(n)[frame].any()]
    axis.legend(
        handles=[Patch(color=np.array(REGION_COLOURS[n]) / 255, label=n) for n in present],
        loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False,
    )


def plot_region_map(
    video: Video, faces: FaceTrack, region_map_: RegionMap | None = None, crop: FaceCrop | None = None,
    frame: int = 0, path=None, title: str | None = None,
):
    """Figure of one frame: the source with its landmarks, and the model input with its
    regions and a legend. Saves to ``path`` (PNG, PDF, ...) when given.

    Raises:
        RegionError: ``frame`` is outside the video.

    Example:
        >>> import expresso_xai as ex
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=2)
        >>> figure = ex.figures.plot_region_map(video, ex.track_faces(video, progress=False))
        >>> len(figure.axes)
        2
    """
    import matplotlib.pyplot as plt

    if not 0 <= frame < len(video):
        raise RegionError(f"frame {frame} is outside the video's {len(video)} frames (0..{len(video) - 1})")
    crop = crop if crop is not None else FaceCrop.from_track(faces)
    region_map_ = region_map_ if region_map_ is not None else region_map(faces, crop)
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2))
    _draw_landmarks_and_crop(left, video, faces, crop, frame)
    _draw_regions(right, video, region_map_, crop, frame)
    for axis in (left, right):
        axis.set_axis_off()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if path is not None:
        path = Path(path)
        with atomic_path(path) as partial:
            figure.savefig(partial, dpi=120, bbox_inches="tight", format=path.suffix[1:] or "png")
    return figure


# --- evaluations: perturbation curves and the method x metric table -------------------

CURVE_KINDS = ("deletion", "insertion", "both")
ORDER_LINES = {"morf": ("MoRF", "-"), "lerf": ("LeRF", "--")}  # the random order: grey, dotted, with its band
RANDOM_COLOUR = "#7f7f7f"
CURVE_AXES_IN, CURVE_LABEL_IN = 2.4, 0.6  # a panel's height and the room for its x label, in inches
BEST_CELL = "#fde9a9"  # background of the best score of each metric
VERDICTS = {True: (" ✓", "#1a7f37"), False: (" ✗", "#b42318"), None: ("", "black")}  # pass, fail, no threshold


def _evaluated(ev: xr.Dataset, explainers) -> list[str]:
    """The explainers to draw, checked against the evaluation's."""
    have = [str(name) for name in ev["explainer"].values]
    names = have if explainers is None else [explainers] if isinstance(explainers, str) else list(explainers)
    unknown = [name for name in names if name not in have]
    if unknown or not names:
        raise EvaluationError(f"the evaluation has no explainer {unknown[0] if unknown else '(none given)'!r}; "
                              f"it has {have}")
    return names


def _curve_kinds(ev: xr.Dataset, kind: str) -> list[str]:
    """The kinds of perturbation to draw; ``"both"``: every kind the evaluation has."""
    if kind not in CURVE_KINDS:
        raise EvaluationError(f"kind={kind!r}: use one of {list(CURVE_KINDS)}")
    curve = ev.get("curve")
    have = [] if curve is None else [str(k) for k in curve["kind"].values if np.isfinite(curve.sel(kind=k)).any()]
    missing = [k for k in ([kind] if kind != "both" else have or ["perturbation"]) if k not in have]
    if missing:
        raise EvaluationError(f"the evaluation has no {missing[0]} curves (it has {have or 'none'}): evaluate "
                              f"with metrics=[..., {'deletion' if missing[0] == 'perturbation' else missing[0]!r}]")
    return have if kind == "both" else [kind]


def _line_label(ev: xr.Dataset, explainer: str, order: str, kind: str) -> str:
    from .evaluate.table import DIGITS

    metric = f"{kind}_{order}"
    value = float(ev["score"].sel(explainer=explainer, metric=metric)) if metric in ev["metric"] else np.nan
    return f"{explainer} {ORDER_LINES[order][0]}" + (f" {value:.{DIGITS}f}" if np.isfinite(value) else "")


def _random_curves(ax, ev: xr.Dataset, kind: str, explainers: list[str], colours: dict) -> None:
    """The random order's curve and its band: once in grey when every explainer's is the
    same (the random orders do not depend on the attribution), else one per explainer."""
    from .evaluate.table import ORDERS

    curve, steps = ev["curve"].sel(kind=kind, order="random"), ev["step"].values
    shared = all(np.allclose(curve.sel(explainer=e), curve.sel(explainer=explainers[0]), equal_nan=True)
                 for e in explainers)
    for explainer in explainers[:1] if shared else explainers:
        colour = RANDOM_COLOUR if shared else colours[explainer]
        if "curve_ci" in ev.variables and kind in ev["curve_ci"]["kind"].values:
            band = ev["curve_ci"].sel(explainer=explainer, kind=kind)
            ax.fill_between(steps, band.sel(bound="lower").values, band.sel(bound="upper").values, color=colour,
                            alpha=0.2, linewidth=0, gid=f"{explainer}:random band")
        ax.plot(steps, curve.sel(explainer=explainer).values, ":", color=colour, linewidth=1.6,
                label=ORDERS["random"][0] if shared else f"{explainer} random order", gid=f"{explainer}:random")


def _curve_panel(ax, ev: xr.Dataset, kind: str, explainers: list[str], colours: dict, columns: int) -> None:
    import json

    from .evaluate.table import KINDS

    for explainer in explainers:
        for order, (_, style) in ORDER_LINES.items():
            ax.plot(ev["step"].values, ev["curve"].sel(explainer=explainer, kind=kind, order=order).values, style,
                    color=colours[explainer], linewidth=1.6, label=_line_label(ev, explainer, order, kind),
                    gid=f"{explainer}:{order}")
    _random_curves(ax, ev, kind, explainers, colours)
    params = json.loads(ev.attrs.get("evaluation") or "{}")
    how = ", ".join(([f"fill {params['fill']}"] if "fill" in params else []) +
                    ([f"units of {params['window']} frames"] if "window" in params else []))
    ax.set_title(kind + (f" ({how})" if how else ""), loc="left")
    ax.set_xlabel(KINDS.get(kind, "fraction of units perturbed"))
    ax.set_ylabel(str(ev["curve"].attrs.get("long_name") or "model output"))
    ax.set_xlim(0.0, 1.0)
    ax.grid(alpha=0.3, linewidth=0.5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -CURVE_LABEL_IN / CURVE_AXES_IN), fontsize=8, frameon=False,
              ncol=columns, title="method, order, normalised AOPC (0: random)", title_fontsize=8)


def _evaluation_title(ev: xr.Dataset, what: str) -> str:
    about = [ev.attrs.get("model_name") or "", Path(str(ev.attrs.get("video_source") or "")).name]
    return what + (f" ({', '.join(part for part in about if part)})" if any(about) else "")


def perturbation_curves(ev: xr.Dataset, kind: str = "both", explainers=None, path: str | Path | None = None):
    """Deletion and insertion curves of an evaluation: one panel per kind with, per
    method, the model output against the fraction of region × time units removed
    (inserted) in MoRF order (solid) and LeRF order (dashed), and the random orders' mean
    (grey, dotted) with its confidence band; each line's normalised AOPC score
    (``<kind>_morf``, ``<kind>_lerf``: 0 is no better than random) is in the legend.

    Args:
        ev: an evaluation dataset (:func:`expresso_xai.evaluate`) with curves.
        kind: ``"deletion"``, ``"insertion"`` or ``"both"`` (every kind it has).
        explainers: the methods to draw (``None``: all); each keeps its colour.
        path: save there (PNG, PDF or SVG by suffix; without a suffix both ``.png`` and
            ``.pdf``), never leaving a half-written file.

    Returns:
        The matplotlib Figure; each line's ``gid`` is ``"<explainer>:<order>"``.

    Raises:
        EvaluationError: not an evaluation, no curves of that kind, unknown explainer.

    Example:
        >>> from expresso_xai.testing import example_evaluation
        >>> figure = perturbation_curves(example_evaluation(), explainers=["gradcam"])
        >>> [axis.get_title(loc="left").split(" (")[0] for axis in figure.axes]
        ['deletion', 'insertion']
        >>> [line.get_label() for line in figure.axes[0].lines][:2]
        ['gradcam MoRF 0.165', 'gradcam LeRF 0.497']
        >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    import matplotlib.pyplot as plt

    from .evaluate.dataset import check_evaluation

    check_evaluation(ev)
    kinds, names = _curve_kinds(ev, kind), _evaluated(ev, explainers)
    every, palette = ev["explainer"].values.tolist(), plt.get_cmap("tab10").colors
    colours = {name: palette[every.index(name) % len(palette)] for name in names}
    # the axes keep their height however long the legends below them are
    columns = 1 if len(names) <= 2 else 2
    bottom, top = CURVE_LABEL_IN + 0.2 * (2 + -(-(2 * len(names) + 1) // columns)), 0.75
    height, width = top + CURVE_AXES_IN + bottom, 4.8 * len(kinds)
    figure, axes = plt.subplots(1, len(kinds), figsize=(width, height), squeeze=False)
    figure.subplots_adjust(left=0.55 / width, right=0.98, bottom=bottom / height, top=1 - top / height, wspace=0.3)
    for ax, name in zip(axes[0], kinds):
        _curve_panel(ax, ev, name, names, colours, columns)
    figure.suptitle(_evaluation_title(ev, "Perturbation curves"), x=0.01, ha="left")
    _save(figure, path)
    return figure


def _fill_table(table, scores: dict, widths: list[float]) -> None:
    """Booktabs-like: rules above and below the headers and at the end, none between
    methods; a metric group's name above its first column, underlined over the group
    (none for a group that is one score of its own name); score cells have no edges so
    that the best one's shade shows."""

    def cell(row, col, text, edges="closed", height=1.0, facecolor="white", **style):
        added = table.add_cell(row, col, widths[col], height, text=text, loc="left" if col == 0 else "center",
                               edgecolor="black", facecolor=facecolor)
        added.visible_edges = edges
        added.set_linewidth(0.0 if edges == "closed" else 0.8)
        added.get_text().set(**style)

    metrics, groups = scores["metrics"], [metric["group"] for metric in scores["metrics"]]
    cell(0, 0, "", "T")
    cell(1, 0, "method", "B", fontweight="bold")
    for j, metric in enumerate(metrics, start=1):
        alone = groups.count(metric["group"]) == 1 and metric["label"] == metric["group"]
        first = j == 1 or groups[j - 2] != metric["group"]
        cell(0, j, metric["group"] if first and not alone else "", "T" if alone else "TB", fontstyle="italic",
             horizontalalignment="left")
        cell(1, j, f"{metric['label']} {metric['arrow']}".strip(), "B", fontweight="bold")
    for i, explainer in enumerate(scores["explainers"]):
        cell(i + 2, 0, explainer)
        for j, (value, verdict) in enumerate(zip(scores["score"][i], scores["passed"][i])):
            mark, colour = VERDICTS[verdict]
            best = i in scores["best"][j]
            cell(i + 2, j + 1, "–" if value is None else f"{value:.{scores['digits']}f}{mark}", color=colour,
                 fontweight="bold" if best else "normal", facecolor=BEST_CELL if best else "white")
    for j in range(len(metrics) + 1):  # the closing rule, as a row of no height
        cell(len(scores["explainers"]) + 2, j, "", "T", height=0.01)


def metric_table(ev: xr.Dataset, path: str | Path | None = None):
    """The method × metric table of an evaluation as a figure: one row per method, one
    column per score under its metric group, with its direction (↑ higher is better,
    ↓ lower), the best method of each score in bold on a shaded cell (none for a
    descriptive score), and ✓ / ✗ where a score passes or fails its threshold
    (``passed``). Labels, arrows, decimals and best cells are the Explorer's
    (:func:`expresso_xai.evaluate.table.score_table`).

    Args:
        ev: an evaluation dataset (:func:`expresso_xai.evaluate`).
        path: save there (PNG, PDF or SVG by suffix; without a suffix both ``.png`` and
            ``.pdf``), never leaving a half-written file.

    Returns:
        The matplotlib Figure; the table is ``figure.axes[0].tables[0]``, its cell
        ``[2 + method, 1 + metric]`` (row 0: groups, row 1: score labels, column 0:
        methods).

    Raises:
        EvaluationError: not an evaluation dataset.

    Example:
        >>> from expresso_xai.testing import example_evaluation
        >>> figure = metric_table(example_evaluation())
        >>> table = figure.axes[0].tables[0]
        >>> table[1, 7].get_text().get_text(), table[2, 7].get_text().get_text()
        ('spearman ↓', '0.383 ✓')
        >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    import matplotlib.pyplot as plt
    from matplotlib.table import Table

    from .evaluate.dataset import check_evaluation
    from .evaluate.table import score_table

    check_evaluation(ev)
    scores = score_table(ev, ev["explainer"].values.tolist())
    characters = [max(len(name) for name in scores["explainers"] + ["method"]) + 2] + \
        [max(len(metric["label"]) + 2, 9) + 2 for metric in scores["metrics"]]
    figure = plt.figure(figsize=(0.3 + 0.075 * sum(characters), 0.55 + 0.26 * (len(scores["explainers"]) + 2)))
    ax = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    table = Table(ax, bbox=(0.0, 0.0, 1.0, 1.0))
    _fill_table(table, scores, [count / sum(characters) for count in characters])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    ax.add_table(table)
    ax.set_title(_evaluation_title(ev, "Evaluation scores"), loc="left", fontsize=10)
    ax.text(0.0, -0.04, "↑ higher is better, ↓ lower; bold on shade: best per metric; ✓ pass, ✗ fail at the "
            "metric's threshold; – no value", transform=ax.transAxes, fontsize=7, va="top", color="#555555")
    _save(figure, path)
    return figure


__all__ = ["VALUES", "VALUE_LABELS", "draw_region_map", "metric_table", "perturbation_curves", "plot_region_map",
           "region_time_heatmap"]
