"""What runs inside a Ray Tune trial: a pack of points trained together with ``regcore.fit_many``.

Trials never touch MLflow: they report each point's history, final metrics and weights through
Ray Tune's result stream, and the driver writes them (see :mod:`sweeps.store.writer`).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from threadpoolctl import threadpool_info, threadpool_limits

from regcore import DivergenceWarning, RegularizedClassifier, fit_many, metrics
from regcore.datasets import Dataset, Resampled, fold_position
from regcore.engines import compiled_available
from regcore.model_io import to_npz
from sweeps.config.points import TrainingPoint
from sweeps.config.schema import ModelConfig, SweepConfig, digest
from sweeps.execution.packing import model_bytes
from sweeps.execution.trial import trial_input
from sweeps.settings import estimator_params, training_values
from sweeps.store.point_result import POINTS, PointResult


def import_training_modules() -> None:
    """Ray worker set-up hook: this module's imports (regcore, scikit-learn, numpy) are done by
    importing it; the compiled engine's float64 kernels load from numba's disk cache (compiled
    there the first time), once per worker process, before its first trial."""
    compiled_available("float64")


def estimator_for(model: ModelConfig, point: TrainingPoint) -> RegularizedClassifier:
    """The regcore estimator that trains ``point`` (its settings: :mod:`sweeps.settings`)."""
    return RegularizedClassifier(**estimator_params(training_values(model, point, {})))


#: the folds a worker process prepared, by (data key, fold index): its trials reuse them
_FOLDS: collections.OrderedDict[tuple[str, int], tuple[Dataset, tuple]] = collections.OrderedDict()
_FOLDS_KEPT = 64


def data_key(config: SweepConfig) -> str:
    """What identifies a sweep's data and its split (:meth:`DatasetConfig.identity`)."""
    return digest(config.dataset.identity())


def fold_of(
    config: SweepConfig, point: TrainingPoint, data: Resampled | Callable[[], Resampled]
) -> tuple[Dataset, tuple]:
    """Fold data for ``point``: the fold preprocessed on its training part, and the
    ``(X, y, X_dev, y_dev)`` tuple ``fit_many`` gets for it (one object per fold: its models
    share it). Prepared once per worker process; ``data`` may be a callable that fetches the
    rows (from Ray's object store) only when a fold is not prepared yet."""
    index = fold_position(getattr(config.dataset.split, "kfold", None), point.repeat, point.fold)
    key = (data_key(config), index)
    if key not in _FOLDS:
        rows = data() if callable(data) else data
        part = rows.fold_data(index)
        _FOLDS[key] = part, (part.X_train, part.y_train, part.X_dev, part.y_dev)
        while len(_FOLDS) > _FOLDS_KEPT:
            _FOLDS.popitem(last=False)
    _FOLDS.move_to_end(key)
    return _FOLDS[key]


def point_result(
    estimator: RegularizedClassifier,
    point: TrainingPoint,
    data: Dataset,
    seconds: float,
    threads: int,
) -> PointResult:
    """What a trial reports for one trained point.

    The test set is scored on a single train/dev split only: with cross-validation it is
    scored once, by the refit on all non-test data (:mod:`sweeps.execution.refit`).
    """
    history = estimator.history_
    final = {k: float(v) for k, v in history.iloc[-1].items() if k != metrics.EPOCH}
    if point.fold is None and len(data.y_test) and not estimator.diverged_:
        final[metrics.TEST_COST] = estimator.loss(data.X_test, data.y_test)
        final[metrics.TEST_ERROR] = float(1.0 - estimator.score(data.X_test, data.y_test))
    return PointResult(
        key=point.key,
        columns=list(history.columns),
        rows=history.to_numpy(dtype=float),
        final=final,
        diverged=bool(estimator.diverged_),
        weights=to_npz(estimator),
        fit_seconds=seconds,
        finished_ms=int(time.time() * 1000),
        threads=threads,
    )


def blas_threads(cpus_per_trial: float) -> int:
    """Threads a trial's BLAS and OpenMP pools (and the compiled engine) may use: its CPUs (at
    least one).

    Ray's ``OMP_NUM_THREADS`` comes too late for a worker that imported numpy already, so
    without a limit every trial on a node would start one BLAS thread per core of the node.
    """
    return max(1, int(cpus_per_trial))


