"""The benchmark's quick mode runs every case, and every summary number in its JSON follows from
the raw measurements beside it (recomputed here: medians from the times, ratios from the
medians, spreads from the per-repeat ratios, GFLOP/s from flops and seconds, runs per second
from runs and seconds, goals from their numbers), and every point a sweep case trained has its
run in MLflow. It checks the bookkeeping, not the measurements: what the timings are is the
benchmark's to report, never a test's to assert."""

import json
import statistics
import subprocess
import sys

import pytest

from bench.run import CASES
from tests.helpers import ROOT

pytestmark = pytest.mark.integration

approx = pytest.approx


def check_interleaved(case: dict) -> None:
    """Medians, their ratio and its spread, from the interleaved times."""
    base, cand = case["baseline_times"], case["candidate_times"]
    assert len(base) == len(cand) == case["repeats"]
    assert case["baseline_s"] == statistics.median(base)
    assert case["candidate_s"] == statistics.median(cand)
    assert case["speedup"] == approx(case["baseline_s"] / case["candidate_s"])
    ratios = [b / c for b, c in zip(base, cand, strict=True)]
    assert case["speedup_min"] == approx(min(ratios))
    assert case["speedup_max"] == approx(max(ratios))
    if "time_ratio" in case:
        costs = [c / b for b, c in zip(base, cand, strict=True)]
        assert case["time_ratio"] == approx(case["candidate_s"] / case["baseline_s"])
        assert case["time_ratio_min"] == approx(min(costs))
        assert case["time_ratio_max"] == approx(max(costs))


def check_throughput(case: dict) -> None:
    """GFLOP/s of fit_many (the candidate) and of the matrix product (the baseline)."""
    assert case["seconds"] == case["candidate_s"]
    assert case["matmul_seconds"] == case["baseline_s"]
    achieved = case["flops"] / case["seconds"] / 1e9
    peak = case["matmul_flops"] / case["matmul_seconds"] / 1e9
    assert case["fit_many_gflops"] == approx(achieved)
    assert case["matmul_gflops"] == approx(peak)
    assert case["fraction"] == approx(achieved / peak)
    fractions = [
        (case["flops"] / c) / (case["matmul_flops"] / b)
        for b, c in zip(case["baseline_times"], case["candidate_times"], strict=True)
    ]
    assert case["fraction_min"] == approx(min(fractions))
    assert case["fraction_max"] == approx(max(fractions))


def check_timing(case: dict) -> None:
    times = case["times"]
    assert len(times) == case["repeats"]
    assert case["median_s"] == statistics.median(times)
    assert (case["min_s"], case["max_s"]) == (min(times), max(times))
    if "import_times" in case:
        assert len(case["import_times"]) == case["repeats"]
        assert case["import_s"] == statistics.median(case["import_times"])


def check_sweep_run(run: dict) -> None:
    """Runs per second, and writing after training, of one watched ``sweeps run``; every point
    it trained (its progress line) has its run in MLflow."""
    assert run["runs_written"] == run["points"]
    assert run["runs_per_s"] == approx(run["runs_written"] / run["write_seconds"])
    assert run["writing_behind_s"] == approx(max(0.0, run["run_s"] - run["training_s"]))
    assert 0 <= run["pending_after_training"] <= run["runs_written"]
    assert run["driver_peak_rss_mb"] <= run["peak_rss_mb"]  # the driver is part of its tree


def check_goal(case: dict) -> None:
    target = case["goal"]
    value = case[target["of"]]
    if "at_least" in target:
        assert case["met"] == (value >= target["at_least"])
    else:
        assert case["met"] == (value <= target["at_most"])


def test_bench_quick_mode_runs_every_case(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)  # the table, for the CI log
    report = json.loads(out.read_text())
    assert report["quick"] is True
    rows = report["results"]
    assert {case["id"] for case in rows} == set(CASES)  # every case has rows
    kinds = {case["kind"] for case in rows}
    assert {"ratio", "cost", "throughput", "timing", "memory", "scale", "reads", "writers"} <= kinds
    for case in rows:
        assert case["case"] in result.stdout  # every row is in the table
        if "baseline_times" in case:
            check_interleaved(case)
        if case["kind"] == "throughput":
            check_throughput(case)
        if case["kind"] == "timing":
            check_timing(case)
        if "model_epochs" in case:
            assert case["model_epochs_per_s"] == approx(case["model_epochs"] / case["candidate_s"])
        if "work_ratio" in case:
            assert case["work_ratio"] == approx(case["work_cv"] / case["work_split"])
        if case["kind"] == "scale":
            check_sweep_run(case)
        if case["kind"] == "writers":
            for run in case["runs"]:
                check_sweep_run(run)
        if case["goal"] is not None:
            check_goal(case)
