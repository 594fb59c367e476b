"""``sweeps run`` end to end through the CLI, on real Ray and real MLflow stores, read back with
MlflowClient and checked against regcore run directly."""

import json
import os
import re
import signal
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from regcore import RegularizedClassifier
from regcore.datasets import load_dataset
from sweeps.config.points import expand
from sweeps.config.reading import read_config
from tests.helpers import (
    ROOT,
    SMALL,
    MlflowServer,
    cli,
    cli_background,
    client,
    kill_group,
    run_options,
    sweep_runs,
    wait_for_text,
    write_config,
)


def _histories(mlflow_client, run):
    names = [k for k in run.data.metrics if k not in ("test_cost", "test_error")]
    return {
        name: [
            (m.step, m.value)
            for m in sorted(
                mlflow_client.get_metric_history(run.info.run_id, name), key=lambda m: m.step
            )
        ]
        for name in names
    }


def wait_for_finished_runs(uri, count, driver, log, timeout=300):
    """Wait until ``count`` child runs are FINISHED while the driver still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(c.info.status == "FINISHED" for c in sweep_runs(uri)[1]) >= count:
            return
        assert driver.poll() is None, log.read_text()
        time.sleep(0.3)
    raise TimeoutError(f"fewer than {count} finished runs after {timeout}s")


def readme_child_params() -> list[str]:
    """The child-run params as the README's MLflow layout lists them."""
    text = (ROOT / "README.md").read_text()
    listing = re.search(r"child run per point.*?: params (.*?); the history", text, re.S)
    return re.findall(r"`(\w+)`", listing.group(1))


def quickstart_trainings() -> dict[tuple, dict]:
    """The quickstart's trainings, worked out from its YAML file by the README's rules: ``none``
    has lam 0, no point but dropout has keep_prob < 1, l1_ratio is 0 for l2 and 1 for l1."""
    raw = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    trainings = {}
    for depth in raw["search"]["depths"]:
        for seed in raw["search"]["seeds"]:
            for penalty, grid in raw["search"]["penalties"].items():
                if penalty == "none":
                    lams = [0.0]
                else:
                    lo, hi, n = grid["lam"]["logspace"]
                    lams = list(np.logspace(lo, hi, n))
                for lam in lams:
                    ratio = {"none": 0.0, "l2": 0.0, "l1": 1.0}[penalty]
                    trainings[(penalty, depth, seed, round(lam, 12))] = {
                        "hidden_layer_sizes": (raw["model"]["width"],) * depth,
                        "activation": raw["model"]["activation"],
                        "penalty": penalty,
                        "lam": lam,
                        "l1_ratio": ratio,
                        "keep_prob": 1.0,
                        "optimizer": raw["model"]["optimizer"],
                        "learning_rate": raw["model"]["learning_rate"],
                        "epochs": raw["model"]["epochs"],
                        "log_every": raw["model"]["log_every"],
                        "random_state": seed,
                    }
    return trainings, raw


