"""Faults at the edges, on real parts: two sweeps at once on one store, two drivers on one sweep,
trainings that diverge, a full disk, a pack that does not fit in memory."""

import json
import re
import subprocess
import time

import pandas as pd
import pytest

from tests.helpers import (
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

pytestmark = pytest.mark.integration

QUICK = ["--set", "model.epochs=300", "--set", "model.log_every=100", "--no-report", "--no-refit"]


def _each_point_once(children, wanted):
    keys = [c.data.tags["regsweep.key"] for c in children]
    assert len(keys) == len(set(keys)) == wanted, sorted(keys)
    assert {c.info.status for c in children} == {"FINISHED"}


def _by_parent(children):
    grouped = {}
    for child in children:
        grouped.setdefault(child.data.tags["mlflow.parentRunId"], []).append(child)
    return grouped


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_two_sweeps_at_once_on_one_store(tmp_path, ray_head, store):
    """Two ``sweeps run quickstart`` started together in a new folder: one new SQLite file (or
    one tracking server) and one new experiment; both finish, no traceback, every point of each
    exactly once."""
    server = MlflowServer(tmp_path / "server") if store == "server" else None
    uri = server.uri if server else "sqlite:///mlflow.db"
    env = {"MLFLOW_TRACKING_URI": uri}
    try:
        logs = [tmp_path / f"driver{i}.log" for i in range(2)]
        drivers = [
            cli_background(
                "run",
                "quickstart",
                "--address",
                ray_head.address,
                *QUICK,
                cwd=tmp_path,
                log=log,
                env=env,
            )
            for log in logs
        ]
        codes = [d.wait(timeout=600) for d in drivers]
        outputs = [log.read_text() for log in logs]
        assert codes == [0, 0], outputs
        assert not any("Traceback" in text for text in outputs), outputs
        parents, children = sweep_runs(
            server.uri if server else f"sqlite:///{tmp_path / 'mlflow.db'}", "regsweep"
        )
        assert len(parents) == 2 and len({p.info.experiment_id for p in parents}) == 1
        for parent in parents:
            _each_point_once(_by_parent(children)[parent.info.run_id], 34)
        # each sweep had a Ray Tune folder of its own
        assert len({p.info.run_id[:12] for p in parents}) == 2
    finally:
        if server:
            server.stop()


def _lease(uri, name):
    parents, _ = sweep_runs(uri)
    (parent,) = [p for p in parents if p.data.tags["regsweep.sweep"] == name]
    return parent, json.loads(parent.data.tags.get("regsweep.lease", "null") or "null")


def _lease_config(folder, name):
    from sweeps.config.points import expand
    from sweeps.config.reading import read_config

    config = write_config(
        folder / f"{name}.yaml",
        {"name": name, "model": {"epochs": 3000, "log_every": 500}, "execution": {"pack_size": 2}},
    )
    return config, len(expand(read_config(str(config))[0]))


def _sweep(uri, name):
    parents, children = sweep_runs(uri)
    (parent,) = [p for p in parents if p.data.tags["regsweep.sweep"] == name]
    return parent, _by_parent(children).get(parent.info.run_id, [])


def test_resume_while_the_driver_runs_is_refused_and_the_driver_finishes(tmp_path, ray_head):
    config, points = _lease_config(tmp_path, "running")
    uri, options = run_options(tmp_path, ray_head.address)
    log = tmp_path / "first.log"
    first = cli_background("run", str(config), *options, "--no-report", cwd=tmp_path, log=log)
    try:
        wait_for_text(log, "[running] ", first)
        refused = cli("run", str(config), *options, "--resume", cwd=tmp_path)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert re.match(
            rf"error: --resume: sweep 'running' is running: its driver \(host .+, pid "
            rf"{first.pid}\) renewed its lease \d+s ago; .* --resume --force",
            line,
        ), line
        assert first.wait(timeout=600) == 0, log.read_text()
    finally:
        kill_group(first)
    parent, children = _sweep(uri, "running")
    assert parent.info.status == "FINISHED"
    assert "regsweep.lease" not in parent.data.tags  # released at the end
    _each_point_once(children, points)


def test_a_killed_drivers_lease_is_free_here_at_once_and_elsewhere_once_it_expires(
    tmp_path, ray_head
):
    """A driver killed on this machine (its process gone) holds nothing: --resume goes on at
    once. One on another machine that stopped refreshing holds the sweep until its lease
    expires (played here by moving the killed driver's lease to another host name)."""
    config, points = _lease_config(tmp_path, "killed")
    uri, options = run_options(tmp_path, ray_head.address)
    lease = 15  # long enough for a start on a busy machine to fall within it
    env = {"REGSWEEP_LEASE_SECONDS": str(lease)}
    for where in ("here", "elsewhere"):
        log = tmp_path / f"{where}.log"
        driver = cli_background(
            "run", str(config), *options, "--no-report", cwd=tmp_path, log=log, env=env
        )
        wait_for_text(log, "[killed] ", driver)
        time.sleep(2)
        kill_group(driver)  # SIGKILL: no clean-up, the lease stays as it was
        (parent,) = [p for p in sweep_runs(uri)[0] if p.info.status == "RUNNING"]
        held = json.loads(parent.data.tags["regsweep.lease"])
        assert held["pid"] == driver.pid
        if where == "elsewhere":
            moved = json.dumps({**held, "host": "another-machine"})
            client(uri).set_tag(parent.info.run_id, "regsweep.lease", moved)
            early = cli("run", str(config), *options, "--resume", cwd=tmp_path, env=env)
            assert early.returncode == 2, early.stdout + early.stderr
            assert "is running: its driver (host another-machine" in early.stderr
            time.sleep(max(0.0, held["at"] + lease + 1 - time.time()))
        resumed = cli(
            "run", str(config), *options, "--resume", "--no-report", cwd=tmp_path, env=env
        )
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "resuming:" in resumed.stdout
        parent, children = _sweep(uri, "killed")
        assert parent.info.status == "FINISHED"
        assert "regsweep.lease" not in parent.data.tags
        _each_point_once(children, points)
        for run in children:  # the next round starts the sweep again
            client(uri).delete_run(run.info.run_id)
        client(uri).delete_run(parent.info.run_id)


def test_a_strength_where_a_fold_diverged_is_marked_and_never_chosen(tmp_path, ray_head):
    """Two folds of 20 and 21 training rows: at lam = 39 plain gradient descent shrinks the
    weights by lr lam / m each epoch, 1.95 of them on the 20 rows and 1.86 on the 21: with the
    data term's push the first oscillates out of bounds (it diverges), the second settles (found
    by scanning lam: 38.5 to 39.5 split the folds so)."""
    config = write_config(
        tmp_path / "div.yaml",
        {
            "name": "diverging",
            "dataset": {"n_samples": 41, "split": {"kfold": 2, "test": 0.0}},
            "model": {
                "activation": "relu",
                "learning_rate": 1.0,
                "epochs": 16000,
                "log_every": 4000,
            },
            "search": {
                "depths": [1],
                "seeds": [0],
                "penalties": {"none": None, "l1": None, "l2": {"lam": [0.01, 1.0, 39.0]}},
            },
        },
    )
    uri, options = run_options(tmp_path, ray_head.address)
    result = cli("run", str(config), *options, "--no-refit", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    _, children = sweep_runs(uri)
    at = [c for c in children if float(c.data.params["lam"]) == 39.0]
    sizes = {int(c.data.params["n_train"]): c for c in at}
    assert sizes[20].data.tags.get("diverged") == "true" and sizes[20].info.status == "FAILED"
    assert sizes[21].info.status == "FINISHED"
    curves = pd.read_csv(tmp_path / "reports" / "diverging" / "curves.csv").set_index("strength")
    assert (curves.loc[39.0, "diverged"], curves.loc[39.0, "trainings"]) == (1, 2)
    summary = json.loads((tmp_path / "reports" / "diverging" / "summary.json").read_text())
    (curve,) = summary["curves"]
    assert 39.0 not in (curve["best_strength"], curve["strength_1se"])
    assert curve["diverged"] == [{"strength": 39.0, "diverged": 1, "trainings": 2}]
    html = (tmp_path / "reports" / "diverging" / "report.html").read_text()
    assert "diverged at 39 (1 of 2 trainings): never chosen" in html


def test_every_training_diverging_exits_1(tmp_path, ray_head):
    config = write_config(
        tmp_path / "all.yaml",
        {
            "name": "all-diverge",
            "model": {"learning_rate": 0.5},
            "search": {
                "depths": [1],
                "seeds": [0, 1],
                "penalties": {"none": None, "l1": None, "l2": {"lam": [1e4, 3e4]}},
            },
        },
    )
    uri, options = run_options(tmp_path, ray_head.address)
    result = cli("run", str(config), *options, "--register", "never", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]  # after the progress lines
    assert line == (
        "error: every training of sweep 'all-diverge' diverged (4 of 4: the cost stopped being "
        "finite); the usual cause is too large a learning rate (model.learning_rate = 0.5)"
    )
    assert not client(uri).search_registered_models()  # nothing registered
    summary = json.loads((tmp_path / "reports" / "all-diverge" / "summary.json").read_text())
    assert summary["curves"][0]["best_strength"] is None
    # comparing it names no best strength rather than one where the trainings diverged
    compared = cli("compare", "all-diverge", "--tracking-uri", uri, "--out", "cmp", cwd=tmp_path)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    best = pd.read_csv(tmp_path / "cmp" / "best.csv")
    assert best["best strength"].isna().all() and "diverged" in best["verdict"].iloc[0]


def test_a_diverging_refit_is_failed_and_not_registered(tmp_path):
    """The refit at a chosen strength diverges (its own run, FAILED, no model): --register
    registers nothing and says why."""
    from sweeps.analysis.curves import CurveSummary
    from sweeps.config.data import load_data
    from sweeps.config.reading import config_text, read_config
    from sweeps.errors import SweepError
    from sweeps.execution import refit
    from sweeps.store import tracking

    config, _ = read_config(str(write_config(tmp_path / "r.yaml", {"name": "refit"})))
    config, data = load_data(config)
    store = tracking.client_for(f"sqlite:///{tmp_path / 'mlflow.db'}")
    sweep = tracking.start_sweep(store, config, config_text(config), 1, data=data)
    nan = float("nan")
    summary = CurveSummary(
        "l2 depth=1 width=8", "l2", 1, 8, 0.0, "dev_cost", 1e4, 1e4, nan, 0.3, 0.3, 0.3, 0.1,
        0.1, 0.0, None, None, 2, 1, 3, [], [], [], "inside",
    )  # fmt: skip
    refits = refit.plan(config, [summary])
    refit.fit(config, data, refits)
    refit.log(store, sweep, config, data, refits)
    (made,) = refits
    assert made.diverged and made.model_uri is None
    run = store.get_run(made.run_id)
    assert run.info.status == "FAILED" and run.data.tags["diverged"] == "true"
    with pytest.raises(SweepError, match=r"--register: nothing registered as 'x': the refit of"):
        refit.register(store, "x", refits)
    assert not store.search_registered_models()


def _tmpfs(folder, megabytes):
    folder.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)], check=True
    )
    return folder


