"""An example cohort made without any model (the cohort tests and docstrings)."""

from __future__ import annotations

import numpy as np

# --- cohort ---------------------------------------------------------------------------


def _example_boxes(rng, n_frames: int, count: int, length: int = 4, gap: int = 2) -> np.ndarray:
    """``(time,)`` 0/1 with ``count`` events of ``length`` frames in distinct slots, each
    after ``gap`` quiet frames (so every event has an onset, and frame 0 is quiet)."""
    slot = length + gap
    series = np.zeros(n_frames)
    for start in rng.choice(n_frames // slot, size=min(count, n_frames // slot), replace=False) * slot:
        series[start + gap : start + slot] = 1.0
    return series


def _example_participant(rng, name: str, closed: float, explainers, n_frames: int, lag: int, au_source: str,
                         prediction: float):
    """One participant's cube: eye attribution follows its closures (AU45) ``lag`` frames
    later; smiles (AU12) and AU04 are independent of everything."""
    import xarray as xr

    from ..cube import make_cube
    from ..regions import PARTITION_REGIONS

    regions = list(PARTITION_REGIONS)
    closure = _example_boxes(rng, n_frames, int(round(closed * n_frames / 4)))
    smile = _example_boxes(rng, n_frames, int(rng.integers(1, 4)))
    intensity = np.stack([rng.uniform(0.0, 0.8, n_frames), 2.5 * smile + rng.uniform(0, 0.3, n_frames),
                          3.0 * closure + rng.uniform(0, 0.3, n_frames)], axis=1)
    if au_source == "landmarks":  # proxies on a scale of their own (e.g. an eye aspect ratio)
        intensity = 0.3 + 0.02 * intensity
    face_found = np.arange(n_frames) > 0
    intensity[~face_found] = np.nan
    eyes, background = [regions.index("right_eye"), regions.index("left_eye")], regions.index("background")
    responding = np.concatenate([np.zeros(lag), closure[: n_frames - lag]])
    frames = np.where(np.arange(len(regions)) == background, 0.5, 1.0) + rng.normal(
        0, 0.3, (len(explainers), n_frames, len(regions)))
    frames[:, :, eyes] += 0.1 * rng.normal() + 3.0 * responding[None, :, None]
    frames[:, ~face_found] = np.eye(len(regions))[background]
    attribution = frames * rng.uniform(0.5, 1.5) / (1.0 + np.arange(len(explainers)))[:, None, None]
    clip_start = np.arange(0, n_frames - 15, 8)
    clip_noise = rng.normal(0, 1.0, len(clip_start))
    cube = make_cube(attribution, explainers=list(explainers), time=np.arange(n_frames),
                     seconds=np.arange(n_frames) / 25.0, regions=regions, face_found=face_found, prediction=prediction,
                     region_area=np.where(face_found[:, None], np.full(len(regions), 300), 0), clip_start=clip_start,
                     clip_prediction=prediction + clip_noise - clip_noise.mean(), target="regression",
                     attrs={"model_name": "synthetic", "region_scheme": "partition", "video_source": name,
                            "methods": {e: {} for e in explainers}, "participant": name, "au_source": au_source})
    cube = cube.assign_coords(au=["AU04", "AU12", "AU45"])
    cube["au_intensity"] = xr.DataArray(intensity.astype(np.float32), dims=("time", "au"),
                                        attrs={"long_name": "action-unit intensity", "au_source": au_source})
    return cube


def _example_cohort_dataset(cubes: dict, explainers, scores, splits, time_bins: int):
    """The cohort Dataset of ``cubes``, built by ``expresso_xai.cohort.open``'s own layout."""
    from ..cohort.dataset import binned_attribution, cohort_dataset
    from ..cohort.task import summary

    first = next(iter(cubes.values()))
    markers = [{**summary(cube), "score": float(score), "split": split}
               for cube, score, split in zip(cubes.values(), scores, splits)]
    binned = np.stack([binned_attribution(cube.attribution.values, time_bins) for cube in cubes.values()])
    cohort = cohort_dataset(list(cubes), markers, binned, [str(e) for e in first.explainer.values],
                            [str(r) for r in first.region.values], time_bins,
                            settings={"methods": list(explainers)})
    return cohort.assign(attribution=cohort.attribution.chunk({"participant": 8}))


def example_cohort(n_participants: int = 24, explainers=("gradcam", "integrated_gradients"), n_frames: int = 60,
                   time_bins: int = 10, effect: float = 1.0, lag: int = 0, au_source: str = "openface",
                   seed: int = 0):
    """A synthetic analysed cohort made without any model or store: ``(cohort, cubes)``,
    the Dataset that :func:`expresso_xai.cohort.open` gives (``attribution`` dask-backed)
    and ``{participant: cube}`` with ``au_intensity(time, au)`` (AU04, AU12, AU45).

    Planted: participants take turns through the BDI-II bands (a score drawn inside its
    band) and close their eyes (AU45, events of 4 frames) for a fraction ``0.05 + 0.4 *
    (effect * score / 63 + (1 - effect) * u)`` of the frames (``u`` uniform, independent
    of the score); each eye's attribution rises by 3 ``lag`` frames after AU45 rises. So
    with ``effect=1`` the eye share rises with the score and AU45 correlates with the
    eyes; with ``effect=0`` nothing attributed depends on the score (the null cohort).
    AU12 and AU04 are independent of everything; frame 0 has no face; the prediction is
    the score plus noise (sd 7); ``au_source="landmarks"`` scales intensities arbitrarily.

    Example:
        >>> cohort, cubes = example_cohort(n_participants=8)
        >>> dict(cohort.attribution.sizes)
        {'participant': 8, 'explainer': 2, 'time_bin': 10, 'region': 12}
        >>> cohort.band.values[:4].tolist(), cubes["p002"].au_intensity.attrs["au_source"]
        (['minimal', 'mild', 'moderate', 'severe'], 'openface')
    """
    from ..models.clustered import BDI_BANDS

    rng = np.random.default_rng(seed)
    bands = list(BDI_BANDS.values())
    scores = [float(rng.integers(bands[i % 4][0], bands[i % 4][1] + 1)) for i in range(n_participants)]
    splits = [("train", "val", "test")[i % 3] for i in range(n_participants)]
    cubes = {}
    for i, score in enumerate(scores):
        closed, prediction = 0.05 + 0.4 * (effect * score / 63 + (1 - effect) * rng.uniform()), score + rng.normal(0, 7)
        cubes[f"p{i:03d}"] = _example_participant(rng, f"p{i:03d}", closed, explainers, n_frames, lag, au_source,
                                                  prediction)
    return _example_cohort_dataset(cubes, explainers, scores, splits, time_bins), cubes


