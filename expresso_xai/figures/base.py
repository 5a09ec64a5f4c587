"""What every print figure shares: one style (:func:`style`: fonts and sizes for print,
the Okabe–Ito palette, TrueType text), the column widths of a printed page
(:data:`COLUMN_WIDTHS`), the colour rule for a map of values (:func:`_colour_scale`:
diverging and symmetric when signed) and how a figure is saved (:func:`_save`: PDF with
TrueType text, SVG with text kept as text, 300-dpi PNG, the cube's provenance in the
file's metadata, never a half-written file).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Mapping

import numpy as np

from ..cube.views import is_signed
from ..files import atomic_path

#: Width in inches of a figure that spans one column or the whole text of a two-column
#: journal page (IEEE and ACM templates: 3.5 in and 7.16 in).
COLUMN_WIDTHS = {"single": 3.5, "double": 7.16}

#: Dots per inch of a saved PNG (a single-column figure is 1050 pixels wide).
PNG_DPI = 300

#: Okabe & Ito's qualitative palette (Color Universal Design), black left out; lines and
#: bars of methods stay apart for readers with any common colour-vision deficiency.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")

#: Colour maps: diverging (centred at 0) for signed values, sequential for magnitudes;
#: both readable in grey and by colour-blind readers.
DIVERGING, SEQUENTIAL = "RdBu_r", "viridis"

#: Suffixes :func:`_save` writes; a path without a suffix gets PNG and PDF.
FORMATS = (".pdf", ".svg", ".png")

# what a figure's metadata says about the cube it shows (attrs of a cube or evaluation)
PROVENANCE_KEYS = ("model_name", "model_hash", "video_source", "video_hash", "region_scheme", "target",
                   "clip_length", "stride", "methods", "expresso_xai_version")


def _rc() -> dict:
    """The rcParams of :func:`style`."""
    from cycler import cycler

    return {
        "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"],  # shipped with matplotlib: offline
        "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
        "legend.fontsize": 7, "legend.title_fontsize": 7, "figure.titlesize": 9,
        "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6, "lines.linewidth": 1.2,
        "axes.prop_cycle": cycler(color=OKABE_ITO[:-1]), "image.cmap": SEQUENTIAL,
        "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none",  # TrueType; SVG text stays text
        "savefig.dpi": PNG_DPI, "figure.dpi": 100,
    }


@contextlib.contextmanager
def style():
    """The library's print style as a context manager (also a decorator), so your own
    matplotlib figures match ours: DejaVu Sans at 7–8 pt, thin lines, the Okabe–Ito
    palette (:data:`~expresso_xai.figures.OKABE_ITO`) as the colour cycle, ``viridis`` for images, TrueType
    fonts in PDF and text kept as text in SVG, 300 dpi.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> import expresso_xai as ex
        >>> with ex.figures.style():
        ...     figure, ax = plt.subplots(figsize=(ex.figures.COLUMN_WIDTHS["single"], 2))
        ...     line, = ax.plot([0, 1], [1, 0])
        ...     plt.rcParams["pdf.fonttype"], line.get_color()
        (42, '#E69F00')
        >>> plt.close(figure)
    """
    import matplotlib

    with matplotlib.rc_context(_rc()):
        yield


def _width_inches(width, error: type[Exception]) -> float:
    """Inches for ``width``: ``"single"``, ``"double"`` (:data:`COLUMN_WIDTHS`) or a
    positive number of inches; anything else raises ``error``."""
    if isinstance(width, str) and width in COLUMN_WIDTHS:
        return COLUMN_WIDTHS[width]
    if isinstance(width, (int, float)) and not isinstance(width, bool) and np.isfinite(width) and width > 0:
        return float(width)
    raise error(f"width={width!r}: use {' or '.join(map(repr, COLUMN_WIDTHS))} or a positive number of inches")


def _new_figure(width_in: float, height_in: float, **subplots):
    """``(figure, axes)`` of exactly ``width_in`` × ``height_in`` inches laid out by
    constrained layout, which keeps the size (``bbox_inches="tight"`` would not, and a
    PNG would no longer be the column's width)."""
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width_in, height_in), layout="constrained", **subplots)


def _colour_scale(values: np.ndarray, cmap: str | None = None) -> tuple[float, float, str]:
    """``(vmin, vmax, cmap)``: symmetric limits and :data:`DIVERGING` for signed values
    (:func:`~expresso_xai.cube.views.is_signed`), else ``0..max`` and
    :data:`SEQUENTIAL`; ``cmap`` overrides the map's name. NaN values are ignored."""
    finite = values[np.isfinite(values)]
    if is_signed(finite):
        limit = float(np.abs(finite).max()) or 1.0
        return -limit, limit, cmap or DIVERGING
    vmax = float(finite.max()) if finite.size else 1.0
    return 0.0, vmax or 1.0, cmap or SEQUENTIAL


