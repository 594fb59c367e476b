"""Run a sweep: Ray Tune fans packs of points out over Ray, the driver writes MLflow.

Resume is decided by MLflow, the store of record: a point whose child run is complete is not
trained again, whatever Ray Tune's own experiment folder (kept at a stable path per sweep,
``<storage_path>/<name>-<first 12 characters of the parent run id>``) holds. This works from
any machine that sees the tracking store, and a result that reached Tune but not MLflow is
simply trained again.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from regcore.datasets import Resampled
from sweeps.config.points import TrainingPoint, curve_specs
from sweeps.config.schema import SweepConfig
from sweeps.errors import SweepError, UsageError, first_line, is_disk_full
from sweeps.execution.packing import plan_packs
from sweeps.execution.progress import Progress
from sweeps.execution.trainable import config_json, pack_trainable
from sweeps.execution.trial import trial_input
from sweeps.options import RunOptions
from sweeps.store import layout
from sweeps.store.backlog import Backlog
from sweeps.store.tracking import Sweep
from sweeps.store.writer import ChildRunWriter

#: workers import the trainable's modules when they start (Ray starts some ahead of need),
#: not when their first trial arrives
WORKER_ENV = {"worker_process_setup_hook": "sweeps.execution.trainable.import_training_modules"}


# --- Ray --------------------------------------------------------------------------------------


def configure_ray_environment() -> None:
    """Ray's and Tune's settings for a sweep, before either is imported."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no CSV/JSON/TBX files
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables, no banner
    # Ctrl-C should stop the sweep (and say --resume), not ask Tune for a graceful stop that
    # ends with its own Tuner.restore advice
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    # in a notebook, importing Ray asks for ipywidgets at INFO level, after its logging set-up
    # has reset the levels of its loggers (a filter outlives that)
    widgets = logging.getLogger("ray.widgets.util")
    if not any(isinstance(f, _WarningsOnly) for f in widgets.filters):
        widgets.addFilter(_WarningsOnly())


