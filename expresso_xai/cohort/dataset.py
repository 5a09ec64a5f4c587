"""The cohort as one ``xarray.Dataset``: every finished participant's attribution on a
common relative-time axis (loaded lazily, with Dask), next to their score, prediction
and the rest of what the audit needs; the per-frame cubes stay in the store, reachable
by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import CohortError
from .bands import assign_bands
from .store import CohortStore


def _bdi_bands(scores: np.ndarray) -> np.ndarray:
    """BDI-II bands, ``""`` for a score outside 0-63 (another scale: the audit takes its bands)."""
    inside = (scores >= 0) & (scores <= 63)
    names = np.full(scores.shape, "", dtype=object)
    names[inside] = assign_bands(scores[inside]) if inside.any() else []
    return names.astype(str)


def binned_attribution(attribution: np.ndarray, n_bins: int) -> np.ndarray:
    """``(explainer, time, region)`` → ``(explainer, n_bins, region)``: the mean over the
    frames of each bin, the bins splitting the frames into ``n_bins`` equal parts of the
    video's duration (frame ``t`` of ``T`` is in bin ``floor(t * n_bins / T)``). A bin
    without frames (a video shorter than ``n_bins`` frames) is NaN.

    Example:
        >>> a = np.arange(8, dtype=float).reshape(1, 8, 1)
        >>> binned_attribution(a, 4)[0, :, 0]
        array([0.5, 2.5, 4.5, 6.5])
    """
    n_frames = attribution.shape[1]
    bins = np.arange(n_frames) * n_bins // n_frames
    sums = np.zeros((attribution.shape[0], n_bins, attribution.shape[2]))
    np.add.at(sums, (slice(None), bins, slice(None)), attribution.astype(np.float64))
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / np.where(counts > 0, counts, np.nan)[None, :, None]


def _binned_from_store(group: str, n_bins: int) -> np.ndarray:
    with xr.open_zarr(group, consolidated=True, chunks=None) as cube:
        return binned_attribution(cube.attribution.values, n_bins)


def _layout(store: CohortStore, first: str) -> tuple[list[str], list[str]]:
    with xr.open_zarr(store.group(first), consolidated=True, chunks=None) as cube:
        return [str(e) for e in cube.explainer.values], [str(r) for r in cube.region.values]


def _lazy_attribution(store: CohortStore, names: list[str], explainers, regions, n_bins: int):
    import dask
    import dask.array as da

    blocks = [da.from_delayed(dask.delayed(_binned_from_store)(str(store.group(name)), n_bins),
                              shape=(len(explainers), n_bins, len(regions)), dtype=np.float64) for name in names]
    return da.stack(blocks)


def open(store: str | Path, time_bins: int = 10) -> xr.Dataset:  # noqa: A001 - the verb users expect
    """The finished participants of a cohort store as one dataset.

    Variables: ``attribution(participant, explainer, time_bin, region)`` (dask-backed: the
    mean per-frame attribution over each of ``time_bins`` equal parts of the video, so
    videos of different lengths line up; ``bin_start``/``bin_end`` give each bin's share
    of the duration), ``region_area(participant, region)`` (mean pixels over frames with a
    face), and per participant ``score``, ``prediction`` (mean of the clips'), ``error``
    (prediction − score), ``band`` (BDI-II), ``face_fraction``, ``split``, ``n_frames``,
    ``duration``. attrs: ``store``, ``time_bins``, ``cohort_settings`` (JSON).
    A store still being written shows the participants finished so far.
    :func:`participant_cube` gives one participant's per-frame cube.

    Raises:
        CohortError: not a cohort store, no finished participant yet, or a bad ``time_bins``.

    Example:
        >>> import tempfile, expresso_xai as ex
        >>> folder = tempfile.mkdtemp()
        >>> manifest = ex.samples.make_cohort(folder, n_participants=2, seconds=0.8, progress=False)
        >>> _ = ex.cohort.run(manifest, "demo", methods=["gradcam"], store=f"{folder}/c.zarr",
        ...                   client="sequential", progress=False)
        >>> cohort = ex.cohort.open(f"{folder}/c.zarr", time_bins=4)
        >>> cohort.attribution.dims, cohort.sizes["participant"]
        (('participant', 'explainer', 'time_bin', 'region'), 2)
    """
    if not isinstance(time_bins, (int, np.integer)) or isinstance(time_bins, bool) or time_bins < 1:
        raise CohortError(f"time_bins must be a whole number of at least 1, got {time_bins!r}")
    cohort = CohortStore.open(store)
    finished = cohort.finished()
    if not finished:
        raise CohortError(f"{cohort.path}: no participant is finished yet")
    names = sorted(finished)
    explainers, regions = _layout(cohort, names[0])
    markers = [finished[name] for name in names]
    attribution = _lazy_attribution(cohort, names, explainers, regions, int(time_bins))
    return cohort_dataset(names, markers, attribution, explainers, regions, int(time_bins),
                          store=str(cohort.path), settings=cohort.settings)


def cohort_dataset(names, markers, attribution, explainers, regions, time_bins: int, store: str = "",
                   settings: dict | None = None) -> xr.Dataset:
    """The dataset :func:`open` returns, from its parts: participant ``names``, their
    markers (the manifest row and :func:`~expresso_xai.cohort.task.summary` of each cube)
    and binned ``attribution (participant, explainer, time_bin, region)``, numpy or dask.
    (Also how :func:`expresso_xai.testing.example_cohort` lays out an in-memory cohort.)"""
    score = np.array([m["score"] for m in markers], dtype=np.float64)
    prediction = np.array([m["prediction"] for m in markers], dtype=np.float64)
    edges = np.arange(time_bins + 1) / time_bins
    per = ("participant",)
    return xr.Dataset(
        {
            "attribution": (("participant", "explainer", "time_bin", "region"), attribution),
            "region_area": (("participant", "region"),
                            np.array([[m["region_area"].get(r, np.nan) for r in regions] for m in markers])),
            "score": (per, score), "prediction": (per, prediction), "error": (per, prediction - score),
            "band": (per, _bdi_bands(score)),
            "face_fraction": (per, np.array([m["face_fraction"] for m in markers], dtype=np.float64)),
            "split": (per, np.array([m.get("split", "") for m in markers], dtype=str)),
            "n_frames": (per, np.array([m["n_frames"] for m in markers], dtype=np.int64)),
            "duration": (per, np.array([m["duration"] for m in markers], dtype=np.float64)),
        },
        coords={"participant": np.array(names, dtype=str), "explainer": np.array(explainers, dtype=str),
                "region": np.array(regions, dtype=str), "time_bin": np.arange(time_bins),
                "bin_start": ("time_bin", edges[:-1]), "bin_end": ("time_bin", edges[1:])},
        attrs={"store": store, "time_bins": int(time_bins), "cohort_settings": json.dumps(settings or {})},
    )


def merge_regions(cohort: xr.Dataset, groups: dict[str, list[str]]) -> xr.Dataset:
    """The cohort with some regions added up into one (``{"eyes": ["right_eye",
    "left_eye"]}``): their attribution and area are summed (with a partition, region sums
    add up, so shares stay shares), the other regions are kept, the merged ones come first.

    Example:
        >>> from expresso_xai.testing import example_cohort
        >>> cohort, _ = example_cohort(n_participants=4, n_frames=20)
        >>> list(merge_regions(cohort, {"eyes": ["right_eye", "left_eye"]}).region.values[:2])
        ['eyes', 'right_brow']
    """
    regions = [str(r) for r in cohort.region.values]
    merged = [r for members in groups.values() for r in members]
    unknown = sorted(set(merged) - set(regions))
    if unknown or len(set(merged)) < len(merged):
        raise CohortError(f"cannot merge regions {groups}: " + (f"unknown {unknown} (the cohort has {regions})"
                                                                 if unknown else "a region is in two groups"))
    clash = sorted(set(groups) & (set(regions) - set(merged)))
    if clash:
        raise CohortError(f"merged region names {clash} are already regions of the cohort")
    kept = [r for r in regions if r not in merged]
    parts = {name: [cohort[name].sel(region=members).sum("region", skipna=False).expand_dims(region=[group])
                    for group, members in groups.items()] + [cohort[name].sel(region=kept)]
             for name in ("attribution", "region_area")}
    return cohort.drop_dims("region").assign(
        {name: xr.concat(pieces, "region") for name, pieces in parts.items()}).assign_attrs(cohort.attrs)


def participant_cube(cohort: xr.Dataset | str | Path, participant: str) -> xr.Dataset:
    """One participant's per-frame attribution cube (with ``au_intensity(time, au)``,
    the action units its audit correlates), read whole from the store.

    ``cohort`` is what :func:`open` returned, or the store's path.

    Example:
        >>> import tempfile, expresso_xai as ex
        >>> folder = tempfile.mkdtemp()
        >>> manifest = ex.samples.make_cohort(folder, n_participants=1, seconds=0.8, progress=False)
        >>> _ = ex.cohort.run(manifest, "demo", methods=["gradcam"], store=f"{folder}/c.zarr",
        ...                   client="sequential", progress=False)
        >>> cube = ex.cohort.participant_cube(f"{folder}/c.zarr", "p000")
        >>> cube.attribution.dims, cube.au_intensity.attrs["au_source"]
        (('explainer', 'time', 'region'), 'openface')
    """
    from ..cube import open_cube

    path = cohort.attrs.get("store") if isinstance(cohort, xr.Dataset) else cohort
    if not path:
        raise CohortError("this dataset does not come from ex.cohort.open: pass the store's path")
    store = CohortStore.open(path)
    if participant not in store.finished():
        known = ", ".join(sorted(store.finished())[:8])
        raise CohortError(f"{store.path}: no finished participant {participant!r} (finished: {known or 'none'})")
    return open_cube(store.group(participant))