@pytest.mark.integration
def test_quickstart_end_to_end_with_the_embedded_defaults(tmp_path):
    """The README's main command in an empty folder: local Ray, MLflow in ./mlflow.db."""
    result = cli("run", "configs/quickstart.yaml", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parents, children = sweep_runs(uri, experiment="regsweep")
    trainings, raw = quickstart_trainings()
    assert len(parents) == 1
    assert parents[0].info.status == "FINISHED"
    assert len(children) == len(trainings)
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    assert all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.tags["regsweep.key"] for c in children}) == len(trainings)
    # one BLAS thread per 1-CPU trial (without the limit, OpenBLAS runs one per core)
    assert {c.data.tags["regsweep.threads"] for c in children} == {"1"}

    # every training's params and step history equal regcore trained directly, with
    # settings and data taken from the YAML file
    names = readme_child_params()
    dataset = raw["dataset"]
    data = load_dataset(
        dataset["name"],
        n_samples=dataset["n_samples"],
        noise=dataset["noise"],
        seed=dataset["seed"],
        **dataset["split"],
    )
    mlflow_client = client(uri)
    seen = set()
    for run in children:
        params = run.data.params
        assert sorted(params) == sorted(names)
        key = (params["penalty"], int(params["depth"]), int(params["seed"]))
        key += (round(float(params["lam"]), 12),)
        expected = trainings[key]
        seen.add(key)
        assert params["width"] == str(raw["model"]["width"]) and params["dataset"] == "moons"
        assert float(params["l1_ratio"]) == expected["l1_ratio"]
        assert float(params["keep_prob"]) == 1.0 and params["batch_size"] == "None"
        assert params["activation"] == expected["activation"]
        assert float(params["learning_rate"]) == expected["learning_rate"]
        clf = RegularizedClassifier(**expected).fit(
            data.X_train, data.y_train, data.X_dev, data.y_dev
        )
        logged = _histories(mlflow_client, run)
        history = clf.history_.set_index("epoch")
        assert set(logged) == set(history.columns)
        for name, series in logged.items():
            steps, values = zip(*series, strict=True)
            assert list(steps) == history.index.tolist()
            np.testing.assert_allclose(values, history[name].to_numpy(), rtol=1e-9, atol=1e-12)
        assert run.data.metrics["test_error"] == pytest.approx(
            1 - clf.score(data.X_test, data.y_test)
        )
        assert [a.path for a in mlflow_client.list_artifacts(run.info.run_id)] == ["weights.npz"]
    assert seen == set(trainings)

    # the report was written and logged on the parent run
    assert (tmp_path / "reports" / "quickstart" / "report.html").exists()
    report_files = {a.path for a in mlflow_client.list_artifacts(parents[0].info.run_id, "report")}
    assert "report/report.html" in report_files and "report/curves.csv" in report_files
    assert f"sweep quickstart: {len(trainings)} points" in result.stdout
    assert "lowest mean dev_cost per curve" in result.stdout
    # every curve (4: l2 and l1 at two depths) refit at lambda.min and lambda.1se: once where
    # the two rules choose the same strength
    summary = json.loads((tmp_path / "reports" / "quickstart" / "summary.json").read_text())
    curves = {c["name"]: c for c in summary["curves"]}
    assert len(curves) == 2 * len(raw["search"]["depths"])
    _, refits = sweep_runs(uri, experiment="regsweep", kind="refit")
    assert {r.info.status for r in refits} == {"FINISHED"}
    rules = {}
    for refit in refits:
        lam = float(refit.data.params["lam"])
        for rule in refit.data.tags["regsweep.rule"].split(","):
            rules[refit.data.tags["regsweep.curve"], rule] = lam
    expected = {}
    for name, curve in curves.items():
        expected[name, "lambda.min"] = curve["best_strength"]
        expected[name, "lambda.1se"] = curve["strength_1se"]
    assert rules == pytest.approx(expected, rel=1e-12)
    assert len(refits) == sum(len({c["best_strength"], c["strength_1se"]}) for c in curves.values())


