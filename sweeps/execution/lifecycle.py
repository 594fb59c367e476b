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
from sweeps.errors import DiskFull, SweepError, TakenOver, first_line, is_disk_full
from sweeps.options import RunOptions
from sweeps.store import layout, lease
from sweeps.store.retry import RetryingClient, raw_client

#: prints one line of a sweep's summary (stdout on the command line)
Say = Callable[[str], None]
#: seconds the end of a sweep keeps trying a store its writers could not reach at all
UNREACHABLE_DEADLINE = 15.0


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
    client, previous = _checked_store(config, options, say)
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
    if not options.local and not resources.get("token_auth", 1.0):
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
        if previous is not None:  # the lease first: a second driver is turned away from now on
            keeper = lease.LeaseKeeper(client, previous.info.run_id, options.lease_seconds)
        sweep = tracking.start_sweep(
            client, config, prepared.text, len(points), resume_from=previous, data=data
        )
        if keeper is None:
            keeper = lease.LeaseKeeper(client, sweep.run_id, options.lease_seconds)
        keys = {p.key for p in points}
        if searched(config):  # a search's trainings are known as it goes: count all done
            keys |= sweep.done_keys
        done_before = len(sweep.done_keys & keys)
        unit = "trainings" if len(config.dataset.split.folds) > 1 else "points"
        say(_start_line(prepared, options, resources, client, sweep, len(keys), done_before, unit))
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
            taken_over=keeper.lost,
        )
    except Exception:
        if keeper is not None:
            keeper.release()
        raise
    finally:
        # synchronously: an object still holding a Ray reference, collected after a shutdown
        # done elsewhere, makes Ray's core worker end the process
        runner.shutdown_ray()
    if outcome.taken_over:  # the sweep and its parent run are the other driver's now
        raise TakenOver(outcome.taken_over)
    try:
        ended = finish(prepared, options, client, sweep, outcome, say=say, stop_signal=stop_signal)
    except Exception:
        keeper.release()
        raise
    # (a second Ctrl-C skips the release: the lease then expires by itself)
    keeper.release()
    return ended


def _checked_store(config: SweepConfig, options: RunOptions, say: Say) -> tuple[Any, Any]:
    """What the store must allow before Ray starts: a tracking server's user may write, and a
    sweep to resume exists with this config and no other driver. Returns the client (None when
    nothing needed one yet) and the parent run to resume (or None)."""
    from sweeps.store import tracking

    client = previous = None
    if options.tracking_uri.startswith(("http://", "https://")):  # a reader cannot run
        client = tracking.client_for(options.tracking_uri)
        tracking.check_can_write(client, config.experiment)
    if options.resume:  # a sweep that cannot be resumed is bad input: said before Ray starts
        client = client or tracking.client_for(options.tracking_uri)
        previous = tracking.resumable_sweep(client, config)
        if previous is None:
            say(f"--resume: no sweep named {config.name!r} yet; starting it")
        else:  # one driver per sweep (sweeps.store.lease)
            lease.check_free(previous, options.lease_seconds, options.force)
    return client, previous


def _start_line(
    prepared: Prepared,
    options: RunOptions,
    resources: dict,
    client: Any,
    sweep: Any,
    total: int,
    done_before: int,
    unit: str,
) -> str:
    """What the sweep trains, on what data, where, and what a resume finds done."""
    from sweeps.execution import runner

    config, data = prepared.config, prepared.data
    where = "local, " if options.local else f"{options.address}, "
    text = (
        f"sweep {config.name}: {prepared.describe()}, {data.describe()}\n"
        f"  data: {data.preparation()}\n"
        f"  Ray: {where}{runner.resources_summary(resources)}; MLflow: {client.tracking_uri}, "
        f"experiment {config.experiment!r}, parent run {sweep.run_id}"
    )
    if sweep.resumed:
        text += f"\n  resuming: {done_before} {unit} done before, {total - done_before} to train"
    return text


