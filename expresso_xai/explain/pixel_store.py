"""Pixel maps kept on disk: ``ex.explain(..., keep_pixels="maps.zarr")``.

With ``keep_pixels=True`` the per-pixel maps of the whole video are summed in memory
(``(explainer, time, y, x)`` float32: 16 kB per frame and method at 64 px, 50 kB at
112 px), which does not fit for a long interview. With a path, the run keeps in memory
only the frames the clip being explained can still add to (one clip's length: clips
come in order, so a frame before the current clip's first one is final); each final
frame is divided by the number of clips that covered it, exactly as the in-memory path
does, and written to a Zarr store (format 2) at that path, together with its
``region_label``. The cube then holds ``pixels`` and ``region_label`` lazily (dask
arrays read from the store, with the store's path in their ``store`` attribute): the
values are those of ``keep_pixels=True`` bit for bit, and the store must stay where it is
for as long as the cube is used (``cube.load()`` or writing the cube to a file copies
them in). Plain ``xarray.open_zarr(path)`` opens the store too.

A path that exists is written only when it is a pixel store made by the same run (the
same model, video, face track, methods and settings): a run resumed from its checkpoint,
or the same call run again, which writes the same values. Anything else at the path
raises :class:`~expresso_xai.files.OutputError` and is left untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..files import OutputError

#: the store's group attribute that holds the fingerprint of the run that made it
OWNER = "expresso_xai_pixel_store"
ZARR_FORMAT = 2  # as the cube stores (expresso_xai.cube.io)


def _owner_of(path: Path) -> str | None:
    """The fingerprint a pixel store of ours records, or ``None`` for anything else."""
    try:
        return json.loads((path / ".zattrs").read_text()).get(OWNER)
    except (OSError, ValueError, AttributeError):
        return None


def _create(path: Path, shape: tuple, label_dtype, chunk: int) -> None:
    """Write the store's metadata (through xarray, which names the dims the way
    ``xarray.open_zarr`` reads them, with any zarr-python): ``pixels`` and ``region_label``
    chunked by ``chunk`` frames, without a fill value (a zero is an attribution, not a
    missing one)."""
    import dask.array as da
    import xarray as xr

    n_methods, n_frames, height, width = shape
    template = xr.Dataset({
        "pixels": (("explainer", "time", "y", "x"), da.zeros(shape, chunks=(1, chunk, height, width),
                                                              dtype=np.float32)),
        "region_label": (("time", "y", "x"), da.zeros((n_frames, height, width), chunks=(chunk, height, width),
                                                      dtype=label_dtype)),
    })
    template.to_zarr(str(path), mode="w", compute=False, zarr_format=ZARR_FORMAT, consolidated=False,
                     encoding={name: {"_FillValue": None} for name in template.data_vars})


class PixelStore:
    """The Zarr store a run writes its final pixel maps into, frame range by frame range.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> store = PixelStore.open(folder / "maps.zarr", "run-1", n_methods=1, n_frames=4,
        ...                         pixel_size=(2, 2), label_dtype=np.uint8, chunk=2)
        >>> store.write(0, np.ones((1, 3, 2, 2), np.float32), np.zeros((3, 2, 2), np.uint8))
        >>> store.pixels().sum().compute().item()
        12.0
        >>> PixelStore.open(folder / "maps.zarr", "run-2", 1, 4, (2, 2), np.uint8)
        Traceback (most recent call last):
        ...
        expresso_xai.files.OutputError: ... was written by another run ...
    """

    def __init__(self, path: Path, group):
        self.path, self.group = path, group

    @classmethod
    def open(cls, path, fingerprint: str, n_methods: int, n_frames: int, pixel_size, label_dtype,
             chunk: int = 16) -> "PixelStore":
        """The store at ``path`` for the run ``fingerprint``: made afresh, or reopened when
        the same run made it; :class:`OutputError` for anything else at ``path``."""
        import zarr

        path = Path(path)
        if path.exists() and not (path.is_dir() and not any(path.iterdir())):
            owner = _owner_of(path)
            if owner is None:
                raise OutputError(f"{path} exists and is not a pixel store of expresso_xai: keep_pixels would "
                                  "overwrite it; give a new path, or delete it yourself")
            if owner != fingerprint:
                raise OutputError(f"{path} was written by another run (other model, video, methods or settings): "
                                  "keep_pixels refuses to overwrite it; give a new path, or delete it yourself")
            return cls(path, zarr.open_group(str(path), mode="r+"))
        height, width = pixel_size
        _create(path, (n_methods, n_frames, height, width), label_dtype, chunk)
        group = zarr.open_group(str(path), mode="r+")
        # written last: a store interrupted while being made is not taken for ours
        group.attrs[OWNER] = fingerprint
        return cls(path, group)

    def write(self, start: int, pixels: np.ndarray, labels: np.ndarray) -> None:
        """Store the final ``pixels`` ``(M, k, H, W)`` and ``labels`` ``(k, H, W)`` of frames
        ``start`` to ``start + k``."""
        stop = start + pixels.shape[1]
        self.group["pixels"][:, start:stop] = pixels
        self.group["region_label"][start:stop] = labels

    def _dataset(self):
        import xarray as xr

        # no fill value is stored (a zero attribution is a value); mask_and_scale off all the same
        return xr.open_zarr(str(self.path), consolidated=False, mask_and_scale=False, zarr_format=ZARR_FORMAT)

    def pixels(self):
        """The stored pixel maps, a lazy ``DataArray`` (dask) on ``(explainer, time, y, x)``."""
        return self._dataset()["pixels"]

    def attach(self, cube):
        """``cube`` with the store's ``pixels`` and ``region_label`` as lazy variables,
        attributed as :func:`~expresso_xai.cube.make_cube` attributes them."""
        from ..regions import ENCODINGS, label_dtype

        stored = self._dataset()
        regions = ",".join(map(str, cube["region"].values.tolist()))
        dtype = stored["region_label"].dtype
        encoding = next(e for e in ENCODINGS if dtype == label_dtype(e))
        where = {"store": str(self.path)}
        return cube.assign(
            pixels=(("explainer", "time", "y", "x"), stored["pixels"].data,
                    {"long_name": "attribution of each model-input pixel", **where}),
            region_label=(("time", "y", "x"), stored["region_label"].data,
                          {"long_name": "region of each model-input pixel", "encoding": encoding,
                           "regions": regions, **where}),
        )


def store_for(plan, state, fingerprint):
    """The :class:`PixelStore` of ``plan`` (``None`` unless ``keep_pixels`` is a path),
    sized for ``state``; ``fingerprint`` is the run's fingerprint or a function giving it.

    Example:
        >>> store_for(type("Plan", (), {"pixel_store": None})(), None, "run-1") is None
        True
    """
    if plan.pixel_store is None:
        return None
    return PixelStore.open(plan.pixel_store, fingerprint() if callable(fingerprint) else fingerprint,
                           n_methods=len(state.methods), n_frames=len(state.covered),
                           pixel_size=state.pixels.shape[2:], label_dtype=state.labels.dtype,
                           chunk=state.pixels.shape[1])