def test_a_full_disk_stops_the_sweep_in_seconds_and_resume_completes(tmp_path, ray_head):
    """The tracking server goes away, results wait in memory (1 MB) and then in a spill folder
    on a 3 MB filesystem: when it is full the sweep ends within 30 s with one line naming the
    folder; with the server back and room, --resume trains what is missing, each point once."""
    spill = _tmpfs(tmp_path / "small", 3)
    server = MlflowServer(tmp_path / "server")
    config = write_config(
        tmp_path / "full.yaml",
        {
            "name": "full",
            "model": {"width": 300, "epochs": 200, "log_every": 10},
            "search": {
                "depths": [2],
                "seeds": [0, 1, 2, 3],
                "penalties": {
                    "none": None,
                    "l1": None,
                    "l2": {"lam": [0.001, 0.01, 0.1, 1.0, 10.0]},
                },
            },
            "execution": {"pack_size": 1},
        },
    )
    options = ["--address", ray_head.address, "--tracking-uri", server.uri, "--no-report"]
    env = {"REGSWEEP_WRITER_MEMORY_MB": "1", "REGSWEEP_SPILL_DIR": str(spill)}
    log = tmp_path / "driver.log"
    try:
        driver = cli_background("run", str(config), *options, cwd=tmp_path, log=log, env=env)
        wait_for_text(log, "[full] ", driver)
        server.stop()
        wait_for_text(log, "the disk is full", driver, timeout=300)
        full_at = time.monotonic()
        code = driver.wait(timeout=60)
        assert time.monotonic() - full_at < 30
        assert code == 1, log.read_text()
        errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"the disk is full: {spill}" in errors[0], log.read_text()
        assert "--resume" in errors[0] and "Traceback" not in log.read_text()
    finally:
        kill_group(driver)
        subprocess.run(["umount", str(spill)], check=False)
    server.start()
    try:
        resumed = cli("run", str(config), *options, "--resume", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        parents, children = sweep_runs(server.uri)
        (parent,) = parents
        assert parent.info.status == "FINISHED"
        _each_point_once(children, 20)
    finally:
        server.stop()


def test_a_pack_that_does_not_fit_in_memory_trains_in_halves(tmp_path, ray_head):
    """A trial's models may hold 60 MB (``execution.trial_memory_mb``): a pack of 8 wide
    networks (about 25 MB each while they train, by the planner's estimate) trains as packs of
    2, each reported as it finishes; every point ends FINISHED, once."""
    config = write_config(
        tmp_path / "oom.yaml",
        {
            "name": "oom",
            "dataset": {"n_samples": 400},
            "model": {"width": 512, "epochs": 20, "log_every": 10},
            "search": {
                "depths": [2],
                "seeds": [0, 1],
                "penalties": {"none": None, "l1": None, "l2": {"lam": [0.001, 0.01, 0.1, 1.0]}},
            },
            "execution": {"pack_size": 8, "trial_memory_mb": 60},
        },
    )
    uri, options = run_options(tmp_path, ray_head.address)
    result = cli("run", str(config), *options, "--no-report", "--no-refit", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    _, children = sweep_runs(uri)
    _each_point_once(children, 8)
    assert sorted(int(c.data.tags["regsweep.pack"]) for c in children) == [2] * 8


def test_force_takes_over_a_running_driver_which_stops(tmp_path, ray_head):
    """``--resume --force`` while the first driver still runs: the first stops within a lease
    refresh (exit 1, one line naming the taker), writes nothing more and leaves the parent run
    alone; the taker finishes every point once and closes the sweep."""
    config, points = _lease_config(tmp_path, "taken")
    uri, options = run_options(tmp_path, ray_head.address)
    env = {"REGSWEEP_LEASE_SECONDS": "6"}
    log = tmp_path / "first.log"
    first = cli_background(
        "run", str(config), *options, "--no-report", cwd=tmp_path, log=log, env=env
    )
    try:
        wait_for_text(log, "[taken] ", first)
        forced = cli(
            "run", str(config), *options, "--resume", "--force", "--no-report",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert first.wait(timeout=120) == 1, log.read_text()
    finally:
        kill_group(first)
    errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "took this sweep over with --resume --force" in errors[0]
    assert "pid " in errors[0] and "Traceback" not in log.read_text()
    parent, children = _sweep(uri, "taken")
    assert parent.info.status == "FINISHED"
    _each_point_once(children, points)
