"""Print figures (matplotlib), for papers and reports, in one style.

Kinds, one module each, each returning a matplotlib ``Figure`` and taking ``path=`` and
``width=``:

* a cube: :func:`frame_strip` (the moments with most attribution, overlays on the faces),
  :func:`method_grid` (methods × frames), :func:`region_time_heatmap`,
  :func:`region_bars` (each region's share), :func:`agreement_matrix` (rank agreement
  between methods), :func:`plot_region_map` (the regions over a frame);
* an evaluation: :func:`perturbation_curves`, :func:`metric_table`;
* a cohort audit: :func:`band_bars` (= :func:`band_shares`), :func:`au_heatmap`.

One style (``base``): :func:`style` is a context manager (and decorator) with the
fonts, sizes and palette every kind uses, so your own figures match. Saving: ``path=``
with suffix ``.pdf`` (TrueType fonts, as journals ask), ``.svg`` (text kept as text) or
``.png`` (300 dpi: a ``width="single"`` figure, 3.5 in, is 1050 pixels wide); a path
without a suffix writes PNG and PDF. Files are written whole or not at all, and carry
the cube's provenance (model and video hashes, methods and their parameters, library
version) in their metadata: PDF Keywords, PNG text chunk ``expresso_xai_provenance``,
SVG ``dc:description``. ``make_gallery``
renders one of each on a shipped sample.

Colour: figures read a cube through its views (``expresso_xai.cube.views``) and never
change it. Signed values get a diverging map (``RdBu_r``) centred at 0 with symmetric
limits, values that are ≥ 0 a sequential one (``viridis``), lines and bars the
Okabe–Ito colours; when methods are compared in one figure they share one scale
(``method_grid(scale="row")`` gives each its own). Evaluation figures take the table's
conventions from ``expresso_xai.evaluate.table``, so the print table and the
Explorer's panel mark the same cells.
"""

from ..cube.views import VALUE_LABELS, VALUES
from .agreement import agreement_matrix
from .base import COLUMN_WIDTHS, OKABE_ITO, PNG_DPI, _colour_scale, _save, provenance, style
from .cohort import au_heatmap, band_bars, band_shares
from .cube import NO_FACE_HATCH, draw_region_map, plot_region_map, region_time_heatmap
from .evaluation import (
    BEST_CELL,
    CURVE_AXES_IN,
    CURVE_KINDS,
    CURVE_LABEL_IN,
    ORDER_LINES,
    RANDOM_COLOUR,
    VERDICTS,
    metric_table,
    perturbation_curves,
)
from .frame_strip import frame_strip
from .frames import top_moments
from .method_grid import method_grid
from .region_bars import region_bars

# the constants above stay importable by name, as they were from the single module
__all__ = ["COLUMN_WIDTHS", "OKABE_ITO", "PNG_DPI", "VALUES", "VALUE_LABELS", "agreement_matrix", "au_heatmap",
           "band_bars", "band_shares", "draw_region_map", "frame_strip", "method_grid", "metric_table",
           "perturbation_curves", "plot_region_map", "provenance", "region_bars", "region_time_heatmap", "style",
           "top_moments"]
