"""The ``sweeps`` command: argument parsing and printing. What a command does lives in the
packages (a sweep's life: :mod:`sweeps.execution.lifecycle`, the same one :func:`sweeps.run`
runs).

Exit codes: 0 success; 2 bad input (config, data, arguments), with a one-line reason naming the
field; 1 anything else (unreachable cluster or tracking server, points that failed, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from regcore import metrics
from sweeps.errors import SweepError, UsageError, first_line
from sweeps.options import resolve_tracking_uri
from sweeps.store import layout

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
        "--force",
        action="store_true",
        help="with --resume: take the sweep over even if its driver's lease is fresh",
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
    from sweeps.execution import lifecycle
    from sweeps.options import run_options

    options = run_options(
        tracking_uri=args.tracking_uri,
        address=args.address,
        storage_path=args.storage_path,
        overrides=args.set,
        resume=args.resume,
        force=args.force,
        refit=not args.no_refit,
        report=not args.no_report,
        register=args.register,
        out=args.out,
    )
    prepared = lifecycle.prepare(args.config, options)
    if args.dry_run:
        lifecycle.dry_run(prepared, say=print)
        return 0
    from sweeps.execution.progress import Progress

    ended = lifecycle.execute(
        prepared,
        options,
        say=lambda text: print(text, flush=True),
        progress=Progress,
        stop_signal=lambda: STOPPED_BY[0],
        on_ray_started=stop_on_signals,
    )
    if ended.code == 1 and ended.problem:
        print(f"error: {ended.problem}", file=sys.stderr)
    return ended.code


def cmd_ls(args: argparse.Namespace) -> int:
    import pandas as pd

    from sweeps.analysis import curves
    from sweeps.store import results, tracking

    client = tracking.client_for(resolve_tracking_uri(args.tracking_uri))
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

    client = tracking.client_for(resolve_tracking_uri(args.tracking_uri))
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

    uri = resolve_tracking_uri(args.tracking_uri)
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

    database = tracking.sqlite_path(uri)
    if database is not None and not database.exists():
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

    client = tracking.client_for(resolve_tracking_uri(args.tracking_uri))
    parent = tracking.find_sweep(client, args.sweep)
    started = time.monotonic()
    out = report.write_report(client, parent, args.out)
    print(f"report: {out / 'report.html'} ({time.monotonic() - started:.1f}s)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from sweeps.analysis import compare
    from sweeps.store import tracking

    client = tracking.client_for(resolve_tracking_uri(args.tracking_uri))
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
    except Exception as error:  # not foreseen: one line (REGSWEEP_DEBUG=1 shows where)
        if os.environ.get("REGSWEEP_DEBUG"):
            raise
        print(
            f"error: {first_line(error, with_type=True)} (unexpected; REGSWEEP_DEBUG=1 shows "
            "where)",
            file=sys.stderr,
        )
        return 1


def entry() -> None:
    """The ``sweeps`` command: :func:`main`, then out at once. What a command does is written and
    closed by then; the interpreter's own tear-down (Ray's, numba's and MLflow's modules and
    objects, collected one by one) would add a second and a half to every command."""
    import logging

    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