def provenance(attrs: Mapping | None) -> dict:
    """What a saved figure's metadata records about the data it shows: the model, the
    video, the region scheme, the methods and their parameters and the library version,
    from a cube's (or an evaluation's) attrs; nested values decoded from JSON text.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> provenance(example_cube().attrs)["methods"]
        {'gradcam': {}, 'integrated_gradients': {}}
    """
    from importlib.metadata import version

    found = {}
    for key in PROVENANCE_KEYS:
        value = (attrs or {}).get(key)
        if isinstance(value, str) and value[:1] in "{[":
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        if value not in (None, ""):
            found[key] = value.item() if isinstance(value, np.generic) else value
    found.setdefault("expresso_xai_version", version("expresso-xai"))
    return found


def _metadata(kind: str, attrs: Mapping | None) -> dict:
    """savefig's ``metadata`` for a format: PDF Info (Subject, Keywords), PNG text chunks
    and SVG's Dublin Core (Description) all carry the provenance as JSON text."""
    record = json.dumps(provenance(attrs), sort_keys=True, default=str)
    creator = "expresso-xai " + provenance(attrs)["expresso_xai_version"]
    if kind == "pdf":
        return {"Creator": creator, "Subject": "expresso-xai figure; provenance in Keywords", "Keywords": record}
    if kind == "svg":
        return {"Creator": creator, "Description": record}
    return {"Software": creator, "expresso_xai_provenance": record}


def _targets(path: Path, error: type[Exception]) -> list[Path]:
    # no suffix: PNG to look at and PDF to submit; SVG only when asked, as a figure of
    # faces makes an SVG of several MB (the frames are embedded as base64 PNG)
    if not path.suffix:
        return [path.with_suffix(".png"), path.with_suffix(".pdf")]
    if path.suffix.lower() not in FORMATS:
        raise error(f"{path}: save figures as {', '.join(FORMATS)}, or give no suffix for PNG and PDF")
    return [path]


def _save(figure, path: str | Path | None, attrs: Mapping | None = None, error: type[Exception] | None = None,
          exact: bool | None = None) -> None:
    """Save to ``path`` (``.pdf``, ``.svg`` or ``.png``; without a suffix both ``.png``
    and ``.pdf``), each file written whole or not at all. PDF text is TrueType (editable
    and searchable in a journal's tools), not matplotlib's Type 3; SVG text stays text;
    PNG is :data:`PNG_DPI`. ``attrs`` (a cube's) go into the metadata (:func:`provenance`).
    A figure with a layout engine (or ``exact=True``: laid out by hand in inches) keeps
    its size exactly; others are trimmed to their content (``bbox_inches="tight"``)."""
    import matplotlib

    from ..errors import CubeError

    if path is None:
        return
    exact = figure.get_layout_engine() is not None if exact is None else exact
    tight = None if exact else "tight"
    for target in _targets(Path(path), error or CubeError):
        kind = target.suffix[1:].lower()
        with atomic_path(target) as partial, matplotlib.rc_context(_rc()):
            figure.savefig(partial, dpi=PNG_DPI, bbox_inches=tight, format=kind, metadata=_metadata(kind, attrs))


def _label_colour_bar(bar, label: str) -> None:
    """Label a colour bar, with the power of ten of small or large values in the label
    (``"... (×10⁻⁵)"``) rather than matplotlib's offset text, which lands on titles."""
    from matplotlib.ticker import FuncFormatter

    largest = max(abs(float(bar.vmin)), abs(float(bar.vmax)))
    power = int(np.floor(np.log10(largest))) if np.isfinite(largest) and largest > 0 else 0
    if -2 <= power <= 3:
        bar.set_label(label)
        return
    factor = 10.0 ** -power
    bar.formatter = FuncFormatter(lambda value, _: f"{value * factor:g}".replace("-", "−"))  # a true minus
    bar.update_ticks()
    superscript = str(power).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    bar.set_label(f"{label} (×10{superscript})")


def _fit_title(text: str, width_in: float) -> str:
    """``text`` broken into lines that fit ``width_in`` at the style's title size."""
    import textwrap

    return "\n".join(textwrap.wrap(text, max(20, int(width_in * 12.5))))
