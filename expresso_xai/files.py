"""Writing results without ever destroying what was there: every file the library writes
(cubes, figures, HTML, landmarks, weights, samples) goes to a temporary name in the same
folder and replaces the target in one step, and a Zarr store replaces only a store of
ours. A crash, a full disk or Ctrl-C in the middle leaves the previous file whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .errors import ExpressoError

LOCK_WAIT_S = 10.0  # how long a second writer waits for the first to finish its swap


class OutputError(ExpressoError, OSError):
    """An output path the library refuses to write: it would destroy something that is
    not ours, or another run is writing it at the same moment."""


def _default_mode(directory: bool) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


@contextmanager
def atomic_path(path: str | Path):
    """A temporary path next to ``path``, with the same suffix (writers that pick a
    format by suffix still do); when the block ends without error it replaces ``path``
    in one step (``os.replace``). On error the temporary file is removed and ``path`` is
    left as it was.

    Example:
        >>> import pathlib, tempfile
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
        >>> with atomic_path(target) as partial:
        ...     _ = partial.write_text("finished")
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('finished', ['notes.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        os.chmod(partial, _default_mode(directory=False))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def _swap_lock(path: Path):
    lock = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise OutputError(f"{path}: another run is writing it at the same time (lock {lock}); "
                                  "wait for it, or delete the lock file if no run is") from None
            time.sleep(0.05)
    try:
        os.write(handle, str(os.getpid()).encode())
        yield
    finally:
        os.close(handle)
        lock.unlink(missing_ok=True)


def replace_folder(path: str | Path, write: Callable[[Path], object], is_ours: Callable[[Path], bool]) -> Path:
    """Write a folder (a Zarr store) with ``write(temporary_path)`` next to ``path`` and
    move it into place. An existing ``path`` is replaced only when it is empty or
    ``is_ours(path)``; anything else (a folder with other work in it, a file) raises
    :class:`OutputError` and is left untouched. Two runs writing the same path at once
    both end with a whole store (the later one's); the swap is locked.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> (folder / "thesis").mkdir(); _ = (folder / "thesis" / "thesis.docx").write_text("years of work")
        >>> replace_folder(folder / "thesis", lambda p: (p / "a").write_text("x"), lambda p: False)
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        expresso_xai.files.OutputError: ... is a folder with other files in it (thesis.docx), not a store written by expresso-xai; refusing to replace it: choose another name
    """
    path = Path(path)
    check_replaceable(path, is_ours)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        write(partial)
        os.chmod(partial, _default_mode(directory=True))
        with _swap_lock(path):
            check_replaceable(path, is_ours)
            if path.exists():
                aside = partial.with_suffix(".replaced")
                os.rename(path, aside)
                os.rename(partial, path)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(partial, path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return path


def check_replaceable(path: str | Path, is_ours: Callable[[Path], bool]) -> None:
    """Raise :class:`OutputError` unless ``path`` is absent, an empty folder or a folder
    that ``is_ours`` (what :func:`replace_folder` may replace); callers check early, before
    long work, so a run never ends on an output it may not write."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise OutputError(f"{path} is a file, not a store written by expresso-xai; refusing to replace it: "
                          "choose another name")
    contents = sorted(entry.name for entry in path.iterdir())
    if contents and not is_ours(path):
        shown = ", ".join(contents[:3]) + (", ..." if len(contents) > 3 else "")
        raise OutputError(f"{path} is a folder with other files in it ({shown}), not a store written by "
                          "expresso-xai; refusing to replace it: choose another name")


def is_zarr_with(attribute: str) -> Callable[[Path], bool]:
    """A test for :func:`replace_folder`: the folder is a Zarr (format 2) group whose
    attributes have ``attribute`` (e.g. ``cube_version`` for a cube store of ours)."""
    def test(path: Path) -> bool:
        try:
            attrs = json.loads((path / ".zattrs").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(attrs, dict) and attribute in attrs

    return test
