"""Cluster mode: the compose stack's topology run as processes on loopback (no Docker engine here)
with the commands, entrypoints and environments taken from docker-compose.yml (tests/compose.py;
tests/test_compose.py checks the file itself): PostgreSQL, the MLflow service on it (basic auth
on), a Ray head and a second Ray node, and the sweeps driver. Faults are injected for real: a
worker node killed, the driver killed and resumed from another folder, the tracking server
stopped and restarted mid-sweep."""

import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.compose import env_for_tests, mlflow_service, service_argv, service_environment
from tests.helpers import (
    ROOT,
    VENV_BIN,
    MlflowServer,
    PostgresServer,
    RayNode,
    cli,
    cli_background,
    free_port,
    kill_group,
    wait_for_text,
    write_config,
)

pytestmark = pytest.mark.integration


class Cluster:
    def __init__(self, folder: Path):
        self.folder = folder
        # the stack's database: a PostgreSQL server of the test's own, with a password
        self.postgres = PostgresServer(password="cluster:p@ss/word")
        # the .env: .env.example filled in; the session's Ray token; the driver logs in as admin
        admin_password = "cluster-admin-password"
        self.env = env_for_tests(
            RAY_HEAD_CPUS="2",
            RAY_WORKER_CPUS="2",
            RAY_AUTH_TOKEN=os.environ["RAY_AUTH_TOKEN"],
            POSTGRES_USER=self.postgres.user,
            POSTGRES_PASSWORD=self.postgres.password,
            POSTGRES_DB=self.postgres.database,
            MLFLOW_ADMIN_PASSWORD=admin_password,
            MLFLOW_TRACKING_PASSWORD=admin_password,
        )
        self.auth = (self.env["MLFLOW_TRACKING_USERNAME"], admin_password)
        self.mlflow = mlflow_service(folder / "mlflow", self.env, self.postgres)
        self.gcs_port = free_port()
        self.head = RayNode(
            folder / "head.log",
            head=True,
            port=self.gcs_port,
            command=service_argv("ray-head", self.env, {"6379": str(self.gcs_port)}),
        )
        (folder / "worker-home").mkdir()  # the worker's working folder: nothing in it
        self.worker = RayNode(
            folder / "worker.log",
            head=False,
            command=service_argv(
                "ray-worker", self.env, {"ray-head:6379": f"127.0.0.1:{self.gcs_port}"}
            ),
            cwd=folder / "worker-home",
        )
        self.driver_env = service_environment(
            "sweeps",
            self.env,
            {
                "RAY_ADDRESS": f"127.0.0.1:{self.gcs_port}",
                "MLFLOW_TRACKING_URI": self.mlflow.uri,
                "REGSWEEP_STORAGE_PATH": str(folder / "ray_results"),
            },
        )

    def stop(self):
        for node in (self.worker, self.head):
            node.stop(signal.SIGKILL)
        self.mlflow.stop()
        self.postgres.stop()

    def rest(self, endpoint: str, **params) -> dict:
        response = requests.get(
            f"{self.mlflow.uri}/api/2.0/mlflow/{endpoint}",
            params=params,
            auth=self.auth,
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def runs(self, experiment: str = "tests") -> tuple[list[dict], list[dict]]:
        """(parents, children) read over the server's REST API."""
        found = requests.get(
            f"{self.mlflow.uri}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": experiment},
            auth=self.auth,
            timeout=30,
        )
        if found.status_code != 200:
            return [], []
        experiment_id = found.json()["experiment"]["experiment_id"]
        runs, token = [], None
        while True:
            body = {"experiment_ids": [experiment_id], "max_results": 1000}
            if token:
                body["page_token"] = token
            page = requests.post(
                f"{self.mlflow.uri}/api/2.0/mlflow/runs/search",
                json=body,
                auth=self.auth,
                timeout=30,
            ).json()
            runs += page.get("runs", [])
            token = page.get("next_page_token")
            if not token:
                break
        tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
        parents = [r for r, t in zip(runs, tags, strict=True) if t.get("regsweep.kind") == "sweep"]
        children = [  # the trainings (a finished sweep also has refit runs)
            r for r, t in zip(runs, tags, strict=True) if t.get("regsweep.kind") == "point"
        ]
        return parents, children


