"""The driver-side writer of child runs: background threads, the only writers to MLflow.

They retry with backoff while the tracking server is unreachable and keep the results meanwhile
(in memory up to a bound, then on disk: :mod:`sweeps.store.backlog`). Each result carries fixed
metric timestamps, and MLflow stores identical metric values once, so a retried write adds
nothing twice.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.config.points import TrainingPoint
from sweeps.config.schema import SweepConfig
from sweeps.errors import DiskFull, first_line, full_folder, is_disk_full
from sweeps.store import layout
from sweeps.store.backlog import Backlog
from sweeps.store.layout import (
    DIVERGED_TAG,
    ERROR_TAG,
    KEY_TAG,
    KIND_TAG,
    NODE_TAG,
    PARENT_TAG,
    THREADS_TAG,
    WRITER_TAG,
)
from sweeps.store.point_result import PointResult
from sweeps.store.retry import raw_client
from sweeps.store.tracking import (
    Sweep,
    child_runs,
    is_complete,
    log_batch,
    mlflow_param,
    point_params,
    search_all,
)


@dataclass
class PointRecord:
    """One point's outcome, ready to write: a result, or the error that stopped its trial."""

    point: TrainingPoint
    result: PointResult | None = None
    error: str | None = None


#: MLflow error codes that no retry can fix: the record is dropped (its point is trained again
#: on --resume) instead of blocking the writer
PERMANENT_ERRORS = frozenset(
    {
        "INVALID_PARAMETER_VALUE",
        "BAD_REQUEST",
        "INVALID_STATE",
        "RESOURCE_DOES_NOT_EXIST",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
    }
)


def is_permanent(error: Exception) -> bool:
    """Whether a failed write would fail again: a refusal by the store or a local problem
    (a bad value, an unwritable file), not an outage."""
    if getattr(error, "error_code", None) in PERMANENT_ERRORS:
        return True
    if _is_network_error(error):
        return False
    return isinstance(error, OSError | TypeError | ValueError)


def _is_network_error(error: Exception) -> bool:
    import requests

    return isinstance(error, ConnectionError | TimeoutError | requests.RequestException)


