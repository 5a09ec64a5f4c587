"""Every notebook in notebooks/ runs top to bottom, and is stored clean.

Each executed copy is kept in ``test-artifacts/notebooks/`` (with the hash of the stored
notebook it ran): the documentation build renders those outputs instead of running the
notebooks a second time (see ``docs/site/conf.py``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXECUTED = ROOT / "test-artifacts" / "notebooks"


def test_there_are_notebooks():
    assert any(path.name == "01_quickstart.ipynb" for path in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs_and_with_a_kernel(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a notebook without code"
    assert all(not cell.outputs and cell.execution_count is None for cell in code), \
        "store notebooks without outputs (clear them before committing)"
    # without a kernelspec JupyterLab asks "Select Kernel" before anything runs
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert "widgets" not in notebook.metadata, "no saved widget state"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    from nbclient import NotebookClient

    source = path.read_bytes()  # hashed as run, not as found after the run
    work = tmp_path / path.name
    work.write_bytes(source)
    notebook = nbformat.read(work, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on the first error
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    if path.name == "01_quickstart.ipynb":
        written = sorted(p.name for p in (tmp_path / "outputs").iterdir())
        assert written == ["explorer.html", "occlusion_heatmap.pdf", "occlusion_heatmap.png",
                           "participant_high.nc", "region_map.png"]
        widget = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
                  and "Explorer" in o["data"].get("text/plain", "")]
        assert widget, "the Explorer was not displayed"
    _keep_executed_copy(path.name, source, notebook)


def _keep_executed_copy(name: str, source: bytes, notebook) -> None:
    """Write the executed notebook for the docs, stamped with the stored file's hash.

    The docs build uses the copy only while the hash matches (an edited notebook is run
    again there). The write is atomic: a build reading it meanwhile sees the old or the new.
    """
    notebook.metadata["expresso_xai"] = {"source_sha256": hashlib.sha256(source).hexdigest()}
    EXECUTED.mkdir(parents=True, exist_ok=True)
    partial = EXECUTED / f".{name}.{os.getpid()}.partial"
    nbformat.write(notebook, partial)
    partial.replace(EXECUTED / name)
