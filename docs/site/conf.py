"""Sphinx configuration of the expresso-xai documentation (``make docs``).

Built offline: no intersphinx, nothing fetched. The build copies ``notebooks/*.ipynb``
next to these sources (CI's executed copies where current, see below: pages show outputs)
and renders the figure gallery from the shipped samples into ``_generated/``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import expresso_xai  # noqa: E402  (after the path set-up, so a source tree builds too)
from _gallery import write_gallery  # noqa: E402
from sphinx.util import logging  # noqa: E402
from sphinx.util.nodes import make_refnode  # noqa: E402

project = "expresso-xai"
author = "expresso-xai developers"
copyright = "2026, expresso-xai developers"
release = expresso_xai.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path: list[str] = []

# API reference: members come from each module's ``__all__`` (the public names); types
# are shown in the description, where Napoleon's Google-style sections put them too.
autodoc_default_options = {"member-order": "bysource"}  # members listed per page (api/*.md)
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_mock_imports: list[str] = []
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # dataclass fields as a field list, not a second description of each

# Docstrings write an absolute value as ``|attribution|``, which reStructuredText reads as
# a substitution: define each one used as itself, rather than rewrite the maths notation.
_ABSOLUTE_VALUES = ("attribution", "error", "shares", "ρ")
rst_epilog = "\n".join(f".. |{name}| replace:: \\|{name}\\|" for name in _ABSOLUTE_VALUES)

# Notebooks are rendered with their outputs. tests/test_notebooks.py executes every one
# in CI and keeps each executed copy in test-artifacts/notebooks/, stamped with the hash of
# the stored notebook it ran; `make test` builds these docs after pytest, so the pages
# show those outputs and nothing runs twice (the quickstart alone takes ~110 s on 2 cores).
# A notebook without a current executed copy (none yet, or the stored one changed since)
# is executed here instead: `make docs` alone still works, only slower. A failure while
# executing fails the build.
EXECUTED_COPIES = ROOT / "test-artifacts" / "notebooks"
nb_execution_mode = "force"
nb_execution_in_temp = True  # notebooks write outputs/ where they run: not into the sources
nb_execution_raise_on_error = True
nb_execution_timeout = 300
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # notebooks start at "#" and go on with "##": fine on a page

html_theme = "furo"
html_title = f"expresso-xai {release}"
html_static_path: list[str] = []


def _executed_copy(notebook: Path) -> Path | None:
    """CI's executed copy of a stored notebook, if it ran exactly the stored version."""
    copy = EXECUTED_COPIES / notebook.name
    if not copy.is_file():
        return None
    try:
        ran = json.loads(copy.read_text(encoding="utf-8"))["metadata"]["expresso_xai"]["source_sha256"]
    except (ValueError, KeyError, TypeError):
        return None
    return copy if ran == hashlib.sha256(notebook.read_bytes()).hexdigest() else None


def _copy_notebooks() -> list[str]:
    """Put the notebooks next to these sources (Sphinx reads only its own tree).

    Each is CI's executed copy where a current one exists, else the stored file, which
    the build then executes. Returns the pages taken from executed copies.
    """
    target = HERE / "notebooks"
    target.mkdir(exist_ok=True)
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for stale in set(target.glob("*.ipynb")) - {target / path.name for path in notebooks}:
        stale.unlink()
    from_copies = []
    for notebook in notebooks:
        copy = _executed_copy(notebook)
        source, placed = (copy or notebook).read_bytes(), target / notebook.name
        # rewritten (a new mtime, so Sphinx reads it again) only when it changed: switching
        # between CI's copy and the stored file re-renders the page, an unchanged one is not
        if not placed.is_file() or placed.read_bytes() != source:
            placed.write_bytes(source)
        if copy is not None:
            from_copies.append(f"notebooks/{notebook.name}")
    return from_copies


nb_execution_excludepatterns = _copy_notebooks()  # already executed: rendered as they are
write_gallery(HERE / "_generated")

