"""Benchmarks: regsweep against the scikit-learn route, as ratios measured in one process.

Run ``python -m bench`` (about 6 minutes on 2 cores) or ``python -m bench --quick`` (a smaller
version of every case, about a minute). Each case runs its baseline and its candidate
interleaved (the order alternating between repeats) and reports the medians and their ratio.
Results go to stdout and to ``--out`` (JSON, default ``bench/results/latest.json``).

Cases:

1. one fit against scikit-learn's ``MLPClassifier`` on the same problem: moons (300 samples,
   noise 0.3), a 2-20-3-1 ReLU network, full-batch gradient descent (lr 0.3, no momentum),
   ``alpha = lam = 0.7``, 2000 epochs. Goal: at least 3x faster.
2. ``fit_many`` of 16 lambdas against 16 separate fits of the same network. Goal: 10x.
3. the sweep ``configs/bench.yaml`` end to end (``sweeps run``: local Ray, MLflow, report off)
   against ``validation_curve`` (``n_jobs=2``, the same train/dev split as a predefined split)
   over the same 144 points. Goal: at most half of validation_curve's wall time.
4. ``fit_many``'s achieved GFLOP/s against a large matrix product's on one core, and the peak
   memory (summed RSS of the process tree) of the quickstart sweep.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.baselines import gradient_descent_mlp

ROOT = Path(__file__).resolve().parents[1]
LAMBDAS = np.logspace(-3, 1, 16)


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def interleaved(baseline: Callable, candidate: Callable, repeats: int) -> dict[str, float]:
    """Median wall times of both, run alternately (ABAB..., starting order swapped each repeat)."""
    times: dict[str, list[float]] = {"baseline": [], "candidate": []}
    for repeat in range(repeats):
        pair = [("baseline", baseline), ("candidate", candidate)]
        for name, function in pair if repeat % 2 == 0 else pair[::-1]:
            times[name].append(timed(function))
    base, cand = statistics.median(times["baseline"]), statistics.median(times["candidate"])
    return {
        "baseline_s": base,
        "candidate_s": cand,
        "speedup": base / cand,
        "repeats": repeats,
        "baseline_times": times["baseline"],
        "candidate_times": times["candidate"],
    }


def moons():
    """The sweep's data: 300 moons (noise 0.3) split 180 / 60 / 60, standardized on train."""
    from regcore.datasets import load_dataset

    return load_dataset("moons", n_samples=300, noise=0.3, seed=0)


def all_moons():
    """The single-fit cases' data: all 300 moons (noise 0.3), standardized."""
    from sklearn.datasets import make_moons

    X, y = make_moons(300, noise=0.3, random_state=0)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def sklearn_mlp(hidden: tuple[int, ...], alpha: float, epochs: int, n_samples: int, seed: int = 0):
    return gradient_descent_mlp(
        hidden, alpha=alpha, learning_rate=0.3, epochs=epochs, n_samples=n_samples, seed=seed
    )


def regcore_net(
    hidden: tuple[int, ...], lam: float, epochs: int, seed: int = 0, log_every: int = 100
):
    from regcore import RegularizedClassifier

    return RegularizedClassifier(
        hidden_layer_sizes=hidden,
        activation="relu",
        penalty="l2",
        lam=lam,
        optimizer="gd",
        learning_rate=0.3,
        epochs=epochs,
        log_every=log_every,
        random_state=seed,
    )


def case_single_fit(quick: bool) -> dict[str, Any]:
    X, y = all_moons()
    epochs = 500 if quick else 2000
    n = len(y)

    def baseline():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sklearn_mlp((20, 3), 0.7, epochs, n).fit(X, y)

    def candidate():
        regcore_net((20, 3), 0.7, epochs).fit(X, y)

    result = interleaved(baseline, candidate, 3 if quick else 7)
    return {
        "case": "single fit vs MLPClassifier",
        "goal": ">= 3x",
        "met": result["speedup"] >= 3,
        "detail": f"2-20-3-1 relu, {epochs} epochs, {n} samples",
        **result,
    }


def case_fit_many(quick: bool) -> dict[str, Any]:
    from regcore import fit_many

    X, y = all_moons()
    epochs = 300 if quick else 2000

    def baseline():
        for lam in LAMBDAS:
            regcore_net((20, 3), lam, epochs).fit(X, y)

    def candidate():
        fit_many([regcore_net((20, 3), lam, epochs) for lam in LAMBDAS], X, y)

    result = interleaved(baseline, candidate, 3 if quick else 5)
    return {
        "case": "fit_many(16) vs 16 fits",
        "goal": ">= 10x",
        "met": result["speedup"] >= 10,
        "detail": f"2-20-3-1 relu, 16 lambdas, {epochs} epochs",
        **result,
    }


def _sweep_command(folder: Path, overrides: list[str], config: str) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "sweeps.cli",
        "run",
        str(ROOT / "configs" / config),
        "--no-report",
        "--no-refit",
        "--tracking-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--storage-path",
        str(folder / "ray"),
        "--set",
        f"name=bench-{time.time_ns()}",
    ]
    for override in overrides:
        command += ["--set", override]
    return command


