"""Every notebook in notebooks/ executes (fast mode) and its committed copy shows its figures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_the_seven_notebooks_are_there():
    assert len(NOTEBOOKS) == 7, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_executed_with_figures(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "commit it executed"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure in the outputs"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "?" in first.source, "open with the question"
    assert nb.cells[-1].cell_type == "markdown", "end with the answer in numbers"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_fast_mode(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("OBSCALE_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # run in a copy of notebooks/ so a fast run never overwrites the committed outputs
    work = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", work, ignore=shutil.ignore_patterns("*.ipynb_checkpoints"))
    nb = nbformat.read(work / path.name, as_version=4)
    client = NotebookClient(
        nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    env_before = os.environ.get("OBSCALE_FAST")
    assert env_before == "1"
    client.execute()
