"""The scale case: ``configs/scale.yaml`` (10,000 points) against an MLflow server on a real
PostgreSQL, reading it back, and the pace of writes by writer threads and server workers, and
to a SQLite file."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.measure import Row, row, watched
from bench.sweep_cases import sweep_command

# --- 8. scale: ten thousand points against MLflow on PostgreSQL ---------------------------------

#: the scale case in --quick: 2 depths x 2 penalties x 10 lambdas x 1 seed = 40 points
SCALE_QUICK = [
    "search.seeds=[0]",
    "search.penalties.l2.lam={logspace: [-4, 2, 10]}",
    "search.penalties.l1.lam={logspace: [-4, 1, 10]}",
]
#: the writer threads of the --quick sweep (which is also its writers' sub-case)
QUICK_WRITERS = 2
#: the server's worker processes in the main case: MLflow's default, as the compose stack runs it
SERVER_WORKERS = 4
#: in --quick, fewer: a 2-core CI machine runs the whole test suite beside it
QUICK_SERVER_WORKERS = 2
#: the writers' sub-case: 400 of the scale sweep's points (seeds 0 and 1)
SCALE_SLICE = ["search.seeds=[0, 1]"]
PROGRESS = re.compile(r"^\[(?P<name>[^\]]+)\] (?P<done>\d+)/(?P<total>\d+) ")
WRITING = re.compile(r"^writing (?P<pending>\d+) results to MLflow")
SUMMARY = re.compile(r"^(?P<name>\S+): (?P<trained>\d+) trainings in (?P<seconds>[\d.]+)s")


def sweep_phases(lines: list[tuple[float, str]], name: str) -> dict[str, Any]:
    """Training and writing apart, from the timed output lines of ``sweeps run``.

    The run starts at the header line (``sweep NAME: ...``: Ray is up, the parent run exists);
    training ends at the progress line that counts every point (``points``: how many the sweep
    trained); the CLI's summary (``N
    trainings in X s``, counted from about the header) says when the last result was written.
    ``writing_behind_s`` is how long writing went on after training ended, and ``pending`` how
    many results were waiting then (0 if the writers kept up).
    """
    header = trained = end = points = None
    pending = 0
    for when, line in lines:
        progress, summary = PROGRESS.match(line), SUMMARY.match(line)
        if header is None and line.startswith(f"sweep {name}:"):
            header = when
        elif progress and progress["done"] == progress["total"] and trained is None:
            trained, points = when, int(progress["total"])
        elif match := WRITING.match(line):
            pending = int(match["pending"])
        elif summary and summary["name"] == name:
            end = float(summary["seconds"])
    if header is None or trained is None or end is None:
        raise RuntimeError(f"sweep {name}: no header, final progress or summary line in its output")
    return {
        "points": points,
        "setup_s": header,
        "training_s": trained - header,
        "run_s": end,
        "writing_behind_s": max(0.0, end - (trained - header)),
        "pending_after_training": pending,
    }


def write_window(uri: str, experiment: str) -> tuple[int, float]:
    """``(child runs, seconds from the first one's creation to the last one's)`` of the sweep
    in ``experiment``: the writers create each run as they start writing it, so this is the
    pace at which they wrote (as long as training kept them busy)."""
    from mlflow import MlflowClient

    from sweeps.store.layout import KIND_TAG, POINT
    from sweeps.store.tracking import search_all

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    starts = [
        run.info.start_time
        for run in search_all(client, [found.experiment_id], f"tags.`{KIND_TAG}` = '{POINT}'")
    ]
    return len(starts), (max(starts) - min(starts)) / 1000


def _scale_sweep(folder: Path, uri: str, name: str, overrides: list[str]) -> dict[str, Any]:
    """``sweeps run configs/scale.yaml`` (as ``name``, in an experiment of the same name)
    against the server at ``uri``: wall time, phases, write pace, peak memory."""
    command = sweep_command(
        folder, [f"experiment={name}", *overrides], "scale.yaml", tracking_uri=uri, name=name
    )
    run = watched(command, folder)
    runs, seconds = write_window(uri, name)
    return {
        "wall_s": run["wall_s"],
        **sweep_phases(run["lines"], name),
        "runs_written": runs,
        "write_seconds": seconds,
        "runs_per_s": runs / seconds,
        "peak_rss_mb": run["peak_rss_mb"],
        "driver_peak_rss_mb": run["driver_peak_rss_mb"],
    }


def _reads(folder: Path, uri: str, name: str) -> dict[str, float]:
    """Seconds of ``sweeps ls``, ``show``, ``report`` and ``compare`` against ``uri``."""
    commands = {
        "ls": ["ls"],
        "show": ["show", name],
        "report": ["report", name, "--out", str(folder / "report")],
        "compare": ["compare", name, "--out", str(folder / "compare")],
    }
    seconds = {}
    for key, args in commands.items():
        command = [sys.executable, "-m", "sweeps.cli", *args, "--tracking-uri", uri]
        seconds[f"{key}_s"] = watched(command, folder)["wall_s"]
    return seconds


class _Services:
    """A PostgreSQL server and an MLflow server of ``workers`` workers on it (stopped on exit)."""

    def __init__(self, folder: Path, workers: int) -> None:
        self.folder, self.workers = folder, workers

    def __enter__(self) -> str:
        from tests.services import MlflowServer, PostgresServer

        self.postgres = PostgresServer()
        try:
            folder = self.folder / f"mlflow-{self.workers}"
            self.mlflow = MlflowServer(folder, backend=self.postgres.uri, workers=self.workers)
        except BaseException:
            self.postgres.stop()
            raise
        return self.mlflow.uri

    def __exit__(self, *exc: object) -> None:
        try:
            self.mlflow.stop()
        finally:
            self.postgres.stop()


def _writers_row(
    folder: Path, uri: str, workers: int, writers: tuple[int, ...], overrides: list[str]
) -> Row:
    """Runs written per second by ``sweeps run`` with each count of writer threads in
    ``writers`` (``execution.writers``), against the server at ``uri`` of ``workers`` workers
    (0: ``uri`` is a SQLite file, which takes one writer)."""
    runs = []
    for count in writers:
        name = f"writers-{count}-{workers}"
        measured = _scale_sweep(folder, uri, name, [*overrides, f"execution.writers={count}"])
        runs.append({"writers": count, **measured})
    return _writers_table(workers, runs)


def _writers_table(workers: int, runs: list[dict[str, Any]]) -> Row:
    """The writers' row from the measured sweeps ``runs`` (each with its ``writers`` count)."""
    store = f"server of {workers} worker{'s' if workers > 1 else ''}" if workers else "SQLite"
    database = "PostgreSQL" if workers else "a new SQLite file"
    return row(
        "scale",
        f"MLflow writes/s, {store}",
        "writers",
        f"{runs[0]['points']} points of scale.yaml per run, execution.writers = W, {database}",
        server_workers=workers,
        runs=runs,
    )


