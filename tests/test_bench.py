"""The benchmark's quick mode runs every case, and its summary numbers follow from its raw
measurements (recomputed here). Timings are reported, never asserted: they belong to benchmarks."""

import json
import statistics
import subprocess
import sys

import pytest

from bench.run import CASES
from tests.helpers import ROOT

pytestmark = pytest.mark.integration


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
    assert len(report["results"]) == len(CASES)
    for case in report["results"]:
        assert case["case"] in result.stdout  # every case has its row in the table
        if "speedup" in case:
            base, cand = case["baseline_times"], case["candidate_times"]
            assert len(base) == len(cand) == case["repeats"]
            assert case["baseline_s"] == statistics.median(base)
            assert case["candidate_s"] == statistics.median(cand)
            assert case["speedup"] == pytest.approx(case["baseline_s"] / case["candidate_s"])
        if "fit_many_gflops" in case:
            achieved = case["flops"] / case["seconds"] / 1e9
            peak = case["matmul_flops"] / case["matmul_seconds"] / 1e9
            assert case["fit_many_gflops"] == pytest.approx(achieved)
            assert case["fraction"] == pytest.approx(achieved / peak)
