"""After a sweep: each curve's lambda.min and lambda.1se refit on all non-test data, scored once
on the test set, logged as MLflow models, and the sweep's choice registered.

The lecture's order: choose lambda on the dev data (here, the folds), then train once more on
everything but the test set, and look at the test set only then. Each refit is a scikit-learn
``Pipeline`` of the data's preprocessing (imputing, one-hot encoding, standardizing: fitted on
the non-test rows) and the ``RegularizedClassifier`` at the chosen strength, so that the logged
model takes raw rows as they are in the user's table. It trains with the curve's settings and
the sweep's first seed, on the driver (one training per curve and distinct strength: where
lambda.min and lambda.1se coincide, one refit serves both rules).

Runs: one child run of the sweep per (curve, distinct strength) with the tag
``regsweep.kind = refit``, the point's params, ``rule`` (``lambda.min``, ``lambda.1se``, or
both, comma-separated), the training history, ``test_cost`` and ``test_error``, and the model
under ``model`` (a data-only model: :mod:`sweeps.store.model_format`). A refit whose training
diverges is a FAILED run (tag ``diverged``) without a model. ``register`` puts the refits of the
sweep's best curve (the lowest mean of the selection metric at lambda.min) in the Model
Registry, with aliases ``lambda-min`` and ``lambda-1se``.
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
from typing import Any

from sklearn.pipeline import Pipeline

from regcore import DivergenceWarning, fit_many, metrics
from regcore.datasets import Resampled
from regcore.model_io import CLASSIFIER, PREPROCESS
from sweeps.analysis.curves import CurveSummary
from sweeps.config.points import TrainingPoint, curve_specs
from sweeps.config.schema import SweepConfig
from sweeps.errors import SweepError
from sweeps.execution.trainable import estimator_for
from sweeps.store import layout, model_format, tracking
from sweeps.store.point_result import PointResult
from sweeps.store.retry import is_unsent, retrying
from sweeps.store.writer import close_result, log_result


@dataclass
class Refit:
    """One refit: a curve's chosen strength trained on all non-test rows, for one rule or
    both (``rules``)."""

    summary: CurveSummary
    rules: tuple[str, ...]
    point: TrainingPoint
    pipeline: Pipeline | None = None
    test_cost: float | None = None
    test_error: float | None = None
    run_id: str | None = None
    model_uri: str | None = None
    seconds: float = 0.0  # its training's time

    @property
    def rule(self) -> str:
        """The rules it answers, as its tag holds them: ``lambda.min,lambda.1se``."""
        return ",".join(self.rules)

    @property
    def diverged(self) -> bool:
        return bool(self.pipeline is not None and self.pipeline[CLASSIFIER].diverged_)

    @property
    def run_name(self) -> str:
        knob = self.point.run_name.split(" ")[1]
        return f"refit {self.summary.name} {' + '.join(self.rules)} ({knob})"


def plan(config: SweepConfig, summaries: list[CurveSummary]) -> list[Refit]:
    """The refits of every curve: lambda.min and lambda.1se (one refit where they coincide), at
    the sweep's first seed."""
    specs = {(s.penalty, s.depth, s.width, s.l1_ratio): s for s in curve_specs(config)}
    refits = []
    for summary in summaries:
        spec = specs[(summary.penalty, summary.depth, summary.width, summary.l1_ratio)]
        chosen: dict[float, list[str]] = {}
        for rule, value in (
            ("lambda.min", summary.best_strength),
            ("lambda.1se", summary.strength_1se),
        ):
            chosen.setdefault(value, []).append(rule)
        for value, rules in chosen.items():
            first = spec.trainings(config, value)[0]  # the first seed, fold 0
            # on all non-test data: no fold, and not one of the sweep's trainings (no key)
            point = dataclasses.replace(first, fold=None, repeat=None, key="")
            refits.append(Refit(summary, tuple(rules), point))
    return refits


