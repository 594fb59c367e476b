"""MLflow layout of a sweep: runs, tags, params, and how to find and close them.

Layout: one parent run per sweep (params: the flattened config; artifact: ``sweep.yaml``) and one
nested child run per training point (tag ``mlflow.parentRunId``), identified by a deterministic
key tag, so that a resumed sweep or a retried trial finds its run instead of adding a second.

A child run is complete when it is FINISHED, or FAILED with the ``diverged`` tag (training that
diverges does so again). A child run that is anything else (cut off mid-write, or a trial that
failed for good) is replaced when its point is trained again.

Child runs are written by :class:`sweeps.store.writer.ChildRunWriter`, the driver's only writer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regcore.datasets import Resampled
from sweeps.config.points import TrainingPoint
from sweeps.config.schema import SweepConfig
from sweeps.errors import SweepError, UsageError, first_line
from sweeps.settings import param_values, training_values
from sweeps.store import layout
from sweeps.store.retry import RetryingClient, retrying

# our HTTP retries are the writer's backoff; MLflow's own would stall the driver for minutes
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
# A tracking server's client prints two links whenever a run ends, fetching the run again to do
# so: 20,000 lines and a third of the write rate in a 10,000-point sweep. A sweep prints its own
# links once.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_PER_BATCH = 100
MAX_BATCH_ENTRIES = 1000
MAX_PARAM_LENGTH = 6000


def point_params(
    config: SweepConfig, point: TrainingPoint, sizes: dict[tuple, tuple[int, int]]
) -> dict[str, str]:
    """The child-run params of docs/mlflow-layout.md (:data:`sweeps.settings.PARAMS`); ``sizes``
    maps a fold's ``(repeat, fold)`` to its ``(n_train, n_dev)``."""
    n_train, n_dev = sizes[(point.repeat, point.fold)]
    data = {"dataset": config.dataset.name, "n_train": n_train, "n_dev": n_dev}
    return param_values(training_values(config.model, point, data))


#: tracking-store schemes MLflow 3 accepts (``postgresql+psycopg2://`` counts as postgresql)
STORE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")


def check_tracking_uri(tracking_uri: str | None) -> None:
    """A UsageError naming ``--tracking-uri`` when its scheme is not a tracking store's."""
    if tracking_uri is None:
        return
    scheme, sep, _ = tracking_uri.partition("://")
    if not sep or scheme.split("+")[0] not in STORE_SCHEMES:
        raise UsageError(
            f"--tracking-uri: expected a URI starting with one of "
            f"{', '.join(s + '://' for s in STORE_SCHEMES)}, got {tracking_uri!r}"
        )


def _sqlite_for_one_writer() -> None:
    """SQLite in write-ahead-log mode with ``synchronous=NORMAL``: a commit no longer waits for
    the disk twice (about 1.5x the child runs per second), and readers such as ``mlflow ui`` no
    longer block the writer. WAL is recorded in the database file (``mlflow.db-wal`` and
    ``-shm`` appear beside it); a store on a network file system should be a server instead."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if getattr(_sqlite_for_one_writer, "done", False):
        return

    @event.listens_for(Engine, "connect")
    def _pragmas(connection: Any, record: Any) -> None:
        if type(connection).__module__.startswith("sqlite3"):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    _sqlite_for_one_writer.done = True


def sqlite_path(tracking_uri: str | None) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (None for anything else)."""
    if not tracking_uri or not tracking_uri.startswith("sqlite:"):
        return None
    return Path(tracking_uri.split(":///", 1)[1]) if ":///" in tracking_uri else None


def _template_path() -> Path:
    """Where an empty store of the installed MLflow's schema is kept: a new SQLite store is a
    copy of it instead of every schema migration run again (seconds at each new folder)."""
    from importlib.metadata import version

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "regsweep" / f"mlflow-{version('mlflow')}-empty.db"


def _from_template(database: Path) -> None:
    """Start a new SQLite store as a copy of the kept empty one, where there is one."""
    import shutil

    template = _template_path()
    if template.is_file():
        database.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, database)


def _keep_as_template(database: Path) -> None:
    """Keep a consistent copy of a store MLflow just made (SQLite's backup: its write-ahead
    log included) for :func:`_from_template`; a cache that cannot be written is skipped."""
    import sqlite3

    template = _template_path()
    if template.is_file():
        return
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        partial = template.with_suffix(f".{os.getpid()}.partial")
        with (
            contextlib.closing(sqlite3.connect(database)) as source,
            contextlib.closing(sqlite3.connect(partial)) as copy,
        ):
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        os.replace(partial, template)
    except (OSError, sqlite3.Error):
        return


