"""The gallery page, written during the build from figures rendered on the shipped samples.

Uses :func:`expresso_xai.figures.gallery.make_gallery` (one figure of each kind); where
that module is missing (an older tree), it draws the two figures every tree has, the
region map and the region x time heatmap, on a short sample, so the build works either way.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)
MAX_FRAMES = 16  # one clip: the gallery shows the kinds, not a long analysis, and the build stays short


def _fallback(out_dir: Path) -> list[dict]:
    import matplotlib.pyplot as plt

    import expresso_xai as ex

    video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=MAX_FRAMES)
    faces = ex.track_faces(video, progress=False)
    cube = ex.explain(ex.models.load("demo"), video, faces=faces, methods=["occlusion"], progress=False)
    at = f"the demo model on the shipped sample participant_low ({MAX_FRAMES} frames)"
    drawn = [("plot_region_map", f"plot_region_map: landmarks, crop and the partition regions, {at}.",
              lambda path: ex.figures.plot_region_map(video, faces, frame=0, path=path)),
             ("region_time_heatmap", f"region_time_heatmap: occlusion's attribution by region and time, {at}.",
              lambda path: ex.figures.region_time_heatmap(cube, "occlusion", path=path))]
    written = []
    for name, caption, draw in drawn:
        path = out_dir / f"{name}.png"
        plt.close(draw(path))
        written.append({"name": name, "path": path, "caption": caption})
    return written


def render(out_dir: Path) -> list[dict]:
    """``[{"name", "path", "caption"}]`` of the figures rendered into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        from expresso_xai.figures.gallery import make_gallery
    except ImportError:
        return _fallback(out_dir)
    return make_gallery(out_dir, max_frames=MAX_FRAMES)


def write_gallery(out_dir: Path) -> None:
    """Render the figures and write ``gallery.md`` beside ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    start = time.perf_counter()
    figures = render(out_dir)
    site = out_dir.parent
    lines = ["# Figure gallery", "",
             "One figure of each kind, rendered while this documentation was built, from the shipped "
             "samples (`data_samples/`) and the demo model. Each function returns a matplotlib `Figure` "
             "and saves PDF (TrueType fonts), SVG or 300-dpi PNG with `path=`; see "
             "{mod}`expresso_xai.figures`.", ""]
    for figure in figures:
        relative = Path(figure["path"]).resolve().relative_to(site).as_posix()
        lines += [f"## `{figure['name']}`", "", f"```{{figure}} {relative}", ":width: 100%", "",
                  figure["caption"], "```", ""]
    (site / "gallery.md").write_text("\n".join(lines), encoding="utf-8")
    log.info("gallery: %d figures in %.1f s", len(figures), time.perf_counter() - start)
