"""The figure gallery: one figure of each kind, rendered on a shipped sample with the demo
model, for the documentation (its build calls :func:`make_gallery`) and as a check that
every kind draws on real data.

The cube, the evaluation and the region map come from the shipped sample
``participant_low`` explained by the demo model (as ``expresso-xai demo`` does, on its
first ``max_frames`` frames); the cohort figures need many participants, so they draw
the library's synthetic example cohort (:func:`expresso_xai.testing.cohort.example_cohort`,
made without a model), and their captions say so.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CubeError

METHODS = ("gradcam", "integrated_gradients", "occlusion")  # the demo's methods
SAMPLE = "participant_low"


def _demo_inputs(sample: str, max_frames: int):
    """``(video, faces, model, cube, evaluation)`` of the sample's first frames."""
    import expresso_xai as ex

    video = ex.load_video(ex.samples.sample_path(sample), max_frames=max_frames)
    faces = ex.track_faces(video, progress=False)
    model = ex.models.load("demo")
    cube = ex.explain(model, video, faces=faces, methods=list(METHODS), keep_pixels=True, progress=False)
    # ten steps and four random orders: curves enough to show, a third of the default's time
    evaluation = ex.evaluate(model, video, cube, metrics=["deletion", "insertion"], steps=10, n_random=4,
                             progress=False)
    return video, faces, model, cube, evaluation


def _example_audit():
    import warnings

    from ..cohort import audit
    from ..testing.cohort import example_cohort

    cohort, cubes = example_cohort(n_participants=16, n_frames=40)
    with warnings.catch_warnings():  # a synthetic cohort of 16 has small error groups: expected here
        warnings.simplefilter("ignore")
        return audit(cohort, cubes=cubes, n_boot=200)


def _entries(video, faces, cube, evaluation, audit) -> list[tuple[str, str, object]]:
    """``(name, caption, draw)`` per kind; ``draw(path)`` renders and saves it."""
    from . import (agreement_matrix, au_heatmap, band_bars, frame_strip, method_grid, metric_table,
                   perturbation_curves, plot_region_map, region_bars, region_time_heatmap)

    at = f"the demo model on the shipped sample {SAMPLE} ({cube.sizes['time']} frames)"
    return [
        ("frame_strip", f"frame_strip: the six moments with most Grad-CAM attribution, {at}.",
         lambda path: frame_strip(cube, video, explainer="gradcam", path=path)),
        ("method_grid", f"method_grid: three methods × four moments on one shared symmetric scale, {at}.",
         lambda path: method_grid(cube, video, path=path)),
        ("region_time_heatmap", f"region_time_heatmap: occlusion's attribution per pixel by region and time, {at}.",
         lambda path: region_time_heatmap(cube, "occlusion", path=path)),
        ("region_bars", f"region_bars: each region's share of each method's total |attribution|, {at}.",
         lambda path: region_bars(cube, path=path)),
        ("agreement_matrix", f"agreement_matrix: Spearman rank agreement between the methods, {at}.",
         lambda path: agreement_matrix(cube, path=path)),
        ("plot_region_map", f"plot_region_map: landmarks, crop and the partition regions at the model's input, {at}.",
         lambda path: plot_region_map(video, faces, frame=0, path=path)),
        ("perturbation_curves", f"perturbation_curves: deletion and insertion curves of the three methods, {at}.",
         lambda path: perturbation_curves(evaluation, width="double", path=path)),
        ("metric_table", f"metric_table: the evaluation's scores, best per metric shaded, {at}.",
         lambda path: metric_table(evaluation, path=path)),
        ("band_bars", "band_bars: region shares per severity band with bootstrap CIs, on the synthetic example "
         "cohort (16 participants, eyes planted to rise with severity).",
         lambda path: band_bars(audit, path=path)),
        ("au_heatmap", "au_heatmap: AU × region Spearman correlations on the synthetic example cohort (AU45 "
         "planted in the eyes).", lambda path: au_heatmap(audit, path=path)),
    ]


def make_gallery(out_dir: str | Path, max_frames: int = 32, formats=(".png",)) -> list[dict]:
    """Render one figure of each kind into ``out_dir`` and return what was written:
    ``[{"name", "path", "caption"}, ...]`` in a fixed order: ``name`` the kind (the
    function's name), ``path`` a :class:`~pathlib.Path` with the first of ``formats``
    (every format is written next to it), ``caption`` one sentence saying what the
    figure shows and on which data. About 20 s on a laptop CPU: the demo explains
    and evaluates ``max_frames`` frames of a shipped sample.

    Args:
        out_dir: the folder (created when missing); files are named ``<kind><suffix>``.
        max_frames: frames of the sample to explain (at least 16, one clip).
        formats: suffixes to write (``.png``, ``.pdf``, ``.svg``).

    Raises:
        CubeError: fewer than 16 frames, or an unknown format.

    Example:
        >>> make_gallery("gallery", max_frames=8)
        Traceback (most recent call last):
        ...
        expresso_xai.errors.CubeError: max_frames=8: the gallery explains at least one clip of 16 frames
    """
    import matplotlib.pyplot as plt

    from .base import FORMATS

    if not isinstance(max_frames, int) or max_frames < 16:
        raise CubeError(f"max_frames={max_frames!r}: the gallery explains at least one clip of 16 frames")
    unknown = [suffix for suffix in formats if suffix not in FORMATS]
    if unknown or not formats:
        raise CubeError(f"formats={list(formats)!r}: use some of {list(FORMATS)}")
    out_dir = Path(out_dir)
    video, faces, _, cube, evaluation = _demo_inputs(SAMPLE, max_frames)
    written = []
    for name, caption, draw in _entries(video, faces, cube, evaluation, _example_audit()):
        for suffix in formats:
            plt.close(draw(out_dir / f"{name}{suffix}"))
        written.append({"name": name, "path": out_dir / f"{name}{formats[0]}", "caption": caption})
    return written


__all__ = ["make_gallery"]
