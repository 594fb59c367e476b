"""After a sweep: each curve's lambda.min and lambda.1se refit on all non-test data, scored once
on the test set, logged as MLflow models, and the sweep's choice registered.

The lecture's order: choose lambda on the dev data (here, the folds), then train once more on
everything but the test set, and look at the test set only then. Each refit is a scikit-learn
``Pipeline`` of a ``StandardScaler`` (fitted on the non-test rows) and the
``RegularizedClassifier`` at the chosen strength, so that the logged model takes raw features.
It trains with the curve's settings and the sweep's first seed, on the driver (a refit is one
training per curve and rule).

Runs: one child run of the sweep per (curve, rule) with the tag ``regsweep.kind = refit``, the
point's params, ``rule``, the training history, ``test_cost`` and ``test_error``, and the model
under ``model``. ``register`` puts the refits of the sweep's best curve (the lowest mean of the
selection metric at lambda.min) in the Model Registry, with aliases ``lambda-min`` and
``lambda-1se``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import regcore
from regcore import DivergenceWarning, fit_many, metrics
from regcore.datasets import Resampled
from sweeps.analysis.curves import CurveSummary
from sweeps.config.points import TrainingPoint, curve_specs
from sweeps.config.schema import SweepConfig
from sweeps.execution.trainable import estimator_for
from sweeps.settings import strength
from sweeps.store import layout, tracking
from sweeps.store.point_result import step_metrics


@dataclass
class Refit:
    """One refit: a curve's chosen strength trained on all non-test rows."""

    summary: CurveSummary
    rule: str
    point: TrainingPoint
    pipeline: Pipeline | None = None
    test_cost: float | None = None
    test_error: float | None = None
    run_id: str | None = None
    model_uri: str | None = None

    @property
    def run_name(self) -> str:
        return f"refit {self.summary.name} {self.rule} ({self.point.run_name.split(' ')[1]})"


def plan(config: SweepConfig, summaries: list[CurveSummary]) -> list[Refit]:
    """The refits of every curve: lambda.min and lambda.1se, at the sweep's first seed."""
    specs = {(s.penalty, s.depth, s.width, s.l1_ratio): s for s in curve_specs(config)}
    refits = []
    for summary in summaries:
        spec = specs[(summary.penalty, summary.depth, summary.width, summary.l1_ratio)]
        for rule, value in (
            ("lambda.min", summary.best_strength),
            ("lambda.1se", summary.strength_1se),
        ):
            first = spec.trainings(config, value)[0]  # the first seed, fold 0
            # on all non-test data: no fold, and not one of the sweep's trainings (no key)
            point = dataclasses.replace(first, fold=None, repeat=None, key="")
            refits.append(Refit(summary, rule, point))
    return refits