def client_for(tracking_uri: str | None) -> RetryingClient:
    """An MlflowClient whose store is ready (a new SQLite store gets its tables here), its
    calls retried through a moment's trouble (:mod:`sweeps.store.retry`).

    Creating or upgrading a SQLite store is done by one process at a time (a lock file,
    ``<database>.lock``, beside it): two sweeps started together in a new folder would otherwise
    both run MLflow's schema migrations and leave the file half-migrated.

    Raises
    ------
    UsageError
        A tracking URI of an unknown scheme, or a SQLite file that cannot be opened.
    SweepError
        A store that does not answer (an unreachable server or database).
    """
    from filelock import FileLock
    from mlflow.tracking import MlflowClient

    # MLflow sets its logger up when imported: quiet its database set-up chatter afterwards
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    check_tracking_uri(tracking_uri)
    check_tracking_server(tracking_uri)  # an unreachable server is not bad input: exit 1
    database = sqlite_path(tracking_uri)
    if database is not None:
        _sqlite_for_one_writer()
    try:
        # the client creates (or upgrades) its store as it is made: under the lock
        with FileLock(f"{database}.lock", timeout=600) if database else contextlib.nullcontext():
            new = database is not None and not database.exists()
            if new:
                _from_template(database)
            client = retrying(MlflowClient, tracking_uri=tracking_uri)
            retrying(client.search_experiments, max_results=1)
            if new:
                _keep_as_template(database)
    except Exception as error:
        reason = first_line(error, with_type=True, limit=200)
        if database is not None:  # a local file: its path is the user's input
            raise UsageError(f"--tracking-uri: cannot use {tracking_uri!r}: {reason}") from None
        raise SweepError(f"cannot use the tracking store at {tracking_uri}: {reason}") from None
    return RetryingClient(client)


#: how long each attempt of the start-up check waits for an answer: a server that has just
#: started (its workers still importing, a password hashed per request) can take seconds
PROBE_TIMEOUTS = (5.0, 10.0, 20.0)


def check_tracking_server(tracking_uri: str | None) -> None:
    """Fail fast (SweepError) when an HTTP tracking server is unreachable or refuses us: a
    refused connection at once, a slow answer after :data:`PROBE_TIMEOUTS`."""
    if not tracking_uri or not tracking_uri.startswith(("http://", "https://")):
        return
    import requests

    base = tracking_uri.rstrip("/")
    auth = None
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        auth = (
            os.environ["MLFLOW_TRACKING_USERNAME"],
            os.environ.get("MLFLOW_TRACKING_PASSWORD", ""),
        )
    headers = {}
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
    for attempt, timeout in enumerate(PROBE_TIMEOUTS):
        try:
            health = requests.get(f"{base}/health", timeout=timeout)
            probe = requests.get(
                f"{base}/api/2.0/mlflow/experiments/search",
                params={"max_results": 1},
                auth=auth,
                headers=headers,
                timeout=timeout,
            )
            break
        except requests.Timeout as error:
            if attempt + 1 < len(PROBE_TIMEOUTS):
                continue
            raise SweepError(
                f"the MLflow tracking server at {tracking_uri} does not answer within "
                f"{timeout:g}s (--tracking-uri / MLFLOW_TRACKING_URI): {type(error).__name__}"
            ) from None
        except requests.RequestException as error:
            raise SweepError(
                f"cannot reach the MLflow tracking server at {tracking_uri} (--tracking-uri / "
                f"MLFLOW_TRACKING_URI): {type(error).__name__}"
            ) from None
    if probe.status_code in (401, 403):
        raise SweepError(
            f"the MLflow tracking server at {tracking_uri} refused the credentials "
            f"(HTTP {probe.status_code}); set MLFLOW_TRACKING_USERNAME/PASSWORD or "
            "MLFLOW_TRACKING_TOKEN"
        )
    if health.status_code != 200 or probe.status_code != 200:
        raise SweepError(
            f"the MLflow tracking server at {tracking_uri} is not healthy "
            f"(/health: HTTP {health.status_code}, search: HTTP {probe.status_code})"
        )


