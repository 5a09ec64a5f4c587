"""Cubes on disk: one netCDF-4 file or a Zarr store, both read back identical by
:func:`open_cube` and opened unchanged by plain xarray."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from ..errors import CubeError
from ..files import OutputError, atomic_path, is_zarr_with, replace_folder
from .schema import check_cube
from .views import attribution_of

ZARR_FORMAT = 2  # Zarr v3 has no specification yet for fixed-width unicode (the str coords)


def _check_attrs_safe(dataset: xr.Dataset, path: Path) -> None:
    for owner, attrs in [("the cube", dataset.attrs)] + [
        (f"variable {name!r}", variable.attrs) for name, variable in dataset.variables.items()
    ]:
        for name, value in attrs.items():
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (str, numbers.Integral, numbers.Real)):
                raise CubeError(f"cannot write {path}: attribute {name!r} of {owner} is a "
                                f"{type(value).__name__}; store it as JSON text (json.dumps) or a str/int/float")


def _writable(cube: xr.Dataset, path: str | Path) -> tuple[xr.Dataset, Path]:
    """The cube without its read-time encoding, once it is known to be a cube whose
    attributes a file can hold; and the path."""
    path = Path(path)
    attribution_of(cube)  # refuse a Dataset that is not a cube
    _check_attrs_safe(cube, path)
    return cube.drop_encoding(), path


def to_netcdf(cube: xr.Dataset, path: str | Path) -> Path:
    """Write ``cube`` as one netCDF-4 file (compressed numeric variables) that
    :func:`open_cube` reads back identical and plain ``xarray.open_dataset`` opens.
    Returns the path. The file is written under a temporary name and then replaces
    ``path`` in one step: a failed write never leaves a broken file where a cube was.

    Booleans are stored as int8 with a ``dtype: bool`` attribute (xarray restores them),
    names as variable-length strings.

    Example:
        >>> import pathlib, tempfile
        >>> from expresso_xai.testing import example_cube
        >>> to_netcdf(example_cube(), pathlib.Path(tempfile.mkdtemp()) / "cube.nc").suffix
        '.nc'
    """
    cube, path = _writable(cube, path)
    encoding = {name: {"zlib": True, "complevel": 4} for name, variable in cube.data_vars.items()
                if variable.dtype.kind in "biuf" and variable.ndim > 0}
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name (.nc) inside it")
    with atomic_path(path) as partial:  # a failed write leaves the previous cube whole
        cube.to_netcdf(partial, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return path


def to_zarr(cube: xr.Dataset, path: str | Path) -> Path:
    """Write ``cube`` as a Zarr store (a folder, format 2 with consolidated metadata)
    that :func:`open_cube` reads back identical and plain ``xarray.open_zarr`` opens.
    Returns the path.

    The store is written under a temporary name and moved into place, so a failed
    write leaves the previous store whole. An existing folder is replaced only when it
    is empty or a cube store written here; a folder with anything else in it raises
    :class:`~expresso_xai.files.OutputError` and is left untouched.

    Zarr format 2 because format 3 has no specification yet for the fixed-width unicode
    names (zarr-python warns it may change).

    Example:
        >>> import pathlib, tempfile
        >>> from expresso_xai.testing import example_cube
        >>> to_zarr(example_cube(), pathlib.Path(tempfile.mkdtemp()) / "cube.zarr").is_dir()
        True
    """
    cube, path = _writable(cube, path)
    return replace_folder(path, lambda partial: _zarr_group(cube, partial), is_zarr_with("cube_version"))


def _zarr_group(cube: xr.Dataset, folder: Path) -> None:
    cube.to_zarr(folder, mode="w", zarr_format=ZARR_FORMAT, consolidated=True)


def write_zarr_group(cube: xr.Dataset, folder: str | Path) -> Path:
    """Write ``cube`` as a Zarr group into ``folder``, a folder the caller owns and moves
    into place itself (a cohort store writes each participant's cube this way, under a
    temporary name, and renames it when everything in it is written). :func:`open_cube`
    reads it back. Prefer ``to_zarr``, which does the temporary name and the move.

    Example:
        >>> import pathlib, tempfile
        >>> from expresso_xai.testing import example_cube
        >>> folder = write_zarr_group(example_cube(), pathlib.Path(tempfile.mkdtemp()) / "p01")
        >>> open_cube(folder).identical(example_cube())
        True
    """
    cube, folder = _writable(cube, folder)
    _zarr_group(cube, folder)
    return folder


def _plain_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values as plain Python (netCDF gives back numpy scalars)."""
    return {name: value.item() if isinstance(value, np.generic) else value for name, value in attrs.items()}


def _unicode_labels(dataset: xr.Dataset) -> xr.Dataset:
    """Text variables as fixed-width unicode, whatever the store gave back (object,
    numpy StringDType), so a cube is the same in memory however it was stored."""
    text = {}
    for name, variable in dataset.variables.items():
        if variable.dtype.kind not in "OT" or not variable.size:
            continue
        strings = variable.values.ravel().tolist()
        if all(isinstance(v, str) for v in strings):
            # via Python strings: numpy cannot cast StringDType to unsized "<U"
            labels = np.array(strings, dtype=str).reshape(variable.shape)
            text[name] = xr.Variable(variable.dims, labels, variable.attrs)
    if not text:
        return dataset
    return dataset.assign_coords({n: v for n, v in text.items() if n in dataset.coords}).assign(
        {n: v for n, v in text.items() if n in dataset.data_vars})


def _is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or path.is_dir()


def _load(path: Path) -> xr.Dataset:
    """The whole file in memory, closed again; a CubeError naming it if unreadable."""
    zarr = _is_zarr(path)
    try:
        if zarr:
            opened = xr.open_zarr(path, consolidated=None, chunks=None)
        else:
            opened = xr.open_dataset(path, engine="netcdf4")
        with opened:
            return opened.load()
    except (OSError, ValueError, KeyError, TypeError) as error:
        kind = "Zarr store" if zarr else "netCDF file"
        raise CubeError(f"{path} could not be read as a {kind}: {error}") from error


def open_cube(path: str | Path) -> xr.Dataset:
    """Read a cube written by ``cube.xai.to_netcdf`` (``.nc``) or ``cube.xai.to_zarr``
    (``.zarr``, a folder) fully into memory; the file is closed on return. The cube is
    checked with :func:`~expresso_xai.cube.check_cube`.

    Raises:
        CubeError: the path does not exist, is not readable as netCDF/Zarr, or holds
            no attribution cube.

    Example:
        >>> import pathlib, tempfile
        >>> from expresso_xai.cube import open_cube
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube()
        >>> path = cube.xai.to_netcdf(pathlib.Path(tempfile.mkdtemp()) / "cube.nc")
        >>> open_cube(path).identical(cube)
        True
    """
    path = Path(path)
    if not path.exists():
        raise CubeError(f"no cube at {path}: the file does not exist")
    dataset = _unicode_labels(_load(path).drop_encoding())
    dataset.attrs = _plain_attrs(dataset.attrs)
    for variable in dataset.variables.values():
        variable.attrs = _plain_attrs(variable.attrs)
    check_cube(dataset, str(path))
    return dataset


__all__ = ["open_cube", "to_netcdf", "to_zarr", "write_zarr_group"]
