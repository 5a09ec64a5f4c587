"""The cohort store: a Zarr group (format 2, a folder) holding one cube group per
participant, written so that nothing is ever half there.

Layout::

    cohort.zarr/
        .zgroup, .zattrs        the store: cohort_version and the run's settings
        run.lock                while a run writes (its process id and host)
        failures.json           the last run's failures, with their reasons
        p001/                   a participant: its cube (a Zarr group) and, written last,
            finished.json       the marker: the manifest row and a summary (prediction, ...)
        .p002.x1y2.partial/     a participant being written (ignored by every reader)

A participant is written under a temporary name and renamed into place in one step,
after its ``finished.json``; a reader counts a participant only when the folder and its
marker are there. So killing the run, a worker or the scheduler at any moment loses at
most the participants in flight, and a participant is never there twice: a second
writer of the same participant (a task Dask ran again) finds it there and drops its copy.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import warnings
from pathlib import Path

from ..errors import CohortError, ExpressoWarning
from ..files import OutputError, atomic_path, check_replaceable

COHORT_VERSION = 1
MARKER = "finished.json"
LOCK = "run.lock"
FAILURES = "failures.json"
#: Settings that may differ between a run and its resumption: they change how the work
#: is done, not what it computes.
NOT_COMPARED = ("versions",)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a cohort store written by expresso-xai."""
    attrs = _read_json(Path(path) / ".zattrs")
    return isinstance(attrs, dict) and "cohort_version" in attrs


def changed(stored: dict, wanted: dict) -> list[str]:
    """``key X in the store, Y now`` for each key whose value differs (the run's settings,
    or a participant's manifest row)."""
    keys = sorted((set(stored) | set(wanted)) - set(NOT_COMPARED))
    return [f"{key} {stored.get(key)!r} in the store, {wanted.get(key)!r} now"
            for key in keys if stored.get(key) != wanted.get(key)]


