"""The ``sweeps`` command.

Exit codes: 0 success; 2 bad input (config, data, arguments), with a one-line reason naming the
field; 1 anything else (unreachable cluster or tracking server, points that failed, ...).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from regcore import metrics
from sweeps.errors import SweepError, UsageError, first_line
from sweeps.store import layout

if TYPE_CHECKING:
    from regcore.datasets import Resampled
    from sweeps.config.points import TrainingPoint
    from sweeps.config.schema import SweepConfig
    from sweeps.execution.runner import SweepOutcome
    from sweeps.store.tracking import Sweep

DESCRIPTION = """\
Regularization sweeps: Ray Tune trains regcore models across penalties, lambdas, depths and
seeds; MLflow records every training (a parent run per sweep, a child run per point).

With no --tracking-uri (or MLFLOW_TRACKING_URI) runs go to MLflow's default, sqlite:///mlflow.db
in the working folder: `mlflow ui` (or `sweeps ui`) there shows them. With no --address (or
RAY_ADDRESS) a local Ray is started.
"""


#: the signal that stopped a sweep (Ctrl-C's SIGINT unless SIGTERM or SIGHUP came first); the
#: exit code is 128 + its number, as a shell reports a process killed by it
STOPPED_BY = [int(signal.SIGINT)]


def _stop(signum: int, frame: object) -> None:
    STOPPED_BY[0] = signum
    for other in (signal.SIGTERM, signal.SIGHUP):  # once: the clean-up must not be cut short
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """SIGTERM (``timeout``, systemd, ``docker stop``, Kubernetes) and SIGHUP (a closed
    terminal) stop a sweep as Ctrl-C does: what finished is written, the parent run ends
    KILLED, and ``--resume`` continues."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _tracking_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sweeps", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run a sweep from a YAML config",
        description=(
            "Validate CONFIG, expand its points, train them with Ray Tune and log them to MLflow, "
            "then write the bias-variance report."
        ),
    )
    run.add_argument("config", metavar="CONFIG", help="a YAML file, or a bundled config's name")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a config field, e.g. --set model.epochs=500 (repeatable)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the expanded points and exit (no Ray, nothing written)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the newest sweep of this name: train only unfinished points",
    )
    run.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="Ray cluster to use (default: $RAY_ADDRESS, else a local Ray)",
    )
    _tracking_option(run)
    run.add_argument(
        "--storage-path",
        metavar="DIR",
        help="Ray Tune's experiment folder (default: $REGSWEEP_STORAGE_PATH, else "
        "execution.storage_path, else Ray's ~/ray_results); on a cluster, a folder all nodes share",
    )
    run.add_argument(
        "--register",
        metavar="NAME",
        help="register the sweep's choice in MLflow's Model Registry as NAME, with aliases "
        "lambda-min and lambda-1se (overrides the config's register:)",
    )
    run.add_argument(
        "--no-refit",
        action="store_true",
        help="skip the refit of lambda.min and lambda.1se on all non-test data (and --register)",
    )
    run.add_argument("--no-report", action="store_true", help="skip the report at the end")
    run.add_argument("--out", metavar="DIR", help="report folder (default: reports/<sweep>)")

    ls = commands.add_parser("ls", help="list sweeps with status, point counts and best dev cost")
    _tracking_option(ls)
    ls.add_argument("--experiment", help="only sweeps of this MLflow experiment")

    show = commands.add_parser("show", help="a sweep's points as a table")
    show.add_argument("sweep", metavar="SWEEP", help="sweep name or parent run id")
    _tracking_option(show)

    ui = commands.add_parser("ui", help="start the MLflow UI on the tracking store")
    _tracking_option(ui)
    ui.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000, help="port (default: 5000)")

    report = commands.add_parser("report", help="bias-variance report of a sweep")
    report.add_argument(
        "sweep",
        metavar="SWEEP",
        nargs="?",
        help="sweep name or parent run id (default: the newest sweep)",
    )
    _tracking_option(report)
    report.add_argument("--out", metavar="DIR", help="output folder (default: reports/<sweep>)")

    compare = commands.add_parser("compare", help="overlay lambda curves of sweeps or groups")
    compare.add_argument(
        "curves",
        metavar="SWEEP_OR_GROUP",
        nargs="+",
        help="a sweep (name or run id), or SWEEP:penalty=l2,depth=3",
    )
    _tracking_option(compare)
    compare.add_argument(
        "--metric",
        default=metrics.DEV_COST,
        help=f"metric to compare (default: {metrics.DEV_COST})",
    )
    compare.add_argument("--out", metavar="DIR", help="output folder (default: reports/compare)")
    return parser