@dataclass
class Tally:
    """What a sweep's runs say when it ends: what was wanted, what is missing, its curves."""

    frame: Any  # the runs as a table (sweeps.store.results.child_frame)
    wanted: int
    missing: int
    aggregated: Any
    summaries: list
    diverged: int

    @property
    def everything_diverged(self) -> bool:
        """Every training diverged (and there were some)."""
        return 0 < self.diverged == len(self.frame)


def tally(frame: Any, points: list[TrainingPoint], select: str) -> Tally:
    """:class:`Tally` of a sweep's runs (a search's trainings are the initial ones and
    whatever it asked for: each has a run)."""
    from sweeps.analysis import curves
    from sweeps.store import results

    wanted = {p.key for p in points} | set(frame["key"].dropna())
    aggregated = curves.aggregate(frame)
    return Tally(
        frame,
        len(wanted),
        len(wanted - results.complete_keys(frame)),
        aggregated,
        [curves.summarize(c, select) for c in curves.curves_of(aggregated).values()],
        int(frame["diverged"].fillna(False).astype(bool).sum()),
    )


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
    """Close the parent run, refit, say the lowest means, write the report; how it ended."""
    from sweeps.store import results

    config = prepared.config
    resume_hint = f"`sweeps run {prepared.source} --resume`"
    if outcome.disk_full:  # ends within seconds: no retries through a store that is away
        client = raw_client(client)
    elif outcome.unwritten:  # the writers waited for the store already: a short last chance
        client = RetryingClient(raw_client(client), deadline=UNREACHABLE_DEADLINE)
    stopped = outcome.interrupted or outcome.error
    try:
        parent = client.get_run(sweep.run_id)
        runs = tally(results.child_frame(client, parent), prepared.points, config.select)
    except Exception as error:
        raise _unreachable(error, config, outcome, resume_hint) from None
    refits, refit_error, registered = [], None, []
    if runs.summaries and not (
        runs.missing or stopped or runs.everything_diverged or not options.refit
    ):
        refits, registered, refit_error = _refit_step(prepared, client, sweep, runs, say)
    try:
        _close(client, sweep, runs, outcome)
    except Exception as error:
        raise _unreachable(error, config, outcome, resume_hint) from None
    _say_summary(config, client, parent, runs, outcome, refits, say)
    ended = Ended(0, client.tracking_uri, sweep.run_id, config.name, registered=registered)
    if options.report and not stopped:
        ended.report = _report(prepared, options, client, parent, runs, say)
    if outcome.error:
        raise SweepError(
            f"sweep {config.name!r} stopped: {outcome.error}; {resume_hint} continues it"
        )
    ended.code, ended.problem = _verdict(config, runs, outcome, resume_hint, stop_signal)
    if not ended.code and refit_error:
        raise SweepError(refit_error)
    return ended


def _unreachable(error: Exception, config: SweepConfig, outcome: Any, hint: str) -> SweepError:
    """MLflow does not answer at a sweep's end (the writer said so above)."""
    if outcome.disk_full:
        return SweepError(
            f"{outcome.disk_full}, and MLflow does not answer to close sweep {config.name!r}; "
            f"free some space, then {hint} continues it"
        )
    return SweepError(
        f"cannot reach MLflow to close sweep {config.name!r} "
        f"({first_line(error, with_type=True, limit=200)}); {hint} continues it"
    )


def _refit_step(
    prepared: Prepared, client: Any, sweep: Any, runs: Tally, say: Say
) -> tuple[list, list, str | None]:
    """The refits and the registration; a failure is said at the end (the trainings stand
    and the sweep is closed all the same)."""
    config = prepared.config
    try:
        refits, registered = _refit(config, client, sweep, prepared.data, runs.summaries, say)
        return refits, registered, None
    except SweepError as error:  # nothing to register
        return [], [], str(error)
    except Exception as error:
        return (
            [],
            [],
            (
                f"the refit of sweep {config.name!r} failed "
                f"({first_line(error, with_type=True, limit=300)}); its trainings are all written: "
                f"`sweeps run {prepared.source} --resume` refits without training"
            ),
        )


