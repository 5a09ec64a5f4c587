"""The attribution cube: the one ``xarray.Dataset`` every part of expresso-xai agrees on.

- ``schema``: what a cube holds; :func:`make_cube` builds one from plain arrays and
  :func:`check_cube` refuses a Dataset that does not fit;
- ``provenance``: the attrs (model, video, methods' parameters, versions) as
  netCDF-safe values;
- ``io``: NetCDF and Zarr files, :func:`open_cube`;
- ``views``: the derived views (share, density, top regions or frames, agreement, a
  tidy table) and the value and sign conventions figures and widgets share;
- ``accessor``: ``cube.xai``, which only forwards to views and io (importing this
  package registers it).

Example:
    >>> from expresso_xai.cube import open_cube
    >>> from expresso_xai.testing import example_cube
    >>> example_cube().xai.explainers
    ('gradcam', 'integrated_gradients')
"""

from .accessor import XaiAccessor
from .io import open_cube, write_zarr_group
from .schema import CUBE_VERSION, check_cube, make_cube

__all__ = ["CUBE_VERSION", "XaiAccessor", "check_cube", "make_cube", "open_cube", "write_zarr_group"]
