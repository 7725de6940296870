"""Notebooks: every one imports only the public API and is valid Python; the short ones are
executed headless with nbclient (skipped without the [notebook] extra). streaming_parity.ipynb runs
the whole 1,000-epoch study, so it is only parsed."""

import ast
import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXECUTED = [
    "extract_from_checkpoints.ipynb",   # ~10 s on one CPU thread
    "generalisation_per_task.ipynb",    # ~25 s
    "extract_transformer.ipynb",        # ~15 s: a 1-layer transformer on Tomita 1, 10 epochs
    "transient_ridge.ipynb",            # ~15 s: two 300-step runs of a width-16 transformer
    "sweep_phase_diagram.ipynb",        # ~10 s: a 2 × 2 × 2-seed sweep of 4 epochs
    pytest.param("icl_classification.ipynb", marks=pytest.mark.slow),  # ~2-3 min: 14 runs of 1,000 steps, 2 of 10,000
    pytest.param("watch_the_merge.ipynb", marks=pytest.mark.slow),  # ~40 s: 560 epochs of the parity study
]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_code_parses_and_imports_exist(path):
    nb = json.loads(path.read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("rnnautomata"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert not alias.name.startswith("_"), f"{path.name} imports private {alias.name}"
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    """Results come from running a notebook, never from what was saved in it."""
    nb = json.loads(path.read_text())
    stale = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not stale, f"{path.name}: cells {stale} hold saved outputs; clear them before committing"


def test_every_short_notebook_is_executed():
    names = {p if isinstance(p, str) else p.values[0] for p in EXECUTED}
    assert names <= {p.name for p in NOTEBOOKS}
    assert {p.name for p in NOTEBOOKS} - names == {"streaming_parity.ipynb"}


@pytest.mark.parametrize("name", EXECUTED)
def test_notebook_executes_without_errors(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # A kernel spec of this very interpreter (a user-level "python3" spec could point elsewhere),
    # and this checkout's package first on the kernel's path.
    spec = tmp_path / "jupyter" / "kernels" / "rnnautomata-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rnnautomata test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    work = tmp_path / "work"
    work.mkdir()

    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="rnnautomata-test",
                                     resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    assert (work / "runs").is_dir(), "the notebook should write its runs into its working folder"
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert printed.strip(), "the notebook should print what it measures"