@pytest.mark.integration
def test_resume_after_the_driver_is_killed(tmp_path, ray_head):
    config = write_config(
        tmp_path / "resume.yaml",
        {
            "name": "resume",
            "model": {"epochs": 2000},
            "search": {"seeds": [0, 1, 2]},
            "execution": {"pack_size": 1, "max_concurrent_trials": 1},
        },
    )
    uri, common = run_options(tmp_path, ray_head.address)
    common.append("--no-report")
    log = tmp_path / "first.log"
    driver = cli_background("run", str(config), *common, cwd=tmp_path, log=log)
    wait_for_text(log, "parent run", driver)  # the driver has set up the store: safe to read
    wait_for_finished_runs(uri, 4, driver, log)
    kill_group(driver, signal.SIGKILL)
    _, children = sweep_runs(uri)
    before = {c.data.tags["regsweep.key"]: c for c in children if c.info.status == "FINISHED"}
    total = len(expand(read_config(str(config))[0]))
    assert 4 <= len(before) < total

    # the killed driver's lease is fresh: --force takes it over (docs/faults.md)
    result = cli("run", str(config), "--resume", "--force", *common, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"resuming: {len(before)} points done before, {total - len(before)} to train"
        in result.stdout
    )
    parents, children = sweep_runs(uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    keys = [c.data.tags["regsweep.key"] for c in children]
    assert len(keys) == len(set(keys)) == total  # exactly one child per point
    assert all(c.info.status == "FINISHED" for c in children)
    after = {c.data.tags["regsweep.key"]: c for c in children}
    for key, run in before.items():  # not trained again, not rewritten
        assert after[key].info.run_id == run.info.run_id
        assert after[key].info.end_time == run.info.end_time


@pytest.mark.integration
def test_a_diverging_point_fails_alone(tmp_path, ray_head):
    # lr * lam / m = 0.5 * 1e4 / 72 >> 2: gradient descent on that point blows up
    config = write_config(
        tmp_path / "div.yaml",
        {
            "name": "diverging",
            "search": {"depths": [2], "seeds": [0], "penalties": {"l2": {"lam": [0.01, 1.0, 1e4]}}},
        },
    )
    uri, options = run_options(tmp_path, ray_head.address)
    result = cli("run", str(config), *options, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 diverged" in result.stdout
    parents, children = sweep_runs(uri)
    status = {float(c.data.params["lam"]): c for c in children}
    assert status[1e4].info.status == "FAILED" and status[1e4].data.tags["diverged"] == "true"
    assert status[0.01].info.status == status[1.0].info.status == "FINISHED"
    assert "diverged" not in status[0.01].data.tags
    assert parents[0].info.status == "FINISHED"
    # the report marks the diverged point and never chooses it
    curves = pd.read_csv(tmp_path / "reports" / "diverging" / "curves.csv")
    l2 = curves[curves["penalty"] == "l2"].set_index("strength")
    assert sorted(l2.index) == pytest.approx([0.01, 1.0, 1e4])
    assert list(l2["diverged"]) == [0, 0, 1] and l2.loc[1e4, "n"] == 0
    summary = json.loads((tmp_path / "reports" / "diverging" / "summary.json").read_text())
    assert {c["best_strength"] for c in summary["curves"] if c["penalty"] == "l2"} <= {0.01, 1.0}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [
        (signal.SIGINT, 130, "interrupted: writing"),
        (signal.SIGTERM, 143, "interrupted by SIGTERM: writing"),
        (signal.SIGHUP, 129, "interrupted by SIGHUP: writing"),
    ],
    ids=["ctrl-c", "sigterm", "sighup"],
)
def test_a_stop_signal_ends_cleanly_and_resume_finishes(tmp_path, ray_head, sig, code, said):
    """Ctrl-C, `timeout`/systemd/docker stop (SIGTERM) and a closed terminal (SIGHUP) alike:
    what finished is written, the parent run ends KILLED, --resume completes the sweep."""
    config = write_config(
        tmp_path / "stop.yaml",
        {
            "name": "stop",
            "model": {"epochs": 2000},
            "execution": {"pack_size": 1, "max_concurrent_trials": 1},
        },
    )
    uri, common = run_options(tmp_path, ray_head.address)
    common.append("--no-report")
    log = tmp_path / "driver.log"
    driver = cli_background("run", str(config), *common, cwd=tmp_path, log=log)
    wait_for_text(log, "parent run", driver)
    wait_for_finished_runs(uri, 1, driver, log)
    os.kill(driver.pid, sig)
    assert driver.wait(timeout=300) == code, log.read_text()
    text = log.read_text()
    assert said in text and "resume with --resume" in text
    assert "Traceback" not in text and "Tuner.restore" not in text
    parents, children = sweep_runs(uri)
    assert parents[0].info.status == "KILLED"
    finished = {c.data.tags["regsweep.key"] for c in children if c.info.status == "FINISHED"}
    total = len(expand(read_config(str(config))[0]))
    assert 1 <= len(finished) < total

    result = cli("run", str(config), "--resume", *common, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    parents, children = sweep_runs(uri)
    assert parents[0].info.status == "FINISHED"
    keys = [c.data.tags["regsweep.key"] for c in children]
    assert len(keys) == len(set(keys)) == total


@pytest.mark.integration
def test_a_trial_no_node_can_run_is_refused_before_anything_is_written(tmp_path, ray_head):
    config = write_config(tmp_path / "big.yaml")
    for where, options in (
        ("this machine", []),  # a local Ray: refused before it starts
        ("the cluster (1 node, 2 CPUs)", ["--address", ray_head.address]),
    ):
        result = cli(
            "run",
            str(config),
            "--set",
            "execution.cpus_per_trial=64",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            *options,
            cwd=tmp_path,
            timeout=300,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"largest node of {where}" in result.stderr and "got 64.0" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml"]


@pytest.mark.integration
def test_a_sweep_without_strengths_has_no_report(tmp_path, ray_head):
    config = write_config(
        tmp_path / "plain.yaml",
        {
            "name": "plain",
            "search": {"penalties": {"none": {}, "l2": None, "l1": None}},
        },
    )
    _, options = run_options(tmp_path, ray_head.address)
    result = cli("run", str(config), *options, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no report: no finished runs with a regularization strength to plot" in result.stdout
    # the per-curve table still lists the reference runs: one row per depth
    lines = result.stdout.splitlines()
    header = next(line.split() for line in lines if line.split()[:1] == ["penalty"])
    rows = [
        dict(zip(header, line.split(), strict=True))
        for line in lines
        if line.split()[:1] == ["none"]
    ]
    assert sorted(int(row["depth"]) for row in rows) == SMALL["search"]["depths"]
    assert not (tmp_path / "reports").exists()


@pytest.mark.integration
def test_tracking_server_gone_for_good(tmp_path, ray_head):
    server = MlflowServer(tmp_path / "server-home")
    config = write_config(tmp_path / "c.yaml", {"name": "lost", "model": {"epochs": 3000}})
    log = tmp_path / "driver.log"
    _, options = run_options(tmp_path, ray_head.address, server.uri)
    driver = cli_background(
        "run",
        str(config),
        *options,
        cwd=tmp_path,
        log=log,
        env={"REGSWEEP_WRITER_DRAIN_SECONDS": "5"},
    )
    try:
        wait_for_text(log, "parent run", driver)
    finally:
        server.stop()  # and it does not come back
    assert driver.wait(timeout=600) == 1, log.read_text()
    text = log.read_text()
    assert "results could not be written to MLflow" in text
    assert "error: cannot reach MLflow to close sweep 'lost'" in text
    assert "--resume` continues it" in text and "Traceback" not in text
