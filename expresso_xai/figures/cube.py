"""Figures of one attribution cube: the region × time heatmap, and region maps drawn over
a frame (the source with its landmarks and crop, the model input with its regions).

Figures read a cube through its views (:mod:`expresso_xai.cube.views`) and never change
it: the value names, their labels and the test "is this signed?" come from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from ..crop import FaceCrop
from ..cube.views import DEFAULT_VALUE, VALUE_LABELS, check_explainer, frame_seconds, regions, value_view
from ..errors import CubeError, RegionError
from ..faces.facetrack import FaceTrack
from ..regions import REGION_COLOURS, RegionMap, in_region, label_encoding, region_map
from ..video import Video
from .base import _colour_scale, _fit_title, _label_colour_bar, _new_figure, _save, _width_inches, style

NO_FACE_HATCH = {"facecolor": "white", "hatch": "///", "edgecolor": "#555555"}


# --- the region x time heatmap --------------------------------------------------------


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _time_ticks(n_frames: int, most: int = 8) -> np.ndarray:
    step = max(1, int(np.ceil(n_frames / most)))
    return np.arange(0, n_frames, step)



def _value_title(value: str) -> str:
    """What ``value`` shows, in words that name it: ``"attribution per pixel (density)"``."""
    label = VALUE_LABELS[value]
    return label if value in label else f"{label} ({value})"


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



@style()
def region_time_heatmap(
    cube: xr.Dataset,
    explainer: str,
    *,
    value: str = DEFAULT_VALUE,
    path: str | Path | None = None,
    ax=None,
    cmap: str | None = None,
    title: str | None = None,
    width="double",
):
    """Heatmap of one explainer's regions (rows) over time (columns).

    Rows follow the cube's region order with ``background`` last; columns are frames,
    labelled with their time in seconds and frame index. Frames without a face are
    hatched. ``value`` is one of :data:`~expresso_xai.figures.VALUES`: ``"density"``
    (attribution per pixel, the default everywhere: ``DEFAULT_VALUE``;
    cells without pixels are grey), ``"attribution"`` (sums over each region's pixels,
    where the large background outweighs the face) or ``"share"`` (of the explainer's
    total |attribution|). The title says which.

    Args:
        cube: an attribution cube.
        explainer: which explainer to show.
        path: save there (``.pdf``, ``.svg``, ``.png``; without a suffix both ``.png``
            and ``.pdf``), with the cube's provenance in the file's metadata.
        ax: draw into this matplotlib Axes (its figure is returned) instead of a new figure.
        cmap: colour map name; default ``RdBu_r`` for signed values, ``viridis`` otherwise.
        title: default ``"<explainer>: <what value shows> by region and time"`` with the
            model's name when known.
        width: ``"single"``, ``"double"`` (the default) or inches, of a new figure.

    Returns:
        The matplotlib Figure.

    Raises:
        CubeError: unknown explainer, value or width.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> from expresso_xai.figures import region_time_heatmap
        >>> figure = region_time_heatmap(example_cube(), "gradcam")
        >>> [label.get_text() for label in figure.axes[0].get_yticklabels()][-1]
        'background'
        >>> figure.axes[0].get_title(loc="left")
        'gradcam: attribution per pixel (density) by region and time (synthetic)'
        >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    import matplotlib

    check_explainer(cube, explainer)
    grid = _heatmap_grid(cube, explainer, value)
    values, rows, frames = grid.values, grid["region"].values.tolist(), grid["time"].values
    seconds = frame_seconds(cube)
    vmin, vmax, cmap = _colour_scale(values, cmap)
    if ax is None:
        figure, ax = _new_figure(_width_inches(width, CubeError), 1.0 + 0.16 * len(rows))
    else:
        figure = ax.figure
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", interpolation="nearest", origin="upper",
                      cmap=matplotlib.colormaps[cmap].with_extremes(bad="#d9d9d9"), vmin=vmin, vmax=vmax)
    ax.set_yticks(np.arange(len(rows)), labels=rows)
    ticks = _time_ticks(len(frames), most=max(3, int(figure.get_figwidth() // 0.8)))
    ax.set_xticks(ticks, labels=[f"{seconds[i]:.2f}\n{int(frames[i])}" for i in ticks])
    ax.set_xlabel("time (s) / frame")
    ax.set_ylabel("region")
    _hatch_frames_without_face(ax, cube, frames)
    _label_colour_bar(figure.colorbar(image, ax=ax, pad=0.02), VALUE_LABELS[value])
    if title is None:
        model = cube.attrs.get("model_name") or ""
        title = f"{explainer}: {_value_title(value)} by region and time" + (f" ({model})" if model else "")
    ax.set_title(_fit_title(title, figure.get_figwidth()), loc="left")
    _save(figure, path, cube.attrs)
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
        loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False,
    )


@style()
def plot_region_map(
    video: Video, faces: FaceTrack, region_map_: RegionMap | None = None, crop: FaceCrop | None = None,
    frame: int = 0, path=None, title: str | None = None, width="double",
):
    """Figure of one frame: the source with its landmarks, and the model input with its
    regions and a legend. Saves to ``path`` when given (``.pdf``, ``.svg``, ``.png``;
    without a suffix both ``.png`` and ``.pdf``); ``width`` is ``"single"``,
    ``"double"`` or inches.

    Raises:
        RegionError: ``frame`` is outside the video, or a bad width.

    Example:
        >>> import expresso_xai as ex
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=2)
        >>> figure = ex.figures.plot_region_map(video, ex.track_faces(video, progress=False))
        >>> len(figure.axes)
        2
    """
    if not 0 <= frame < len(video):
        raise RegionError(f"frame {frame} is outside the video's {len(video)} frames (0..{len(video) - 1})")
    crop = crop if crop is not None else FaceCrop.from_track(faces)
    region_map_ = region_map_ if region_map_ is not None else region_map(faces, crop)
    inches = _width_inches(width, RegionError)
    figure, (left, right) = _new_figure(inches, 0.45 * inches, ncols=2)
    _draw_landmarks_and_crop(left, video, faces, crop, frame)
    _draw_regions(right, video, region_map_, crop, frame)
    for axis in (left, right):
        axis.set_axis_off()
    if title:
        figure.suptitle(title)
    _save(figure, path, {"video_source": video.source}, RegionError)
    return figure

