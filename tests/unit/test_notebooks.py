"""The notebooks run, offline, on this interpreter, and are committed without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
NOTEBOOK_FILES = ("01_quickstart.ipynb", "02_evals_and_metrics.ipynb")
KERNEL_NAME = "mediavault-test-python"
CELL_TIMEOUT_SECONDS = 600


@pytest.fixture
def kernel_on_this_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec whose argv is this very interpreter, so the notebook sees this venv."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "MediaVault test kernel",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # Keep Jupyter's and IPython's own files out of the user's home.
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return KERNEL_NAME


@pytest.mark.parametrize("name", NOTEBOOK_FILES)
def test_notebooks_are_committed_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{name} has no code"
    for index, cell in enumerate(code):
        assert cell.outputs == [], f"{name}: code cell {index} has outputs"
        assert cell.execution_count is None, f"{name}: code cell {index} has an execution count"


def _run(name: str, kernel: str) -> str:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, kernel_name=kernel, timeout=CELL_TIMEOUT_SECONDS,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    # A failing cell raises above; return what the cells printed for the checks below.
    return "\n".join(
        output.get("text", "")
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.outputs if output.output_type == "stream"
    )


@pytest.mark.slow  # executes the notebook
def test_the_quickstart_triages_approves_and_reads_the_audit_trail(
    mediavault_home: Path, kernel_on_this_interpreter: str
) -> None:
    printed = _run("01_quickstart.ipynb", kernel_on_this_interpreter)
    assert "status: awaiting_review" in printed
    assert "[investigate] run_sql_query: allow" in printed
    assert "quickstart-1 approved by notebook-reviewer" in printed
    assert "second approval refused: quickstart-1 was already decided" in printed
    assert "review.decision" in printed and "chain intact" in printed
    # The notebook worked in its own temporary home, never in the caller's.
    assert list(mediavault_home.iterdir()) == []


@pytest.mark.slow  # executes the notebook
def test_the_evals_and_metrics_notebook_computes_the_pilot_numbers(
    mediavault_home: Path, kernel_on_this_interpreter: str
) -> None:
    printed = _run("02_evals_and_metrics.ipynb", kernel_on_this_interpreter)
    assert "rejected by ana (tone)" in printed
    assert "tone-rejected drafts" in printed and "deflection rate" in printed
    # Either the evaluation ran, or the notebook said plainly why it did not.
    assert "plot(s) from" in printed or "the evaluation is skipped" in printed
