"""The sweep cases: ``sweeps run`` end to end against ``validation_curve`` and a hand-rolled
Ray Tune grid, a cross-validated curve against one split, and the quickstart's memory (cases
``sweep``, ``tune``, ``cv``, ``memory``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import Row, goal, interleaved, row, watched, with_time_ratio
from bench.training import LAMBDAS, ROOT, cv_training, moons, sklearn_mlp

# --- sweeps as subprocesses ---------------------------------------------------------------------


def sweep_command(
    folder: Path,
    overrides: list[str],
    config: str | Path,
    tracking_uri: str | None = None,
    name: str | None = None,
    whole: bool = False,
) -> list[str]:
    """``sweeps run CONFIG --no-report --no-refit`` (with both unless ``whole``) into
    ``folder`` (its SQLite store unless ``tracking_uri``); ``config`` is a path or the name of
    a file in ``configs/``."""
    path = Path(config) if Path(config).is_absolute() else ROOT / "configs" / config
    command = [
        sys.executable,
        "-m",
        "sweeps.cli",
        "run",
        str(path),
        *([] if whole else ["--no-report", "--no-refit"]),
        "--tracking-uri",
        tracking_uri or f"sqlite:///{folder / 'mlflow.db'}",
        "--storage-path",
        str(folder / "ray"),
        "--set",
        f"name={name or f'bench-{time.time_ns()}'}",
    ]
    for override in overrides:
        command += ["--set", override]
    return command


def _run_sweep(
    overrides: list[str], config: str | Path = "bench.yaml", whole: bool = False
) -> None:
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as folder:
        result = subprocess.run(
            sweep_command(Path(folder), overrides, config, whole=whole),
            cwd=folder,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"sweep failed:\n{result.stdout}\n{result.stderr}")


# --- 4. the bench sweep against validation_curve ------------------------------------------------


def _validation_curves(
    depths: list[int], seeds: list[int], lambdas: np.ndarray, epochs: int
) -> None:
    from sklearn.model_selection import PredefinedSplit, validation_curve

    data = moons()
    X = np.vstack([data.X_train, data.X_dev])
    y = np.concatenate([data.y_train, data.y_dev])
    folds = np.concatenate([np.full(len(data.y_train), -1), np.zeros(len(data.y_dev), dtype=int)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for depth in depths:
            for seed in seeds:
                validation_curve(
                    sklearn_mlp((20,) * depth, 0.0, epochs, len(data.y_train), seed),
                    X,
                    y,
                    param_name="alpha",
                    param_range=lambdas,
                    cv=PredefinedSplit(folds),
                    n_jobs=2,
                )


def _bench_grid(
    quick: bool, seeds: list[int], quick_depths: list[int], quick_lambdas: int
) -> tuple[list[int], np.ndarray, int, list[str]]:
    """``configs/bench.yaml``'s grid on ``seeds`` (in ``--quick``: ``quick_depths``,
    ``quick_lambdas`` lambdas and 300 epochs): depths, lambdas, epochs, and the ``--set``
    overrides that make ``sweeps run configs/bench.yaml`` train it."""
    overrides = [f"search.seeds={json.dumps(seeds)}"]
    if not quick:
        return [1, 2, 3], LAMBDAS, 2000, overrides
    return (
        quick_depths,
        np.logspace(-3, 1, quick_lambdas),
        300,
        [
            *overrides,
            "model.epochs=300",
            f"search.depths={json.dumps(quick_depths)}",
            f"search.penalties.l2.lam={{logspace: [-3, 1, {quick_lambdas}]}}",
        ],
    )


def case_sweep(quick: bool) -> list[Row]:
    """``sweeps run configs/bench.yaml`` against ``validation_curve`` on the same points."""
    seeds = [0] if quick else [0, 1, 2]
    depths, lambdas, epochs, overrides = _bench_grid(quick, seeds, [1, 2], 8)
    points = len(depths) * len(seeds) * len(lambdas)
    result = interleaved(
        lambda: _validation_curves(depths, seeds, lambdas, epochs),
        lambda: _run_sweep(overrides, whole=True),
        1 if quick else 3,
    )
    return [
        row(
            "sweep",
            "bench sweep vs validation_curve",
            "ratio",
            f"{points} points, {epochs} epochs; local Ray + MLflow (SQLite), refits and report, "
            "vs n_jobs=2",
            goal("speedup", "<= 0.5x time (>= 2x)", at_least=2),
            points=points,
            **result,
        )
    ]


# --- 5. the bench sweep against a hand-rolled Ray Tune grid -------------------------------------


def _tune_grid(alphas: list[float], depths: list[int], seeds: list[int], epochs: int) -> None:
    """:func:`bench.baselines.tune_mlp_grid` in a new Python, in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as folder:
        code = (
            "from bench.baselines import tune_mlp_grid\n"
            f"print('trials', tune_mlp_grid({folder!r}, alphas={alphas!r}, depths={depths!r}, "
            f"seeds={seeds!r}, epochs={epochs!r}))\n"
        )
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=folder,
            env={**os.environ, "PYTHONPATH": path},  # Ray's workers import bench.baselines
            capture_output=True,
            text=True,
        )
        expected = len(alphas) * len(depths) * len(seeds)
        if done.returncode != 0 or f"trials {expected}" not in done.stdout:
            raise RuntimeError(f"the Ray Tune grid failed:\n{done.stdout}\n{done.stderr}")