def _close(client: Any, sweep: Any, runs: Tally, outcome: Any) -> None:
    """The parent run's table of runs and counts, and its end."""
    from sweeps.analysis import curves
    from sweeps.store import results, tracking

    lowest = curves.best_per_curve(runs.aggregated)  # what `sweeps ls` shows of a running sweep
    results.store_table(client, sweep.run_id, runs.frame)
    tracking.finish_sweep(
        sweep,
        missing=runs.missing,
        interrupted=outcome.interrupted,
        error=outcome.error,
        done=runs.wanted - runs.missing,
        total=runs.wanted,
        best_dev_cost=lowest[metrics.DEV_COST].min() if len(lowest) else None,
    )


def _say_summary(
    config: SweepConfig, client: Any, parent: Any, runs: Tally, outcome: Any, refits: list, say: Say
) -> None:
    from sweeps.analysis import curves
    from sweeps.store import results

    say(
        f"\n{config.name}: {outcome.trained} trainings in {outcome.seconds:.1f}s"
        + (f", {outcome.skipped} already done" if outcome.skipped else "")
        + (f", {outcome.failed} failed" if outcome.failed else "")
        + (f", {runs.diverged} diverged" if runs.diverged else "")
        + (f", {outcome.trial_retries} trial retries" if outcome.trial_retries else "")
        + (f", {outcome.writer_retries} MLflow retries" if outcome.writer_retries else "")
    )
    best = curves.best_per_curve(runs.aggregated, config.select)
    if not best.empty:
        say(f"lowest mean {config.select} per curve (over folds and seeds):")
        say(results.format_table(best))
    if refits:
        say("refits on all non-test data (test set scored once):")
        say(results.format_table(results.refit_frame(client, parent).drop(columns=["model"])))


def _report(
    prepared: Prepared, options: RunOptions, client: Any, parent: Any, runs: Tally, say: Say
) -> Path | None:
    """The report (a full disk is one line naming the folder); its folder, or None."""
    if not runs.summaries:
        say("no report: no finished runs with a regularization strength to plot")
        return None
    from sweeps.analysis import report

    name = prepared.config.name
    started = time.monotonic()
    try:
        folder = report.write_report(client, parent, options.out, data=prepared.data)
    except OSError as error:
        if not is_disk_full(error):
            raise
        where = options.out or report.report_folder(name)
        raise SweepError(
            f"{DiskFull(where, 'writing the report')}; every training is written: free some "
            f"space, then `sweeps report {name}` writes it"
        ) from None
    say(f"report: {folder / 'report.html'} ({time.monotonic() - started:.1f}s)")
    return folder


def _verdict(
    config: SweepConfig, runs: Tally, outcome: Any, hint: str, stop_signal: Callable[[], int]
) -> tuple[int, str | None]:
    """The exit code and its one-line reason (module note of :class:`Ended`)."""
    if outcome.disk_full:
        return 1, (
            f"{outcome.disk_full}; sweep {config.name!r} stopped with what finished written: "
            f"free some space, then {hint} continues it"
        )
    if outcome.interrupted:
        return 128 + stop_signal(), "interrupted"
    if runs.everything_diverged:
        return 1, (
            f"every training of sweep {config.name!r} diverged ({runs.diverged} of "
            f"{len(runs.frame)}: the cost stopped being finite); the usual cause is too large a "
            f"learning rate (model.learning_rate = {config.model.learning_rate:g})"
        )
    if runs.missing:
        return 1, (
            f"{runs.missing} of {runs.wanted} trainings have no finished run; "
            f"rerun with {hint} to train them"
        )
    return 0, None


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