# --- commands ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from sweeps.config.data import load_data
    from sweeps.config.points import expand, searched
    from sweeps.config.reading import config_text, read_config

    config, _ = read_config(args.config, args.set, args.register)
    config, data = load_data(config)
    text = config_text(config)
    points = expand(config)
    if args.dry_run:
        return _print_dry_run(config, points, data)

    from sweeps.execution import runner
    from sweeps.store import backlog, tracking

    # the environment's settings are bad input too: checked before anything is written
    backlog.memory_bound()
    runner.drain_seconds()
    try:
        from regcore.engines import environment_engine

        environment_engine()
    except ValueError as error:
        raise UsageError(str(error)) from None
    tracking_uri = args.tracking_uri or tracking.default_tracking_uri()
    tracking.check_tracking_uri(tracking_uri)
    tracking.check_tracking_server(tracking_uri)
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    client = previous = None
    if args.resume:  # a sweep that cannot be resumed is bad input: say so before Ray starts
        client = tracking.client_for(tracking_uri)
        previous = tracking.resumable_sweep(client, config)
        if previous is None:
            print(f"--resume: no sweep named {config.name!r} yet; starting it", file=sys.stderr)
    if address is None:  # before the store is set up beside Ray's start
        runner.check_schedulable(config, runner.local_cpus(), "this machine (a local Ray)")
    with ThreadPoolExecutor(max_workers=2) as pool:
        # starting Ray takes seconds of waiting for its processes: meanwhile import Ray Tune
        # and, for a local Ray, set up the store (a cluster is checked first, so that a
        # refused one leaves nothing written)
        pool.submit(importlib.import_module, "sweeps.execution.callback")
        store = None
        if client is None and address is None:
            store = pool.submit(tracking.client_for, tracking_uri)
        resources = runner.connect_ray(address)
    stop_on_signals()  # after ray.init, which installs a SIGTERM handler of its own
    try:
        if address is not None:
            where = f"the cluster ({runner.resources_summary(resources)})"
            runner.check_schedulable(config, resources["largest_node_cpus"], where)
        if client is None:
            client = store.result() if store is not None else tracking.client_for(tracking_uri)
        sweep = tracking.start_sweep(
            client, config, text, len(points), resume_from=previous, data=data
        )
        keys = {p.key for p in points}
        if searched(config):  # a search's trainings are known as it goes: count all done
            keys |= sweep.done_keys
        done_before = len(sweep.done_keys & keys)
        unit = "trainings" if len(config.dataset.split.folds) > 1 else "points"
        print(
            f"sweep {config.name}: {describe_points(config, points)}, {data.describe()}\n"
            f"  data: {data.preparation()}\n"
            f"  Ray: {'local, ' if not address else address + ', '}"
            f"{runner.resources_summary(resources)}; MLflow: {client.tracking_uri}, "
            f"experiment {config.experiment!r}, parent run {sweep.run_id}"
            + (
                f"\n  resuming: {done_before} {unit} done before, "
                f"{len(keys) - done_before} to train"
                if sweep.resumed
                else ""
            ),
            flush=True,
        )
        from sweeps.execution.progress import Progress

        progress = Progress(config.name, len(keys), already=done_before, unit=unit)
        progress.start()
        outcome = runner.run_points(
            config,
            sweep,
            points,
            slots=runner.slots_for(config, resources),
            data=data,
            nodes=int(resources.get("nodes", 1)),
            storage_path=args.storage_path or os.environ.get("REGSWEEP_STORAGE_PATH"),
            progress=progress,
        )
    finally:
        # synchronously: an object still holding a Ray reference, collected after a shutdown
        # done elsewhere, makes Ray's core worker end the process
        runner.shutdown_ray()
    return _finish_run(args, config, client, sweep, points, outcome, data)


