"""The training cases: one fit, many fits and the core's peak, against scikit-learn and a
matrix product (cases ``single``, ``many``, ``hardware``; and the training part of ``cv``)."""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.baselines import fit_gradient_descent_mlp
from bench.measure import Row, goal, interleaved, row, spread, with_time_ratio
from tests.references import gradient_descent_mlp

ROOT = Path(__file__).resolve().parents[1]
LAMBDAS = np.logspace(-3, 1, 16)


# --- the problems -----------------------------------------------------------------------------


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


def fit_sklearn_mlp(X, y, hidden: tuple[int, ...], alpha: float, epochs: int):
    """A fitted :func:`sklearn_mlp` (warnings silenced), as ``joblib`` workers run it too."""
    return fit_gradient_descent_mlp(
        X, y, hidden, alpha=alpha, learning_rate=0.3, epochs=epochs, n_samples=len(y)
    )


def regcore_net(
    hidden: tuple[int, ...],
    lam: float,
    epochs: int,
    seed: int = 0,
    log_every: int = 100,
    **extra: Any,
):
    """regsweep's estimator for the same problem (``extra``: ``n_jobs``, ``dtype``, ...)."""
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
        **extra,
    )


# --- 1. one fit, and the compiled engine's first call -----------------------------------------

#: a new Python's import of regcore, then its compiled engine's first call (seconds of each)
FIRST_CALL = """\
import time
started = time.perf_counter()
import numpy as np
from regcore import compiled_engine
imported = time.perf_counter()
compiled_engine.warm_up(np.dtype("float64"))
print(imported - started, time.perf_counter() - imported)
"""


def _first_call(cache: str | None) -> tuple[float, float]:
    """``(import seconds, warm_up seconds)`` in a new Python; ``cache``: numba's cache folder
    (None: its default, where the kernels are)."""
    env = dict(os.environ)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    done = subprocess.run(
        [sys.executable, "-c", FIRST_CALL], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"warm_up failed:\n{done.stdout}\n{done.stderr}")
    imported, warm = (float(word) for word in done.stdout.split()[-2:])
    return imported, warm


def _first_calls(repeats: int, empty_cache: bool) -> dict[str, Any]:
    imports, times = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="regsweep-numba-") as folder:
            imported, warm = _first_call(folder if empty_cache else None)
        imports.append(imported)
        times.append(warm)
    return {**spread(times), "import_times": imports, "import_s": statistics.median(imports)}


def case_single_fit(quick: bool) -> list[Row]:
    """One fit against ``MLPClassifier``, then the compiled engine's first call in a process."""
    from regcore import fused

    X, y = all_moons()
    epochs = 500 if quick else 2000
    fused.compile_kernel((2, 20, 3, 1), "relu", "float64")  # on disk, as in case ``many``
    result = interleaved(
        lambda: fit_sklearn_mlp(X, y, (20, 3), 0.7, epochs),
        lambda: regcore_net((20, 3), 0.7, epochs).fit(X, y),
        3 if quick else 7,
        warm=True,  # the kernels load here: their first call is the rows below
    )
    cached = _first_calls(2 if quick else 5, empty_cache=False)
    compiled = _first_calls(1 if quick else 3, empty_cache=True)
    where = "warm_up(float64) in a new Python"
    return [
        row(
            "single",
            "single fit vs MLPClassifier",
            "ratio",
            f"2-20-3-1 relu, {epochs} epochs, {len(y)} samples, full-batch GD, engine auto "
            "(its fused kernel)",
            goal("speedup", ">= 6x", at_least=6),
            **result,
        ),
        row(
            "single",
            "compiled engine, first call in a process",
            "timing",
            f"{where}, kernels from numba's disk cache (import regcore "
            f"{cached['import_s']:.1f}s before it)",
            **cached,
        ),
        row(
            "single",
            "compiled engine, first compile",
            "timing",
            f"{where}, NUMBA_CACHE_DIR empty: what a fresh install pays once",
            **compiled,
        ),
    ]


# --- 2. fit_many against separate fits ---------------------------------------------------------

#: a new Python's import of regcore.fused (and numba, which the compiled engine has loaded by
#: then), then its first fused kernel (seconds of each)
FUSED_FIRST_CALL = """\
import time
started = time.perf_counter()
import numba.core.compiler_lock
from regcore import fused
imported = time.perf_counter()
fused.compile_kernel((2, 20, 3, 1), "relu", "float64")
print(imported - started, time.perf_counter() - imported)
"""


