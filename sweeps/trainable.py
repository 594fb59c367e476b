"""What runs inside a Ray Tune trial: a pack of points trained together with ``regcore.fit_many``.

Trials never touch MLflow: they report each point's history, final metrics and weights through
Ray Tune's result stream, and the driver writes them (see :mod:`sweeps.writer`).
"""

from __future__ import annotations

import io
import json
import socket
import time
import warnings
from functools import lru_cache
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from regcore import DivergenceWarning, RegularizedClassifier, fit_many, metrics
from regcore.datasets import Dataset
from sweeps.config import DatasetConfig, ModelConfig, SweepConfig, TrainingPoint, load_data


def import_training_modules() -> None:
    """Ray worker set-up hook: this module's imports (regcore, scikit-learn, numpy) are done by
    importing it; nothing else to do."""


def estimator_for(model: ModelConfig, point: TrainingPoint) -> RegularizedClassifier:
    """The regcore estimator that trains ``point``."""
    return RegularizedClassifier(
        hidden_layer_sizes=(point.width,) * point.depth,
        activation=model.activation,
        penalty=point.penalty,
        lam=point.lam,
        l1_ratio=point.l1_ratio,
        keep_prob=point.keep_prob,
        penalize_bias=model.penalize_bias,
        optimizer=model.optimizer,
        learning_rate=model.learning_rate,
        batch_size=model.batch_size,
        epochs=model.epochs,
        init=model.init,
        log_every=model.log_every,
        random_state=point.seed,
        dtype=model.dtype,
    )


@lru_cache(maxsize=4)
def _dataset(dataset_json: str) -> Dataset:
    """The dataset, loaded once per worker process."""
    return load_data(DatasetConfig.model_validate_json(dataset_json))


def dataset_of(config: SweepConfig) -> Dataset:
    return _dataset(config.dataset.model_dump_json())


def weights_npz(estimator: RegularizedClassifier) -> bytes:
    """Fitted parameters as ``.npz`` bytes: ``W1..WL``, ``b1..bL``, ``classes``, ``activation``."""
    arrays: dict[str, Any] = {}
    for layer, (w, b) in enumerate(zip(estimator.weights_, estimator.biases_, strict=True), 1):
        arrays[f"W{layer}"], arrays[f"b{layer}"] = w, b
    arrays["classes"] = np.asarray(estimator.classes_).astype(str)
    arrays["activation"] = np.asarray(estimator.activation)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def point_result(
    estimator: RegularizedClassifier, point: TrainingPoint, data: Dataset, seconds: float
) -> dict[str, Any]:
    """What a trial reports for one trained point (plain Python values and bytes)."""
    history = estimator.history_
    final = {k: float(v) for k, v in history.iloc[-1].items() if k != metrics.EPOCH}
    if len(data.y_test) and not estimator.diverged_:
        final[metrics.TEST_COST] = estimator.loss(data.X_test, data.y_test)
        final[metrics.TEST_ERROR] = float(1.0 - estimator.score(data.X_test, data.y_test))
    return {
        "key": point.key,
        "columns": list(history.columns),
        "rows": history.to_numpy(dtype=float).tolist(),
        "final": final,
        "diverged": bool(estimator.diverged_),
        "weights": weights_npz(estimator),
        "fit_seconds": seconds,
        "finished_ms": int(time.time() * 1000),
    }


def blas_threads(cpus_per_trial: float) -> int:
    """Threads a trial's BLAS and OpenMP pools may use: its CPUs (at least one).

    Ray's ``OMP_NUM_THREADS`` comes too late for a worker that imported numpy already, so
    without a limit every trial on a node would start one BLAS thread per core of the node.
    """
    return max(1, int(cpus_per_trial))


def train_pack(config: SweepConfig, points: list[TrainingPoint]) -> list[dict[str, Any]]:
    """Train points that share an architecture together; one result per point, in order.

    Each result also says how many BLAS threads the training could use (``threads``).
    """
    data = dataset_of(config)
    estimators = [estimator_for(config.model, point) for point in points]
    with (
        threadpool_limits(limits=blas_threads(config.execution.cpus_per_trial)),
        warnings.catch_warnings(),
    ):
        # divergence is reported per point (a FAILED run with a `diverged` tag)
        warnings.simplefilter("ignore", DivergenceWarning)
        started = time.perf_counter()
        fit_many(estimators, data.X_train, data.y_train, data.X_dev, data.y_dev)
        seconds = (time.perf_counter() - started) / len(points)
        threads = max((pool["num_threads"] for pool in threadpool_info()), default=1)
        results = [
            point_result(est, point, data, seconds)
            for est, point in zip(estimators, points, strict=True)
        ]
    for result in results:
        result["threads"] = threads
    return results


def pack_trainable(
    trial_config: dict[str, Any], *, config_json: str, packs: list[list[dict[str, Any]]]
) -> None:
    """Ray Tune function trainable: train pack ``trial_config["pack"]`` and report its points."""
    import ray
    from ray import tune

    config = SweepConfig.model_validate_json(config_json)
    points = [TrainingPoint(**fields) for fields in packs[trial_config["pack"]]]
    results = train_pack(config, points)
    node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"
    for result in results:
        result["node"] = node
    tune.report({"points": results, "n_points": len(results)})


def config_json(config: SweepConfig) -> str:
    return json.dumps(config.model_dump(mode="json"))
