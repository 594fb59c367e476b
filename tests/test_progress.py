"""The progress line's ETA: the pace since the first result, once it is measured."""

import io

import pytest

from sweeps.execution import progress


@pytest.fixture
def clock(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    return now


def test_eta_waits_for_a_pace_and_ignores_the_start_up(clock):
    line = progress.Progress("s", 100, stream=io.StringIO())
    clock[0] = 6.0  # six seconds of start-up, then a pack of 4 arrives at once
    for _ in range(4):
        line.point_done()
    assert line.eta() == "--"  # one delivery is no pace
    clock[0] = 8.0
    line.point_done()
    assert line.eta() == "--"  # 1 since the first: less than 2 results and 5% of 100
    clock[0] = 16.0
    for _ in range(4):
        line.point_done()
    # 5 results in the 10 s since the first delivery: 2 s each, 91 left
    assert line.eta() == "3:02"
    assert "9/100 points" in line.line() and "ETA 3:02" in line.line()


def test_eta_counts_only_this_runs_work_on_resume(clock):
    line = progress.Progress("s", 50, already=40, stream=io.StringIO(), unit="trainings")
    clock[0] = 3.0
    line.point_done()
    clock[0] = 5.0
    line.point_done()
    line.point_failed(1)
    # 2 results in 2 s since the first: 1 s each, 7 left
    assert line.eta() == "0:07"
    assert "43/50 trainings (1 failed)" in line.line()