# Every Python reference on every page (API pages included) must resolve: nitpicky mode
# makes an unresolved one a warning, an error under ``-W``. The build is offline (no
# intersphinx inventory), so the other libraries' types cannot resolve; they are ignored by
# the narrow rule below, which names each library's prefix. Nothing of ``expresso_xai`` is.
nitpicky = True
_EXTERNAL = (
    r"(numpy|np)\..*", r"(xarray|xr)\..*", r"(pandas|pd)\..*", r"torch\..*",  # data types
    r"(pathlib\.)?Path", r"os\.PathLike", r"matplotlib\..*", r"dask\..*",  # in signatures
)
nitpick_ignore_regex = [(r"py:.*", rf"'?({pattern})'?") for pattern in _EXTERNAL]

# Napoleon writes an argument line "clip_length, stride: ..." as the field
# ":param clip_length, stride:", which Sphinx reads as the type "clip_length," of the
# argument "stride" (a broken class reference). A zero-width space keeps the two names one.
_SHARED_FIELD = re.compile(r"^(\s*:(?:param|ivar|var|cvar|keyword) )(\w+(?:, \w+)+):")


def _join_shared_fields(app, what, name, obj, options, lines):
    """Keep "a, b:" argument lines one field, not a type and a name (runs after Napoleon)."""
    for index, line in enumerate(lines):
        lines[index] = _SHARED_FIELD.sub(lambda m: m[1] + m[2].replace(", ", ",\u200b") + ":", line)


def _documented_objects(env) -> dict[tuple[int, str], str]:
    """(id(object), short name) -> full name, for every documented Python object.

    The short name is part of the key: two constants may be one object (the same small
    int or string) and still be different things.
    """
    found: dict[tuple[int, str], str] = {}
    for full_name, entry in env.get_domain("py").objects.items():
        if entry.objtype == "module":
            continue
        obj = _import(full_name)
        if obj is not None:
            found.setdefault((id(obj), full_name.rpartition(".")[2]), full_name)
    return found


def _import(dotted: str):
    """The object a dotted name ``package.module.Name.attr`` points at, or None."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute, None)
        return obj
    return None


_DOCUMENTED: dict[tuple[int, str], str] = {}


def _resolve_alias(app, env, node, contnode):
    """Resolve a docstring's name for an object documented under another name.

    ``Video`` written in ``expresso_xai.faces``, ``expresso_xai.Video`` (a re-export) or
    ``OutputError`` in a module that imports it all point at one documented object: link
    there. Names of objects without a page (private modules, constants) stay unresolved and
    fail the build: write them as literals (````name````) in the docstring instead.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    module = node.get("py:module") or ""
    # the current module, the package (re-exports), the typed errors (a "Raises:" section
    # names the error as the module raising it imports it)
    candidates = [target] + [f"{module}.{target}"] * bool(module) + [f"expresso_xai.{target}",
                                                                     f"expresso_xai.errors.{target}"]
    if re.fullmatch("|".join(_EXTERNAL), target):
        return None
    # inside a class documented under its package, the names its own module imports
    owner = _import(f"{module}.{node.get('py:class')}") if node.get("py:class") else None
    candidates += [f"{owner.__module__}.{target}"] if hasattr(owner, "__module__") else []
    if not _DOCUMENTED:  # filled once all pages are read; ids hold within this process only
        _DOCUMENTED.update(_documented_objects(env))
    for name in candidates:
        obj = _import(name) if name.startswith("expresso_xai") else None
        full_name = _DOCUMENTED.get((id(obj), name.rpartition(".")[2]))
        if obj is None or full_name is None:
            continue
        entry = env.get_domain("py").objects[full_name]
        return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode,
                            full_name)
    return None


def _check_notebook_outputs(app, exception):
    """Warn (an error under ``-W``) when a rendered notebook page shows no cell output.

    Every page is rendered from an executed notebook (CI's copy or run here); a page
    without outputs means one was taken from a clean file, which is the bug to catch.
    """
    if exception is not None or app.builder.format != "html":
        return
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = Path(app.outdir) / "notebooks" / f"{notebook.stem}.html"
        if "cell_output" not in page.read_text(encoding="utf-8"):
            logging.getLogger(__name__).warning("%s: the notebook was rendered without its outputs", page)


def setup(app):
    app.connect("autodoc-process-docstring", _join_shared_fields, priority=600)
    app.connect("missing-reference", _resolve_alias)
    app.connect("build-finished", _check_notebook_outputs)
