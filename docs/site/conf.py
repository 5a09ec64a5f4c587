"""Sphinx configuration of the expresso-xai documentation (``make docs``).

Built offline: no intersphinx, nothing fetched. The build copies ``notebooks/*.ipynb``
next to these sources (rendered, not executed: ``tests/test_notebooks.py`` executes them)
and renders the figure gallery from the shipped samples into ``_generated/``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import expresso_xai  # noqa: E402  (after the path set-up, so a source tree builds too)
from _gallery import write_gallery  # noqa: E402
from sphinx.util import logging  # noqa: E402

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

# Notebooks: tests/test_notebooks.py executes every one in CI already, and the heavy ones
# (the quickstart alone takes ~110 s on 2 cores) would more than double the build; they are
# rendered from the stored (clean) files. The light ones whose outputs are the point of the
# page (04 prints each typed error message) run here, ~17 s, and a failure fails the build.
EXECUTED_NOTEBOOKS = {"04_bring_your_own_model.ipynb"}
nb_execution_mode = "force"
nb_execution_in_temp = True  # notebooks write outputs/ where they run: not into the sources
nb_execution_raise_on_error = True
nb_execution_timeout = 300
nb_execution_excludepatterns = [f"notebooks/{path.name}" for path in sorted((ROOT / "notebooks").glob("*.ipynb"))
                                if path.name not in EXECUTED_NOTEBOOKS]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # notebooks start at "#" and go on with "##": fine on a page

html_theme = "furo"
html_title = f"expresso-xai {release}"
html_static_path: list[str] = []


def _copy_notebooks() -> None:
    """Put the repository's notebooks next to these sources (Sphinx reads only its own tree)."""
    target = HERE / "notebooks"
    target.mkdir(exist_ok=True)
    for stale in target.glob("*.ipynb"):
        stale.unlink()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy2(notebook, target / notebook.name)


_copy_notebooks()
write_gallery(HERE / "_generated")

# Pages written here (not generated from docstrings) whose Python references must resolve.
# Sphinx only warns about an unresolved :func:/:class: in nitpicky mode, which would also
# flag every numpy/xarray/pathlib type in the docstrings (no intersphinx: the build is
# offline) and the docstrings' references to private modules. So: these pages are checked
# here, strictly; the docstrings' own references are not (yet).
_CHECKED_PAGES = ("index", "gallery", "api/index", "api/top", "guide/")


def _broken_page_reference(app, env, node, contnode):
    """Warn (an error under ``-W``) when a hand-written page points at a missing object."""
    page = node.get("refdoc", "")
    if node.get("refdomain") == "py" and page.startswith(_CHECKED_PAGES):
        logging.getLogger(__name__).warning("%s: reference to a missing object: %s", page,
                                            node.get("reftarget"), location=node)


def setup(app):
    app.connect("missing-reference", _broken_page_reference)