class _WarningsOnly(logging.Filter):
    """Lets a logger's warnings and errors through, not its notes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def _quiet_ray_logs() -> None:
    """Ray's and Tune's INFO lines stay out (Ray sets its loggers up as it is imported: this
    comes after); their warnings, Ray's about authentication among them, stay in."""
    for name in ("ray", "ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # it looks for the result files that the disabled loggers would have written
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at a Ray cluster's ``HOST:PORT``."""
    if address in ("auto", "local") or address.startswith(("ray://", "anyscale://")):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--address: expected HOST:PORT of the Ray head, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SweepError(
            f"cannot reach the Ray cluster at {address} (--address / RAY_ADDRESS): {reason}"
        ) from None


def connect_ray(address: str | None) -> dict[str, float]:
    """Start a local Ray (no address, or ``local``) or join a cluster; return its resources.

    A local Ray is always a new one: ``ray.init()`` without an address would silently join a
    cluster that ``ray start`` left running on this machine.
    """
    configure_ray_environment()
    import ray

    _quiet_ray_logs()
    if address and address != "local":
        check_ray_address(address)
    try:
        if address and address != "local":
            ray.init(
                address=address,
                logging_level=logging.WARNING,
                log_to_driver=False,
                runtime_env=WORKER_ENV,
            )
        else:
            ray.init(
                address="local",
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
                runtime_env=WORKER_ENV,
            )
    except Exception as error:  # ConnectionError, AuthenticationError, RuntimeError, ...
        first = first_line(error)
        if address and address != "local":
            raise SweepError(
                f"cannot join the Ray cluster at {address}: {first} (is it up, and do "
                "RAY_AUTH_MODE / RAY_AUTH_TOKEN match the cluster's?)"
            ) from None
        raise SweepError(f"cannot start a local Ray: {first}") from None
    resources = dict(ray.cluster_resources())
    alive = [node for node in ray.nodes() if node.get("Alive")]
    resources["nodes"] = len(alive)
    resources["largest_node_cpus"] = max(
        (node.get("Resources", {}).get("CPU", 0.0) for node in alive), default=0.0
    )
    # joined without a token: the cluster lets anyone who reaches it run code
    resources["token_auth"] = float(os.environ.get("RAY_AUTH_MODE", "").lower() == "token")
    return resources


def local_cpus() -> float:
    """The CPUs a new local Ray will have (Ray's own count: cgroup limits included)."""
    try:
        from ray._private.utils import get_num_cpus

        return float(get_num_cpus())
    except Exception:  # a Ray without that helper: the machine's count
        return float(os.cpu_count() or 1)


def check_schedulable(config: SweepConfig, largest_node_cpus: float, where: str) -> None:
    """Refuse a trial that no node can ever run (Ray Tune would wait for it forever): a trial
    runs on one node, so it needs a node with ``execution.cpus_per_trial`` CPUs."""
    wanted = config.execution.cpus_per_trial
    if wanted > largest_node_cpus:
        raise UsageError(
            f"execution.cpus_per_trial: a trial needs {wanted:g} CPUs on one node, but the "
            f"largest node of {where} has {largest_node_cpus:g}, got {wanted!r}"
        )


#: writer threads for a store that takes concurrent writes (a tracking server, a database server)
SERVER_WRITERS = 8


def writers_for(config: SweepConfig, tracking_uri: str) -> int:
    """``execution.writers``: auto is one writer for SQLite (it takes one at a time) and
    :data:`SERVER_WRITERS` for anything else."""
    if config.execution.writers != "auto":
        return config.execution.writers
    return 1 if tracking_uri.startswith("sqlite:") else SERVER_WRITERS


def slots_for(config: SweepConfig, resources: dict[str, float]) -> int:
    slots = max(1, int(resources.get("CPU", 1) // config.execution.cpus_per_trial))
    if config.execution.max_concurrent_trials:
        slots = min(slots, config.execution.max_concurrent_trials)
    return slots


# --- the Tune side ----------------------------------------------------------------------------


@dataclass
class SweepOutcome:
    """What a run did, for the CLI's summary."""

    trained: int  # points whose result arrived (diverged ones included)
    skipped: int  # done before (resume)
    failed: int  # points of trials that failed for good
    unwritten: int  # results that did not reach MLflow
    seconds: float
    writer_retries: int
    trial_retries: int = 0
    interrupted: bool = False
    error: str | None = None  # Ray Tune failed as a whole
    disk_full: str | None = None  # a folder the driver writes to filled up (sweeps.errors)
    taken_over: str | None = None  # another driver took the sweep over (sweeps.store.lease)


def run_points(
    config: SweepConfig,
    sweep: Sweep,
    points: Sequence[TrainingPoint],
    *,
    slots: int,
    data: Resampled,
    nodes: int,
    options: RunOptions,
    progress: Progress,
    taken_over: Callable[[], str | None] = lambda: None,
) -> SweepOutcome:
    """Train ``points`` (those not done yet) with Ray Tune and write them to ``sweep``;
    ``taken_over`` says who took the sweep over (the lease), which stops it at once.

    ``options`` give Ray Tune's folder (``storage_path``, else ``execution.storage_path``), the
    writer's memory bound and how long the end waits for an unreachable tracking server."""
    started = time.monotonic()
    todo = [p for p in points if p.key not in sweep.done_keys]
    skipped = len(points) - len(todo)
    writer = ChildRunWriter(
        sweep,
        config,
        data.fold_sizes(),
        writers=writers_for(config, sweep.client.tracking_uri),
        backlog=Backlog(options.writer_memory_mb * 2**20, options.spill_dir),
        note=progress.note,
    )
    stop = Stop()
    failed_before, done_before = progress.failed, progress.done
    tuner = None
    try:
        specs = [spec for spec in curve_specs(config) if spec.search is not None]
        if specs:  # the searched curves' trainings all come from the search, as results arrive
            searched = {
                p.key for spec in specs for s in spec.initial() for p in spec.trainings(config, s)
            }
            todo = [p for p in todo if p.key not in searched]
        if todo or specs:
            packs = plan_packs(config, todo, slots, len(data.folds[0].train), data.n_features)
            tuner = _Tuner(config, sweep, packs, specs, data, slots, nodes, options, progress)
            tuner.fit(writer, stop, taken_over)
    finally:  # whatever stopped it: what came in is written, and the writers stop
        unwritten = _drain(writer, progress, options, stop)
    if tuner is not None and specs:
        try:
            brackets = tuner.searcher.brackets()
            sweep.client.log_dict(sweep.run_id, brackets, layout.BRACKETS_ARTIFACT)
        except Exception as failure:  # the store went away: the runs hold what matters
            progress.note(
                f"{layout.BRACKETS_ARTIFACT} not written: {first_line(failure, with_type=True)}"
            )
    return SweepOutcome(
        trained=progress.done - done_before,
        skipped=skipped,
        failed=progress.failed - failed_before,
        unwritten=unwritten,
        seconds=time.monotonic() - started,
        writer_retries=writer.retries,
        trial_retries=tuner.callback.retries if tuner and tuner.callback else 0,
        interrupted=stop.interrupted,
        error=stop.error,
        disk_full=stop.disk_full,
        taken_over=stop.taken_over,
    )


@dataclass
class Stop:
    """Why Ray Tune stopped before its trials were done, if it did."""

    interrupted: bool = False  # Ctrl-C, SIGTERM, SIGHUP, a full disk
    error: str | None = None  # Tune or Ray failed as a whole
    disk_full: str | None = None
    taken_over: str | None = None  # the driver that took the sweep over


class _Tuner:
    """A sweep's Ray Tune run: its trainable (the rows through Ray's object store), its one
    search algorithm (the grid's packs, a searched curve's rounds, the halves of a pack out of
    memory) and its callbacks."""

    def __init__(
        self,
        config: SweepConfig,
        sweep: Sweep,
        packs: list,
        specs: list,
        data: Resampled,
        slots: int,
        nodes: int,
        options: RunOptions,
        progress: Progress,
    ) -> None:
        import ray
        from ray import tune

        from sweeps.execution.searcher import SweepSearcher

        self.config, self.sweep, self.slots, self.nodes = config, sweep, slots, nodes
        self.options, self.progress = options, progress
        # the rows go to Ray's object store once; trials fetch them from there, never from
        # the user's file (a worker node needs no copy of it)
        self.rows = ray.put(data)
        trainable = tune.with_parameters(
            pack_trainable, config_json=config_json(config), data=[self.rows]
        )
        self.trainable = tune.with_resources(trainable, {"cpu": config.execution.cpus_per_trial})
        known = known_outcomes(sweep, config) if specs else {}
        self.searcher = SweepSearcher(
            config, packs, specs, known, data.fold_sizes(), added=progress.add
        )
        self.callback = None

    def fit(self, writer: ChildRunWriter, stop: Stop, taken_over: Callable[[], str | None]) -> None:
        from ray import tune
        from ray.tune import FailureConfig, RunConfig, TuneConfig

        from sweeps.execution.callback import NoProgressTable, QuietTrials, ResultsToMLflow

        config, progress = self.config, self.progress
        self.callback = ResultsToMLflow(writer, progress, self.searcher, taken_over)
        tuner = tune.Tuner(
            self.trainable,
            param_space={},
            tune_config=TuneConfig(
                max_concurrent_trials=self.slots,
                # on several nodes, a fresh actor per trial: with reuse, Tune hands trials to
                # cached actors and kills the ones still starting elsewhere (slow imports), so
                # remote nodes sit idle; on one node, reuse saves each trial's start-up
                reuse_actors=self.nodes == 1,
                trial_name_creator=lambda trial: trial_input(trial.config).label,
                trial_dirname_creator=lambda trial: f"pack-{trial.trial_id}",
                search_alg=self.searcher,
                num_samples=-1,
            ),
            run_config=RunConfig(
                # a folder per sweep (parent run): two sweeps of one name never share one
                name=f"{config.name}-{self.sweep.run_id[:12]}",
                storage_path=self.options.storage_path or config.execution.storage_path,
                callbacks=[self.callback, QuietTrials()],
                failure_config=FailureConfig(max_failures=config.execution.max_failures),
                progress_reporter=NoProgressTable(),
                verbose=0,
            ),
        )
        try:
            tuner.fit()
        except KeyboardInterrupt as signal:  # Ctrl-C, or SIGTERM / SIGHUP (sweeps.cli)
            stop.interrupted = True
            by = f" by {signal}" if str(signal) else ""
            progress.note(f"interrupted{by}: writing what finished; resume with --resume")
        except Exception as failure:  # Tune or Ray as a whole (a trial's error is a result)
            if is_disk_full(failure):
                stop.interrupted, stop.disk_full = True, str(writer.disk_full or failure)
                progress.note(f"{stop.disk_full}: stopping; what finished is written")
            elif taken_over() is not None:
                stop.interrupted, stop.taken_over = True, taken_over()
            else:
                stop.error = first_line(failure, with_type=True)
                progress.note(f"the sweep stopped: {stop.error}")


def _drain(writer: ChildRunWriter, progress: Progress, options: RunOptions, stop: Stop) -> int:
    """Let the writers write what came in, then stop them; how many results stay unwritten.

    A stopped sweep (Ctrl-C, ``docker stop``) waits for them only so long, a full disk hardly
    at all: what cannot be written now is trained again on ``--resume``."""
    if writer.pending:
        on_disk = len(writer.backlog) if writer.backlog.spilled_total else 0
        progress.note(
            f"writing {writer.pending} results to MLflow"
            + (f" (some of them from disk, {writer.backlog.spill_path})" if on_disk else "")
            + " ..."
        )
    wait = options.stop_drain_seconds if stop.interrupted else options.drain_seconds
    if stop.taken_over:  # the sweep is another driver's now: write nothing more
        wait = 0.0
    unwritten = writer.close(10.0 if stop.disk_full else wait)
    if unwritten:
        progress.note(
            f"{unwritten} results could not be written to MLflow ({writer.last_error}); "
            "they will be trained again with --resume"
        )
    return unwritten


def known_outcomes(sweep: Sweep, config: SweepConfig) -> dict[str, tuple[float, float]]:
    """The selection metric and weight (n_dev) of every complete training a resumed sweep
    holds, by key: where a bracketing search starts from (none for a new sweep)."""
    if not sweep.done_keys:
        return {}
    from sweeps.store.results import child_frame, complete_keys

    frame = child_frame(sweep.client, sweep.client.get_run(sweep.run_id), search=True)
    done = frame[frame["key"].isin(complete_keys(frame))]
    values = done[config.select].where(~done["diverged"], math.inf).fillna(math.inf)
    weights = done["n_dev"].fillna(1).astype(float)
    return dict(zip(done["key"], zip(values, weights, strict=True), strict=True))


def shutdown_ray() -> None:
    """Stop this process's connection to Ray (and a local Ray it started), if any."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def resources_summary(resources: dict[str, Any]) -> str:
    """``"2 nodes, 4 CPUs"`` from :func:`connect_ray`'s resources."""
    nodes = int(resources.get("nodes", 1))
    return f"{nodes} node{'s' if nodes != 1 else ''}, {resources.get('CPU', 0):g} CPUs"
