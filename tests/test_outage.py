"""A tracking server that goes away for the length of a sweep: the results wait in a spill file,
the driver's memory stays flat, and when the server returns every point ends with exactly one
FINISHED run."""

import os
import re
import time

import pytest

from tests.helpers import (
    MlflowServer,
    cli_background,
    kill_group,
    run_options,
    sweep_runs,
    wait_for_text,
    write_config,
)

pytestmark = pytest.mark.integration

POINTS = 48
WIDTH = 600  # weights.npz of about 2.7 MB per point, 130 MB in all


def rss_mb(pid: int) -> float:
    """The process's own resident memory (anonymous pages: its heap): Ray's object store is
    shared memory the driver maps, resident once touched, not the driver's to hold."""
    with open(f"/proc/{pid}/status") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    return int(fields["RssAnon"].split()[0]) / 1024


def resting_mb(pid: int, samples: int = 5) -> float:
    """The driver's memory between results: the least of a few samples 0.2 s apart (a pack's
    results passing through lift it for a moment)."""
    least = rss_mb(pid)
    for _ in range(samples - 1):
        time.sleep(0.2)
        least = min(least, rss_mb(pid))
    return least


def points_done(log) -> int:
    counts = re.findall(rf"(\d+)/{POINTS} points", log.read_text())
    return int(counts[-1]) if counts else 0


def test_an_outage_spills_to_disk_and_loses_nothing(tmp_path, ray_head):
    server = MlflowServer(tmp_path / "server")
    config = write_config(
        tmp_path / "outage.yaml",
        {
            "name": "outage",
            "model": {"width": WIDTH, "epochs": 20, "log_every": 10},
            "search": {
                "depths": [2],
                "seeds": list(range(POINTS // 4)),
                "penalties": {"none": None, "l1": None, "l2": {"lam": [0.01, 0.1, 1.0, 10.0]}},
            },
            "execution": {"pack_size": 2},
        },
    )
    uri, options = run_options(tmp_path, ray_head.address, server.uri)
    log = tmp_path / "driver.log"
    driver = cli_background(
        "run",
        str(config),
        *options,
        "--no-report",
        "--no-refit",
        cwd=tmp_path,
        log=log,
        env={"REGSWEEP_WRITER_MEMORY_MB": "2"},
    )
    try:
        wait_for_text(log, "parent run", driver)
        server.stop()  # before any result: every one of them waits
        # the driver's memory once a quarter of the results are in (past the tens of MB that
        # Ray and Tune take with the first results, whatever their size)
        deadline = time.monotonic() + 600
        while points_done(log) < POINTS // 4:
            assert driver.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        baseline = resting_mb(driver.pid)
        peak = baseline
        while points_done(log) < POINTS:
            assert driver.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            peak = max(peak, rss_mb(driver.pid))
            time.sleep(0.2)
        settled = resting_mb(driver.pid, samples=25)  # the retries go on for a while
        text = log.read_text()
        assert "MLflow is behind: results beyond 2 MB now wait on disk" in text
        spill = re.search(r"now wait on disk \((.*?)\)", text).group(1)
        spilled = os.path.getsize(spill) / 2**20
        assert spilled > 80  # most of the results are there
        # flat: three quarters of the results (about 80 MB) came in and the driver holds none
        # of them; while a pack's results pass through (unpickled, then pickled to the spill
        # file) it briefly holds a few
        assert settled - baseline < spilled / 8, (baseline, settled, spilled)
        assert peak - baseline < spilled / 2, (baseline, peak, spilled)
        server.start()
        assert driver.wait(timeout=600) == 0, log.read_text()
    finally:
        server.stop()
        if driver.poll() is None:  # a failed check above: nothing outlives the test
            kill_group(driver)
    server.start()
    try:
        parents, children = sweep_runs(uri)
        assert parents[0].info.status == "FINISHED"
        keys = [c.data.tags["regsweep.key"] for c in children]
        assert len(keys) == len(set(keys)) == POINTS
        assert {c.info.status for c in children} == {"FINISHED"}
        assert not os.path.exists(spill)  # removed when the writer closed
    finally:
        server.stop()
