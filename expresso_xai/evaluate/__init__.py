"""Can an explanation be trusted? Faithfulness, sanity, localisation and robustness
metrics on video, over the units our users think in: facial region × time window.

``ex.evaluate(model, video, cube)`` prepares the cube's clips again with the engine's clip
step and runs each metric group on them; the result is an ``xarray.Dataset`` with one
``score(explainer, metric)`` per method and score, the perturbation curves and each
check's details (see ``dataset``). Metric groups (``metrics=``):

- ``deletion``, ``insertion``: remove (insert) region × time units in the cube's order
  (Petsiuk et al. 2018); AOPC for MoRF and LeRF, normalised by random orders
  (``perturbation``)
- ``faithfulness_correlation``: Bhatt et al. 2020, on random sets of units
- ``infidelity``: Yeh et al. 2019, on the same perturbations
- ``mprt``: model-parameter randomisation (Adebayo et al. 2018), cascading and per layer
  (``randomisation``)
- ``random``: the data-independence checks for video: frames shuffled within each clip,
  a static clip
- ``pointing_game``, ``relevance_mass``, ``relevance_rank``: localisation against a
  ground truth ``truth`` (``localisation``)
- ``max_sensitivity``, ``temporal_consistency``: robustness under small input noise, and
  between overlapping clips (``robustness``)
- ``off_face``: share of |attribution| off the face (background, face_other)
"""

from __future__ import annotations

from . import localisation, perturbation, randomisation, robustness  # noqa: F401 (registers the metrics)
from .base import FILLS, METRICS, Metric, MetricResult, Score, register_metric
from .dataset import check_evaluation, definitions, open_evaluation, save_evaluation
from .run import DEFAULT_METRICS, EvalClip, EvaluationRun, open_run, run_metrics
from .truth import AU_REGIONS, au_truth


def evaluate(model, video, cube, faces=None, metrics=None, truth=None, window: int = 4, fill: str = "blur",
             steps: int | None = None, n_random: int = 8, seed: int = 0, max_clips: int | None = None,
             batch_size: int | None = None, device="cpu", progress: bool = True, thresholds: dict | None = None):
    """Evaluate the explanations of a cube: do they say something about the model?

    Args:
        model: the model the cube was computed with (its weights hash is checked against
            the cube's); ``None`` when only cube-level metrics run.
        video: the video the cube was computed from (a :class:`Video` or a path; its
            frames are checked against the cube's hash).
        cube: the attribution cube.
        faces: the face track the cube was explained with (tracked again when ``None``).
        metrics: metric group names (see the module's table); ``None``:
            ``("deletion", "insertion", "random", "mprt", "pointing_game",
            "relevance_mass")``, the last two only when ``truth`` is given.
        truth: boolean ``DataArray(time, region)`` of where the signal is, for the
            localisation metrics (``ex.samples.truth_mask`` for a sample, ``expresso_xai.evaluate.au_truth``
            from an OpenFace CSV's action units).
        window: frames per unit (a unit is one region during ``window`` frames).
        fill: how a removed unit is filled: ``"blur"`` (the clip's own Gaussian blur),
            ``"temporal"`` (the same pixels from the nearest frames outside the window),
            ``"noisy_linear"`` (ROAD's noisy linear imputation, per frame).
        steps: points of the perturbation curves after the start (``None``: one per unit
            up to 20 units, else 20).
        n_random: random orders for the random-order curves and the random checks.
        seed: seeds every random draw; the same seed gives the same dataset.
        max_clips: evaluate only this many of the cube's clips, evenly spread (``None``: all).
        batch_size: perturbed inputs per forward (``None``: measured once, like ``explain``).
        thresholds: ``{score: value}`` overriding the thresholds of pass/fail verdicts.

    Returns:
        The evaluation ``xarray.Dataset`` (see ``expresso_xai.evaluate.dataset``).

    Example:
        >>> import expresso_xai as ex
        >>> from expresso_xai.testing import tiny_model
        >>> model = tiny_model(input_size=(64, 64))
        >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=16)
        >>> cube = ex.explain(model, video, methods=["saliency"], progress=False)
        >>> ev = ex.evaluate(model, video, cube, metrics=["deletion"], steps=4, n_random=2, progress=False)
        >>> ev.score.sel(metric="deletion_morf").dims, ev.curve.dims
        (('explainer',), ('explainer', 'kind', 'order', 'step'))
    """
    from .dataset import build_dataset

    run = open_run(model, video, cube, faces=faces, metrics=metrics, truth=truth, window=window, fill=fill,
                   steps=steps, n_random=n_random, seed=seed, max_clips=max_clips, batch_size=batch_size,
                   device=device, progress=progress, thresholds=thresholds)
    return build_dataset(run, run_metrics(run))


__all__ = ["AU_REGIONS", "au_truth", "DEFAULT_METRICS", "FILLS", "METRICS", "EvalClip", "EvaluationRun", "Metric", "MetricResult", "Score",
           "check_evaluation", "definitions", "evaluate", "open_evaluation", "open_run", "register_metric",
           "run_metrics", "save_evaluation"]