def _finish_run(
    args: argparse.Namespace,
    config: SweepConfig,
    client: Any,
    sweep: Sweep,
    points: list[TrainingPoint],
    outcome: SweepOutcome,
    data: Resampled,
) -> int:
    from sweeps.analysis import curves
    from sweeps.store import results, tracking

    def unreachable(error: Exception) -> SweepError:  # the writer said so above
        return SweepError(
            f"cannot reach MLflow to close sweep {config.name!r} "
            f"({first_line(error, with_type=True, limit=200)}); "
            f"`sweeps run {args.config} --resume` continues it"
        )

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
    refits, refit_error = [], None
    if summaries and not (missing or stopped or args.no_refit):
        try:
            refits = _refit(config, client, sweep, data, summaries)
        except Exception as error:  # the trainings stand: the sweep is closed all the same
            refit_error = first_line(error, with_type=True, limit=300)
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
    print(
        f"\n{config.name}: {outcome.trained} trainings in {outcome.seconds:.1f}s"
        + (f", {outcome.skipped} already done" if outcome.skipped else "")
        + (f", {outcome.failed} failed" if outcome.failed else "")
        + (f", {int(frame['diverged'].sum())} diverged" if frame["diverged"].any() else "")
        + (f", {outcome.trial_retries} trial retries" if outcome.trial_retries else "")
        + (f", {outcome.writer_retries} MLflow retries" if outcome.writer_retries else "")
    )
    if not best.empty:
        print(f"lowest mean {config.select} per curve (over folds and seeds):")
        print(results.format_table(best))
    if refits:
        print("refits on all non-test data (test set scored once):")
        from sweeps.store.results import refit_frame

        print(results.format_table(refit_frame(client, parent).drop(columns=["model"])))
    if not args.no_report and not stopped:
        if summaries:
            from sweeps.analysis import report

            started = time.monotonic()
            out = report.write_report(client, parent, args.out, data=data)
            print(f"report: {out / 'report.html'} ({time.monotonic() - started:.1f}s)")
        else:
            print("no report: no finished runs with a regularization strength to plot")
    if outcome.error:
        raise SweepError(f"sweep {config.name!r} stopped: {outcome.error}; --resume continues it")
    if outcome.interrupted:
        return 128 + STOPPED_BY[0]
    if missing:
        print(
            f"{missing} of {len(wanted)} trainings have no finished run; "
            f"rerun with `sweeps run {args.config} --resume` to train them",
            file=sys.stderr,
        )
        return 1
    if refit_error:
        raise SweepError(
            f"the refit of sweep {config.name!r} failed ({refit_error}); its trainings are all "
            f"written: `sweeps run {args.config} --resume` refits without training"
        )
    return 0


def _refit(
    config: SweepConfig, client: Any, sweep: Sweep, data: Resampled, summaries: list
) -> list:
    """Refit each curve's lambda.min and lambda.1se, log them, and register the sweep's choice
    if asked (:mod:`sweeps.execution.refit`)."""
    from sweeps.execution import refit

    started = time.monotonic()
    refits = refit.plan(config, summaries)
    refit.fit(config, data, refits)
    refit.log(client, sweep, config, data, refits)
    print(f"refit {len(refits)} models on all non-test data ({time.monotonic() - started:.1f}s)")
    if config.register_as:
        registered = refit.register(client, config.register_as, refits)
        print(
            f"registered {registered[0][0].summary.name} as {config.register_as!r}: "
            + ", ".join(
                f"version {v.version} @{' @'.join(layout.RULES[rule] for rule in r.rules)}"
                for r, v in registered
            )
        )
    return refits


def describe_points(config: SweepConfig, points: list[TrainingPoint]) -> str:
    """``"34 points"``, or ``"27 points x 5 folds = 135 trainings"`` under cross-validation."""
    folds = len(config.dataset.split.folds)
    if folds == 1:
        return f"{len(points)} points"
    return f"{len(points) // folds} points x {folds} folds = {len(points)} trainings"


