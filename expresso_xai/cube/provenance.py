"""A cube's attrs: the provenance every cube carries (model, video, region scheme, each
method's parameters, library versions, creation time) as netCDF-safe values.

Attribute values are only ``str``, ``int`` or ``float``; anything nested (``methods``,
``versions``, a bool) is stored as JSON text, so the cube opens in plain xarray and
netCDF tools unchanged.
"""

from __future__ import annotations

import functools
import json
import numbers
import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import CubeError

CUBE_VERSION = 1

# Attributes every cube carries; make_cube fills the ones the caller leaves out.
PROVENANCE_ATTRS = ("model_name", "model_hash", "video_source", "video_hash", "region_scheme")


@functools.lru_cache(maxsize=None)
def _package_version(distribution: str) -> str | None:
    try:
        return _distribution_version(distribution)
    except PackageNotFoundError:
        return None


def _library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a cube's numbers; read from the installed
    distributions' metadata, so torch and captum are not imported for this (once per
    process: reading it costs 6 ms, a fifth of a small model's clip)."""
    return dict(_installed_versions())


@functools.lru_cache(maxsize=1)
def _installed_versions() -> tuple:
    versions = {"python": platform.python_version()}
    for name, distribution in (("expresso_xai", "expresso-xai"), ("numpy", "numpy"), ("xarray", "xarray"),
                               ("torch", "torch"), ("captum", "captum")):
        found = _package_version(distribution)
        if found is not None:
            versions[name] = found
    return tuple(versions.items())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, datetime)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as error:
        raise CubeError(f"{what} cannot be stored as JSON text in the cube's attrs: {error}; "
                        "pass numbers, strings, lists and dicts") from None


def _attr_value(name: str, value: Any) -> str | int | float:
    """A netCDF-safe attribute value: str, int and float as they are (numpy scalars
    made plain), everything else (dicts, lists, bools, None) as JSON text."""
    if isinstance(value, (bool, np.bool_)):
        return _to_json(bool(value), f"attrs[{name!r}]")
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return _to_json(value, f"attrs[{name!r}]")


def _target_attr(target: Any) -> int | str:
    if isinstance(target, numbers.Integral) and not isinstance(target, (bool, np.bool_)):
        return int(target)
    if isinstance(target, str):
        return target
    raise CubeError(f"target must be a class index (int) or a label such as 'regression', got {target!r}")


def _json_attr(value: Any) -> Any:
    """A nested attribute that may already be JSON text (a cube's own attrs) decoded."""
    return json.loads(value) if isinstance(value, str) else value


def cube_attrs(attrs: Mapping[str, Any] | None, target: Any, explainers: np.ndarray) -> dict:
    """The attrs of a new cube: the caller's provenance with the defaults filled in
    (``cube_version``, ``created``, empty :data:`PROVENANCE_ATTRS`), the library
    versions merged under the caller's, ``target`` checked, ``methods`` checked against
    the explainers, and every value made netCDF-safe (nested ones as JSON text).

    Example:
        >>> import numpy as np
        >>> attrs = cube_attrs({"methods": {"gradcam": {"layer": "layer4"}}}, 3, np.array(["gradcam"]))
        >>> attrs["cube_version"], attrs["target"], attrs["methods"], attrs["model_name"]
        (1, 3, '{"gradcam": {"layer": "layer4"}}', '')
    """
    caller = dict(attrs or {})
    caller.pop("cube_version", None)
    versions = {**_library_versions(), **(_json_attr(caller.pop("versions", None)) or {})}
    if "methods" in caller:
        caller["methods"] = _json_attr(caller["methods"])
    cube_attrs: dict[str, Any] = {
        "cube_version": CUBE_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "expresso_xai_version": _package_version("expresso-xai") or "0.0.0",
        **{name: "" for name in PROVENANCE_ATTRS},
        "methods": {},
        **caller,
        "versions": versions,
    }
    if target is not None:
        cube_attrs["target"] = _target_attr(target)
    methods = cube_attrs["methods"]
    if not isinstance(methods, Mapping):
        raise CubeError(f"attrs['methods'] must map each explainer to its parameters, got {type(methods).__name__}")
    unknown = sorted(set(methods) - set(explainers.tolist()))
    if unknown:
        raise CubeError(f"attrs['methods'] has parameters for {unknown}, which are not among the "
                        f"explainers {explainers.tolist()}")
    bad_names = [name for name in cube_attrs if not isinstance(name, str)]
    if bad_names:
        raise CubeError(f"attribute names must be strings, got {bad_names[0]!r}")
    return {name: _attr_value(name, value) for name, value in cube_attrs.items()}


__all__ = ["CUBE_VERSION", "PROVENANCE_ATTRS", "cube_attrs"]