def _fused_first_calls(repeats: int, empty: bool) -> dict[str, Any]:
    """The bench network's fused kernel in a new Python: compiled into an empty kernel folder
    (``empty``), or loaded from the one it is kept in."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="regsweep-kernels-") as folder:
            env = dict(os.environ)
            if empty:
                env["REGCORE_KERNEL_DIR"] = folder
            done = subprocess.run(
                [sys.executable, "-c", FUSED_FIRST_CALL],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
        if done.returncode != 0:
            raise RuntimeError(f"compile_kernel failed:\n{done.stdout}\n{done.stderr}")
        times.append(float(done.stdout.split()[-1]))
    return spread(times)


def case_fit_many(quick: bool) -> list[Row]:
    """``fit_many`` of 16 lambdas against 16 ``MLPClassifier`` fits, on one core and on two;
    the same on one core with the generic kernels only; and what the fused kernel costs the
    first time (its compile, once per machine) and in every new process (its load)."""
    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_limits

    from regcore import fit_many, fused

    X, y = all_moons()
    epochs = 300 if quick else 2000
    repeats = 3 if quick else 5
    # the kernel the rows below train with, on disk as a sweep's trials find it (its cost: the
    # last two rows)
    fused.compile_kernel((2, 20, 3, 1), "relu", "float64")

    def mlp_fits(n_jobs: int) -> None:
        if n_jobs == 1:
            for lam in LAMBDAS:
                fit_sklearn_mlp(X, y, (20, 3), lam, epochs)
        else:
            fit = delayed(fit_sklearn_mlp)
            Parallel(n_jobs=n_jobs)(fit(X, y, (20, 3), lam, epochs) for lam in LAMBDAS)

    def regcore_fits(n_jobs: int, kernels: str = "auto") -> None:
        previous = os.environ.get("REGCORE_FUSED")
        os.environ["REGCORE_FUSED"] = kernels
        try:
            fit_many([regcore_net((20, 3), lam, epochs, n_jobs=n_jobs) for lam in LAMBDAS], X, y)
        finally:
            if previous is None:
                del os.environ["REGCORE_FUSED"]
            else:
                os.environ["REGCORE_FUSED"] = previous

    with threadpool_limits(1):
        one = interleaved(lambda: mlp_fits(1), lambda: regcore_fits(1), repeats, warm=True)
        generic = interleaved(
            lambda: mlp_fits(1), lambda: regcore_fits(1, "never"), repeats, warm=True
        )
    two = interleaved(lambda: mlp_fits(2), lambda: regcore_fits(2), repeats, warm=True)
    model_epochs = len(LAMBDAS) * epochs
    rows = []
    for cores, result, against, kernels in (
        (1, one, "a loop, one BLAS thread", "fused kernel"),
        (2, two, "joblib.Parallel(n_jobs=2), one BLAS thread per worker", "fused kernel"),
        (1, generic, "a loop, one BLAS thread", "generic kernels only (REGCORE_FUSED=never)"),
    ):
        name = f"fit_many(16) vs 16 MLPClassifier, {cores} core{'s' if cores > 1 else ''}"
        rows.append(
            row(
                "many",
                name if result is not generic else "fit_many(16), generic kernels, 1 core",
                "ratio",
                f"2-20-3-1 relu, 16 lambdas, {epochs} epochs, {kernels}; n_jobs={cores} against "
                f"{against}; {model_epochs / result['candidate_s']:,.0f} model-epochs/s",
                goal("speedup", ">= 30x", at_least=30) if result is not generic else None,
                model_epochs=model_epochs,
                model_epochs_per_s=model_epochs / result["candidate_s"],
                **result,
            )
        )
    where = "compile_kernel((2, 20, 3, 1), 'relu', 'float64') in a new Python"
    rows.append(
        row(
            "many",
            "fused kernel, first compile",
            "timing",
            f"{where}, REGCORE_KERNEL_DIR empty: what a machine pays once per network shape",
            **_fused_first_calls(2 if quick else 5, empty=True),
        )
    )
    rows.append(
        row(
            "many",
            "fused kernel, first call in a process",
            "timing",
            f"{where}, its object code on disk (as every later process finds it)",
            **_fused_first_calls(2 if quick else 5, empty=False),
        )
    )
    return rows


# --- 3. fit_many against the core's peak -------------------------------------------------------


def _flops_per_epoch(layer_sizes: list[int], m: int) -> float:
    """Multiply-adds of one forward + backward pass, counted as 2 flops each (elementwise work
    not counted): Z = [W|b][A;1], [dW|db] = dZ [A;1]^T, and dA = W^T dZ below the top layer."""
    flops = 0.0
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(layer_sizes)):
        flops += 2 * 2 * fan_out * (fan_in + 1) * m
        if layer > 0:
            flops += 2 * fan_out * fan_in * m
    return flops


def _throughput(dtype: str, quick: bool) -> Row:
    """``fit_many``'s GFLOP/s in ``dtype`` against a square matrix product's, on one core."""
    from threadpoolctl import threadpool_limits

    from regcore import fit_many

    data = moons()
    X, y = data.X_train, data.y_train
    epochs = 200 if quick else 1000
    hidden = (64, 64)
    size = 1024 if quick else 2048
    a = np.random.default_rng(0).standard_normal((size, size)).astype(dtype)

    def train() -> None:
        nets = [regcore_net(hidden, lam, epochs, log_every=epochs, dtype=dtype) for lam in LAMBDAS]
        fit_many(nets, X, y)

    with threadpool_limits(1):  # as in a sweep: one BLAS thread per trial
        result = interleaved(lambda: a @ a, train, 3 if quick else 5, warm=True)
    flops = _flops_per_epoch([2, *hidden, 1], len(y)) * epochs * len(LAMBDAS)
    matmul_flops = 2 * size**3
    achieved = flops / result["candidate_s"] / 1e9
    peak = matmul_flops / result["baseline_s"] / 1e9
    return row(
        "hardware",
        f"fit_many GFLOP/s vs matmul, {dtype}",
        "throughput",
        f"2-64-64-1 relu, 16 models, {epochs} epochs, {len(y)} samples, 1 core; "
        f"matmul {size}x{size}",
        goal("fraction", ">= 60%", at_least=0.6),
        flops=flops,
        seconds=result["candidate_s"],
        matmul_flops=matmul_flops,
        matmul_seconds=result["baseline_s"],
        fit_many_gflops=achieved,
        matmul_gflops=peak,
        fraction=achieved / peak,
        fraction_min=result["speedup_min"] * flops / matmul_flops,
        fraction_max=result["speedup_max"] * flops / matmul_flops,
        **result,
    )


def case_hardware(quick: bool) -> list[Row]:
    """``fit_many``'s share of the core's peak, in float64 and in float32."""
    return [_throughput("float64", quick), _throughput("float32", quick)]


def cv_training(quick: bool, epochs: int) -> Row:
    """``fit_many`` of the 80 (model, fold) pairs against the 16 models on one split."""
    from threadpoolctl import threadpool_limits

    from regcore import fit_many
    from regcore.datasets import load_resampled

    split = load_resampled("breast_cancer", train=0.6, dev=0.2, test=0.2, seed=0).fold_data(0)
    resampled = load_resampled("breast_cancer", kfold=5, test=0.2, seed=0)
    folds = [resampled.fold_data(i) for i in range(len(resampled.folds))]
    parts = [(f.X_train, f.y_train, f.X_dev, f.y_dev) for f in folds]  # one tuple per fold

    def nets(count: int) -> list:
        return [
            regcore_net((20,), lam, epochs, log_every=max(1, epochs // 10), n_jobs=1)
            for lam in np.tile(LAMBDAS, count)
        ]

    def one_split() -> None:
        fit_many(nets(1), split.X_train, split.y_train, split.X_dev, split.y_dev)

    def cross_validated() -> None:
        fit_many(nets(len(parts)), data=[part for part in parts for _ in LAMBDAS])

    with threadpool_limits(1):
        result = interleaved(one_split, cross_validated, 3 if quick else 5, warm=True)
    work_split = len(LAMBDAS) * len(split.y_train)
    work_cv = len(LAMBDAS) * sum(len(f.y_train) for f in folds)
    return row(
        "cv",
        "5-fold CV vs one split, training only",
        "cost",
        f"fit_many of 80 (model, fold) pairs vs 16 models, 1 core, {epochs} epochs; "
        f"{work_cv / work_split:.2f}x the training samples",
        work_split=work_split,
        work_cv=work_cv,
        work_ratio=work_cv / work_split,
        **with_time_ratio(result),
    )