def _print_dry_run(config: SweepConfig, points: list[TrainingPoint], data: Resampled) -> int:
    import pandas as pd

    from sweeps.config.points import curve_specs

    for spec in curve_specs(config):
        if spec.search is not None:
            low, high = spec.search_range()
            print(
                f"{spec.name}: bracketing search from {low:g} to {high:g} "
                f"(tol {spec.search.tol:g} decades, at most {spec.search.budget} strengths; "
                f"the first {len(spec.initial())} below)"
            )
    frame = pd.DataFrame([p.as_dict() for p in points]).drop(columns=["key"])
    frame = frame.dropna(axis="columns", how="all")  # no fold columns on a single split
    print(f"sweep {config.name}: {describe_points(config, points)}; {data.describe()}")
    counts = frame.groupby(["penalty", "depth", "width"], sort=False).size().rename("trainings")
    print(counts.reset_index().to_string(index=False))
    print()
    shown = 40
    print(frame.head(shown).to_string(index=False))
    if len(frame) > shown:
        print(f"... and {len(frame) - shown} more")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    import pandas as pd

    from sweeps.analysis import curves
    from sweeps.store import results, tracking

    client = tracking.client_for(args.tracking_uri or tracking.default_tracking_uri())
    rows = []
    for parent in tracking.sweep_runs(client, args.experiment):
        tags = parent.data.tags
        if parent.info.status != "RUNNING" and layout.DONE_TAG in tags:
            # as the sweep recorded it when it ended: no need to read its runs
            done, best_cost = int(tags[layout.DONE_TAG]), tags.get(layout.BEST_COST_TAG)
            best_cost = float(best_cost) if best_cost else float("nan")
        else:
            frame = results.child_frame(client, parent)
            best = curves.best_per_curve(curves.aggregate(frame))
            done = len(results.complete_keys(frame))
            best_cost = best[metrics.DEV_COST].min() if len(best) else float("nan")
        rows.append(
            {
                "sweep": tags.get(layout.SWEEP_TAG, parent.info.run_name),
                "run_id": parent.info.run_id,
                "status": parent.info.status,
                "points": f"{done}/{tags.get(layout.POINTS_TAG, '?')}",
                # as everywhere: the lowest mean over folds and seeds of a setting
                "best_dev_cost": best_cost,
                "started": pd.to_datetime(parent.info.start_time, unit="ms").strftime(
                    "%Y-%m-%d %H:%M"
                ),
            }
        )
    if not rows:
        print("no sweeps yet in", client.tracking_uri)
        return 0
    print(results.format_table(pd.DataFrame(rows)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from sweeps.settings import SETTING_KEYS
    from sweeps.store import results, tracking

    client = tracking.client_for(args.tracking_uri or tracking.default_tracking_uri())
    parent = tracking.find_sweep(client, args.sweep)
    frame = results.child_frame(client, parent)
    shown = (
        *SETTING_KEYS,
        "seed",
        "status",
        metrics.TRAIN_COST,
        metrics.DEV_COST,
        metrics.TRAIN_ERROR,
        metrics.DEV_ERROR,
        metrics.SPARSITY,
        "diverged",
    )
    columns = [c for c in shown if c in frame]
    name = parent.data.tags.get(layout.SWEEP_TAG)
    print(f"sweep {name} ({parent.info.run_id}, {parent.info.status}): {len(frame)} runs")
    print(results.format_table(frame[columns]))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from sweeps.store import tracking

    uri = args.tracking_uri or tracking.default_tracking_uri() or "sqlite:///mlflow.db"
    if uri.startswith(("http://", "https://")):
        print(f"the tracking server serves its own UI: {uri}")
        _print_newest_sweep(uri, uri)
        return 0
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    address = f"http://{args.host}:{args.port}"
    print(f"MLflow UI on {uri}: {address}  (Ctrl-C stops it)", flush=True)
    _print_newest_sweep(uri, address)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


def _print_newest_sweep(uri: str, address: str) -> None:
    """The UI addresses of the newest sweep's runs, if the store has a sweep."""
    from sweeps.store import tracking

    if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///") :]):
        return  # no store yet (the UI makes an empty one)
    runs = tracking.sweep_runs(tracking.client_for(uri))
    if runs:
        run = runs[0]
        name = run.data.tags.get(layout.SWEEP_TAG, run.info.run_name)
        runs_page, run_page = tracking.ui_pages(address, run.info.experiment_id, run.info.run_id)
        print(f"newest sweep {name}: its runs {runs_page}\n  its parent run {run_page}", flush=True)


def cmd_report(args: argparse.Namespace) -> int:
    from sweeps.analysis import report
    from sweeps.store import tracking

    client = tracking.client_for(args.tracking_uri or tracking.default_tracking_uri())
    parent = tracking.find_sweep(client, args.sweep)
    started = time.monotonic()
    out = report.write_report(client, parent, args.out)
    print(f"report: {out / 'report.html'} ({time.monotonic() - started:.1f}s)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from sweeps.analysis import compare
    from sweeps.store import tracking

    client = tracking.client_for(args.tracking_uri or tracking.default_tracking_uri())
    out = compare.write_comparison(client, args.curves, args.metric, args.out)
    print(f"comparison: {out / 'compare.html'}")
    return 0


COMMANDS = {
    "run": cmd_run,
    "ls": cmd_ls,
    "show": cmd_show,
    "ui": cmd_ui,
    "report": cmd_report,
    "compare": cmd_compare,
}


def main(argv: Sequence[str] | None = None) -> int:
    # A tracking server's client prints two links whenever a run ends, fetching the run again
    # to do so: 20,000 lines and a third of the write rate in a 10,000-point sweep. The sweep
    # prints its own links once.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (UsageError, SweepError) as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + STOPPED_BY[0]


if __name__ == "__main__":
    sys.exit(main())