def fit(config: SweepConfig, data: Resampled, refits: list[Refit]) -> None:
    """Train every refit on the standardized non-test rows (refits of one architecture and
    strength together) and score it on the test rows."""
    X_rest, y_rest, X_test, y_test = data.refit_data()
    columns = list(data.feature_names)
    rest = pd.DataFrame(X_rest, columns=columns)
    scaler = StandardScaler().fit(rest)
    scaled = scaler.transform(rest)
    by_architecture: dict[tuple, list[Refit]] = {}
    for refit in refits:
        by_architecture.setdefault((refit.point.depth, refit.point.width), []).append(refit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        for group in by_architecture.values():
            estimators = [estimator_for(config.model, refit.point) for refit in group]
            fit_many(estimators, scaled, y_rest)
            for refit, estimator in zip(group, estimators, strict=True):
                refit.pipeline = Pipeline([("standardize", scaler), ("classifier", estimator)])
                if len(y_test):
                    test = pd.DataFrame(X_test, columns=columns)
                    refit.test_cost = estimator.loss(scaler.transform(test), y_test)
                    refit.test_error = 1.0 - refit.pipeline.score(test, y_test)


def regcore_source() -> str:
    """The regcore package's folder: logged with each model so that it loads anywhere."""
    return str(Path(regcore.__file__).parent)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's notes while logging and registering models (the cloudpickle caution, "Created
    version ...") stay out of the sweep's output: the run and the CLI say what happened."""
    logger = logging.getLogger("mlflow.sklearn")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def requirements() -> list[str]:
    """What the logged model needs besides its bundled regcore: the installed versions."""
    from importlib.metadata import version

    return [
        f"{name}=={version(name)}"
        for name in ("numpy", "scipy", "scikit-learn", "pandas", "cloudpickle")
    ]


def log(client: Any, sweep: tracking.Sweep, config: SweepConfig, data: Resampled, refits) -> None:
    """One child run per refit, holding its history, test metrics and the MLflow model.

    Refit runs of an earlier attempt at the same sweep are replaced.
    """
    import mlflow
    from mlflow.entities import Metric, RunTag
    from mlflow.models import infer_signature

    parent = client.get_run(sweep.run_id)
    for run in tracking.child_runs(client, parent, kind=layout.REFIT):
        client.delete_run(run.info.run_id)
    X_rest, y_rest, _, _ = data.refit_data()
    example = pd.DataFrame(X_rest[:5], columns=list(data.feature_names))
    sizes = {(None, None): (len(y_rest), 0)}
    for refit in refits:
        estimator = refit.pipeline.named_steps["classifier"]
        run = client.create_run(
            sweep.experiment_id,
            tags={
                layout.PARENT_TAG: sweep.run_id,
                layout.KIND_TAG: layout.REFIT,
                layout.RULE_TAG: refit.rule,
                layout.CURVE_TAG: refit.summary.name,
            },
            run_name=refit.run_name,
        )
        run_id = run.info.run_id
        params = tracking.point_params(config, refit.point, sizes) | {"rule": refit.rule}
        stamp = int(time.time() * 1000)
        history = estimator.history_
        final = {}
        if refit.test_cost is not None:
            final = {metrics.TEST_COST: refit.test_cost, metrics.TEST_ERROR: refit.test_error}
        rows = history.to_numpy(dtype=float)
        logged = [
            Metric(k, v, stamp, step)
            for k, v, step in step_metrics(list(history.columns), rows, final)
        ]
        tags = [RunTag(layout.DIVERGED_TAG, "true")] if estimator.diverged_ else []
        tracking.log_batch(
            client, run_id, [tracking.mlflow_param(k, v) for k, v in params.items()], tags, logged
        )
        # the logged model is created here, in the sweep's experiment: left to log_model, it
        # would go to the fluent API's current experiment (the default one)
        logged_model = client.create_logged_model(
            experiment_id=sweep.experiment_id, name=layout.MODEL_NAME, source_run_id=run_id
        )
        with tracking.tracking_uri(client.tracking_uri), _quiet():
            info = mlflow.sklearn.log_model(
                refit.pipeline,
                name=layout.MODEL_NAME,
                model_id=logged_model.model_id,
                run_id=run_id,  # passed on to Model.log: no fluent run, we end the run ourselves
                serialization_format="cloudpickle",
                code_paths=[regcore_source()],
                signature=infer_signature(example, refit.pipeline.predict_proba(example)),
                input_example=example,
                pip_requirements=requirements(),  # no inference subprocess (about 3.5 s)
                pyfunc_predict_fn="predict_proba",
            )
        client.set_tag(run_id, layout.MODEL_URI_TAG, info.model_uri)
        client.set_terminated(run_id, status="FAILED" if estimator.diverged_ else "FINISHED")
        refit.run_id, refit.model_uri = run_id, info.model_uri


def register(client: Any, name: str, refits: list[Refit]) -> list[tuple[Refit, Any]]:
    """Register the refits of the sweep's best curve (the lowest mean of the selection metric
    at lambda.min) as new versions of ``name``, with aliases ``lambda-min`` and ``lambda-1se``.

    Returns ``(refit, ModelVersion)`` for lambda.min, then lambda.1se.
    """
    import mlflow

    best = min((r for r in refits if r.rule == "lambda.min"), key=lambda r: r.summary.best_mean)
    registered = []
    with tracking.tracking_uri(client.tracking_uri), _quiet():
        for refit in (r for r in refits if r.summary is best.summary):
            version = mlflow.register_model(refit.model_uri, name, await_registration_for=0)
            client.set_registered_model_alias(name, layout.RULES[refit.rule], version.version)
            client.set_model_version_tag(name, version.version, layout.RULE_TAG, refit.rule)
            registered.append((refit, version))
    return registered


def refit_frame(client: Any, parent: Any) -> pd.DataFrame:
    """A sweep's refit runs as a table: curve, rule, strength, test cost and error, model URI."""
    runs = tracking.child_runs(client, parent, kind=layout.REFIT)
    rows = []
    for run in runs:
        params, values = run.data.params, run.data.metrics
        penalty = params.get("penalty", "")
        rows.append(
            {
                "curve": run.data.tags.get(layout.CURVE_TAG, ""),
                "rule": run.data.tags.get(layout.RULE_TAG, ""),
                "strength": strength(
                    penalty, float(params.get("lam", "nan")), float(params.get("keep_prob", "nan"))
                ),
                "test cost": values.get(metrics.TEST_COST, np.nan),
                "test error": values.get(metrics.TEST_ERROR, np.nan),
                "status": run.info.status,
                "model": run.data.tags.get(layout.MODEL_URI_TAG, ""),
            }
        )
    frame = pd.DataFrame(
        rows, columns=["curve", "rule", "strength", "test cost", "test error", "status", "model"]
    )
    return frame.sort_values(["curve", "rule"]).reset_index(drop=True)