def train_pack(
    config: SweepConfig,
    points: Sequence[TrainingPoint],
    data: Resampled | Callable[[], Resampled],
) -> list[PointResult]:
    """Train points that share an architecture together; one result per point, in order.

    ``data`` is the sweep's rows (or a callable fetching them, see :func:`fold_of`). Each
    result also says how many BLAS threads the training could use (``threads``).
    """
    folds = [fold_of(config, point, data) for point in points]
    cpus = blas_threads(config.execution.cpus_per_trial)
    estimators = [estimator_for(config.model, point).set_params(n_jobs=cpus) for point in points]
    with (
        threadpool_limits(limits=cpus),
        warnings.catch_warnings(),
    ):
        # divergence is reported per point (a FAILED run with a `diverged` tag)
        warnings.simplefilter("ignore", DivergenceWarning)
        started = time.perf_counter()
        fit_many(estimators, data=[fold for _, fold in folds])
        seconds = (time.perf_counter() - started) / len(points)
        threads = max((pool["num_threads"] for pool in threadpool_info()), default=1)
        return [
            dataclasses.replace(point_result(est, point, fold, seconds, threads), pack=len(points))
            for est, point, (fold, _) in zip(estimators, points, folds, strict=True)
        ]


def train_fitting(
    config: SweepConfig,
    points: Sequence[TrainingPoint],
    data: Resampled | Callable[[], Resampled],
    deliver: Callable[[list[PointResult]], None],
    budget: int | None = None,
) -> None:
    """Train ``points`` together and ``deliver`` their results. A pack that does not fit, by
    the planner's estimate against ``budget`` bytes (``execution.trial_memory_mb``) or by a
    ``MemoryError`` while it trains, is trained as two halves, each delivered as it finishes,
    down to single points (a point that does not fit alone raises ``MemoryError``)."""
    estimate = None
    if budget is not None and len(points) > 1:
        rows = data() if callable(data) else data
        n_train = len(rows.folds[0].train)
        estimate = sum(model_bytes(config, p, n_train, rows.n_features) for p in points)
    results = None
    try:
        if estimate is not None and estimate > budget:
            raise MemoryError(f"{len(points)} models need about {estimate / 2**20:.0f} MB")
        results = train_pack(config, points, data)
    except MemoryError:
        if len(points) < 2:
            raise
    if results is None:  # out of the handler: its traceback no longer holds the pack's arrays
        half = len(points) // 2
        for part in (points[:half], points[half:]):
            train_fitting(config, part, data, deliver, budget)
        return
    deliver(results)


def pack_trainable(trial_config: dict[str, Any], *, config_json: str, data: list[Any]) -> None:
    """Ray Tune function trainable: train the trial's points
    (:class:`sweeps.execution.trial.TrialInput`) and report them, each pack of them as it
    finishes (a pack that does not fit in memory is trained in halves: :func:`train_fitting`).

    ``data`` holds the reference to the sweep's rows in Ray's object store (in a list, so that
    Tune passes the reference on instead of fetching the rows for every trial): a worker fetches
    them only for a fold it has not prepared yet.
    """
    import ray
    from ray import tune

    config = SweepConfig.model_validate_json(config_json)
    trial = trial_input(trial_config)
    node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"

    def deliver(results: list[PointResult]) -> None:
        tune.report({POINTS: [dataclasses.replace(r, node=node) for r in results]})

    megabytes = config.execution.trial_memory_mb
    budget = None if megabytes is None else megabytes * 2**20
    train_fitting(config, trial.points, _fetched(lambda: ray.get(data[0])), deliver, budget)


def config_json(config: SweepConfig) -> str:
    return json.dumps(config.model_dump(mode="json"))


def _fetched(fetch: Callable[[], Resampled]) -> Callable[[], Resampled]:
    """``fetch``, called at most once (the rows come from the object store on first need)."""
    rows: list[Resampled] = []

    def once() -> Resampled:
        if not rows:
            rows.append(fetch())
        return rows[0]

    return once