def is_refused(error: BaseException) -> bool:
    """Whether the store refused an operation to this user (HTTP 401 / 403)."""
    code = getattr(error, "error_code", None)
    return code in ("PERMISSION_DENIED", "UNAUTHENTICATED") or "403" in str(error)[:200]


def check_can_write(client: Any, experiment: str) -> None:
    """Fail fast (SweepError, exit 1) when this user may read ``experiment`` but not write to
    it: a sweep would be refused at its first run. Tried with a harmless write (the tag
    ``regsweep.writable`` on the experiment); a new experiment is created by the sweep itself."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return
    try:
        client.raw.set_experiment_tag(found.experiment_id, layout.WRITABLE_TAG, "true")
    except Exception as error:
        if not is_refused(error):
            raise
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "(none)")
        raise SweepError(
            f"the tracking server lets MLFLOW_TRACKING_USERNAME={user!r} read experiment "
            f"{experiment!r} but not write to it: a sweep cannot run there (ls, show, report "
            "and compare can)"
        ) from None


def experiment_id(client: Any, name: str, *, create: bool) -> str | None:
    """The id of experiment ``name``; created when missing and ``create`` is set."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage != "active":
            raise UsageError(
                f"experiment: {name!r} is deleted in this tracking store; restore it or "
                "choose another name"
            )
        return experiment.experiment_id
    if not create:
        return None
    try:
        # MLflow's UI opens a new experiment on its GenAI (traces) view unless told what it holds
        tags = {layout.EXPERIMENT_KIND_TAG: layout.EXPERIMENT_KIND}
        return client.create_experiment(name, tags=tags)
    except Exception as error:  # another sweep created it a moment ago: use theirs
        if getattr(error, "error_code", None) != "RESOURCE_ALREADY_EXISTS" and (
            "already exists" not in str(error).lower()
        ):
            raise
        return experiment_id(client, name, create=False)


def search_all(client: Any, experiment_ids: list[str], filter_string: str, **kwargs) -> Iterator:
    """Every run matching ``filter_string``, page after page (``search_runs`` pages at 1000)."""
    token = None
    while True:
        page = client.search_runs(
            experiment_ids, filter_string, max_results=1000, page_token=token, **kwargs
        )
        yield from page
        token = page.token
        if not token:
            return


def sweep_runs(client: Any, experiment: str | None = None) -> list:
    """Parent runs of sweeps, newest first (all experiments unless one is named)."""
    if experiment is None:
        ids = [e.experiment_id for e in client.search_experiments()]
    else:
        found = client.get_experiment_by_name(experiment)
        ids = [found.experiment_id] if found else []
    if not ids:
        return []
    return list(
        search_all(
            client,
            ids,
            f"tags.`{layout.KIND_TAG}` = '{layout.SWEEP}'",
            order_by=["attributes.start_time DESC"],
        )
    )


def find_sweep(client: Any, sweep: str | None, experiment: str | None = None):
    """A sweep's parent run by name (the newest of that name) or run id; None = the newest."""
    runs = sweep_runs(client, experiment)
    if sweep is None:
        if not runs:
            raise UsageError("SWEEP: there are no sweeps in this tracking store yet, got none")
        return runs[0]
    for run in runs:
        if run.info.run_id == sweep or run.data.tags.get(layout.SWEEP_TAG) == sweep:
            return run
    names = sorted({r.data.tags.get(layout.SWEEP_TAG, "?") for r in runs})
    known = f" (known: {', '.join(names)})" if names else ""
    raise UsageError(f"SWEEP: no sweep named or with run id {sweep!r}{known}")


def children_filter(parent_run_id: str, kind: str = layout.POINT) -> str:
    """The search filter for a sweep's child runs of one kind: ``point`` (a training) or
    ``refit`` (:mod:`sweeps.execution.refit`)."""
    return f"tags.`{layout.PARENT_TAG}` = '{parent_run_id}' and tags.`{layout.KIND_TAG}` = '{kind}'"


def child_runs(client: Any, parent: Any, kind: str = layout.POINT) -> list:
    """All active child runs of one kind of a sweep's parent run."""
    return list(
        search_all(client, [parent.info.experiment_id], children_filter(parent.info.run_id, kind))
    )


def is_complete_state(status: str, diverged: bool) -> bool:
    """A point is done when its run FINISHED, or FAILED because training diverged (it would
    diverge again)."""
    return status == "FINISHED" or (status == "FAILED" and diverged)


