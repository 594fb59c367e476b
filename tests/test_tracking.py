"""The MLflow writer's rules on a real SQLite store: what it reuses, replaces and never touches."""

import os

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2 as codes

from sweeps.config.data import load_data
from sweeps.config.points import expand
from sweeps.config.reading import config_text, read_config
from sweeps.execution.trainable import train_pack
from sweeps.store import layout, tracking
from sweeps.store.writer import ChildRunWriter, PointRecord, is_permanent
from tests.helpers import write_config

pytestmark = pytest.mark.integration

SIZES = {(None, None): (72, 24)}  # (n_train, n_dev) of the single split: logged as params


@pytest.fixture
def store(tmp_path):
    config, _ = read_config(str(write_config(tmp_path / "c.yaml", {"name": "rules"})))
    config, data = load_data(config)
    text = config_text(config)
    points = expand(config)[:3]
    client = tracking.client_for(f"sqlite:///{tmp_path / 'mlflow.db'}")
    sweep = tracking.start_sweep(client, config, text, len(points))
    results = train_pack(config, [p for p in points if p.depth == points[0].depth], data)
    return config, client, sweep, points, results


def _runs(client, sweep):
    parent = client.get_run(sweep.run_id)
    return {r.data.tags[layout.KEY_TAG]: r for r in tracking.child_runs(client, parent)}


def _foreign_run(client, sweep, point, status):
    """A child run left by another driver (another writer id)."""
    run = client.create_run(
        sweep.experiment_id,
        tags={
            layout.PARENT_TAG: sweep.run_id,
            layout.KIND_TAG: "point",
            layout.KEY_TAG: point.key,
            layout.WRITER_TAG: "someone-else",
        },
        run_name=point.run_name,
    )
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


def test_resumed_writer_keeps_complete_runs_and_replaces_cut_off_ones(store):
    config, client, sweep, points, results = store
    complete = _foreign_run(client, sweep, points[0], "FINISHED")
    cut_off = _foreign_run(client, sweep, points[1], "RUNNING")
    resumed = tracking.Sweep(client, sweep.experiment_id, sweep.run_id, sweep.name, True)
    writer = ChildRunWriter(resumed, config, SIZES)
    for point, result in zip(points, results, strict=True):
        writer.submit(PointRecord(point, result=result))
    writer.submit(PointRecord(points[0], result=results[0]))  # delivered twice
    writer.submit(PointRecord(points[2], error="trial died"))  # after its result
    assert writer.close(timeout=120) == 0
    runs = _runs(client, sweep)
    assert set(runs) == {p.key for p in points}  # one active run per point
    assert runs[points[0].key].info.run_id == complete  # complete: kept as it was
    assert runs[points[0].key].data.metrics == {}
    assert runs[points[1].key].info.run_id != cut_off  # cut off mid-write: replaced
    assert client.get_run(cut_off).info.lifecycle_stage == "deleted"
    assert runs[points[1].key].info.status == "FINISHED"
    # a later error for a point that finished does not replace its run
    assert runs[points[2].key].info.status == "FINISHED"
    assert layout.ERROR_TAG not in runs[points[2].key].data.tags
    history = client.get_metric_history(runs[points[1].key].info.run_id, "dev_cost")
    assert len(history) == len(results[1].rows)  # each row written once


def test_failed_trial_leaves_a_failed_run_that_resume_replaces(store):
    config, client, sweep, points, results = store
    writer = ChildRunWriter(sweep, config, SIZES)
    writer.submit(PointRecord(points[0], error="ActorDiedError: node lost"))
    assert writer.close(timeout=60) == 0
    failed = _runs(client, sweep)[points[0].key]
    assert failed.info.status == "FAILED"
    assert failed.data.tags[layout.ERROR_TAG] == "ActorDiedError: node lost"
    assert points[0].key not in tracking.complete_keys([failed])

    resumed = tracking.Sweep(client, sweep.experiment_id, sweep.run_id, sweep.name, True)
    writer = ChildRunWriter(resumed, config, SIZES)
    writer.submit(PointRecord(points[0], result=results[0]))
    assert writer.close(timeout=60) == 0
    run = _runs(client, sweep)[points[0].key]
    assert run.info.status == "FINISHED" and run.info.run_id != failed.info.run_id


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (MlflowException("bad value", error_code=codes.INVALID_PARAMETER_VALUE), True),
        (MlflowException("who are you", error_code=codes.PERMISSION_DENIED), True),
        (
            MlflowException(
                "API request failed: connection refused", error_code=codes.INTERNAL_ERROR
            ),
            False,
        ),
        (MlflowException("busy", error_code=codes.TEMPORARILY_UNAVAILABLE), False),
        (ConnectionError("refused"), False),
        (PermissionError("read-only folder"), True),
        (TypeError("a bug"), True),
    ],
)
def test_which_failures_are_retried(error, permanent):
    assert is_permanent(error) is permanent


