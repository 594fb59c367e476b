"""A bracketing search end to end on real Ray and MLflow: its proposals are ordinary child runs,
the report marks its brackets, and a driver killed mid-search resumes without training a point
twice, to the same final bracket."""

import json
import signal
import time

import pytest

from tests.helpers import (
    cli,
    cli_background,
    client,
    kill_group,
    run_options,
    sweep_runs,
    wait_for_text,
    write_config,
)

pytestmark = pytest.mark.integration

SEARCH = {
    "name": "search",
    "model": {"width": 16, "epochs": 20000, "log_every": 5000},  # trials of about a second
    "search": {
        "depths": [2],
        "seeds": [0],
        "penalties": {
            "none": None,
            "l1": None,
            "l2": {"lam": {"bracket": [1e-3, 30], "tol": 0.2, "budget": 14}},
        },
    },
    "execution": {"max_concurrent_trials": 1},
}


def brackets(uri, parent):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = client(uri).download_artifacts(parent.info.run_id, "brackets.json", folder)
        return json.loads(Path(path).read_text())


def strengths(children):
    return sorted(round(float(c.data.params["lam"]), 9) for c in children)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, ray_head):
    """The search run once without interruption."""
    folder = tmp_path_factory.mktemp("search")
    config = write_config(folder / "search.yaml", SEARCH)
    uri, options = run_options(folder, ray_head.address)
    result = cli("run", str(config), *options, cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    parents, children = sweep_runs(uri)
    return folder, uri, parents[0], children


def test_the_search_brackets_lambda_and_the_report_marks_it(reference):
    folder, uri, parent, children = reference
    found = brackets(uri, parent)["l2 depth=2 width=16"]
    assert found["done"] and found["strengths"] == len(children) < 14
    lo, hi = found["min"]
    summary = json.loads((folder / "reports" / "search" / "summary.json").read_text())
    (curve,) = summary["curves"]
    assert lo < curve["best_strength"] < hi  # lambda.min is inside its bracket
    assert curve["bracket"] == found
    # the proposals are ordinary child runs: the report's curve has a point at each
    assert [round(s["strength"], 9) for s in curve["strengths"]] == strengths(children)
    page = (folder / "reports" / "search" / "report.html").read_text()
    assert "lambda.min in [" in page and "lambda.1se crossing in [" in page
    assert {c.info.status for c in children} == {"FINISHED"}


def test_resume_mid_search_trains_nothing_twice_and_ends_on_the_same_bracket(
    reference, tmp_path, ray_head
):
    _, reference_uri, reference_parent, reference_children = reference
    config = write_config(tmp_path / "search.yaml", SEARCH)
    uri, options = run_options(tmp_path, ray_head.address)
    options.append("--no-report")
    log = tmp_path / "driver.log"
    driver = cli_background("run", str(config), *options, cwd=tmp_path, log=log)
    wait_for_text(log, "parent run", driver)
    deadline = time.monotonic() + 300
    while sum(c.info.status == "FINISHED" for c in sweep_runs(uri)[1]) < 6:  # past round one
        assert driver.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    kill_group(driver, signal.SIGKILL)
    _, children = sweep_runs(uri)
    before = {c.data.tags["regsweep.key"]: c for c in children if c.info.status == "FINISHED"}
    assert 6 <= len(before) < len(reference_children)

    # the killed driver's lease is fresh: --force takes it over (docs/faults.md)
    result = cli("run", str(config), "--resume", "--force", *options, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    parents, children = sweep_runs(uri)
    keys = [c.data.tags["regsweep.key"] for c in children]
    assert len(keys) == len(set(keys))  # one run per training
    after = {c.data.tags["regsweep.key"]: c for c in children}
    for key, run in before.items():  # not trained again, not rewritten
        assert after[key].info.run_id == run.info.run_id
        assert after[key].info.end_time == run.info.end_time
    assert strengths(children) == strengths(reference_children)
    assert brackets(uri, parents[0]) == brackets(reference_uri, reference_parent)