class ChildRunWriter:
    """Writes child runs from background threads, retrying with backoff.

    ``writers`` threads write at once (one for SQLite, which takes one writer at a time; a
    tracking server and its database take several); results of one point are never written by
    two threads at once. Results wait in a :class:`~sweeps.store.backlog.Backlog` (memory up to a
    bound, then a spill file). A write that fails for a reason retrying cannot fix (see
    :func:`is_permanent`) is dropped and counted; anything else (an unreachable server, a
    timeout, a 5xx) is retried with exponential backoff up to ``max_backoff`` seconds until
    :meth:`close` gives up.
    """

    def __init__(
        self,
        sweep: Sweep,
        config: SweepConfig,
        sizes: dict[tuple, tuple[int, int]],
        writers: int = 1,
        max_backoff: float = 10.0,
        backlog: Backlog | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.sweep, self.config, self.sizes = sweep, config, sizes
        # the writer retries with a backoff of its own, without the driver's retrying wrapper
        self.client = raw_client(sweep.client)
        self.max_backoff = max_backoff
        self.writer_id = uuid.uuid4().hex[:12]
        self.backlog = backlog if backlog is not None else Backlog()  # (an empty one is falsy)
        self._note = note or (lambda message: None)
        self._pending = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._in_flight: set[str] = set()  # keys a thread is writing
        self._parked: dict[str, list[PointRecord]] = {}  # their later records, waiting
        self._created: dict[str, Any] = {}  # key -> run (info) created by this writer
        self._written: set[str] = set()  # keys whose run this writer completed
        self._known: dict[str | None, list] | None = None  # runs in the store at the start
        self._listing = threading.Lock()  # one thread lists them; submit() never waits on it
        # weights on their way to the artifact store wait where spilled results wait
        self._scratch = tempfile.TemporaryDirectory(prefix="regsweep-", dir=self.backlog.spill_dir)
        self.retries = 0
        self.dropped = 0
        #: set when a folder the writer needs is full: the sweep stops on it
        self.disk_full: DiskFull | None = None
        self.last_error: str | None = None
        self._threads = [
            threading.Thread(target=self._loop, name=f"mlflow-writer-{i}", daemon=True)
            for i in range(max(1, writers))
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        """Results submitted and not yet written (or given up on)."""
        with self._lock:
            return self._pending

    def submit(self, record: PointRecord) -> None:
        """Queue ``record`` for the writers; never waits for MLflow."""
        if self.disk_full is not None:
            raise self.disk_full
        with self._lock:
            self._pending += 1
        spilled = self.backlog.spilled_total
        try:
            self.backlog.put(record)
        except DiskFull as error:  # not taken: nothing to wait for at the end
            with self._lock:
                self._pending -= 1
                self.dropped += 1
            self.disk_full = error
            raise
        if spilled == 0 and self.backlog.spilled_total:
            self._note(
                f"MLflow is behind: results beyond {self.backlog.memory_limit / 2**20:g} MB "
                f"now wait on disk ({self.backlog.spill_path})"
            )

    def close(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every result to be written, then stop the writers
        (they write nothing more); return the number of results left unwritten."""
        self._closing.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        for thread in self._threads:
            thread.join(self.max_backoff + 60)
        if not any(thread.is_alive() for thread in self._threads):
            # else a thread is stuck in a call to MLflow: leave it its files (the process
            # is ending; the temporary folders go with the next clean-up of /tmp)
            self._scratch.cleanup()
            self.backlog.close()
        return self.pending + self.dropped

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                record = self.backlog.get(timeout=0.2)
            except Exception as error:  # an unreadable spilled record: lost, not the thread
                self.last_error = first_line(error, with_type=True, limit=200)
                with self._lock:
                    self._pending -= 1
                    self.dropped += 1
                continue
            if record is None:
                if self._closing.is_set() and self.pending == 0:
                    return
                continue
            key = record.point.key
            with self._lock:
                if key in self._in_flight:  # another thread writes this point: after it
                    self._parked.setdefault(key, []).append(record)
                    continue
                self._in_flight.add(key)
            delay, live = 1.0, False
            while not self._stop.is_set():
                try:
                    self._write(record, live)
                    break
                except Exception as error:
                    self.last_error = first_line(error, with_type=True, limit=200)
                    if is_disk_full(error):  # the sweep stops (the callback sees it)
                        if self.disk_full is None:
                            folder = full_folder(error, self._scratch.name)
                            self.disk_full = DiskFull(folder, "writing a training's run")
                        with self._lock:
                            self.dropped += 1
                        break
                    if is_permanent(error):
                        with self._lock:
                            self.dropped += 1
                        break
                    with self._lock:
                        self.retries += 1
                    self._stop.wait(delay)
                    delay = min(delay * 2.0, self.max_backoff)
                    live = True  # the last attempt may have got further than it heard
            else:
                return  # stopped while retrying: the record stays pending
            with self._lock:
                self._pending -= 1
                self._in_flight.discard(key)
                parked = self._parked.pop(key, [])
            for later in parked:
                self.backlog.put(later)

    def _existing(self, key: str, live: bool) -> list:
        """Runs of this point already in the store. A new sweep has none; a resumed one is
        listed once, at its first write; after a failed attempt the store is asked again."""
        with self._listing:
            if self._known is None:
                known: dict[str | None, list] = {}
                if self.sweep.resumed:
                    parent = self.client.get_run(self.sweep.run_id)
                    for run in child_runs(self.client, parent):
                        known.setdefault(run.data.tags.get(KEY_TAG), []).append(run)
                self._known = known
        if not live:
            return self._known.get(key, [])
        return list(
            search_all(
                self.client,
                [self.sweep.experiment_id],
                f"tags.`{PARENT_TAG}` = '{self.sweep.run_id}' and tags.`{KEY_TAG}` = '{key}'",
            )
        )

    def _run_for(self, record: PointRecord, live: bool) -> Any | None:
        """The run (its info) to write into: ours from an earlier attempt, or a new one; None
        if the point is done."""
        client, point = self.client, record.point
        with self._lock:
            if point.key in self._written:
                return None  # a result delivered twice (a trial retried after it reported)
            if point.key in self._created:
                return self._created[point.key]
        for run in self._existing(point.key, live):
            if run.data.tags.get(WRITER_TAG) == self.writer_id:
                with self._lock:  # created, but the reply was lost
                    self._created[point.key] = run.info
                return run.info
            if is_complete(run):
                return None  # written before (a resumed sweep): never replaced
            client.delete_run(run.info.run_id)  # cut off mid-write, or a failed trial: replace
        run = client.create_run(
            self.sweep.experiment_id,
            start_time=int(time.time() * 1000),
            tags={
                PARENT_TAG: self.sweep.run_id,
                KIND_TAG: layout.POINT,
                KEY_TAG: point.key,
                WRITER_TAG: self.writer_id,
            },
            run_name=point.run_name,
        )
        with self._lock:
            self._created[point.key] = run.info
        return run.info

    def _write(self, record: PointRecord, live: bool) -> None:
        from mlflow.entities import RunTag
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        info = self._run_for(record, live)
        if info is None:
            return
        run_id = info.run_id
        client, result = self.client, record.result
        params = point_params(self.config, record.point, self.sizes)
        if result is None:
            tags = [RunTag(ERROR_TAG, (record.error or "trial failed")[:5000])]
            log_batch(client, run_id, [mlflow_param(k, v) for k, v in params.items()], tags, [])
            client.set_terminated(run_id, status="FAILED", end_time=int(time.time() * 1000))
            return
        log_result(client, run_id, params, result)
        path = Path(self._scratch.name) / record.point.key / layout.WEIGHTS_ARTIFACT
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(result.weights)
        # straight to the run's artifact location: client.log_artifact would first read the
        # whole run back from the store to find it (a fifth of a write's time)
        repository = get_artifact_repository(info.artifact_uri, tracking_uri=client.tracking_uri)
        repository.log_artifact(str(path))
        path.unlink()  # the scratch folder holds one file per write in progress, not all
        close_result(client, run_id, result)
        with self._lock:
            self._written.add(record.point.key)


# --- one training's run: written here, by the writer's threads and by the refit alike --------


def log_result(
    client: Any, run_id: str, params: dict[str, str], result: PointResult, tags: list = ()
) -> None:
    """A training's params, its tags (time, node, threads, pack, divergence; ``tags`` more)
    and its whole history as step metrics, in as few ``log_batch`` calls as MLflow allows."""
    from mlflow.entities import Metric, RunTag

    logged = [Metric(k, v, result.finished_ms, step) for k, v, step in result.step_metrics()]
    tags = [
        *tags,
        RunTag(layout.FIT_SECONDS_TAG, f"{result.fit_seconds:.4f}"),
        RunTag(THREADS_TAG, str(result.threads)),
        RunTag(layout.PACK_TAG, str(result.pack)),
    ]
    if result.node:
        tags.append(RunTag(NODE_TAG, result.node))
    if result.diverged:
        tags.append(RunTag(DIVERGED_TAG, "true"))
    log_batch(client, run_id, [mlflow_param(k, v) for k, v in params.items()], tags, logged)


def close_result(client: Any, run_id: str, result: PointResult) -> None:
    """End a training's run: FAILED where it diverged, else FINISHED, at its training's end."""
    status = "FAILED" if result.diverged else "FINISHED"
    client.set_terminated(run_id, status=status, end_time=result.finished_ms)