class _HangsUp:
    """A loopback server that reads each request and closes without answering: the store may
    have acted on it, the answer is lost."""

    def __init__(self) -> None:
        import socket
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            with connection:
                connection.recv(65536)
                self.requests += 1


def test_a_call_that_creates_is_not_retried_after_a_lost_answer(monkeypatch):
    """A lost answer to ``create_run`` may hide a run the server made: retrying would make a
    second. A read is retried; a create is sent as often as MLflow's own client sends it."""
    from mlflow import MlflowClient

    from sweeps.store.retry import RetryingClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = _HangsUp()
    plain, retried = MlflowClient(server.uri), RetryingClient(MlflowClient(server.uri), 3.0)
    counts = {}
    for name, client in (("plain", plain), ("retried", retried)):
        for call, args in (("create_run", ("0",)), ("get_experiment", ("0",))):
            before = server.requests
            with pytest.raises(MlflowException):
                getattr(client, call)(*args)
            counts[name, call] = server.requests - before
    assert counts["retried", "create_run"] == counts["plain", "create_run"] >= 1
    assert counts["retried", "get_experiment"] > counts["plain", "get_experiment"]


@pytest.mark.parametrize(
    ("error", "unsent"),
    [
        (MlflowException("database is locked", error_code=codes.INTERNAL_ERROR), True),
        (
            MlflowException(
                "API request failed: Failed to establish a new connection: [Errno 111] "
                "Connection refused",
                error_code=codes.INTERNAL_ERROR,
            ),
            True,
        ),
        (MlflowException("slow down", error_code=codes.REQUEST_LIMIT_EXCEEDED), True),
        (MlflowException("Read timed out", error_code=codes.INTERNAL_ERROR), False),
        (MlflowException("Connection aborted", error_code=codes.INTERNAL_ERROR), False),
    ],
)
def test_which_failures_a_create_call_retries(error, unsent):
    from sweeps.store.retry import is_transient, is_unsent

    assert is_transient(error)  # all are retried by a read
    assert is_unsent(error) is unsent


@pytest.mark.parametrize("before", [None, "sqlite:///elsewhere.db"])
def test_setting_the_tracking_uri_for_a_while_leaves_the_environment_as_it_was(
    monkeypatch, tmp_path, before
):
    """MLflow's setter writes ``MLFLOW_TRACKING_URI`` for subprocesses: a sweep run in a
    notebook must not redirect the notebook's later subprocesses to its store."""
    import mlflow

    if before is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", before)
    uri_before = mlflow.get_tracking_uri()
    inside = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking.tracking_uri(inside):
        assert mlflow.get_tracking_uri() == inside
    assert os.environ.get("MLFLOW_TRACKING_URI") == before
    assert mlflow.get_tracking_uri() == uri_before
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///later.db")  # the variable decides again
    assert mlflow.get_tracking_uri() == "sqlite:///later.db"


def test_a_tracking_uri_the_caller_set_is_theirs_again_afterwards(monkeypatch, tmp_path):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    theirs = f"sqlite:///{tmp_path / 'theirs.db'}"
    mlflow.set_tracking_uri(theirs)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # as if they had set it before the variable existed
    try:
        with tracking.tracking_uri(f"sqlite:///{tmp_path / 'sweep.db'}"):
            pass
        assert mlflow.get_tracking_uri() == theirs
        assert "MLFLOW_TRACKING_URI" not in os.environ
    finally:
        mlflow.set_tracking_uri(None)
