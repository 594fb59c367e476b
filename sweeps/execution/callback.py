"""The Ray Tune callback through which trial results reach the MLflow writer (driver side).

Kept apart from :mod:`sweeps.execution.runner` so that importing the runner does not import Ray Tune
(the CLI imports Tune while Ray starts).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from ray.tune import Callback
from ray.tune.progress_reporter import ProgressReporter, TrialProgressCallback

from sweeps.config.points import TrainingPoint
from sweeps.errors import TakenOver
from sweeps.execution.progress import Progress
from sweeps.execution.searcher import SweepSearcher
from sweeps.execution.trial import trial_input
from sweeps.settings import curve_name
from sweeps.store.point_result import POINTS
from sweeps.store.writer import ChildRunWriter, PointRecord


class ResultsToMLflow(Callback):
    """Hands each pack's results to the MLflow writer, and removes them from Tune's copy."""

    def __init__(
        self,
        writer: ChildRunWriter,
        progress: Progress,
        searcher: SweepSearcher,
        taken_over: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.writer, self.progress, self.searcher = writer, progress, searcher
        self.taken_over = taken_over  # who took the sweep over, if anybody (the lease)
        self.retries = 0
        # keys whose result came in: a trial retried after it reported (its node was lost)
        # delivers them again; the writer keeps one run per key, the count must too
        self.delivered: set[str] = set()

    def __getstate__(self) -> dict:
        # Tune pickles its state for Tuner.restore, which sweeps never use (MLflow decides what
        # is done); the writer's thread and lock cannot be pickled
        return {}

    def points(self, trial: Any) -> list[TrainingPoint]:
        """A trial's trainings (:class:`sweeps.execution.trial.TrialInput`)."""
        return list(trial_input(trial.config).points)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        by_key = {p.key: p for p in self.points(trial)}
        for item in result.pop(POINTS, []):  # Tune keeps last_result: keep it small
            if item.key in self.delivered:
                continue
            self.delivered.add(item.key)
            point = by_key[item.key]
            self.writer.submit(PointRecord(point, result=item))
            self.progress.point_done(
                diverged=item.diverged,
                curve=curve_name(point.penalty, point.depth, point.width, point.l1_ratio),
                strength=point.strength,
                value=item.final.get(self.writer.config.select, math.nan),
                weight=float(self.writer.sizes[(point.repeat, point.fold)][1]),
            )

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        # a full disk, or another driver taking the sweep over, stops it within a step of Tune's
        # loop, results or not
        if self.writer.disk_full is not None:
            raise self.writer.disk_full
        holder = self.taken_over()
        if holder is not None:
            raise TakenOver(holder)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.retries += 1
        self.progress.note(f"retrying trial {trial.trial_id} ({_last_error_line(trial)})")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # the points it reported before it failed for good are done
        points = [p for p in self.points(trial) if p.key not in self.delivered]
        message = _last_error_line(trial)
        label = trial_input(trial.config).label
        sizes = self.searcher.trial_failed(
            trial.trial_id, label, points, out_of_memory=is_out_of_memory(message)
        )
        if sizes is not None:  # Tune proposes the halves next
            self.progress.note(
                f"a trial ran out of memory ({message[:120]}): its {len(points)} points "
                f"train again as packs of {sizes[0]} and {sizes[1]}"
            )
            return
        for point in points:
            self.writer.submit(PointRecord(point, error=message))
        self.progress.point_failed(len(points))
        self.progress.note(f"a trial failed for good ({len(points)} points): {message}")


def _last_error_line(trial: Any) -> str:
    """The last line of a failed trial's error (its exception), or a generic message."""
    path = getattr(trial, "error_file", None)
    try:
        if path and os.path.exists(path):
            with open(path) as handle:
                lines = [line for line in handle.read().splitlines() if line.strip()]
            if lines:
                return lines[-1].strip()[:500]
    except OSError:
        pass
    return "trial failed"


class QuietTrials(TrialProgressCallback):
    """Ray Tune prints a line per finished trial ("Trial pack-6 completed. Last result: ")
    unless a callback of this kind is given: the sweep's progress line says it instead."""

    def _print(self, msg: str) -> None:
        """Nothing: the progress line (:mod:`sweeps.execution.progress`) speaks for the trials."""


def is_out_of_memory(message: str) -> bool:
    """Whether a trial's last error line says its worker ran out of memory (numpy's
    MemoryError, or Ray's OutOfMemoryError when its memory monitor killed the worker)."""
    return "MemoryError" in message or "OutOfMemoryError" in message


class NoProgressTable(ProgressReporter):
    """Ray Tune's progress table stays out: in a notebook its reporter clears the cell's output
    (the sweep's own lines and progress) to draw an HTML table of trials."""

    def should_report(self, trials: list, done: bool = False) -> bool:
        return False

    def report(self, trials: list, done: bool, *sys_info: str) -> None:
        """Nothing: the sweep's progress line says where it is."""
