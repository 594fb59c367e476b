"""Two cases about a sweep's own time:

- ``quickstart``: ``sweeps run quickstart`` as a user runs it (local Ray, MLflow in a new SQLite
  file, refits and report) against the same 34 trainings done as plain ``regcore`` fits in one
  process (the work itself, each point on its own split). Goal: at most 2.5x its time.
- ``shape``: how soon a sweep knows its curves' shape: ``configs/moons-overfit.yaml`` with
  ``execution.order: coarse_to_fine`` (the default) and with ``grid`` (neighbouring strengths
  packed together), each timed until every curve's running lambda.min (from the trainings
  finished so far, by their runs' end times) is within one grid step of its final one for
  good, as a share of the sweep's training time. Goal: at most a third.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measure import Row, goal, interleaved, row, with_time_ratio
from bench.sweep_cases import sweep_command
from bench.training import ROOT


def _quickstart_sweep(epochs: int | None) -> None:
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as folder:
        command = [sys.executable, "-m", "sweeps.cli", "run", "quickstart"]
        if epochs:
            command += ["--set", f"model.epochs={epochs}"]
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"quickstart failed:\n{result.stdout}\n{result.stderr}")


def _quickstart_fits(epochs: int | None) -> None:
    """The quickstart's 34 trainings as plain fits, one process, one after the other."""
    code = (
        "import warnings\n"
        "from regcore import RegularizedClassifier\n"
        "from sweeps.config.data import load_data\n"
        "from sweeps.config.points import expand\n"
        "from sweeps.config.reading import read_config\n"
        "from sweeps.execution.trainable import estimator_for\n"
        f"config, _ = read_config('quickstart', {[f'model.epochs={epochs}'] if epochs else []})\n"
        "config, data = load_data(config)\n"
        "part = data.fold_data(0)\n"
        "warnings.simplefilter('ignore')\n"
        "for point in expand(config):\n"
        "    estimator_for(config.model, point).fit(part.X_train, part.y_train,"
        " part.X_dev, part.y_dev)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def case_quickstart(quick: bool) -> list[Row]:
    """``sweeps run quickstart`` against its 34 trainings as plain fits (both in new processes:
    imports count for both)."""
    epochs = 300 if quick else None
    result = interleaved(
        lambda: _quickstart_fits(epochs),
        lambda: _quickstart_sweep(epochs),
        1 if quick else 3,
        warm=not quick,
    )
    return [
        row(
            "quickstart",
            "quickstart sweep vs its trainings as plain fits",
            "cost",
            "sweeps run quickstart (local Ray, SQLite, refits, report) against 34 regcore fits "
            "in one new process" + (" (300 epochs)" if quick else ""),
            goal("time_ratio", "at most 2.5x the time", at_most=2.5),
            **with_time_ratio(result),
        )
    ]


# --- the curve's shape early ------------------------------------------------------------------


def _runs(folder: Path) -> tuple[pd.DataFrame, float, float]:
    """The sweep's trainings (curve, strength, seed, selection metric, end time) and its
    training start and end (seconds since the epoch)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "regsweep"]
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    parent = next(r for r in runs if r.data.tags.get("regsweep.kind") == "sweep")
    rows = []
    for run in runs:
        if run.data.tags.get("regsweep.kind") != "point" or run.info.status != "FINISHED":
            continue
        params = run.data.params
        rows.append(
            {
                "curve": (params["penalty"], params["depth"], params["width"], params["l1_ratio"]),
                "strength": float(params["lam"])
                if params["penalty"] != "dropout"
                else 1 - float(params["keep_prob"]),
                "value": run.data.metrics["dev_cost"],
                "end": run.info.end_time / 1000,
            }
        )
    frame = pd.DataFrame(rows)
    frame = frame[frame["curve"].map(lambda c: c[0] != "none")]
    return frame, parent.info.start_time / 1000, frame["end"].max()


def time_to_shape(frame: pd.DataFrame) -> float:
    """The first end time after which every curve's running lambda.min stays within one grid
    step of its final one (the curve's own grid: its sorted strengths)."""
    ordered = frame.sort_values("end")
    grids = {c: np.sort(g["strength"].unique()) for c, g in frame.groupby("curve")}
    final = {c: _argmin(g) for c, g in frame.groupby("curve")}
    settled_since = None
    for end in ordered["end"].unique():
        seen = ordered[ordered["end"] <= end]
        ok = True
        for curve, grid in grids.items():
            rows = seen[seen["curve"] == curve]
            if rows["strength"].nunique() < 2:
                ok = False
                break
            now = _argmin(rows)
            step = abs(np.searchsorted(grid, now) - np.searchsorted(grid, final[curve]))
            if step > 1:
                ok = False
                break
        if ok and settled_since is None:
            settled_since = end
        elif not ok:
            settled_since = None
    return settled_since


def _argmin(rows: pd.DataFrame) -> float:
    means = rows.groupby("strength")["value"].mean()
    return float(means.idxmin())


def _shape(order: str, overrides: list[str]) -> tuple[float, float]:
    """The share of the training time until the shape settled, and the sweep's wall time."""
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as folder:
        command = sweep_command(
            Path(folder),
            [*overrides, f"execution.order={order}"],
            ROOT / "configs" / "moons-overfit.yaml",
            name="shape",
        )
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"sweep failed:\n{result.stdout}\n{result.stderr}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame, started, ended = _runs(Path(folder))
        first = frame["end"].min()
        # the share of the training time (first result to last), start-up costs apart
        return (time_to_shape(frame) - first) / max(ended - first, 1e-9), ended - started


def case_shape(quick: bool) -> list[Row]:
    overrides = ["model.epochs=300", "search.seeds=[0]", "search.depths=[1]"] if quick else []
    repeats = 1 if quick else 2
    shares: dict[str, list[float]] = {"coarse_to_fine": [], "grid": []}
    walls: dict[str, list[float]] = {"coarse_to_fine": [], "grid": []}
    for repeat in range(repeats):
        orders = ["grid", "coarse_to_fine"] if repeat % 2 else ["coarse_to_fine", "grid"]
        for order in orders:
            share, wall = _shape(order, overrides)
            shares[order].append(share)
            walls[order].append(wall)
    out = []
    for order, label in (("grid", "grid order"), ("coarse_to_fine", "coarse to fine")):
        out.append(
            row(
                "shape",
                f"moons-overfit: lambda.min settled, {label}",
                "share",
                "every curve's running lambda.min within one grid step of its final one for good, "
                "as a share of the training time (first result to last)"
                + (" (300 epochs, one seed, depth 1)" if quick else ""),
                goal("share", "at most a third", at_most=1 / 3) if order != "grid" else None,
                share=statistics.median(shares[order]),
                share_min=min(shares[order]),
                share_max=max(shares[order]),
                wall_s=statistics.median(walls[order]),
            )
        )
    return out
