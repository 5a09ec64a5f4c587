"""The ``expresso-xai`` command's arguments, checked at the boundary: a bad value is one
line naming it (``expresso-xai: error: ...``) and exit code 2, before any work starts.
Warnings are one line each too (:func:`warnings_as_lines`).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

from .errors import ExpressoWarning


def number(kind, least=None, above=None):
    """An argparse type: a finite ``kind`` (int or float) at least ``least`` / above ``above``.

    Example:
        >>> COUNT("3"), AMOUNT("0.5")
        (3, 0.5)
        >>> COUNT("0")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: 0 is below the smallest allowed value, 1
    """
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if least is not None and value < least:
            raise argparse.ArgumentTypeError(f"{text} is below the smallest allowed value, {least}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"{text} must be above {above}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


COUNT, INDEX, AMOUNT, SHARE = number(int, least=1), number(int, least=0), number(float, above=0), \
    number(float, least=0)


def output(*suffixes: str, folder: bool = False):
    """An argparse type for an output path: one of ``suffixes`` (none: any), not an
    existing folder (unless ``folder``), inside a folder that can be made and written.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> output(".nc")(f"{folder}/new/cube.nc").name
        'cube.nc'
        >>> output(".nc")(f"{folder}/cube.csv")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: ...cube.csv: use a file name ending in .nc
    """
    def parse(text: str) -> Path:
        path = Path(text)
        if suffixes and path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{text}: use a file name ending in {' or '.join(suffixes)}")
        if path.is_dir() and not folder:
            raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name inside it")
        if path.suffix.lower() == ".zarr":
            from .files import OutputError, check_replaceable, is_zarr_with

            try:
                check_replaceable(path, is_zarr_with("cube_version"))
            except OutputError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None
        blocking = next((a for a in path.parents if a.exists() and not a.is_dir()), None)
        if blocking is not None:
            raise argparse.ArgumentTypeError(f"{text}: {blocking} is a file, not a folder")
        try:  # made and tried now, so a long run never ends on a folder it cannot write
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path.parent):
                pass
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"{text}: cannot write in {path.parent}: {exc.strerror or exc}") from None
        return path

    parse.__name__ = "output path"
    return parse


FIGURE = output(".png", ".pdf", ".svg", "")


class Parser(argparse.ArgumentParser):
    """Usage mistakes read like every other error: ``expresso-xai: error: ...``, exit 2."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"expresso-xai: error: {message}\n")


def one_line(message: str) -> str:
    r"""``message`` on one line, its runs of white space (newlines too) made one space.

    Example:
        >>> one_line("no face in 3 frames;\n   they count as background")
        'no face in 3 frames; they count as background'
    """
    return " ".join(message.split())


@contextmanager
def warnings_as_lines(stream=None):
    r"""Inside, each distinct warning is written once, as one line on ``stream`` (default
    stderr): ``expresso-xai: warning: ...``, instead of Python's two lines with the source
    line that raised it. A warning raised again (every clip, every participant) is not
    repeated; one not of ours names its category. The warning filters stay the user's.

    Example:
        >>> import io, warnings
        >>> out = io.StringIO()
        >>> with warnings_as_lines(out):
        ...     for _ in range(3):
        ...         warnings.warn("weights are\n untrained", ExpressoWarning)
        >>> out.getvalue()
        'expresso-xai: warning: weights are untrained\n'
    """
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = one_line(str(message))
        if not issubclass(category, ExpressoWarning):  # a library's: say whose kind it is
            text = f"{category.__name__}: {text}"
        if text not in shown:
            shown.add(text)
            print(f"expresso-xai: warning: {text}", file=stream or sys.stderr)

    with warnings.catch_warnings():  # resets Python's once-per-place memory, restores showwarning
        warnings.showwarning = show
        yield


__all__ = ["AMOUNT", "COUNT", "FIGURE", "INDEX", "SHARE", "Parser", "number", "one_line", "output",
           "warnings_as_lines"]
