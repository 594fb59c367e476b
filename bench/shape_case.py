"""Two cases about a sweep's own time:

- ``quickstart``: ``sweeps run quickstart`` as a user runs it (local Ray, MLflow in a new SQLite
  file, refits and report) against the same 34 trainings done as plain ``regcore`` fits in one
  process (the work itself, each point on its own split). Goal: at most 2.5x its time.
- ``shape``: how soon a sweep knows its curves' shape: ``configs/moons-overfit.yaml`` with
  ``execution.order: coarse_to_fine`` (the default) and with ``grid`` (neighbouring strengths
  packed together), each timed until every curve's running lambda.min (from the trainings
  finished so far, by their runs' end times) is within one grid step of its final one for
  good, as a share of the sweep's training time; and the same for the median curve, as a share
  of the sweep's wall time. Goal: at most a third.
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


def settle_times(frame: pd.DataFrame) -> dict[tuple, float]:
    """Per curve, the first end time after which its running lambda.min (from the trainings
    finished so far) stays within one grid step of its final one (the curve's own grid: its
    sorted strengths); a curve needs two strengths before it has a lambda.min at all."""
    ordered = frame.sort_values("end")
    ends = ordered["end"].unique()
    settled = {}
    for curve, rows in ordered.groupby("curve"):
        grid = np.sort(rows["strength"].unique())
        final = np.searchsorted(grid, _argmin(rows))
        since = None
        for end in ends:
            seen = rows[rows["end"] <= end]
            ok = seen["strength"].nunique() >= 2 and (
                abs(np.searchsorted(grid, _argmin(seen)) - final) <= 1
            )
            if ok and since is None:
                since = end
            elif not ok:
                since = None
        settled[curve] = since
    return settled


def time_to_shape(frame: pd.DataFrame) -> float:
    """The first end time after which every curve's running lambda.min stays within one grid
    step of its final one: the last of the curves' :func:`settle_times`."""
    return max(settle_times(frame).values())


def _argmin(rows: pd.DataFrame) -> float:
    means = rows.groupby("strength")["value"].mean()
    return float(means.idxmin())


def _shape(order: str, overrides: list[str]) -> dict[str, float]:
    """How soon the curves settled (:func:`settle_times`): the last curve as a share of the
    training time (first result to last), the median curve as a share of the sweep's wall time
    (from its parent run's start to its last result), and that wall time."""
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
        settled = list(settle_times(frame).values())
        return {
            "share": (max(settled) - first) / max(ended - first, 1e-9),
            "curve_share": (statistics.median(settled) - started) / max(ended - started, 1e-9),
            "wall": ended - started,
        }


def case_shape(quick: bool) -> list[Row]:
    overrides = ["model.epochs=300", "search.seeds=[0]", "search.depths=[1]"] if quick else []
    repeats = 1 if quick else 2
    measured: dict[str, list[dict[str, float]]] = {"coarse_to_fine": [], "grid": []}
    for repeat in range(repeats):
        orders = ["grid", "coarse_to_fine"] if repeat % 2 else ["coarse_to_fine", "grid"]
        for order in orders:
            measured[order].append(_shape(order, overrides))
    detail = " (300 epochs, one seed, depth 1)" if quick else ""
    #: (the measurement's key in :func:`_shape`, the row's name, its description, share of what)
    measures = (
        (
            "share",
            "every lambda.min settled",
            "every curve's running lambda.min within one grid step of its final one for good, "
            "as a share of the training time (first result to last)",
            "training",
        ),
        (
            "curve_share",
            "a curve's lambda.min settled",
            "the median curve's running lambda.min within one grid step of its final one for "
            "good, as a share of the sweep's wall time (parent run's start to last result)",
            "wall time",
        ),
    )
    out = []
    for order, label in (("grid", "grid order"), ("coarse_to_fine", "coarse to fine")):
        runs = measured[order]
        wall = statistics.median(run["wall"] for run in runs)
        for key, name, text, share_of in measures:
            values = [run[key] for run in runs]
            out.append(
                row(
                    "shape",
                    f"moons-overfit: {name}, {label}",
                    "share",
                    text + detail,
                    goal("share", "at most a third", at_most=1 / 3) if order != "grid" else None,
                    share=statistics.median(values),
                    share_min=min(values),
                    share_max=max(values),
                    share_of=share_of,
                    wall_s=wall,
                )
            )
    return out
