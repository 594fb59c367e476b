"""The bracketing search against a fine grid: ``python -m bench.bracketing`` (about 8 minutes on
2 cores; ``--quick``: one small case in about a minute).

Each case runs a sweep twice with ``sweeps run`` (local Ray, a fresh SQLite store, no report, no
refit): once with a 61-point grid of lambda over a range (the reference) and once with a
bracketing search over the same range (``tol`` = one grid step, ``budget`` = a third of the
grid's points). Per curve it reports the trainings each used, the wall times, and lambda.min and
lambda.1se found by each. A found strength is good when it is within one grid step of the
reference's, or, where the reference curve is flat within noise, when the reference curve's mean
dev cost at the grid point nearest to it is no more than 1% above the reference's best.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.sweep_cases import ROOT, sweep_command

GRID_POINTS = 61

#: config, the penalties searched (lam), the range in decades, and other overrides
CASES = [
    ("moons-overfit", ["l2"], (-3.0, 1.5), []),
    ("breast-cancer-cv", ["l1", "l2"], (-2.0, 2.5), []),
    ("digits", ["l2", "weight_decay"], (-2.0, 3.0), []),
]
QUICK = [("quickstart", ["l2"], (-3.0, 1.5), ["search.depths=[1]", "model.epochs=1000"])]


def overrides(penalties: list[str], span: tuple[float, float], grid: bool) -> list[str]:
    """``--set`` values that keep only ``penalties`` and give each the grid or the search."""
    lo, hi = span
    step = (hi - lo) / (GRID_POINTS - 1)
    out = []
    for penalty in ("none", "l2", "l1", "elasticnet", "weight_decay", "dropout"):
        if penalty not in penalties:
            out.append(f"search.penalties.{penalty}=null")
        elif grid:
            out.append(f"search.penalties.{penalty}.lam={{logspace: [{lo}, {hi}, {GRID_POINTS}]}}")
        else:
            budget = GRID_POINTS // 3
            out.append(
                f"search.penalties.{penalty}.lam={{bracket: [{10**lo:.12g}, {10**hi:.12g}], "
                f"tol: {step:.6g}, budget: {budget}}}"
            )
    return out


def run_sweep(config: str, sets: list[str], folder: Path, name: str) -> tuple[float, Any, Any]:
    """Run a sweep; return its wall time, the MLflow client and its parent run."""
    from sweeps.store import tracking

    command = sweep_command(folder, sets, f"{config}.yaml", name=name)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    client = tracking.client_for(f"sqlite:///{folder / 'mlflow.db'}")
    return seconds, client, tracking.find_sweep(client, name)


def curves_of(client: Any, parent: Any, select: str = "dev_cost") -> dict[str, Any]:
    from sweeps.analysis import curves
    from sweeps.store.results import child_frame

    frame = child_frame(client, parent)
    aggregated = curves.aggregate(frame)
    out = {}
    for curve in curves.curves_of(aggregated).values():
        summary = curves.summarize(curve, select)
        rows = frame[
            (frame["penalty"] == summary.penalty)
            & (frame["depth"] == summary.depth)
            & (frame["width"] == summary.width)
        ]
        out[summary.name] = (summary, curve, len(rows))
    return out


def judge(found: float, reference: float, grid_curve: Any, step: float) -> dict[str, Any]:
    """Whether ``found`` is within one grid step of ``reference``, or costs at most 1% more on
    the reference curve (its nearest grid point)."""
    distance = abs(math.log10(found) - math.log10(reference))
    logs = [math.log10(s) for s in grid_curve["strength"]]
    nearest = min(range(len(logs)), key=lambda i: abs(logs[i] - math.log10(found)))
    means = grid_curve["dev_cost_mean"].tolist()
    excess = means[nearest] / min(means) - 1.0
    return {
        "found": found,
        "reference": reference,
        "steps_apart": distance / step,
        "cost_excess": excess,
        "good": distance <= step * (1 + 1e-9) or excess <= 0.01,
    }


def run_case(config: str, penalties: list[str], span: tuple[float, float], extra: list[str]):
    step = (span[1] - span[0]) / (GRID_POINTS - 1)
    with tempfile.TemporaryDirectory(prefix="regsweep-bracket-") as scratch:
        folder = Path(scratch)
        grid_seconds, client, grid_parent = run_sweep(
            config, overrides(penalties, span, True) + extra, folder, "grid"
        )
        search_seconds, _, search_parent = run_sweep(
            config, overrides(penalties, span, False) + extra, folder, "search"
        )
        grid, search = curves_of(client, grid_parent), curves_of(client, search_parent)
    rows = []
    for name, (reference, grid_curve, grid_trainings) in grid.items():
        found, _, search_trainings = search[name]
        rows.append(
            {
                "config": config,
                "curve": name,
                "grid_trainings": grid_trainings,
                "search_trainings": search_trainings,
                "share": search_trainings / grid_trainings,
                "grid_seconds": grid_seconds,
                "search_seconds": search_seconds,
                "lambda_min": judge(found.best_strength, reference.best_strength, grid_curve, step),
                "lambda_1se": judge(found.strength_1se, reference.strength_1se, grid_curve, step),
            }
        )
    return rows


def format_row(row: dict[str, Any]) -> str:
    def part(rule: str) -> str:
        judged = row[rule]
        return (
            f"{judged['found']:.3g} vs {judged['reference']:.3g} "
            f"({judged['steps_apart']:.1f} steps, +{100 * judged['cost_excess']:.1f}%"
            f"{', ok' if judged['good'] else ', MISSED'})"
        )

    return (
        f"{row['config']:<17} {row['curve']:<24} trainings {row['search_trainings']:>4} of "
        f"{row['grid_trainings']:>4} ({100 * row['share']:.0f}%)  "
        f"wall {row['search_seconds']:.0f}s vs {row['grid_seconds']:.0f}s  "
        f"lambda.min {part('lambda_min')}  "
        f"lambda.1se {part('lambda_1se')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bracketing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one small case")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bracketing.json")
    args = parser.parse_args(argv)
    rows = []
    for case in QUICK if args.quick else CASES:
        for row in run_case(*case):
            rows.append(row)
            print(format_row(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"quick": args.quick, "results": rows}, indent=2))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