def tag(run: dict, key: str) -> str | None:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}.get(key)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    built = Cluster(folder)
    yield built
    built.stop()


def cluster_config(folder: Path, name: str, **extra) -> Path:
    return write_config(
        folder / f"{name}.yaml",
        {
            "name": name,
            "model": {"width": 32, "epochs": 6000, "log_every": 500},
            "search": {
                "depths": [1, 2],
                "seeds": [0, 1],
                "penalties": {"l1": None, "l2": {"lam": [0.001, 0.01, 0.1, 1.0, 10.0]}},
            },
            # 8 trials of 3 points on 4 one-CPU slots: the head's 2 CPUs cannot take all four
            "execution": {"pack_size": 3, "max_failures": 3},
            **extra,
        },
    )


def sweep_and_children(cluster: Cluster, sweep: str) -> tuple[dict, list[dict]]:
    """The sweep's parent run (which must exist) and its child runs."""
    parents, children = cluster.runs()
    parent = next(p for p in parents if tag(p, "regsweep.sweep") == sweep)
    run_id = parent["info"]["run_id"]
    return parent, [c for c in children if tag(c, "mlflow.parentRunId") == run_id]


def sweep_children(cluster: Cluster, sweep: str) -> list[dict]:
    """The sweep's child runs; none while its parent run does not exist yet."""
    parents, children = cluster.runs()
    ids = {p["info"]["run_id"] for p in parents if tag(p, "regsweep.sweep") == sweep}
    return [c for c in children if tag(c, "mlflow.parentRunId") in ids]


