"""The manifest of a cohort: one row per participant, ``participant, video, score`` and
optionally ``openface`` (an OpenFace 2.0 CSV of the video) and ``split``.

Every row is checked before any work, and a problem names the manifest, the row (as a
spreadsheet numbers it: the header is row 1) and the column. A video that is missing or
unreadable is *not* a manifest error: the run reports it for that participant and goes
on with the others.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import CohortError

REQUIRED = ("participant", "video", "score")
OPTIONAL = ("openface", "split")
#: Participant names become folder names in the store: letters, digits, ``_ - .``, not
#: starting with a dot (hidden files and the store's own temporary names start with one).
NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Entry:
    """One participant of the manifest, with its paths resolved.

    Attributes:
        participant: the name (unique in the manifest; the store's group name).
        video: the video's absolute path (relative paths resolve against the manifest's folder).
        score: the participant's score (e.g. BDI-II).
        openface: the OpenFace CSV's absolute path, or ``None`` (landmarks are tracked).
        split: the manifest's ``split`` value, ``""`` when it has none.
        row: the manifest row (the header is row 1).
    """

    participant: str
    video: Path
    score: float
    openface: Path | None = None
    split: str = ""
    row: int = 0

    def record(self) -> dict:
        """What the store keeps of this row (plain JSON values)."""
        return {"participant": self.participant, "video": str(self.video), "score": self.score,
                "openface": str(self.openface) if self.openface else "", "split": self.split}


def _score(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CohortError(f"{where}: score {text!r} is not a number") from None
    if not math.isfinite(value):
        raise CohortError(f"{where}: score {text!r} is not a finite number")
    return value


def _path(text: str, folder: Path) -> Path:
    path = Path(text).expanduser()
    return (path if path.is_absolute() else folder / path).absolute()


def _entry(row: dict, number: int, source: Path) -> Entry:
    where = f"{source} row {number}"
    values = {key: (row.get(key) or "").strip() for key in (*REQUIRED, *OPTIONAL)}
    for key in REQUIRED:
        if not values[key]:
            raise CohortError(f"{where}: the {key} column is empty")
    name = values["participant"]
    if not NAME.match(name):
        raise CohortError(f"{where}: participant {name!r} cannot name a folder of the store: use letters, "
                          "digits, '_', '-' or '.', not starting with '.'")
    return Entry(participant=name, video=_path(values["video"], source.parent), score=_score(values["score"], where),
                 openface=_path(values["openface"], source.parent) if values["openface"] else None,
                 split=values["split"], row=number)


def read_manifest(path: str | Path) -> list[Entry]:
    """Read and check a manifest CSV.

    Raises:
        CohortError: the manifest is missing, empty, lacks a required column, or has a row
            with an empty or unusable participant name, a duplicated participant, or a
            score that is not a finite number. The message names the file and the row.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "manifest.csv").write_text("participant,video,score\\np01,videos/p01.mp4,12\\n")
        >>> entry, = read_manifest(folder / "manifest.csv")
        >>> entry.participant, entry.video == folder / "videos" / "p01.mp4", entry.score
        ('p01', True, 12.0)
        >>> _ = (folder / "bad.csv").write_text("participant,video,score\\np01,a.mp4,twelve\\n")
        >>> read_manifest(folder / "bad.csv")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        expresso_xai.errors.CohortError: .../bad.csv row 2: score 'twelve' is not a number
    """
    source = Path(path).expanduser().absolute()
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = list(reader)
    except FileNotFoundError:
        raise CohortError(f"{source}: the manifest does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CohortError(f"{source}: the manifest cannot be read as CSV ({exc})") from None
    missing = [key for key in REQUIRED if key not in header]
    if missing:
        raise CohortError(f"{source}: the manifest has no {', '.join(missing)} column "
                          f"(it has {', '.join(header) or 'no header'}); columns: participant, video, score"
                          "[, openface][, split]")
    entries, seen = [], {}
    for number, row in enumerate(rows, start=2):
        entry = _entry(row, number, source)
        if entry.participant in seen:
            raise CohortError(f"{source} row {number}: participant {entry.participant!r} is also on row "
                              f"{seen[entry.participant]}; each participant has one row")
        seen[entry.participant] = number
        entries.append(entry)
    if not entries:
        raise CohortError(f"{source}: the manifest has no participants")
    return entries