def case_scale(quick: bool) -> list[Row]:
    """``configs/scale.yaml`` against MLflow on PostgreSQL, reading it back, and the pace of
    writes by writer threads and server workers."""
    if not Path("/proc").is_dir():
        return [row("scale", "scale sweep", "text", "needs Linux /proc")]
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as folder:
        folder = Path(folder)
        workers = QUICK_SERVER_WORKERS if quick else SERVER_WORKERS
        with _Services(folder, workers) as uri:
            # in --quick the main sweep, with 2 writers, is the writers' sub-case too
            overrides = [*SCALE_QUICK, f"execution.writers={QUICK_WRITERS}"] if quick else []
            measured = _scale_sweep(folder, uri, "scale", overrides)
            reads = _reads(folder, uri, "scale")
            if quick:
                writers = [_writers_table(workers, [{"writers": QUICK_WRITERS, **measured}])]
        if not quick:  # each server on a database of its own
            writers = []
            for workers in (1, 2, 4):
                with _Services(folder, workers) as uri:
                    writers.append(_writers_row(folder, uri, workers, (1, 4, 8), SCALE_SLICE))
        sqlite = f"sqlite:///{folder / 'writes.db'}"
        writers.append(_writers_row(folder, sqlite, 0, (1,), SCALE_QUICK if quick else SCALE_SLICE))
    points = measured["points"]
    threads = QUICK_WRITERS if quick else "auto (8)"
    where = f"MLflow server ({workers} workers) on PostgreSQL, writers {threads}"
    return [
        row(
            "scale",
            "scale sweep to MLflow on PostgreSQL",
            "scale",
            f"{points} points of scale.yaml, {where}",
            **measured,
        ),
        row(
            "scale",
            "reading the scale sweep back",
            "reads",
            f"sweeps ls / show / report / compare, {points} runs",
            **reads,
        ),
        *writers,
    ]