def wait_for_children(
    cluster: Cluster, sweep: str, count: int, driver, timeout: float = 300
) -> None:
    """Wait until ``count`` child runs of ``sweep`` are FINISHED while its driver still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = [c for c in sweep_children(cluster, sweep) if c["info"]["status"] == "FINISHED"]
        if len(finished) >= count:
            assert driver.poll() is None, "the sweep ended before the fault could be injected"
            return
        time.sleep(0.3)
    raise TimeoutError(f"fewer than {count} finished runs of {sweep} after {timeout}s")


def exactly_one_finished_child_per_point(children: list[dict], points: int) -> None:
    keys = [tag(c, "regsweep.key") for c in children]
    assert len(keys) == len(set(keys)) == points, sorted(keys)
    assert {c["info"]["status"] for c in children} == {"FINISHED"}


def test_sweep_on_the_cluster_uses_both_nodes(cluster, tmp_path):
    config = cluster_config(tmp_path, "two-nodes")
    result = cli("run", str(config), cwd=tmp_path, env=cluster.driver_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 nodes, 4 CPUs" in result.stdout
    parent, mine = sweep_and_children(cluster, "two-nodes")
    exactly_one_finished_child_per_point(mine, 24)
    nodes = {tag(c, "regsweep.node").split("/")[1] for c in mine}
    assert len(nodes) == 2, nodes  # trials ran on the head and on the worker
    # the report went to the server's proxied artifact store
    artifacts = cluster.rest("artifacts/list", run_id=parent["info"]["run_id"], path="report")
    assert any(f["path"] == "report/report.html" for f in artifacts["files"])
    assert list((cluster.folder / "mlflow" / "artifacts").rglob("weights.npz"))


def test_a_csv_sweep_needs_no_copy_of_the_file_on_the_nodes(cluster, tmp_path):
    """The driver reads the user's file once and ships the rows through Ray's object store: the
    worker's working folder has no copy, and the file is gone once the sweep has started, yet
    every training of both nodes finishes (and the report is drawn from the driver's rows)."""
    data = tmp_path / "mine" / "table.csv"
    data.parent.mkdir()
    shutil.copy(ROOT / "configs" / "data" / "orchard.csv", data)
    config = cluster_config(
        tmp_path / "mine",
        "csv-nodes",
        dataset={
            "name": "file",
            "path": "table.csv",
            "target": "variety",
            "n_samples": None,
            "noise": None,
            "split": {"kfold": 3, "test": 0.2},
        },
        model={"width": 8, "epochs": 1500, "log_every": 500},
        search={
            "depths": [1],
            "seeds": [0],
            "penalties": {"none": None, "l1": None, "l2": {"lam": [0.01, 0.1, 1.0, 10.0]}},
        },
        execution={"pack_size": 2, "max_failures": 0},
    )
    log = tmp_path / "driver.log"
    driver = cli_background("run", str(config), cwd=tmp_path, log=log, env=cluster.driver_env)
    try:
        wait_for_text(log, "sweep csv-nodes: ", driver)  # read, checked and digested
        data.unlink()
        assert driver.wait(timeout=600) == 0, log.read_text()
    finally:
        kill_group(driver)
    assert "2 nodes, 4 CPUs" in log.read_text()
    _, mine = sweep_and_children(cluster, "csv-nodes")
    exactly_one_finished_child_per_point(mine, 4 * 3)
    nodes = {tag(c, "regsweep.node").split("/")[1] for c in mine}
    assert len(nodes) == 2, nodes  # trials ran on the head and on the worker
    assert not list((cluster.folder / "worker-home").iterdir())


def test_tracking_server_restart_mid_sweep_loses_and_duplicates_nothing(cluster, tmp_path):
    config = cluster_config(tmp_path, "server-restart")
    log = tmp_path / "driver.log"
    driver = cli_background(
        "run", str(config), "--no-report", cwd=tmp_path, log=log, env=cluster.driver_env
    )
    wait_for_text(log, "parent run", driver)
    wait_for_children(cluster, "server-restart", 1, driver)  # some written, the sweep going on
    cluster.mlflow.stop()
    time.sleep(12)  # results keep arriving while the server is down
    cluster.mlflow.start()
    assert driver.wait(timeout=600) == 0, log.read_text()
    text = log.read_text()
    retries = re.search(r"(\d+) MLflow retries", text)
    assert retries and int(retries.group(1)) >= 1, text
    _, mine = sweep_and_children(cluster, "server-restart")
    exactly_one_finished_child_per_point(mine, 24)
    for run in mine:  # every metric logged once per logged epoch: 0, 500, ..., 6000
        history = cluster.rest(
            "metrics/get-history", run_id=run["info"]["run_id"], metric_key="dev_cost"
        )
        assert sorted(m["step"] for m in history["metrics"]) == list(range(0, 6001, 500))


def test_driver_killed_then_resumed_from_another_folder(cluster, tmp_path):
    config = cluster_config(tmp_path, "resume-elsewhere")
    first = tmp_path / "machine-a"
    first.mkdir()
    log = first / "driver.log"
    driver = cli_background(
        "run", str(config), "--no-report", cwd=first, log=log, env=cluster.driver_env
    )
    wait_for_text(log, "parent run", driver)
    wait_for_children(cluster, "resume-elsewhere", 5, driver)
    kill_group(driver, signal.SIGKILL)
    _, children = sweep_and_children(cluster, "resume-elsewhere")
    before = {tag(c, "regsweep.key"): c for c in children if c["info"]["status"] == "FINISHED"}
    assert 1 <= len(before) < 24

    second = tmp_path / "machine-b"  # nothing local is shared with the first driver
    second.mkdir()
    # the killed driver's lease is fresh: --force takes it over (docs/faults.md)
    result = cli(
        "run", str(config), "--resume", "--force", "--no-report", cwd=second, env=cluster.driver_env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resuming: {len(before)} points done before" in result.stdout
    _, mine = sweep_and_children(cluster, "resume-elsewhere")
    exactly_one_finished_child_per_point(mine, 24)
    after = {tag(c, "regsweep.key"): c for c in mine}
    for key, run in before.items():
        assert after[key]["info"]["run_id"] == run["info"]["run_id"]
        assert after[key]["info"]["end_time"] == run["info"]["end_time"]


def test_a_lost_worker_node_is_survived(cluster, tmp_path):
    """Runs last in this module: the worker node does not come back."""
    # 12 trials of about 25 s on 4 slots: when the worker's first results reach the server,
    # more trials are waiting, and the worker starts its next ones (a few seconds for a fresh
    # actor); killed a little later, it dies in the middle of training them
    config = cluster_config(
        tmp_path,
        "node-lost",
        model={"width": 32, "epochs": 80000, "log_every": 2000},
        execution={"pack_size": 2, "max_failures": 3},
    )
    log = tmp_path / "driver.log"
    driver = cli_background(
        "run", str(config), "--no-report", cwd=tmp_path, log=log, env=cluster.driver_env
    )
    wait_for_text(log, "parent run", driver)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until both nodes have produced results
        nodes = {tag(c, "regsweep.node") for c in sweep_children(cluster, "node-lost")} - {None}
        if len(nodes) >= 2:
            break
        assert driver.poll() is None, log.read_text()
        time.sleep(0.3)
    time.sleep(8)  # the worker's next trials are past their start-up, well before their end
    cluster.worker.stop(signal.SIGKILL)  # the node dies with the trials it was running
    assert driver.wait(timeout=900) == 0, log.read_text()
    text = log.read_text()
    retried = re.search(r"(\d+) trial retries", text)
    assert retried and int(retried.group(1)) >= 1, text
    parent, mine = sweep_and_children(cluster, "node-lost")
    assert parent["info"]["status"] == "FINISHED"
    exactly_one_finished_child_per_point(mine, 24)


# --- unreachable or refusing services ---------------------------------------------------------


def test_unreachable_cluster_fails_fast_and_writes_nothing(tmp_path):
    config = write_config(tmp_path / "c.yaml")
    started = time.monotonic()
    result = cli("run", str(config), "--address", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot reach the Ray cluster at 127.0.0.1:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_unreachable_tracking_server_fails_fast_and_writes_nothing(tmp_path):
    config = write_config(tmp_path / "c.yaml")
    result = cli(
        "run", str(config), "--tracking-uri", f"http://127.0.0.1:{free_port()}", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_cluster_refusing_the_token(cluster, tmp_path):
    config = write_config(tmp_path / "c.yaml")
    env = {**cluster.driver_env, "RAY_AUTH_TOKEN": "0" * 32}
    result = cli("run", str(config), cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 1
    assert "cannot join the Ray cluster" in result.stderr and "RAY_AUTH_TOKEN" in result.stderr
    assert "parent run" not in result.stdout


def test_tracking_server_refusing_the_credentials(tmp_path):
    folder = tmp_path / "auth"
    folder.mkdir()
    port = free_port()
    command = [
        str(VENV_BIN / "mlflow"),
        "server",
        "--app-name",
        "basic-auth",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    os.environ["MLFLOW_FLASK_SERVER_SECRET_KEY"] = "test-only-key"
    os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"] = "test-only-admin-password"
    server = MlflowServer(folder, port=port, command=command)
    try:
        config = write_config(tmp_path / "c.yaml")
        env = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "wrong-password"}
        result = cli("run", str(config), "--tracking-uri", server.uri, cwd=tmp_path, env=env)
        assert result.returncode == 1
        assert "refused the credentials (HTTP 401)" in result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["auth", "c.yaml"]
    finally:
        server.stop()
        del os.environ["MLFLOW_FLASK_SERVER_SECRET_KEY"], os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"]