def fit(config: SweepConfig, data: Resampled, refits: list[Refit]) -> None:
    """Train every refit on the non-test rows, preprocessed as fitted on them (refits of one
    architecture together), and score it on the test rows."""
    rows, y_rest, test_rows, y_test = data.refit_data()
    prepare = data.preprocessor().fit(rows)
    inputs = prepare.transform(rows)
    by_architecture: dict[tuple, list[Refit]] = {}
    for refit in refits:
        by_architecture.setdefault((refit.point.depth, refit.point.width), []).append(refit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        for group in by_architecture.values():
            estimators = [estimator_for(config.model, refit.point) for refit in group]
            started = time.perf_counter()
            fit_many(estimators, inputs, y_rest)
            seconds = (time.perf_counter() - started) / len(group)
            for refit, estimator in zip(group, estimators, strict=True):
                refit.pipeline = Pipeline([(PREPROCESS, prepare), (CLASSIFIER, estimator)])
                refit.seconds = seconds
                if len(y_test) and not estimator.diverged_:
                    refit.test_cost = estimator.loss(prepare.transform(test_rows), y_test)
                    refit.test_error = 1.0 - refit.pipeline.score(test_rows, y_test)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's notes while logging and registering models ("Created version ...") stay out of
    the sweep's output: the run and the CLI say what happened."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def log(client: Any, sweep: tracking.Sweep, config: SweepConfig, data: Resampled, refits) -> None:
    """One child run per refit, holding its history, test metrics and, unless its training
    diverged, the MLflow model.

    Refit runs of an earlier attempt at the same sweep are replaced.
    """

    parent = client.get_run(sweep.run_id)
    for run in tracking.child_runs(client, parent, kind=layout.REFIT):
        client.delete_run(run.info.run_id)
    rows, y_rest, _, _ = data.refit_data()
    sizes = {(None, None): (len(y_rest), 0)}
    for refit in refits:
        estimator = refit.pipeline[CLASSIFIER]
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
        final = {}
        if refit.test_cost is not None:
            final = {metrics.TEST_COST: refit.test_cost, metrics.TEST_ERROR: refit.test_error}
        result = training_result(estimator, final, refit.seconds)
        try:
            log_result(client, run_id, params, result)
            if not refit.diverged:
                with _quiet():
                    info = model_format.log_model(
                        client,
                        run_id,
                        sweep.experiment_id,
                        layout.MODEL_NAME,
                        refit.pipeline,
                        data.columns,
                        rows,
                    )
                client.set_tag(run_id, layout.MODEL_URI_TAG, info.model_uri)
                refit.model_uri = info.model_uri
        except BaseException:  # a run cut off here is FAILED, not left RUNNING for ever
            with contextlib.suppress(Exception):
                client.set_terminated(run_id, status="FAILED")
            raise
        close_result(client, run_id, result)
        refit.run_id = run_id


def training_result(estimator: Any, final: dict[str, float], seconds: float) -> PointResult:
    """A refit's training as the writer writes trainings (:class:`PointResult`)."""
    history = estimator.history_
    return PointResult(
        key="",
        columns=list(history.columns),
        rows=history.to_numpy(dtype=float),
        final=final,
        diverged=bool(estimator.diverged_),
        weights=b"",
        fit_seconds=seconds,
        finished_ms=int(time.time() * 1000),
    )


def register(client: Any, name: str, refits: list[Refit]) -> list[tuple[Refit, Any]]:
    """Register the refits of the sweep's best curve (the lowest mean of the selection metric
    at lambda.min) as new versions of ``name``, with aliases ``lambda-min`` and ``lambda-1se``
    (one version for both where the strengths coincide).

    Returns ``(refit, ModelVersion)`` for lambda.min, then lambda.1se (where it differs).

    Raises
    ------
    SweepError
        When a refit of the best curve diverged: nothing is registered.
    """
    import mlflow

    best = min((r for r in refits if "lambda.min" in r.rules), key=lambda r: r.summary.best_mean)
    chosen = [r for r in refits if r.summary is best.summary]
    diverged = [r for r in chosen if r.diverged]
    if diverged:
        raise SweepError(
            f"--register: nothing registered as {name!r}: the refit of {best.summary.name} at "
            f"{diverged[0].rule} diverged on all non-test rows (too large a learning rate?)"
        )
    registered = []
    with tracking.tracking_uri(client.tracking_uri), _quiet():
        for refit in chosen:
            version = retrying(  # unsent only: a retry after a lost answer adds a version
                mlflow.register_model,
                refit.model_uri,
                name,
                await_registration_for=0,
                when=is_unsent,
            )
            for rule in refit.rules:
                client.set_registered_model_alias(name, layout.RULES[rule], version.version)
            client.set_model_version_tag(name, version.version, layout.RULE_TAG, refit.rule)
            registered.append((refit, version))
    return registered
