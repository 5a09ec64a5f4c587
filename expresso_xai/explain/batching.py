"""How many perturbed inputs or path steps go into one forward, measured once per model,
input shape, device, torch version and thread count, and remembered on disk.

A separate probe costs about twenty forwards (one r3d_18 clip's occlusion spent a quarter
of Captum's whole time on it). So when every batching method of a run can (occlusion),
the first clip measures on its real work instead (``run_in_batches``: growing
batches of real perturbations, every output kept); other runs still probe
(``batch_size_for``). The found size goes to ``batch_sizes.json`` in the user's cache folder:
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
import weakref
from pathlib import Path
from typing import Iterable

from ..files import atomic_path

log = logging.getLogger(__name__)

#: The file's name in the cache folder.
CACHE_FILE = "batch_sizes.json"

_BATCH_CACHE: dict = {}  # this process: the file's key -> size
_WAITING: dict = {}  # the file's key -> run states whose first clip measures it on real work
_CANDIDATES = (1, 2, 4, 8, 16)  # batch sizes tried, by the probe and by the growth on real work
_CLEARLY_SLOWER = 1.1  # per item, against the best so far: the growth stops at once


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


def batch_size_for(model, x, candidates: Iterable[int] = _CANDIDATES, repeats: int = 2) -> tuple[int, str]:
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


def fastest_batch(model, x, candidates: Iterable[int] = _CANDIDATES, repeats: int = 2) -> int:
    """The batch size of ``batch_size_for``, without its source.

    Example:
        >>> from expresso_xai.testing import tiny_model
        >>> model = tiny_model(input_size=(64, 64))
        >>> fastest_batch(model, model.probe_input()) in (1, 2, 4, 8, 16)
        True
    """
    return batch_size_for(model, x, candidates, repeats)[0]


def settle_batch_size(plan, state, x) -> None:
    """Give ``state`` its batch size on the first clip of a run that needs one (``x``, the
    clip's input): measured or remembered by ``batch_size_for``, then kept, so a
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
    if state.batch_size is not None or not plan.needs_batch_size:
        return
    own = {method.options.get("perturbations_per_eval") for method in plan.methods.values()
           if not method.shares_gradient}
    if None not in own:  # every method that batches has its own perturbations_per_eval
        state.batch_size = own.pop() if len(own) == 1 else None
        state.batch_source = "given"
        return
    key = _disk_key(plan.model, x)
    known = _BATCH_CACHE.get(key) or _remembered(plan.model, x)
    if known is not None:  # "measuring" here: a resumed run whose first clip found it
        _BATCH_CACHE[key] = known
        state.batch_size = known
        state.batch_source = "measured" if state.batch_source == "measuring" else "remembered"
    elif _measured_on_real_work(plan):
        state.batch_source = "measuring"
        _WAITING.setdefault(key, weakref.WeakSet()).add(state)
    else:
        state.batch_size, state.batch_source = batch_size_for(plan.model, x)


def _measured_on_real_work(plan) -> bool:
    """Whether every method that batches can measure the size on its own first batches
    (occlusion can: its perturbations are independent forwards of the same shape)."""
    return all(getattr(method, "measures_batch_size", False) for method in plan.methods.values()
               if not method.shares_gradient)


def run_in_batches(model, x, n_items: int, forward, batch_size: int | None = None) -> None:
    """Call ``forward(start, stop)`` on items ``0..n_items-1`` in consecutive batches:
    ``batch_size`` per batch when given, else the size remembered for ``(model, x)``, else,
    when a run waits for that size (``settle_batch_size`` said ``"measuring"``),
    growing on the real items themselves: 1 (warm-up), 1, 2, 4, 8, 16 until a size is
    over 10% slower per item than the best on two batches, or two in a row improve it by
    less than 5%, then the best for the rest; the found size is remembered like a
    probe's, and no forward is spent on anything but the items. Else 1.

    Example:
        >>> from expresso_xai.testing import tiny_model
        >>> model = tiny_model(input_size=(64, 64))
        >>> batches = []
        >>> run_in_batches(model, model.probe_input(), 7, lambda start, stop: batches.append((start, stop)), 3)
        >>> batches
        [(0, 3), (3, 6), (6, 7)]
    """
    key = _disk_key(model, x)
    size = batch_size or _BATCH_CACHE.get(key)
    if size is None and _WAITING.get(key):
        start, size = _grow(model, x, n_items, forward)
    else:
        start, size = 0, int(size or 1)
    for start in range(start, n_items, size):
        forward(start, min(n_items, start + size))


def _grow(model, x, n_items: int, forward) -> tuple[int, int]:
    """Batches of growing size over the first items, timed; returns the next item and the
    size for the rest, and remembers it (see ``run_in_batches``) unless the items ran out
    before the growth settled: then the size serves this call only, and a later call with
    more items measures again (a small first call must not fix a small size for good).

    A size's first batch is also its first forward at that shape (slower: the backend
    prepares its kernels), and a busy machine slows single batches, so a size that looks
    clearly slower is timed on a second batch before the growth stops on it."""
    best, best_time, start, misses = 1, float("inf"), 0, 0
    for index, size in enumerate((1, *_CANDIDATES)):
        per_item, start = _timed_batch(forward, start, size, n_items, best)
        if per_item is not None and index and per_item > _CLEARLY_SLOWER * best_time:
            again, start = _timed_batch(forward, start, size, n_items, best)
            per_item = None if again is None else min(per_item, again)
        if per_item is None:
            if start + size > n_items:  # out of items before the growth settled: remember nothing
                return start, best
            break  # out of memory: the best so far
        if index == 0:  # the first forward of a process is a warm-up, too slow to compare
            continue
        if per_item < 0.95 * best_time:
            best, best_time, misses = size, per_item, 0
        elif misses or per_item > _CLEARLY_SLOWER * best_time:
            # clearly slower twice, or two sizes in a row no faster (one marginal timing on
            # a busy machine is not enough): each larger size tried costs its items' extra time
            break
        else:
            misses = 1
    if best_time < float("inf"):
        learned(model, x, best)
    return start, best


def _timed_batch(forward, start: int, size: int, n_items: int, best: int) -> tuple[float | None, int]:
    """``(seconds per item, next item)`` of one batch of ``size`` items from ``start``;
    ``None`` when too few items are left to time the size fairly or the batch failed (out
    of memory on an accelerator: nothing of it was kept), the next item then unchanged."""
    if n_items - start < size:
        return None, start
    began = time.perf_counter()
    try:
        forward(start, start + size)
    except RuntimeError as exc:
        log.info("batch of %d failed (%s); keeping %d", size, exc, best)
        return None, start
    return (time.perf_counter() - began) / size, start + size


def learned(model, x, size: int) -> None:
    """Keep ``size`` as the batch size for ``(model, x)``: in this process, on disk, and in
    the run states that wait for it (their source becomes ``"measured"``).

    Example:
        >>> from expresso_xai.testing import tiny_model
        >>> model = tiny_model(input_size=(64, 64))
        >>> learned(model, model.probe_input(), 4)
        >>> batch_size_for(model, model.probe_input())
        (4, 'remembered')
    """
    key = _disk_key(model, x)
    _BATCH_CACHE[key] = int(size)
    _remember(model, x, size)
    for state in _WAITING.pop(key, ()):
        if state.batch_size is None:
            state.batch_size, state.batch_source = int(size), "measured"
