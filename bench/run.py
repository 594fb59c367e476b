"""Benchmarks: regsweep against the routes people take today, as ratios measured in one run.

Run ``python -m bench`` (the whole set: about 50 minutes on 2 cores, 20 of them in the scale
case, which writes ten thousand runs to an MLflow server, and 15 in the auth case) or
``python -m bench --quick`` (a small version of every case: 5 to 8 minutes); ``--only NAME``
runs some cases. A ratio comes from its baseline and its candidate run interleaved (ABAB...,
the starting order alternating between repeats): the medians of their wall times, the ratio
of the medians, and its spread (the lowest and highest of the per-repeat ratios). Results go to
stdout, one row each, and to ``--out`` (JSON, default ``bench/results/latest.json``) with every
raw time.

Cases:

1. ``single``: one fit against scikit-learn's ``MLPClassifier`` as plain gradient descent
   (:func:`tests.references.gradient_descent_mlp`): all 300 moons (noise 0.3, standardized), a
   2-20-3-1 ReLU network, full-batch GD (lr 0.3), ``lam = alpha = 0.7``, 2000 epochs; regsweep
   on its default engine (compiled, with the fused kernel of case ``many``). Goal: 6x. Two more
   rows time the compiled engine's first call in a new Python process (``warm_up(float64)``):
   with the kernels in numba's disk cache, and with an empty cache (``NUMBA_CACHE_DIR``: the
   compile a fresh install pays once).
2. ``many``: ``fit_many`` of 16 lambdas (``logspace(-3, 1, 16)``) against 16 ``MLPClassifier``
   fits of the same network and epochs, on one core each (``n_jobs=1``, one BLAS thread), and on
   two (``fit_many(n_jobs=2)`` against ``joblib.Parallel(n_jobs=2)``), with the network's fused
   kernel (:mod:`regcore.fused`) on disk. Goal: 30x. Then the one-core ratio with the generic
   kernels only (``REGCORE_FUSED=never``), and two timings in a new Python: the fused kernel's
   compile into an empty kernel folder (once per machine and shape) and its load from disk
   (every later process).
3. ``hardware``: ``fit_many``'s achieved GFLOP/s (2-64-64-1, 16 models, one core) against a
   large matrix product's on the same core, in float64 and float32. Goal: 60%.
4. ``sweep``: ``configs/bench.yaml`` end to end (``sweeps run``: local Ray, MLflow on SQLite,
   refits and report) against ``validation_curve(n_jobs=2)`` over the same 144 points.
   Goal: at most half its time (2x).
5. ``tune``: the route people hand-roll: a Ray Tune grid (alpha x depth x seed) of trials that
   fit one ``MLPClassifier`` each, logged by Ray's ``MLflowLoggerCallback`` to a new SQLite
   store (:func:`bench.baselines.tune_mlp_grid`), against ``sweeps run configs/bench.yaml`` on
   the same grid (48 points: one seed). Goal: 25x.
6. ``cv``: a 5-fold cross-validated lambda curve (16 lambdas, breast_cancer, one hidden layer)
   against the same curve on one train/dev split, both as ``sweeps run`` of a small config.
   Goal: at most 3x the time. Also the training alone: ``fit_many`` of the 80 (model, fold)
   pairs against the 16 models on one split, one core each.
7. ``memory``: peak memory (summed RSS of the process tree) of the quickstart sweep.
8. ``quickstart`` and ``shape`` (:mod:`bench.shape_case`): ``sweeps run quickstart`` with refits
   and report against its 34 trainings as plain fits (goal: at most 2.5x the time), and how soon
   moons-overfit's curves settle coarse to fine against the grid's order (goal: a third).
9. ``table``: reading and checking a user's 1,000,000-row, 20-column CSV on the driver (the
   file, its sha256, its columns and target, the split) against ``pandas.read_csv`` alone, each
   in a fresh process, and the peak memory of each (:mod:`bench.table_case`).
10. ``scale``: ``configs/scale.yaml`` (10,000 points) against an MLflow server on a real
   PostgreSQL, both started here (:mod:`tests.services`): wall time, training and writing
   apart, runs written per second, the driver's peak memory, then ``sweeps ls``, ``show``,
   ``report`` and ``compare`` on it; and runs written per second for 1, 4 and 8 writers against
   servers of 1, 2 and 4 workers on 400 of its points, and by one writer to a SQLite file.
   ``--quick`` runs 40 points with 2 writers against the server (the writers' row is that
   sweep) and one writer to SQLite.
11. ``auth``: runs written per second by a sweep (200 points of ``scale.yaml``) against the
   same ``mlflow server`` on the same PostgreSQL, without and with its basic-auth app (as the
   compose stack runs it), with and without the app's password cache, with 8 and 16 writers
   (:mod:`bench.auth`). ``--quick``: 16 points, auth off and on with the cache only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.auth import case_auth
from bench.measure import Row
from bench.scale import case_scale
from bench.shape_case import case_quickstart, case_shape
from bench.sweep_cases import case_cv, case_memory, case_sweep, case_tune
from bench.table_case import case_table
from bench.training import ROOT, case_fit_many, case_hardware, case_single_fit

CASES = {
    "single": case_single_fit,
    "quickstart": case_quickstart,
    "shape": case_shape,
    "many": case_fit_many,
    "hardware": case_hardware,
    "sweep": case_sweep,
    "tune": case_tune,
    "cv": case_cv,
    "memory": case_memory,
    "table": case_table,
    "scale": case_scale,
    "auth": case_auth,
}


# --- the table ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def _x(value: float) -> str:
    """A ratio to 3 significant digits: 12.4, 3.05, 0.0412."""
    return f"{value:.3g}"


def _ratio(r: Row) -> tuple[str, str, str]:
    return (
        f"{r['baseline_s']:.2f}s",
        f"{r['candidate_s']:.2f}s",
        f"{_x(r['speedup'])}x ({_x(r['speedup_min'])}-{_x(r['speedup_max'])})",
    )


def _cost(r: Row) -> tuple[str, str, str]:
    spread_ = f"{_x(r['time_ratio_min'])}-{_x(r['time_ratio_max'])}"
    return (
        f"{r['baseline_s']:.2f}s",
        f"{r['candidate_s']:.2f}s",
        f"{_x(r['time_ratio'])}x the time ({spread_})",
    )


def _throughput_cells(r: Row) -> tuple[str, str, str]:
    return (
        f"{r['matmul_gflops']:.1f} GFLOP/s",
        f"{r['fit_many_gflops']:.1f} GFLOP/s",
        f"{r['fraction']:.0%} ({r['fraction_min']:.0%}-{r['fraction_max']:.0%})",
    )


def _timing(r: Row) -> tuple[str, str, str]:
    return "", f"{r['median_s']:.2f}s", f"({r['min_s']:.2f}-{r['max_s']:.2f}s)"


def _memory(r: Row) -> tuple[str, str, str]:
    return "", f"{r['peak_rss_mb']:.0f} MB", f"driver {r['driver_peak_rss_mb']:.0f} MB"


def _peaks(r: Row) -> tuple[str, str, str]:
    ratio = r["candidate_mb"] / r["baseline_mb"]
    return f"{r['baseline_mb']:.0f} MB", f"{r['candidate_mb']:.0f} MB", f"{_x(ratio)}x the memory"


def _share(r: Row) -> tuple[str, str, str]:
    spread_ = f"{r['share_min']:.0%}-{r['share_max']:.0%}"
    return "", f"{r['wall_s']:.0f}s sweep", f"{r['share']:.0%} of {r['share_of']} ({spread_})"


def _scale(r: Row) -> tuple[str, str, str]:
    return (
        "",
        f"{r['wall_s']:.0f}s",
        f"train {r['training_s']:.0f}s, +{r['writing_behind_s']:.0f}s writing, "
        f"{r['runs_per_s']:.1f} runs/s, driver {r['driver_peak_rss_mb']:.0f} MB "
        f"(tree {r['peak_rss_mb']:.0f} MB)",
    )


def _reads_cells(r: Row) -> tuple[str, str, str]:
    return (
        "",
        "",
        f"ls {r['ls_s']:.1f}s, show {r['show_s']:.1f}s, report {r['report_s']:.1f}s, "
        f"compare {r['compare_s']:.1f}s",
    )


def _writers(r: Row) -> tuple[str, str, str]:
    rates = ", ".join(f"W={run['writers']} {run['runs_per_s']:.1f}" for run in r["runs"])
    return "", "", f"runs/s: {rates}"


def _auth(r: Row) -> tuple[str, str, str]:
    return (
        f"{r['runs_per_s_off']:.1f} runs/s",
        f"{r['runs_per_s_on']:.1f} runs/s",
        f"{_x(r['speedup'])}x the rate ({_x(r['speedup_min'])}-{_x(r['speedup_max'])})",
    )


#: how each kind of row fills the columns baseline, regsweep and result
FORMATS: dict[str, Callable[[Row], tuple[str, str, str]]] = {
    "ratio": _ratio,
    "cost": _cost,
    "throughput": _throughput_cells,
    "timing": _timing,
    "memory": _memory,
    "peaks": _peaks,
    "share": _share,
    "scale": _scale,
    "reads": _reads_cells,
    "writers": _writers,
    "auth": _auth,
    "text": lambda r: ("", "", ""),
}
WIDTHS = (46, 16, 16, 34, 28)
HEADER = ("case", "baseline", "regsweep", "result (spread over repeats)", "goal")


def _line(cells: tuple[str, ...]) -> str:
    return " ".join(f"{cell:<{width}}" for cell, width in zip(cells, WIDTHS, strict=True))


def format_row(result: Row) -> str:
    baseline, candidate, outcome = FORMATS[result["kind"]](result)
    target = result.get("goal")
    verdict = f"{target['text']}: {'met' if result['met'] else 'not met'}" if target else ""
    cells = (result["case"], baseline, candidate, outcome, verdict)
    return f"{_line(cells)} [{result['detail']}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small version of every case")
    parser.add_argument("--only", choices=list(CASES), action="append", help="run these cases")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args(argv)
    info = machine()
    print(
        f"regsweep benchmark{' (quick)' if args.quick else ''} on {info['cpu']}, "
        f"{info['cores']} cores, Python {info['python']}, numpy {info['numpy']}",
        flush=True,
    )
    print(_line(HEADER), "[detail]", flush=True)
    started = time.perf_counter()
    results, case_seconds = [], {}
    for name in args.only or list(CASES):
        case_seconds[name] = -time.perf_counter()
        for result in CASES[name](args.quick):
            results.append(result)
            print(format_row(result), flush=True)
        case_seconds[name] += time.perf_counter()
    seconds = time.perf_counter() - started
    report = {
        "machine": info,
        "quick": args.quick,
        "seconds": seconds,
        "case_seconds": case_seconds,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print(f"{len(results)} rows in {seconds / 60:.1f} min; results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
