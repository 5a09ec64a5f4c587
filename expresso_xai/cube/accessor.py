"""``cube.xai``: the views and the I/O of an attribution cube as verbs on the Dataset.

Like xarray's own accessors, every method only forwards to a plain function
(:mod:`~expresso_xai.cube.views`, :mod:`~expresso_xai.cube.io`), where the
implementation and its full description live.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd
import xarray as xr

from . import io, views


@xr.register_dataset_accessor("xai")
class XaiAccessor:
    """``cube.xai``: derived views and I/O of an attribution cube.

    Views are computed when asked for and never stored in the cube.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube()
        >>> float(abs(cube.xai.share()).sum(("time", "region")).min())  # doctest: +ELLIPSIS
        1.0...
        >>> cube.xai.to_dataframe().shape
        (384, 8)
    """

    def __init__(self, dataset: xr.Dataset):
        self._cube = dataset

    @property
    def explainers(self) -> tuple[str, ...]:
        """The explainers' names, in the cube's order (``views.explainers``)."""
        return views.explainers(self._cube)

    @property
    def regions(self) -> tuple[str, ...]:
        """The region names, in the cube's order (``views.regions``)."""
        return views.regions(self._cube)

    def share(self, dim: str | Iterable[str] = ("time", "region")) -> xr.DataArray:
        """Attribution as a fraction of the total |attribution| over ``dim``
        (``views.share``).

        Example:
            >>> from expresso_xai.testing import example_cube
            >>> per_frame = example_cube().xai.share("region")  # each frame's regions sum to 1 in |.|
            >>> bool(abs(abs(per_frame).sum("region") - 1).max() < 1e-9)
            True
        """
        return views.share(self._cube, dim)

    def density(self) -> xr.DataArray:
        """Attribution per pixel; NaN where a region has no pixels (``views.density``).

        Example:
            >>> from expresso_xai.testing import example_cube
            >>> density = example_cube().xai.density()
            >>> bool(density.sel(time=3, region="mouth").isnull().all())  # no face in frame 3
            True
        """
        return views.density(self._cube)

    def top(self, k: int = 3, by: str = "density", dim: str = "region") -> pd.DataFrame:
        """The ``k`` highest regions or frames of each explainer (``views.top``).

        Example:
            >>> from expresso_xai.testing import example_cube
            >>> table = example_cube(explainers=["gradcam"]).xai.top(k=2, by="attribution")
            >>> list(table.columns), table["rank"].tolist()
            (['explainer', 'region', 'value', 'rank'], [1, 2])
        """
        return views.top(self._cube, k=k, by=by, dim=dim)

    def agreement(self, over: str | Iterable[str] = ("time", "region"), absolute: bool = False,
                  faces_only: bool = True) -> xr.DataArray:
        """Spearman rank correlation between every pair of explainers
        (``views.agreement``).

        Example:
            >>> from expresso_xai.testing import example_cube
            >>> cube = example_cube(explainers=["gradcam", "saliency"])
            >>> rho = cube.xai.agreement()
            >>> rho.dims, float(rho.sel(explainer="gradcam", other="gradcam"))
            (('explainer', 'other'), 1.0)
            >>> cube.xai.agreement(over="region").dims
            ('time', 'explainer', 'other')
        """
        return views.agreement(self._cube, over=over, absolute=absolute, faces_only=faces_only)

    def to_dataframe(self) -> pd.DataFrame:
        """One tidy row per (explainer, time, region) (``views.to_dataframe``).

        Example:
            >>> from expresso_xai.testing import example_cube
            >>> table = example_cube().xai.to_dataframe()
            >>> table.columns.tolist()[:4], len(table) == 2 * 16 * 12
            (['explainer', 'time', 'seconds', 'region'], True)
        """
        return views.to_dataframe(self._cube)

    def methods_text(self) -> str:
        """The paragraph a methods section needs: model, video, clips, methods and their
        parameters, regions (``expresso_xai.cube.methods_text.methods_text``).

        Example:
            >>> from expresso_xai.testing import example_cube
            >>> example_cube().xai.methods_text().split(". ")[0]
            'We explained the regression output of the model synthetic'
        """
        from .methods_text import methods_text

        return methods_text(self._cube)

    def params(self, explainer: str | None = None) -> dict:
        """Each method's parameters, from ``attrs["methods"]`` (``views.params``).

        Example:
            >>> from expresso_xai.testing import example_cube
            >>> example_cube().xai.params()
            {'gradcam': {}, 'integrated_gradients': {}}
        """
        return views.params(self._cube, explainer)

    def evaluate(self, model, video, **kwargs) -> xr.Dataset:
        """Evaluate this cube's explanations with the model and video it was computed
        from: faithfulness, sanity and localisation scores
        (:func:`expresso_xai.evaluate.evaluate`, which documents every keyword).

        Example:
            >>> from expresso_xai.testing import example_cube
            >>> cube = example_cube()
            >>> # cube.xai.evaluate(model, video) runs every default metric; off_face needs neither
            >>> ev = cube.xai.evaluate(None, None, metrics=["off_face"], progress=False)
            >>> ev.score.sel(metric="off_face").round(3).values.tolist(), ev.better.values.tolist()
            ([0.222, 0.182], ['lower'])
        """
        from ..evaluate import evaluate  # the evaluation reads cubes: imported here, not at the top, to avoid a loop

        return evaluate(model, video, self._cube, **kwargs)

    def to_netcdf(self, path: str | Path) -> Path:
        """Write the cube as one netCDF-4 file; returns the path (``io.to_netcdf``).

        Example:
            >>> import pathlib, tempfile
            >>> from expresso_xai.testing import example_cube
            >>> example_cube().xai.to_netcdf(pathlib.Path(tempfile.mkdtemp()) / "cube.nc").name
            'cube.nc'
        """
        return io.to_netcdf(self._cube, path)

    def to_zarr(self, path: str | Path) -> Path:
        """Write the cube as a Zarr store (format 2, a folder); returns the path
        (``io.to_zarr``). :func:`~expresso_xai.cube.open_cube` reads it back.

        Example:
            >>> import pathlib, tempfile
            >>> from expresso_xai.cube import open_cube
            >>> from expresso_xai.testing import example_cube
            >>> store = example_cube().xai.to_zarr(pathlib.Path(tempfile.mkdtemp()) / "cube.zarr")
            >>> open_cube(store).xai.explainers
            ('gradcam', 'integrated_gradients')
        """
        return io.to_zarr(self._cube, path)


__all__ = ["XaiAccessor"]
