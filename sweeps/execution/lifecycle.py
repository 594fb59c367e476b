"""A sweep's life, start to end: checked, started or resumed, trained, closed, refit, reported.

The Python API (:func:`sweeps.run`) and the command line (``sweeps run``) both run it: this
module decides and does, they only say what happened (``say`` for the summary lines, the
progress line for the rest). Everything that can be bad input (the config, the data, the
environment, a sweep that cannot be resumed) is found by :func:`prepare` and the checks at the
start of :func:`execute`, before anything is written.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regcore import metrics
from regcore.datasets import Resampled
from sweeps.config.data import load_data
from sweeps.config.points import TrainingPoint, curve_specs, expand, searched
from sweeps.config.reading import ConfigSource, config_text, read_config
from sweeps.config.schema import SweepConfig
from sweeps.errors import DiskFull, SweepError, first_line, is_disk_full
from sweeps.options import RunOptions
from sweeps.store import layout, lease
from sweeps.store.retry import raw_client

#: prints one line of a sweep's summary (stdout on the command line)
Say = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """A sweep ready to run: its config, its data (read once, here) and its trainings."""

    config: SweepConfig
    data: Resampled
    points: list[TrainingPoint]
    text: str  # the effective config (the parent run's sweep.yaml)
    source: str  # how the caller named the config (for the --resume hints)

    def describe(self) -> str:
        """``"34 points"``, or ``"27 points x 5 folds = 135 trainings"``."""
        folds = len(self.config.dataset.split.folds)
        if folds == 1:
            return f"{len(self.points)} points"
        return f"{len(self.points) // folds} points x {folds} folds = {len(self.points)} trainings"


def prepare(source: ConfigSource, options: RunOptions) -> Prepared:
    """Read and validate the config, read and check its data, expand its trainings."""
    config, _ = read_config(source, options.overrides, options.register)
    config, data = load_data(config)
    label = str(source) if isinstance(source, str | Path) else config.name
    return Prepared(config, data, expand(config), config_text(config), label)


@dataclass
class Ended:
    """How a sweep run ended.

    ``code`` is what the command line exits with: 0 (done), 1 (trainings missing), 128 + the
    signal's number (stopped by Ctrl-C, SIGTERM or SIGHUP); ``problem`` says why when it is not
    0. Failures that leave no sweep to speak of raise :class:`~sweeps.errors.SweepError`.
    """

    code: int
    tracking_uri: str
    run_id: str
    name: str
    problem: str | None = None
    report: Path | None = None
    registered: list[tuple[Any, Any]] = field(default_factory=list)


def execute(
    prepared: Prepared,
    options: RunOptions,
    *,
    say: Say,
    progress: Callable[..., Any],
    stop_signal: Callable[[], int] = lambda: 2,
    on_ray_started: Callable[[], None] = lambda: None,
) -> Ended:
    """Run a prepared sweep: start or resume it, train, close, refit, report.

    Parameters
    ----------
    prepared : Prepared
    options : RunOptions
    say : callable
        Prints one summary line.
    progress : callable
        Makes the progress line: ``progress(name, total, already=..., unit=...)`` returns a
        :class:`sweeps.execution.progress.Progress`.
    stop_signal : callable
        The number of the signal that interrupted the sweep (the exit code is 128 + it).
    on_ray_started : callable
        Called once Ray runs (the command line installs its signal handlers then: Ray installs
        its own at its start).
    """
    from sweeps.execution import runner
    from sweeps.store import tracking

    runner.configure_ray_environment()  # before anything imports Ray
    config, data, points = prepared.config, prepared.data, prepared.points
    tracking_uri = options.tracking_uri
    tracking.check_tracking_uri(tracking_uri)
    tracking.check_tracking_server(tracking_uri)
    client = previous = None
    if tracking_uri.startswith(("http://", "https://")):  # a reader cannot run: say it now
        client = tracking.client_for(tracking_uri)
        tracking.check_can_write(client, config.experiment)
    if options.resume:  # a sweep that cannot be resumed is bad input: said before Ray starts
        client = client or tracking.client_for(tracking_uri)
        previous = tracking.resumable_sweep(client, config)
        if previous is None:
            say(f"--resume: no sweep named {config.name!r} yet; starting it")
        else:  # one driver per sweep (sweeps.store.lease)
            lease.check_free(previous, options.lease_seconds, options.force)
    if options.local:  # before the store is set up beside Ray's start
        runner.check_schedulable(config, runner.local_cpus(), "this machine (a local Ray)")
    with ThreadPoolExecutor(max_workers=2) as pool:
        # starting Ray takes seconds of waiting for its processes: meanwhile import Ray Tune
        # and, for a local Ray, set up the store (a cluster is checked first, so that a
        # refused one leaves nothing written)
        pool.submit(importlib.import_module, "sweeps.execution.callback")
        store = None
        if client is None and options.local:
            store = pool.submit(tracking.client_for, tracking_uri)
        resources = runner.connect_ray(options.address)
    on_ray_started()
    if not resources.get("token_auth", 1.0):
        print(
            f"warning: the Ray cluster at {options.address} runs without token authentication: "
            "anyone who reaches it can run code on it (RAY_AUTH_MODE=token and one RAY_AUTH_TOKEN "
            "on every node and driver lock it)",
            file=sys.stderr,
            flush=True,
        )
    keeper = None
    try:
        if not options.local:
            where = f"the cluster ({runner.resources_summary(resources)})"
            runner.check_schedulable(config, resources["largest_node_cpus"], where)
        if client is None:
            client = store.result() if store is not None else tracking.client_for(tracking_uri)
        sweep = tracking.start_sweep(
            client, config, prepared.text, len(points), resume_from=previous, data=data
        )
        keeper = lease.LeaseKeeper(raw_client(client), sweep.run_id, options.lease_seconds)
        keys = {p.key for p in points}
        if searched(config):  # a search's trainings are known as it goes: count all done
            keys |= sweep.done_keys
        done_before = len(sweep.done_keys & keys)
        unit = "trainings" if len(config.dataset.split.folds) > 1 else "points"
        where = "local, " if options.local else f"{options.address}, "
        say(
            f"sweep {config.name}: {prepared.describe()}, {data.describe()}\n"
            f"  data: {data.preparation()}\n"
            f"  Ray: {where}{runner.resources_summary(resources)}; MLflow: "
            f"{client.tracking_uri}, experiment {config.experiment!r}, parent run {sweep.run_id}"
            + (
                f"\n  resuming: {done_before} {unit} done before, "
                f"{len(keys) - done_before} to train"
                if sweep.resumed
                else ""
            )
        )
        line = progress(config.name, len(keys), already=done_before, unit=unit)
        line.start()
        outcome = runner.run_points(
            config,
            sweep,
            points,
            slots=runner.slots_for(config, resources),
            data=data,
            nodes=int(resources.get("nodes", 1)),
            options=options,
            progress=line,
        )
    except Exception:
        if keeper is not None:
            keeper.release()
        raise
    finally:
        # synchronously: an object still holding a Ray reference, collected after a shutdown
        # done elsewhere, makes Ray's core worker end the process
        runner.shutdown_ray()
    try:
        ended = finish(prepared, options, client, sweep, outcome, say=say, stop_signal=stop_signal)
    except Exception:
        keeper.release()
        raise
    # (a second Ctrl-C skips the release: the lease then expires by itself)
    keeper.release()
    return ended


def finish(
    prepared: Prepared,
    options: RunOptions,
    client: Any,
    sweep: Any,
    outcome: Any,
    *,
    say: Say,
    stop_signal: Callable[[], int],
) -> Ended:
    """Close the parent run, refit, say the lowest means, write the report."""
    from sweeps.analysis import curves
    from sweeps.store import results, tracking

    config, data, points = prepared.config, prepared.data, prepared.points
    resume_hint = f"`sweeps run {prepared.source} --resume`"

    def unreachable(error: Exception) -> SweepError:  # the writer said so above
        if outcome.disk_full:
            return SweepError(
                f"{outcome.disk_full}, and MLflow does not answer to close sweep "
                f"{config.name!r}; free some space, then {resume_hint} continues it"
            )
        return SweepError(
            f"cannot reach MLflow to close sweep {config.name!r} "
            f"({first_line(error, with_type=True, limit=200)}); {resume_hint} continues it"
        )

    if outcome.disk_full:  # ends within seconds: no retries through a store that is away
        client = raw_client(client)

    stopped = outcome.interrupted or outcome.error
    try:
        parent = client.get_run(sweep.run_id)
        frame = results.child_frame(client, parent)
    except Exception as error:
        raise unreachable(error) from None
    # a search's trainings are the initial ones and whatever it asked for (each has a run)
    wanted = {p.key for p in points} | set(frame["key"].dropna())
    missing = len(wanted - results.complete_keys(frame))
    aggregated = curves.aggregate(frame)
    summaries = [curves.summarize(c, config.select) for c in curves.curves_of(aggregated).values()]
    diverged = frame["diverged"].fillna(False).astype(bool)
    everything_diverged = bool(diverged.any()) and bool(
        (diverged | (frame["status"] != "FINISHED")).all()
    )
    refits, refit_error, registered = [], None, []
    if summaries and not (missing or stopped or everything_diverged or not options.refit):
        try:
            refits, registered = _refit(config, client, sweep, data, summaries, say)
        except SweepError as error:  # nothing to register: the sweep is closed all the same
            refit_error = str(error)
        except Exception as error:  # the trainings stand: the sweep is closed all the same
            refit_error = (
                f"the refit of sweep {config.name!r} failed "
                f"({first_line(error, with_type=True, limit=300)}); its trainings are all "
                f"written: {resume_hint} refits without training"
            )
    best = curves.best_per_curve(aggregated, config.select)
    lowest = curves.best_per_curve(aggregated)  # what `sweeps ls` shows of a running sweep too
    try:
        results.store_table(client, sweep.run_id, frame)
        tracking.finish_sweep(
            sweep,
            missing=missing,
            interrupted=outcome.interrupted,
            error=outcome.error,
            done=len(wanted) - missing,
            total=len(wanted),
            best_dev_cost=lowest[metrics.DEV_COST].min() if len(lowest) else None,
        )
    except Exception as error:
        raise unreachable(error) from None
    say(
        f"\n{config.name}: {outcome.trained} trainings in {outcome.seconds:.1f}s"
        + (f", {outcome.skipped} already done" if outcome.skipped else "")
        + (f", {outcome.failed} failed" if outcome.failed else "")
        + (f", {int(frame['diverged'].sum())} diverged" if frame["diverged"].any() else "")
        + (f", {outcome.trial_retries} trial retries" if outcome.trial_retries else "")
        + (f", {outcome.writer_retries} MLflow retries" if outcome.writer_retries else "")
    )
    if not best.empty:
        say(f"lowest mean {config.select} per curve (over folds and seeds):")
        say(results.format_table(best))
    if refits:
        say("refits on all non-test data (test set scored once):")
        say(results.format_table(results.refit_frame(client, parent).drop(columns=["model"])))
    ended = Ended(0, client.tracking_uri, sweep.run_id, config.name, registered=registered)
    if options.report and not stopped:
        if summaries:
            from sweeps.analysis import report

            started = time.monotonic()
            try:
                ended.report = report.write_report(client, parent, options.out, data=data)
            except OSError as error:
                if not is_disk_full(error):
                    raise
                folder = options.out or report.report_folder(config.name)
                raise SweepError(
                    f"{DiskFull(folder, 'writing the report')}; every training is written: free "
                    f"some space, then `sweeps report {config.name}` writes it"
                ) from None
            say(f"report: {ended.report / 'report.html'} ({time.monotonic() - started:.1f}s)")
        else:
            say("no report: no finished runs with a regularization strength to plot")
    if outcome.error:
        raise SweepError(
            f"sweep {config.name!r} stopped: {outcome.error}; {resume_hint} continues it"
        )
    if outcome.disk_full:
        ended.code = 1
        ended.problem = (
            f"{outcome.disk_full}; sweep {config.name!r} stopped with what finished written: "
            f"free some space, then {resume_hint} continues it"
        )
    elif outcome.interrupted:
        ended.code, ended.problem = 128 + stop_signal(), "interrupted"
    elif everything_diverged:
        ended.code = 1
        ended.problem = (
            f"every training of sweep {config.name!r} diverged ({int(diverged.sum())} of "
            f"{len(frame)}: the cost stopped being finite); the usual cause is too large a "
            f"learning rate (model.learning_rate = {config.model.learning_rate:g})"
        )
    elif missing:
        ended.code = 1
        ended.problem = (
            f"{missing} of {len(wanted)} trainings have no finished run; "
            f"rerun with {resume_hint} to train them"
        )
    elif refit_error:
        raise SweepError(refit_error)
    return ended


def _refit(
    config: SweepConfig, client: Any, sweep: Any, data: Resampled, summaries: list, say: Say
) -> tuple[list, list]:
    """Refit each curve's lambda.min and lambda.1se, log them, and register the sweep's choice
    if asked (:mod:`sweeps.execution.refit`)."""
    from sweeps.execution import refit

    started = time.monotonic()
    refits = refit.plan(config, summaries)
    refit.fit(config, data, refits)
    refit.log(client, sweep, config, data, refits)
    say(f"refit {len(refits)} models on all non-test data ({time.monotonic() - started:.1f}s)")
    registered = []
    if config.register_as:
        registered = refit.register(client, config.register_as, refits)
        say(
            f"registered {registered[0][0].summary.name} as {config.register_as!r}: "
            + ", ".join(
                f"version {v.version} @{' @'.join(layout.RULES[rule] for rule in r.rules)}"
                for r, v in registered
            )
        )
    return refits, registered


def dry_run(prepared: Prepared, say: Say) -> None:
    """Say the trainings a sweep would run (nothing is started or written)."""
    import pandas as pd

    config, points = prepared.config, prepared.points
    for spec in curve_specs(config):
        if spec.search is not None:
            low, high = spec.search_range()
            say(
                f"{spec.name}: bracketing search from {low:g} to {high:g} "
                f"(tol {spec.search.tol:g} decades, at most {spec.search.budget} strengths; "
                f"the first {len(spec.initial())} below)"
            )
    frame = pd.DataFrame([p.as_dict() for p in points]).drop(columns=["key"])
    frame = frame.dropna(axis="columns", how="all")  # no fold columns on a single split
    say(f"sweep {config.name}: {prepared.describe()}; {prepared.data.describe()}")
    say(f"  data: {prepared.data.preparation()}")
    counts = frame.groupby(["penalty", "depth", "width"], sort=False).size().rename("trainings")
    say(counts.reset_index().to_string(index=False))
    say("")
    shown = 40
    say(frame.head(shown).to_string(index=False))
    if len(frame) > shown:
        say(f"... and {len(frame) - shown} more")