def _run_sweep(overrides: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as folder:
        result = subprocess.run(
            _sweep_command(Path(folder), overrides, "bench.yaml"),
            cwd=folder,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"sweep failed:\n{result.stdout}\n{result.stderr}")


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


def case_sweep(quick: bool) -> dict[str, Any]:
    if quick:
        depths, seeds, lambdas, epochs = [1, 2], [0], np.logspace(-3, 1, 8), 300
        overrides = [
            f"model.epochs={epochs}",
            "search.depths=[1, 2]",
            "search.seeds=[0]",
            "search.penalties.l2.lam={logspace: [-3, 1, 8]}",
        ]
    else:
        depths, seeds, lambdas, epochs = [1, 2, 3], [0, 1, 2], LAMBDAS, 2000
        overrides = []
    points = len(depths) * len(seeds) * len(lambdas)
    result = interleaved(
        lambda: _validation_curves(depths, seeds, lambdas, epochs),
        lambda: _run_sweep(overrides),
        1 if quick else 3,
    )
    return {
        "case": "sweep vs validation_curve",
        "goal": "<= 0.5x time (>= 2x)",
        "met": result["speedup"] >= 2,
        "detail": f"{points} points, {epochs} epochs, local Ray + MLflow vs n_jobs=2",
        **result,
    }


def _flops_per_epoch(layer_sizes: list[int], m: int) -> float:
    """Multiply-adds of one forward + backward pass, counted as 2 flops each (elementwise work
    not counted): Z = [W|b][A;1], [dW|db] = dZ [A;1]^T, and dA = W^T dZ below the top layer."""
    flops = 0.0
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(layer_sizes)):
        flops += 2 * 2 * fan_out * (fan_in + 1) * m
        if layer > 0:
            flops += 2 * fan_out * fan_in * m
    return flops


def case_hardware(quick: bool) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    from regcore import fit_many

    data = moons()
    X, y = data.X_train, data.y_train
    epochs = 200 if quick else 1000
    hidden = (64, 64)
    with threadpool_limits(1):  # as in a sweep: one BLAS thread per trial
        started = time.perf_counter()
        fit_many([regcore_net(hidden, lam, epochs, log_every=epochs) for lam in LAMBDAS], X, y)
        seconds = time.perf_counter() - started
        size = 1024 if quick else 2048
        a = np.random.default_rng(0).standard_normal((size, size))
        a @ a
        matmul_seconds = min(timed(lambda: a @ a) for _ in range(3))
    flops = _flops_per_epoch([2, *hidden, 1], len(y)) * epochs * len(LAMBDAS)
    achieved = flops / seconds / 1e9
    peak = 2 * size**3 / matmul_seconds / 1e9
    return {
        "case": "fit_many GFLOP/s vs matmul (1 core)",
        "goal": "report",
        "detail": f"2-64-64-1 relu, 16 models, {epochs} epochs, {len(y)} samples",
        "flops": flops,
        "seconds": seconds,
        "matmul_flops": 2 * size**3,
        "matmul_seconds": matmul_seconds,
        "fit_many_gflops": achieved,
        "matmul_gflops": peak,
        "fraction": achieved / peak,
    }


def _tree_rss(root: int) -> int:
    """Summed resident memory (bytes) of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total


def case_memory(quick: bool) -> dict[str, Any]:
    if not Path("/proc").is_dir():
        return {"case": "quickstart peak memory", "goal": "report", "detail": "needs Linux /proc"}
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as folder:
        overrides = ["--set", "model.epochs=300"] if quick else []
        command = _sweep_command(Path(folder), [], "quickstart.yaml") + overrides
        process = subprocess.Popen(
            command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _tree_rss(process.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        code = process.wait()
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    if code != 0:
        raise RuntimeError("the quickstart sweep failed")
    return {
        "case": "quickstart peak memory",
        "goal": "report",
        "detail": "driver + local Ray + trials, report off",
        "peak_rss_mb": peak / 2**20,
        "wall_s": seconds,
    }


CASES = {
    "single": case_single_fit,
    "many": case_fit_many,
    "sweep": case_sweep,
    "hardware": case_hardware,
    "memory": case_memory,
}


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


def format_row(result: dict[str, Any]) -> str:
    if "speedup" in result:
        numbers = (
            f"baseline {result['baseline_s']:.2f}s, regsweep {result['candidate_s']:.2f}s: "
            f"{result['speedup']:.1f}x (goal {result['goal']}, "
            f"{'met' if result['met'] else 'not met'})"
        )
    elif "fit_many_gflops" in result:
        numbers = (
            f"{result['fit_many_gflops']:.1f} GFLOP/s of {result['matmul_gflops']:.1f} "
            f"({100 * result['fraction']:.0f}%)"
        )
    elif "peak_rss_mb" in result:
        numbers = f"{result['peak_rss_mb']:.0f} MB peak, {result['wall_s']:.1f}s"
    else:
        numbers = result.get("detail", "")
    return f"{result['case']:<38} {numbers}  [{result['detail']}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases (about a minute)")
    parser.add_argument("--only", choices=sorted(CASES), action="append", help="run these cases")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args(argv)
    info = machine()
    print(
        f"regsweep benchmark{' (quick)' if args.quick else ''} on {info['cpu']}, "
        f"{info['cores']} cores, Python {info['python']}, numpy {info['numpy']}",
        flush=True,
    )
    results = []
    for name in args.only or list(CASES):
        result = CASES[name](args.quick)
        results.append(result)
        print(format_row(result), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"machine": info, "quick": args.quick, "results": results}, indent=2, default=float
        )
    )
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
