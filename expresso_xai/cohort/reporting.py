"""The audit written out: its tables as CSV (and the metrics as JSON) and its figures as
PDF and PNG, in one folder (``expresso-xai cohort report``)."""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from ..files import atomic_path

TABLES = ("participants", "shares", "omnibus", "contrasts", "au")


def _write_table(frame, path: Path, index: bool = False) -> Path:
    with atomic_path(path) as partial:
        frame.to_csv(partial, index=index)
    return path


def _tables(result, out: Path) -> list[Path]:
    written = [_write_table(result.participants, out / "participants.csv", index=True)]
    written += [_write_table(getattr(result, name), out / f"{name}.csv") for name in TABLES[1:]]
    if result.events is not None:
        events = result.events.rename("share").to_dataframe().reset_index()
        written.append(_write_table(events, out / "events.csv"))
    with atomic_path(out / "metrics.json") as partial:
        partial.write_text(json.dumps({"metrics": result.metrics, "settings": result.settings}, indent=1,
                                      default=str))
    written.append(out / "metrics.json")
    return written


def _figures(result, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    from ..figures import au_heatmap, band_shares

    written = []
    for explainer in result.shares.explainer.unique():
        drawings = [(f"shares_{explainer}_band", lambda p, e=explainer: band_shares(result, e, grouping="band", path=p)),
                    (f"shares_{explainer}_error", lambda p, e=explainer: band_shares(result, e, grouping="error", path=p))]
        if len(result.au):
            drawings.append((f"au_{explainer}", lambda p, e=explainer: au_heatmap(result, e, band="all", path=p)))
        for stem, draw in drawings:
            for suffix in (".pdf", ".png"):
                plt.close(draw(out / f"{stem}{suffix}"))
                written.append(out / f"{stem}{suffix}")
    return written


def report(cohort: xr.Dataset | str | Path, out: str | Path, time_bins: int = 10, **audit_options) -> list[Path]:
    """Audit a cohort and write everything a paper needs into the folder ``out``:
    ``participants.csv``, ``metrics.json`` (MAE, RMSE, per band and error group, and the
    audit's settings), ``shares.csv``, ``omnibus.csv``, ``contrasts.csv``, ``au.csv``,
    ``events.csv``, and per explainer the region shares per severity band and per error
    group (``shares_<explainer>_band.pdf/.png``, ``..._error``) and the AU × region
    correlations (``au_<explainer>.pdf/.png``). Files are replaced one by one, atomically;
    nothing else in ``out`` is touched.

    Args:
        cohort: a store's path, or what :func:`expresso_xai.cohort.open` returned.
        time_bins: when ``cohort`` is a path, the relative-time bins to open it with.
        **audit_options: passed to :func:`expresso_xai.cohort.audit` (``bands``,
            ``correct_within``, ``n_boot``, ``seed``, ...).

    Returns:
        The paths written.

    Example:
        >>> import tempfile, expresso_xai as ex
        >>> folder = tempfile.mkdtemp()
        >>> manifest = ex.samples.make_cohort(folder, n_participants=4, seconds=0.8, progress=False)
        >>> _ = ex.cohort.run(manifest, "demo", methods=["gradcam"], store=f"{folder}/c.zarr",
        ...                   client="sequential", progress=False)
        >>> paths = ex.cohort.report(f"{folder}/c.zarr", f"{folder}/report", n_boot=200)  # doctest: +SKIP
        >>> sorted(p.name for p in paths)[:3]  # doctest: +SKIP
        ['au.csv', 'au_gradcam.pdf', 'au_gradcam.png']
    """
    from .analysis import audit
    from .dataset import open as open_cohort

    dataset = cohort if isinstance(cohort, xr.Dataset) else open_cohort(cohort, time_bins=time_bins)
    result = audit(dataset, **audit_options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return _tables(result, out) + _figures(result, out)
