"""The built documentation site (``make docs``), checked when it exists.

``make test`` builds the site after pytest, so these check the previous build; the build
itself fails on a broken reference (nitpicky, ``-W``) or a notebook page without outputs
(``docs/site/conf.py``). Skipped when the site was never built.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "_build" / "html"
EXECUTED = ROOT / "test-artifacts" / "notebooks"

pytestmark = pytest.mark.skipif(not (SITE / "index.html").is_file(), reason="the docs site is not built (make docs)")


def test_quickstart_page_shows_the_outputs_of_the_executed_notebook():
    page = (SITE / "notebooks" / "01_quickstart.html").read_text(encoding="utf-8")
    assert page.count('class="cell_output') >= 3, "the quickstart was rendered without its outputs"
    assert "<img" in page, "the quickstart's figure is not on the page"
    copy = EXECUTED / "01_quickstart.ipynb"
    if copy.is_file():
        # a text output of the executed copy (e.g. the printed prediction) is on the page
        cells = json.loads(copy.read_text(encoding="utf-8"))["cells"]
        printed = [line.strip() for cell in cells for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream" for line in out["text"] if len(line.strip()) > 12]
        assert printed and any(_escape(line) in page for line in printed)


def test_api_pages_link_reexported_and_imported_names():
    # "Video" written in expresso_xai.faces links to its page, not plain text
    faces = (SITE / "api" / "faces.html").read_text(encoding="utf-8")
    assert 'href="video.html#expresso_xai.video.Video"' in faces


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
