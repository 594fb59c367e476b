"""The benchmark's quick mode runs end to end (its numbers are reported, not asserted: timings
belong to benchmarks, not tests)."""

import json
import subprocess
import sys

from tests.helpers import ROOT


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
    assert report["quick"] is True and report["machine"]["cores"] >= 1
    cases = {r["case"]: r for r in report["results"]}
    assert len(cases) == 5
    for case in cases.values():
        if "speedup" in case:
            assert case["baseline_s"] > 0 and case["candidate_s"] > 0
            assert case["met"] in (True, False) and case["repeats"] >= 1
    hardware = cases["fit_many GFLOP/s vs matmul (1 core)"]
    assert hardware["fit_many_gflops"] > 0 and 0 < hardware["fraction"] < 1.5
    assert cases["quickstart peak memory"]["peak_rss_mb"] > 50
    assert len(result.stdout.strip().splitlines()) == 7  # title, five rows, the results path
