"""How many perturbed inputs or path steps go into one forward, measured once per model,
input shape, device, torch version and thread count, and remembered on disk.

Measuring costs about twenty forwards (one r3d_18 clip's occlusion spends a quarter of
Captum's whole time on it), and before this module every new process paid it again. The
measured size goes to ``batch_sizes.json`` in the user's cache folder:
``$EXPRESSO_XAI_CACHE``, else ``$XDG_CACHE_HOME/expresso-xai``, else
``~/.cache/expresso-xai``; ``EXPRESSO_XAI_CACHE=""`` turns the file off. A file that
cannot be read or written is ignored (the size is measured again), never fatal.
``batch_size=<int>`` in :func:`~expresso_xai.explain` skips all of this.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Iterable

from ..files import atomic_path

log = logging.getLogger(__name__)

#: The file's name in the cache folder.
CACHE_FILE = "batch_sizes.json"

_BATCH_CACHE: dict = {}  # this process: the file's key -> size


def cache_folder() -> Path | None:
    """The folder of the remembered batch sizes (``None`` when turned off).

    Example:
        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"EXPRESSO_XAI_CACHE": "/tmp/xai-cache"}):
        ...     str(cache_folder())
        '/tmp/xai-cache'
    """
    if "EXPRESSO_XAI_CACHE" in os.environ:
        value = os.environ["EXPRESSO_XAI_CACHE"]
        return Path(value).expanduser() if value else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "expresso-xai"


def _disk_key(model, x) -> str:
    import torch

    return "|".join([model.weights_hash(), "x".join(map(str, x.shape)), str(x.device), str(x.dtype),
                     f"torch {torch.__version__}", f"{torch.get_num_threads()} threads"])


def _read_sizes(path: Path) -> dict:
    try:
        sizes = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, unreadable or half-written by another tool
        return {}
    return sizes if isinstance(sizes, dict) else {}


def _remembered(model, x) -> int | None:
    folder = cache_folder()
    if folder is None:
        return None
    size = _read_sizes(folder / CACHE_FILE).get(_disk_key(model, x))
    return size if isinstance(size, int) and not isinstance(size, bool) and 1 <= size <= 4096 else None


def _remember(model, x, size: int) -> None:
    folder = cache_folder()
    if folder is None:
        return
    path = folder / CACHE_FILE
    try:
        sizes = _read_sizes(path)
        sizes[_disk_key(model, x)] = int(size)
        with atomic_path(path) as partial:
            partial.write_text(json.dumps(sizes, indent=0, sort_keys=True))
    except OSError as exc:  # a read-only home is no reason to fail a run
        log.info("could not remember the batch size in %s (%s)", path, exc)


def _measure(model, x, candidates: Iterable[int], repeats: int) -> int:
    import torch

    best, best_time = 1, float("inf")
    with torch.no_grad():
        for size in candidates:
            batch = x.expand(size, *x.shape[1:]).contiguous()
            try:
                model(batch)  # warm-up
                started = time.perf_counter()
                for _ in range(repeats):
                    model(batch)
            except RuntimeError as exc:  # out of memory on an accelerator
                log.info("batch of %d failed (%s); keeping %d", size, exc, best)
                break
            per_sample = (time.perf_counter() - started) / (repeats * size)
            if per_sample < 0.95 * best_time:
                best, best_time = size, per_sample
            else:
                break
    return best


def batch_size_for(model, x, candidates: Iterable[int] = (1, 2, 4, 8, 16), repeats: int = 2) -> tuple[int, str]:
    """``(size, source)``: the batch size with the lowest time per sample for no-grad
    forwards of ``x`` on its device, and where it came from: ``"measured"`` (now),
    ``"remembered"`` (the cache file, or earlier in this process).

    Batching is not always faster: on a 2-core CPU, 8 perturbations per forward of
    r3d_18 measured 1.5x slower per sample than one at a time.

    Example:
        >>> from expresso_xai.testing import tiny_model
        >>> model = tiny_model(input_size=(64, 64))
        >>> x = model.probe_input()
        >>> size, source = batch_size_for(model, x)  # "measured" the first time
        >>> batch_size_for(model, x) == (size, "remembered"), size in (1, 2, 4, 8, 16)
        (True, True)
    """
    key = _disk_key(model, x)
    if key in _BATCH_CACHE:
        return _BATCH_CACHE[key], "remembered"
    size, source = _remembered(model, x), "remembered"
    if size is None:
        size, source = _measure(model, x, candidates, repeats), "measured"
        _remember(model, x, size)
    _BATCH_CACHE[key] = size
    return size, source


def fastest_batch(model, x, candidates: Iterable[int] = (1, 2, 4, 8, 16), repeats: int = 2) -> int:
    """The batch size of :func:`batch_size_for`, without its source.

    Example:
        >>> from expresso_xai.testing import tiny_model
        >>> model = tiny_model(input_size=(64, 64))
        >>> fastest_batch(model, model.probe_input()) in (1, 2, 4, 8, 16)
        True
    """
    return batch_size_for(model, x, candidates, repeats)[0]


def settle_batch_size(plan, state, x) -> None:
    """Give ``state`` its batch size on the first clip of a run that needs one (``x``, the
    clip's input): measured or remembered by :func:`batch_size_for`, then kept, so a
    resumed run batches exactly like the first. A given or already settled size stays.

    Example:
        >>> from expresso_xai.explain import ExplainState, plan_explain
        >>> from expresso_xai.testing import tiny_model
        >>> model = tiny_model(input_size=(64, 64))
        >>> plan = plan_explain(model, ["occlusion"], {})
        >>> state = ExplainState.empty(["occlusion"], n_frames=16, n_regions=12)
        >>> settle_batch_size(plan, state, model.probe_input())
        >>> state.batch_size in (1, 2, 4, 8, 16), state.batch_source in ("measured", "remembered")
        (True, True)
    """
    if state.batch_size is None and plan.needs_batch_size:
        state.batch_size, state.batch_source = batch_size_for(plan.model, x)
