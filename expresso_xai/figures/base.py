"""What every print figure shares: how it is saved (:func:`_save`: PDF with TrueType
text, PNG or SVG by suffix, never a half-written file), the colour rule for a map of
values (:func:`_colour_scale`: diverging and symmetric when signed) and the column widths
of a printed page (:data:`COLUMN_WIDTHS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cube.views import is_signed
from ..files import atomic_path

#: Width in inches of a figure that spans one column or the whole text of a two-column
#: journal page (IEEE and ACM templates: 3.5 in and 7.16 in).
COLUMN_WIDTHS = {"single": 3.5, "double": 7.16}


def _width_inches(width, error: type[Exception]) -> float:
    """Inches for ``width``: ``"single"``, ``"double"`` (:data:`COLUMN_WIDTHS`) or a
    positive number of inches; anything else raises ``error``."""
    if isinstance(width, str) and width in COLUMN_WIDTHS:
        return COLUMN_WIDTHS[width]
    if isinstance(width, (int, float)) and not isinstance(width, bool) and np.isfinite(width) and width > 0:
        return float(width)
    raise error(f"width={width!r}: use {' or '.join(map(repr, COLUMN_WIDTHS))} or a positive number of inches")


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
