"""The Python API: ``sweeps.run`` in this process gives the curves ``sweeps run`` gives on the
command line, and the example notebook runs in a real Jupyter kernel with its outputs there."""

import ast
import json
import shutil
import warnings

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

import sweeps
from tests.helpers import ROOT, cli

pytestmark = pytest.mark.integration


def test_run_in_process_and_on_the_command_line_give_the_same_curves(
    tmp_path, ray_head, monkeypatch
):
    """The quickstart (epochs cut for time) both ways, each into a store of its own."""
    quick = ["model.epochs=400"]
    (tmp_path / "cli").mkdir()
    (tmp_path / "api").mkdir()
    command = cli(
        "run", "quickstart", "--set", quick[0], "--address", ray_head.address, "--no-refit",
        cwd=tmp_path / "cli",
    )  # fmt: skip
    assert command.returncode == 0, command.stdout + command.stderr
    monkeypatch.chdir(tmp_path / "api")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a complete sweep warns of nothing
        result = sweeps.run("quickstart", overrides=quick, address=ray_head.address, refit=False)
    from_cli = pd.read_csv(tmp_path / "cli" / "reports" / "quickstart" / "curves.csv")
    assert result.status == "FINISHED" and result.missing == 0 and len(result.runs) == 34
    assert list(result.curves.columns) == list(from_cli.columns)
    ours = result.curves.sort_values(["penalty", "depth", "strength"]).reset_index(drop=True)
    theirs = from_cli.sort_values(["penalty", "depth", "strength"]).reset_index(drop=True)
    for column in theirs.columns:
        if pd.api.types.is_numeric_dtype(theirs[column]):
            np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-12, equal_nan=True)
        else:
            assert list(ours[column]) == list(theirs[column]), column
    summary = json.loads((tmp_path / "cli" / "reports" / "quickstart" / "summary.json").read_text())
    assert result.lambda_min == {c["name"]: c["best_strength"] for c in summary["curves"]}
    assert result.lambda_1se == {c["name"]: c["strength_1se"] for c in summary["curves"]}
    loaded = sweeps.load("quickstart", tracking_uri="sqlite:///mlflow.db")
    assert loaded.run_id == result.run_id and loaded.lambda_min == result.lambda_min


def test_the_example_notebook_runs_in_a_real_kernel(tmp_path, monkeypatch):
    """``examples/quickstart.ipynb`` as a user runs it (its own local Ray, MLflow beside it):
    every cell runs, the figure is in the output, lambda.min is the report's."""
    shutil.copy(ROOT / "examples" / "quickstart.ipynb", tmp_path / "quickstart.ipynb")
    notebook = nbformat.read(tmp_path / "quickstart.ipynb", as_version=4)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = next(
        o for cell in notebook.cells if cell.source == "result" for o in cell.outputs
    )  # the SweepResult's own HTML: the figure and the verdicts
    assert shown.data["text/html"].count('src="data:image/png;base64,') == 1
    assert "verdict" in shown.data["text/html"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Trial pack" not in printed and "INFO" not in printed  # no Ray Tune noise
    assert "sweep quickstart: 34 points" in printed
    (cell,) = [c for c in notebook.cells if c.source == "result.lambda_min"]
    lambda_min = ast.literal_eval(cell.outputs[0].data["text/plain"])
    summary = json.loads((tmp_path / "reports" / "quickstart" / "summary.json").read_text())
    assert lambda_min == {c["name"]: c["best_strength"] for c in summary["curves"]}
    (cell,) = [c for c in notebook.cells if "model.predict(rows)" in c.source]
    probabilities = np.array(
        ast.literal_eval(cell.outputs[0].data["text/plain"].replace("array(", "("))
    )
    assert probabilities.shape == (3, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
