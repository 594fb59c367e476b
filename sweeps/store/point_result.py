"""What a trial sends to the driver for each trained point: a typed value, built by the trainable
and read by the MLflow writer (the two sides of Ray Tune's result stream)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regcore import metrics

#: the key of a Tune result that holds a trial's :class:`PointResult` list
POINTS = "points"


@dataclass(frozen=True)
class PointResult:
    """One trained point.

    Attributes
    ----------
    key : str
        The point's deterministic key (:func:`sweeps.config.points.point_key`).
    columns : list of str
        The history's columns, ``epoch`` first (:func:`regcore.metrics.history_columns`).
    rows : ndarray of shape (n_logged_epochs, len(columns))
        The history.
    final : dict of str to float
        Final metrics by name: the last history row and, where there is a test set,
        ``test_cost`` and ``test_error``.
    diverged : bool
    weights : bytes
        The model's arrays (:func:`regcore.model_io.to_npz`).
    fit_seconds : float
        Training time per point (a pack's time divided by its points).
    finished_ms : int
        When training finished (milliseconds since the epoch): every metric's timestamp, so that
        a retried write stores nothing twice.
    threads : int
        The BLAS/OpenMP threads training could use.
    node : str
        ``host/node-id`` of the Ray node that trained it.
    pack : int
        How many points trained together with it (``fit_seconds`` is their time shared).
    """

    key: str
    columns: list[str]
    rows: np.ndarray
    final: dict[str, float]
    diverged: bool
    weights: bytes
    fit_seconds: float
    finished_ms: int
    threads: int = 1
    node: str = ""
    pack: int = 1

    def step_metrics(self) -> list[tuple[str, float, int]]:
        """See :func:`step_metrics`."""
        return step_metrics(self.columns, self.rows, self.final)


def step_metrics(
    columns: list[str], rows: np.ndarray, final: dict[str, float]
) -> list[tuple[str, float, int]]:
    """``(name, value, step)`` for every value of a history (step = epoch), then the ``final``
    metrics that are not history columns, at the last epoch.

    Parameters
    ----------
    columns : list of str
        ``epoch`` and the metric names.
    rows : ndarray of shape (n_rows, len(columns))
    final : dict of str to float
    """
    epoch = columns.index(metrics.EPOCH)
    out = [
        (name, float(value), int(row[epoch]))
        for row in rows
        for name, value in zip(columns, row, strict=True)
        if name != metrics.EPOCH
    ]
    last = int(rows[-1, epoch])
    out += [(k, float(v), last) for k, v in final.items() if k not in columns]
    return out