class CohortStore:
    """A cohort store on disk (see the module's docstring for the layout).

    Example:
        >>> import pathlib, tempfile
        >>> store = CohortStore.create(pathlib.Path(tempfile.mkdtemp()) / "cohort.zarr", {"methods": ["gradcam"]})
        >>> store.finished(), store.settings
        ({}, {'methods': ['gradcam']})
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().absolute()

    # --- opening -------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path) -> "CohortStore":
        """An existing store; :class:`CohortError` naming the path when it is not one."""
        store = cls(path)
        if not store.path.exists():
            raise CohortError(f"{store.path}: no cohort store there (run `expresso-xai cohort run` first)")
        if not is_store(store.path):
            raise CohortError(f"{store.path} is not a cohort store written by expresso-xai")
        return store

    @classmethod
    def create(cls, path: str | Path, settings: dict, resume: bool = True) -> "CohortStore":
        """The store for a run with ``settings``: a new one, or an existing one written
        with the same settings (``resume=True``), or an existing one of ours emptied and
        started again (``resume=False``).

        Raises:
            CohortError: the store was written with other settings (every difference is
                named) and ``resume`` is true.
            OutputError: the path is a file or a folder of something else.
        """
        store = cls(path)
        check_replaceable(store.path, is_store)
        if store.path.exists() and is_store(store.path) and resume:
            differences = changed(store.settings, settings)
            if differences:
                raise CohortError(f"{store.path} was written with other settings: {'; '.join(differences)}. "
                                  "Resume with the same settings, choose another store, or start again "
                                  "(resume=False, --restart)")
            return store
        if store.path.exists():
            store.require_unlocked("emptying it to start again")
            store._empty()
        store.path.mkdir(parents=True, exist_ok=True)
        (store.path / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
        with atomic_path(store.path / ".zattrs") as partial:
            partial.write_text(json.dumps({"cohort_version": COHORT_VERSION, "settings": settings}, indent=1))
        return store

    def _empty(self) -> None:
        """Start again: move the old store aside in one step, then delete it."""
        aside = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".replaced", dir=self.path.parent))
        os.rename(self.path, aside / "old")
        shutil.rmtree(aside, ignore_errors=True)

    @property
    def settings(self) -> dict:
        attrs = _read_json(self.path / ".zattrs") or {}
        return attrs.get("settings", {})

    # --- participants --------------------------------------------------------------

    def group(self, participant: str) -> Path:
        return self.path / participant

    def finished(self) -> dict[str, dict]:
        """``{participant: its marker}`` for every participant completely written, by name."""
        done = {}
        for folder in sorted(self.path.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            marker = _read_json(folder / MARKER)
            if isinstance(marker, dict):
                done[folder.name] = marker
        return done

    def write(self, participant: str, fill, marker: dict) -> bool:
        """Write a participant: ``fill(folder)`` writes the group's contents into a
        temporary folder, the marker goes in last, and the folder is renamed into place.
        Returns ``False`` (and writes nothing) when the participant is already there."""
        partial = Path(tempfile.mkdtemp(prefix=f".{participant}.", suffix=".partial", dir=self.path))
        try:
            fill(partial / "group")
            with atomic_path(partial / "group" / MARKER) as marker_file:
                marker_file.write_text(json.dumps(marker, indent=1))
            try:
                os.rename(partial / "group", self.group(participant))
            except OSError:
                if (self.group(participant) / MARKER).exists():
                    return False  # another attempt of the same task finished first
                raise
            return True
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def remove_partials(self) -> int:
        """Delete what killed runs left half-written; the number removed."""
        partials = [p for p in self.path.glob(".*.partial") if p.is_dir()]
        for folder in partials:
            shutil.rmtree(folder, ignore_errors=True)
        return len(partials)

    def write_failures(self, failures: list[dict]) -> None:
        with atomic_path(self.path / FAILURES) as partial:
            partial.write_text(json.dumps(failures, indent=1))

    def failures(self) -> list[dict]:
        """The last run's failures (participant, reason), none when it had none."""
        return _read_json(self.path / FAILURES) or []

    def differences(self, other: "CohortStore | str | Path") -> list[str]:
        """What differs between the finished participants of two stores, file by file and
        bit by bit (the arrays' chunks, metadata and markers), ignoring only when each cube
        was ``created``: empty when two runs computed the same cohort.

        Example:
            >>> import pathlib, tempfile
            >>> folder = pathlib.Path(tempfile.mkdtemp())
            >>> a, b = (CohortStore.create(folder / n, {}) for n in ("a.zarr", "b.zarr"))
            >>> a.differences(b)
            []
        """
        other = other if isinstance(other, CohortStore) else CohortStore(other)
        mine, theirs = self.finished(), other.finished()
        found = [f"participant {name} only in {self.path if name in mine else other.path}"
                 for name in sorted(set(mine) ^ set(theirs))]
        for name in sorted(set(mine) & set(theirs)):
            found += _group_differences(self.group(name), other.group(name), name)
        return found

    # --- one run at a time ---------------------------------------------------------

    def require_unlocked(self, doing: str = "writing it") -> None:
        """:class:`OutputError` when a live run holds the store (before ``doing`` anything
        to it); a lock left by a run that was killed (its process is gone) is removed."""
        lock = self.path / LOCK
        if not lock.exists():
            return
        holder = _read_json(lock) or {}
        if holder.get("host") == socket.gethostname() and not _alive(holder.get("pid")):
            warnings.warn(f"{self.path}: the run that held it (process {holder.get('pid')}) is gone; "
                          "taking over", ExpressoWarning, stacklevel=4)
            lock.unlink(missing_ok=True)
            return
        raise OutputError(f"{self.path}: another run (process {holder.get('pid')} on {holder.get('host')}) is "
                          f"writing this store, so {doing} was refused; wait for it to finish, or delete {lock} "
                          "if no run is")

    def lock(self) -> None:
        """Take the store for this run; :class:`OutputError` when another live run has it.
        A lock left by a run that was killed (its process is gone) is taken over."""
        lock = self.path / LOCK
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(2):
            self.require_unlocked()
            try:
                handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:  # another run took it between the check and here
                continue
            with os.fdopen(handle, "w") as out:
                out.write(json.dumps(mine))
            return
        self.require_unlocked()

    def unlock(self) -> None:
        (self.path / LOCK).unlink(missing_ok=True)


_TIMING_ATTRS = ("created", "prefetch", "decode_wait_fraction")


def _without_created(text: bytes):
    """A metadata file's JSON without the run's timing attrs (``created``, and the
    background decoder's ``prefetch`` and ``decode_wait_fraction``, which a video run in
    slices does not have): the only fields that differ between two runs computing the
    same cube."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in _TIMING_ATTRS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(text))


def _group_differences(a: Path, b: Path, name: str) -> list[str]:
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    found = [f"participant {name}: {f} only in one store" for f in sorted(files_a ^ files_b)]
    for relative in sorted(files_a & files_b):
        left, right = (a / relative).read_bytes(), (b / relative).read_bytes()
        if relative.name in (".zattrs", ".zmetadata", MARKER):
            same = _without_created(left) == _without_created(right)
        else:
            same = left == right
        if not same:
            found.append(f"participant {name}: {relative} differs")
    return found


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
