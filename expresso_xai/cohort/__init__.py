"""Cohort audits: every participant of a manifest explained on Dask into a Zarr store,
opened as one dataset, and analysed as the reference study did (region shares per
severity band and error group with confidence intervals, the link to action units).

- :func:`run` (``expresso-xai cohort run``): a manifest → a cohort store, one task per
  video on a ``LocalCluster`` or any ``dask.distributed`` scheduler; resumable.
- :func:`open`: the finished participants as an ``xarray.Dataset`` on a common
  relative-time axis; :func:`participant_cube` gives one participant's cube.
- :func:`audit` (``analysis``, ``au``): the statistics; :func:`report` writes them
  (``expresso-xai cohort report``).

Modules: ``manifest`` (reading and checking the CSV), ``store`` (the layout and atomic
writes), ``task`` (one participant, where Dask runs it), ``run`` (the scheduling),
``dataset`` (the lazy dataset), ``bands`` (severity bands), ``analysis`` and ``au`` (the audit), ``reporting``.

Example:
    >>> import tempfile, expresso_xai as ex
    >>> folder = tempfile.mkdtemp()
    >>> manifest = ex.samples.make_cohort(folder, n_participants=2, seconds=0.8, progress=False)
    >>> ex.cohort.run(manifest, "demo", methods=["gradcam"], store=f"{folder}/cohort.zarr",
    ...               client="sequential", progress=False)  # doctest: +ELLIPSIS
    cohort store .../cohort.zarr: 2 explained now, 0 already there, 0 failed
"""

from __future__ import annotations

from .bands import assign_bands, resolve_bands
from .dataset import merge_regions, open, participant_cube
from .manifest import Entry, read_manifest
from .run import CohortRun, run
from .store import CohortStore

_LAZY = {"audit": ".analysis", "Audit": ".analysis", "SmallGroupWarning": ".analysis", "report": ".reporting"}


def __getattr__(name: str):
    # the analysis brings scipy; imported when first asked for
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'expresso_xai.cohort' has no attribute {name!r}")


__all__ = ["Audit", "CohortRun", "CohortStore", "Entry", "SmallGroupWarning", "assign_bands", "audit", "merge_regions",
           "open", "participant_cube", "resolve_bands",
           "read_manifest", "report", "run"]
