"""Print figures (matplotlib), for papers and reports: attribution cubes, region maps,
evaluations (perturbation curves, the method × metric table) and cohort audits (region
shares per group, the AU × region correlation heatmap).

Figures read a cube through its views (:mod:`expresso_xai.cube.views`) and never change
it. The value names, their labels and the test "is this signed?" come from there, so a
figure and the Explorer colour the same method alike: signed values get a diverging
colour map centred at 0 with symmetric limits (red and blue mean the same magnitude),
values that are ≥ 0 up to float noise a sequential one. Evaluation figures take the
table's conventions (direction arrows, which method is best, decimals, the curves' axis
labels) from :mod:`expresso_xai.evaluate.table`, so the print table and the Explorer's
panel mark the same cells.

One module per subject: :mod:`.base` (saving, the colour rule, column widths),
:mod:`.cube`, :mod:`.evaluation`, :mod:`.cohort`.
"""

from ..cube.views import VALUE_LABELS, VALUES
from .base import COLUMN_WIDTHS, _colour_scale, _save
from .cohort import au_heatmap, band_shares
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

# the constants above stay importable by name, as they were from the single module
__all__ = ["COLUMN_WIDTHS", "VALUES", "VALUE_LABELS", "au_heatmap", "band_shares", "draw_region_map", "metric_table",
           "perturbation_curves", "plot_region_map", "region_time_heatmap"]
