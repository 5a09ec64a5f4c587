"""The evaluation dataset: every metric group's scores and curves gathered into one
``xarray.Dataset``, with the cube's provenance and the evaluation's own parameters in its
attrs, netCDF-safe so that ``ev.to_netcdf(path)`` and :func:`open_evaluation` round-trip.

Layout::

    score   (explainer, metric) float64   one summary per method and score
    passed  (explainer, metric) float64   1 pass / 0 fail / NaN (no threshold)
    better  (metric) str                  "higher", "lower" or "neither"
    group   (metric) str                  the metric group that gave the score
    ...                                   each group's own variables (curves, per-layer similarity)

``attrs["metric_definitions"]`` (JSON) says for every score its direction, definition,
reference and threshold; ``attrs["evaluation"]`` (JSON) the parameters of the run.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import EvaluationError
from .base import METRICS, MetricResult

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

    from .run import EvaluationRun

EVALUATION_VERSION = 1


def _score_table(run: "EvaluationRun", results: list[MetricResult]):
    explainers = list(run.explainers)
    names, infos, groups = [], [], []
    for metric_name in run.metrics:
        for score in METRICS[metric_name].scores:
            names.append(score.name)
            infos.append(score)
            groups.append(metric_name)
    values = np.full((len(explainers), len(names)), np.nan)
    for result in results:
        for score_name, per_explainer in result.scores.items():
            if score_name not in names:
                raise EvaluationError(f"a metric gave the undeclared score {score_name!r}")
            for explainer, value in per_explainer.items():
                values[explainers.index(explainer), names.index(score_name)] = float(value)
    unknown = set(run.thresholds) - set(names)
    if unknown:
        raise EvaluationError(f"thresholds given for {sorted(unknown)}, which are not among the scores {names}")
    passed = np.array([[info.verdict(v, run.thresholds.get(info.name)) for v, info in zip(row, infos)]
                       for row in values]).reshape(values.shape)
    return explainers, names, infos, groups, values, passed


def _evaluation_attrs(run: "EvaluationRun", results: list[MetricResult], infos) -> dict:
    params = {
        "metrics": list(run.metrics), "window": run.window, "fill": run.fill, "steps": run.steps,
        "n_random": run.n_random, "seed": run.seed, "max_clips": run.max_clips,
        "clips_evaluated": [int(n) for n in run.clip_numbers] if run.needs_clips else [],
        "batch_size": run.batch_size, "device": str(run.device), "truth": run.truth is not None,
        "thresholds": run.thresholds,
    }
    for metric_name, result in zip(run.metrics, results):
        if result.params:
            params[metric_name] = result.params
    definitions = {info.name: {"better": info.better, "definition": info.definition, "reference": info.reference,
                               "threshold": run.thresholds.get(info.name, info.threshold)} for info in infos}
    from .. import __version__

    return {
        "evaluation_version": EVALUATION_VERSION,
        "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "evaluated_with": f"expresso_xai {__version__}",
        "evaluation": json.dumps(params, default=_plain),
        "metric_definitions": json.dumps(definitions),
    }


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _combined(pieces: list) -> "xr.DataArray":
    """One variable from the pieces several groups gave on disjoint coordinates
    (deletion and insertion each give ``curve`` for their own ``kind``)."""
    result = pieces[0]
    for piece in pieces[1:]:
        both = result.notnull() & piece.reindex_like(result).notnull()
        if bool(both.any()):
            raise EvaluationError(f"two metrics gave values of {piece.name!r} for the same cells")
        result = result.combine_first(piece)
    return result


def build_dataset(run: "EvaluationRun", results: list[MetricResult]) -> "xr.Dataset":
    """The evaluation dataset of a finished run."""
    import xarray as xr

    explainers, names, infos, groups, values, passed = _score_table(run, results)
    coords = {"explainer": explainers, "metric": names,
              "better": ("metric", [info.better for info in infos]), "group": ("metric", groups)}
    dataset = xr.Dataset(
        {"score": (("explainer", "metric"), values, {"long_name": "evaluation score",
                                                     "description": "see the better coordinate and "
                                                                    "attrs['metric_definitions']"}),
         "passed": (("explainer", "metric"), passed, {"long_name": "1 pass, 0 fail, NaN no threshold"})},
        coords=coords,
    )
    pieces: dict[str, list] = {}
    for result in results:
        for name, variable in result.variables.items():
            pieces.setdefault(name, []).append(variable.rename(name))
    if pieces:
        dataset = xr.merge([dataset] + [_combined(parts) for parts in pieces.values()], join="outer",
                           combine_attrs="override", compat="no_conflicts")
    attrs = {key: value for key, value in run.cube.attrs.items()}
    attrs.update(_evaluation_attrs(run, results, infos))
    dataset.attrs = attrs
    return dataset


def check_evaluation(dataset, source: str = "the evaluation") -> None:
    """Raise :class:`EvaluationError` unless ``dataset`` is an evaluation dataset.

    Example:
        >>> from expresso_xai.testing import example_evaluation
        >>> check_evaluation(example_evaluation())
    """
    import xarray as xr

    if not isinstance(dataset, xr.Dataset):
        raise EvaluationError(f"{source} is a {type(dataset).__name__}, not an evaluation dataset")
    missing = [name for name in ("score", "passed", "better") if name not in dataset.variables]
    if missing or "evaluation_version" not in dataset.attrs:
        raise EvaluationError(f"{source} is not an evaluation dataset (no {missing[0] if missing else 'evaluation_version'}); "
                              "make one with ex.evaluate(model, video, cube)")
    if dataset.score.dims != ("explainer", "metric"):
        raise EvaluationError(f"{source}: score has dims {dataset.score.dims}, expected ('explainer', 'metric')")


def definitions(dataset) -> dict:
    """``{score: {better, definition, reference, threshold}}`` of an evaluation dataset.

    Example:
        >>> from expresso_xai.testing import example_evaluation
        >>> definitions(example_evaluation())["deletion_morf"]["better"]
        'higher'
    """
    check_evaluation(dataset)
    return json.loads(dataset.attrs["metric_definitions"])


def save_evaluation(dataset, path: str | Path) -> Path:
    """Write an evaluation dataset to netCDF without ever leaving a half-written file
    (written under a temporary name, then renamed); returns the path.

    Example:
        >>> import tempfile, pathlib
        >>> from expresso_xai.testing import example_evaluation
        >>> path = save_evaluation(example_evaluation(), pathlib.Path(tempfile.mkdtemp()) / "eval.nc")
        >>> open_evaluation(path).sizes["metric"] > 0
        True
    """
    from ..files import atomic_path

    check_evaluation(dataset)
    path = Path(path)
    with atomic_path(path) as partial:
        dataset.to_netcdf(partial)
    return path


def open_evaluation(path: str | Path) -> "xr.Dataset":
    """Open an evaluation dataset saved with ``ev.to_netcdf(path)`` (loaded into memory,
    the file closed), checked.

    Example:
        >>> import tempfile, pathlib
        >>> from expresso_xai.testing import example_evaluation
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "eval.nc"
        >>> _ = example_evaluation().to_netcdf(path)
        >>> open_evaluation(path).score.dims
        ('explainer', 'metric')
    """
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path}: no such evaluation file")
    try:
        with xr.open_dataset(path) as opened:
            dataset = opened.load()
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"{path}: not a readable netCDF evaluation file ({exc})") from None
    check_evaluation(dataset, str(path))
    return dataset