def is_complete(run: Any) -> bool:
    """Whether a child run counts as done (:func:`is_complete_state`)."""
    return is_complete_state(run.info.status, run.data.tags.get(layout.DIVERGED_TAG) == "true")


@dataclass
class Sweep:
    """A sweep's parent run and what it already holds."""

    client: Any
    experiment_id: str
    run_id: str
    name: str
    resumed: bool
    done_keys: set[str] = field(default_factory=set)


def resumable_sweep(client: Any, config: SweepConfig) -> Any | None:
    """The parent run that ``--resume`` continues: the newest sweep of this name, which must
    have run the same dataset/model/search config (a UsageError otherwise); None if none."""
    if client.get_experiment_by_name(config.experiment) is None:
        return None
    previous = [
        r
        for r in sweep_runs(client, config.experiment)
        if r.data.tags.get(layout.SWEEP_TAG) == config.name
    ]
    if not previous:
        return None
    parent = previous[0]
    before, now = parent.data.tags.get(layout.DATA_SHA256_TAG), config.dataset.sha256
    if before and now and before != now:
        raise UsageError(
            f"dataset.path: '{config.dataset.path}' changed since sweep {config.name!r} started "
            f"(sha256 {before[:16]}... then, {now[:16]}... now); restore the file, or run "
            "without --resume for a new sweep"
        )
    if parent.data.tags.get(layout.HASH_TAG) != config.config_hash:
        raise UsageError(
            f"--resume: sweep {config.name!r} ({parent.info.run_id}) was started with another "
            "dataset/model/search config; run without --resume for a new sweep"
        )
    return parent


def start_sweep(
    client: Any,
    config: SweepConfig,
    config_text: str,
    n_points: int,
    *,
    resume_from: Any | None = None,
    data: Resampled | None = None,
) -> Sweep:
    """Create the parent run, or reopen ``resume_from`` (see :func:`resumable_sweep`).

    A new parent run records ``data`` as its dataset input (:func:`log_dataset`).
    """
    exp_id = experiment_id(client, config.experiment, create=True)
    if resume_from is not None:
        done = complete_keys(child_runs(client, resume_from))
        client.update_run(resume_from.info.run_id, status="RUNNING")
        return Sweep(client, exp_id, resume_from.info.run_id, config.name, True, done)
    tags = {
        layout.KIND_TAG: layout.SWEEP,
        layout.SWEEP_TAG: config.name,
        layout.HASH_TAG: config.config_hash,
        layout.POINTS_TAG: str(n_points),
    }
    if data is not None:
        tags[layout.DATA_TAG] = f"{data.describe()}; {data.preparation()}"
    if config.dataset.sha256:
        tags[layout.DATA_SHA256_TAG] = config.dataset.sha256
    run = client.create_run(exp_id, tags=tags, run_name=config.name)
    params = [mlflow_param(key, value) for key, value in config.flat_params().items()]
    for start in range(0, len(params), MAX_PARAMS_PER_BATCH):
        client.log_batch(run.info.run_id, params=params[start : start + MAX_PARAMS_PER_BATCH])
    client.log_text(run.info.run_id, config_text, layout.CONFIG_ARTIFACT)
    if data is not None:
        log_dataset(client, run.info.run_id, config, data)
    return Sweep(client, exp_id, run.info.run_id, config.name, False)


