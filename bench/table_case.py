"""The ``table`` case: what the driver spends reading and checking a user's table before Ray
starts (the file read, its sha256, columns planned and checked, the target checked, the split),
against reading the same CSV with ``pandas.read_csv`` alone, each in a fresh process; and the
driver's peak memory for it.

The table: 1,000,000 rows (20,000 with ``--quick``), 20 feature columns as real tables come
(14 numbers and an integer column with 1% missing, four text columns of 4 to 40 categories, one
with 1% missing, a boolean) and a text target of 3 classes.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measure import Row, row, with_time_ratio

#: the child processes: each prints its seconds and its peak resident memory as JSON
READ_CSV = """
import json, sys, time
import pandas as pd
started = time.perf_counter()
frame = pd.read_csv(sys.argv[1], low_memory=False)
seconds = time.perf_counter() - started
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024}))
"""
LOAD_DATA = """
import json, sys, time
from sweeps.config.data import load_data
from sweeps.config.reading import read_config
raw = {"name": "table", "dataset": {"name": "file", "path": sys.argv[1], "target": "label",
       "split": {"kfold": 5, "test": 0.2}}, "search": {"depths": [0],
       "penalties": {"l2": {"lam": [1.0]}}}}
started = time.perf_counter()
config, _ = read_config(raw)
config, data = load_data(config)
seconds = time.perf_counter() - started
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "described": data.preparation(), "peak_mb": peak / 1024}))
"""


def make_table(path: Path, rows: int, seed: int = 0) -> None:
    """Write the case's CSV (module note)."""
    rng = np.random.RandomState(seed)
    label = rng.choice(["low", "mid", "high"], size=rows)
    shift = pd.Series(label).map({"low": -0.5, "mid": 0.0, "high": 0.5}).to_numpy()
    columns: dict[str, np.ndarray] = {}
    for i in range(14):
        values = rng.randn(rows) + shift * (i % 3)
        values[rng.rand(rows) < 0.01] = np.nan
        columns[f"x{i}"] = values.round(4)
    columns["count"] = rng.poisson(5, rows).astype(float)
    columns["count"][rng.rand(rows) < 0.01] = np.nan
    for i, size in enumerate((4, 8, 15, 40)):
        values = rng.choice([f"c{i}-{k}" for k in range(size)], size=rows).astype(object)
        if i == 0:
            values[rng.rand(rows) < 0.01] = None
        columns[f"text{i}"] = values
    columns["flag"] = rng.rand(rows) < 0.3
    columns["label"] = label
    pd.DataFrame(columns).to_csv(path, index=False)


def _child(script: str, path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"the child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def case_table(quick: bool) -> list[Row]:
    rows, repeats = (20_000, 1) if quick else (1_000_000, 3)
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as folder:
        path = Path(folder) / "table.csv"
        started = time.perf_counter()
        make_table(path, rows)
        written = time.perf_counter() - started
        size_mb = path.stat().st_size / 2**20
        runs: dict[str, list[dict]] = {"read_csv": [], "load_data": []}
        for repeat in range(repeats):  # interleaved, the starting order alternating
            order = [("read_csv", READ_CSV), ("load_data", LOAD_DATA)]
            for name, script in order if repeat % 2 == 0 else order[::-1]:
                runs[name].append(_child(script, path))
    base = [r["seconds"] for r in runs["read_csv"]]
    cand = [r["seconds"] for r in runs["load_data"]]
    ratios = [c / b for b, c in zip(base, cand, strict=True)]
    timing = with_time_ratio(
        {
            "baseline_s": statistics.median(base),
            "candidate_s": statistics.median(cand),
            "speedup": statistics.median(base) / statistics.median(cand),
            "speedup_min": 1 / max(ratios),
            "speedup_max": 1 / min(ratios),
            "repeats": repeats,
            "baseline_times": base,
            "candidate_times": cand,
        }
    )
    detail = (
        f"{rows:,} rows x 20 feature columns ({size_mb:.0f} MB CSV, written in {written:.0f}s): "
        f"{runs['load_data'][0]['described']}"
    )
    return [
        row(
            "table",
            f"reading a {rows:,}-row CSV: read + checks + split",
            "cost",
            "pandas.read_csv alone against sweeps' load_data (read, sha256, columns, target, "
            f"split), each in a fresh process; {detail}",
            **timing,
        ),
        row(
            "table",
            f"the driver's peak memory for the {rows:,}-row CSV",
            "peaks",
            "peak resident memory of each child process (VmHWM: ru_maxrss would count the "
            "process it was forked from), medians: read_csv alone against load_data",
            baseline_mb=statistics.median(r["peak_mb"] for r in runs["read_csv"]),
            candidate_mb=statistics.median(r["peak_mb"] for r in runs["load_data"]),
        ),
    ]