def case_tune(quick: bool) -> list[Row]:
    """``sweeps run configs/bench.yaml`` against a Ray Tune grid of ``MLPClassifier`` trials."""
    seeds = [0]  # the full grid's baseline alone would take several minutes a repeat
    depths, lambdas, epochs, overrides = _bench_grid(quick, seeds, [1], 4)
    points = len(depths) * len(seeds) * len(lambdas)
    result = interleaved(
        lambda: _tune_grid([float(lam) for lam in lambdas], depths, seeds, epochs),
        lambda: _run_sweep(overrides),
        1 if quick else 3,
    )
    return [
        row(
            "tune",
            "bench sweep vs Ray Tune grid of MLPClassifier",
            "ratio",
            f"grid of {points} points (of bench.yaml's 144: seed 0), {epochs} epochs; "
            "tune.Tuner + MLflowLoggerCallback (SQLite) vs sweeps run",
            goal("speedup", ">= 25x", at_least=25),
            points=points,
            **result,
        )
    ]


# --- 6. cross-validation against one split ------------------------------------------------------


def _cv_config(folder: Path, split: dict[str, Any], epochs: int) -> Path:
    """A small sweep: one lambda curve (l2, 16 lambdas) of a one-layer network on
    breast_cancer, on ``split``."""
    import yaml

    config = {
        "name": "cv",
        "experiment": "bench-cv",
        "dataset": {"name": "breast_cancer", "split": split, "seed": 0},
        "model": {
            "activation": "relu",
            "width": 20,
            "optimizer": "gd",
            "learning_rate": 0.1,
            "epochs": epochs,
            "log_every": max(1, epochs // 10),
        },
        "search": {
            "depths": [1],
            "seeds": [0],
            "penalties": {"l2": {"lam": {"logspace": [-3, 1, len(LAMBDAS)]}}},
        },
    }
    path = folder / f"cv-{'kfold' if 'kfold' in split else 'split'}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def case_cv(quick: bool) -> list[Row]:
    """A 5-fold cross-validated lambda curve against one split: the sweep, then training."""
    epochs = 300 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as folder:
        one = _cv_config(Path(folder), {"train": 0.6, "dev": 0.2, "test": 0.2}, epochs)
        five = _cv_config(Path(folder), {"kfold": 5, "test": 0.2}, epochs)
        result = interleaved(
            lambda: _run_sweep([], one), lambda: _run_sweep([], five), 1 if quick else 3
        )
    return [
        row(
            "cv",
            "5-fold CV vs one split, sweeps run",
            "cost",
            f"breast_cancer, 1x20 relu, l2 x 16 lambdas, {epochs} epochs: 80 trainings vs 16",
            goal("time_ratio", "<= 3x time", at_most=3),
            **with_time_ratio(result),
        ),
        cv_training(quick, epochs),
    ]


# --- 7. the quickstart's memory -----------------------------------------------------------------


def case_memory(quick: bool) -> list[Row]:
    """Peak memory of the quickstart sweep."""
    name = "quickstart peak memory"
    if not Path("/proc").is_dir():
        return [row("memory", name, "text", "needs Linux /proc")]
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as folder:
        overrides = ["model.epochs=300"] if quick else []
        run = watched(sweep_command(Path(folder), overrides, "quickstart.yaml"), folder)
    return [
        row(
            "memory",
            name,
            "memory",
            "driver + local Ray + trials, report off" + (", 300 epochs" if quick else ""),
            peak_rss_mb=run["peak_rss_mb"],
            driver_peak_rss_mb=run["driver_peak_rss_mb"],
            wall_s=run["wall_s"],
        )
    ]