def log_dataset(client: Any, run_id: str, config: SweepConfig, data: Resampled) -> None:
    """The sweep's dataset as an MLflow dataset input of the parent run: name, digest, source
    (a call anyone can repeat, or a file's absolute path), and the split (tag
    ``regsweep.split``: the test share held out, then the folds). A file's full sha256 is the
    parent's tag ``regsweep.data_sha256`` (MLflow keeps 36 characters of a dataset digest, so
    the input's digest is the first 32 hex digits)."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    table = data.table
    frame = table.features.assign(**{TARGET_COLUMN: table.y})
    with warnings.catch_warnings():
        # "source can be interpreted in multiple ways"; the integer columns' schema hint
        warnings.simplefilter("ignore")
        dataset = mlflow.data.from_pandas(
            frame,
            source=table.source,
            targets=TARGET_COLUMN,
            name=config.dataset.name,
            digest=table.digest[:32] if table.digest else None,
        )
        entity = dataset._to_mlflow_entity()
    split = {**config.dataset.split.model_dump(), "seed": config.dataset.seed}
    tags = [
        InputTag(key=MLFLOW_DATASET_CONTEXT, value="train"),
        InputTag(key=layout.SPLIT_TAG, value=json.dumps(split)),
    ]
    inputs = [DatasetInput(entity, tags=tags)]
    try:
        client.log_inputs(run_id, datasets=inputs)
    except Exception as error:
        # two sweeps logging the same new dataset at once: the store's unique key refuses the
        # second insert; a moment later the dataset exists and is linked instead
        text = str(error)
        if "UNIQUE constraint" not in text and "duplicate key" not in text:
            raise
        time.sleep(0.5)
        client.log_inputs(run_id, datasets=inputs)


#: the target's column in the logged dataset (a file's target keeps its own name)
TARGET_COLUMN = "target"


def ui_pages(address: str, experiment_id: str, run_id: str) -> tuple[str, str]:
    """The MLflow UI's runs table of a sweep's experiment (on the model-training view) and its
    parent run's page (MLflow 3's hash routes)."""
    experiment = f"{address.rstrip('/')}/#/experiments/{experiment_id}"
    return f"{experiment}/runs?workflowType=machine_learning", f"{experiment}/runs/{run_id}"


def log_batch(client: Any, run_id: str, params: list, tags: list, logged: list) -> None:
    """Params, tags and metrics of a run in as few ``log_batch`` calls as MLflow's limits allow
    (1000 entries, of which at most 100 params and 100 tags): each call is one transaction."""
    first = MAX_BATCH_ENTRIES - len(params) - len(tags)
    client.log_batch(run_id, metrics=logged[:first], params=params, tags=tags)
    for start in range(first, len(logged), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=logged[start : start + MAX_METRICS_PER_BATCH])


@contextlib.contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's global tracking URI set to ``uri`` for the calls that read it (``search_runs``
    with pandas output, model logging and registration), and restored afterwards.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into the environment (for
    subprocesses to inherit); the variable is put back as it was too, so a notebook that ran a
    sweep does not send its next processes to that sweep's store.
    """
    import mlflow

    previous = mlflow.get_tracking_uri()
    variable = os.environ.get("MLFLOW_TRACKING_URI")
    # set by the caller's own set_tracking_uri (it wins over the variable), or not at all: then
    # unset again, so that the variable (or MLflow's default) decides as before
    explicit = mlflow.is_tracking_uri_set() and previous != variable
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous if explicit else None)
        if variable is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = variable


def mlflow_param(key: str, value: str):
    """An MLflow ``Param``, its value cut to the length the stores accept."""
    from mlflow.entities import Param

    if len(value) > MAX_PARAM_LENGTH:
        value = value[: MAX_PARAM_LENGTH - 3] + "..."
    return Param(key, value)


def finish_sweep(
    sweep: Sweep,
    *,
    missing: int,
    interrupted: bool = False,
    error: str | None = None,
    done: int | None = None,
    total: int | None = None,
    best_dev_cost: float | None = None,
) -> None:
    """Close the parent run: FINISHED when every point has a complete child run, KILLED when
    interrupted, FAILED otherwise (with the error, if the sweep stopped on one). ``done`` of
    ``total`` trainings (a search's total is known only now) and ``best_dev_cost`` are what
    ``sweeps ls`` shows of it from then on."""
    from mlflow.entities import RunTag

    status = "KILLED" if interrupted else ("FAILED" if missing or error else "FINISHED")
    tags = [RunTag(layout.MISSING_TAG, str(missing))]
    if error:
        tags.append(RunTag(layout.ERROR_TAG, error[:5000]))
    if done is not None:
        tags.append(RunTag(layout.DONE_TAG, str(done)))
    if total is not None:
        tags.append(RunTag(layout.POINTS_TAG, str(total)))
    if best_dev_cost is not None:
        tags.append(RunTag(layout.BEST_COST_TAG, repr(float(best_dev_cost))))
    sweep.client.log_batch(sweep.run_id, tags=tags)
    sweep.client.set_terminated(sweep.run_id, status=status)


def complete_keys(runs: Iterable) -> set[str]:
    """The keys of the complete runs among ``runs``."""
    return {
        r.data.tags[layout.KEY_TAG]
        for r in runs
        if is_complete(r) and layout.KEY_TAG in r.data.tags
    }
