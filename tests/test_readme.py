"""The README's Python example runs and prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_starts_with_the_two_commands():
    first = _blocks("bash")[0].splitlines()
    assert [line.split("#")[0].strip() for line in first] == ["make demo", "make test"]


def test_readme_python_examples_print_what_the_readme_shows(tmp_path, monkeypatch):
    """Every Python block runs, in order and in one namespace (a later block continues
    an earlier one), and prints exactly the text block the README shows for it."""
    monkeypatch.chdir(tmp_path)  # files the examples write land here
    examples = _blocks("python")
    assert len(examples) >= 2
    namespace: dict = {}
    for example in examples:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(example, str(README), "exec"), namespace)
        shown = next(block for block in _blocks("text") if block.startswith(printed.getvalue().splitlines()[0]))
        assert printed.getvalue().strip() == shown.strip()
    assert (tmp_path / "explorer.html").stat().st_size > 1_000_000
