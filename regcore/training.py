"""The training loop for K stacked models of one architecture.

``RegularizedClassifier.fit`` runs it with K = 1 and ``regcore.fit_many`` with K > 1, so a model
trained in a pack follows exactly the arithmetic of its own fit.

Order of random draws per model (its own ``RandomState``): the initial weights layer by layer;
then, per epoch, a permutation of the training samples when training on mini-batches; then, per
batch, one dropout mask per hidden layer in order (``rand(n[l], m) < keep_prob``) for models
trained with dropout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from regcore import metrics
from regcore.engines import engine_class, resolve
from regcore.losses import data_loss, error_rate, one_hot_targets
from regcore.network import ParameterStack, evaluation_buffers, forward_logits, initialize
from regcore.penalties import PenaltyVectors, penalty_cost_terms
from regcore.training_plan import ModelSettings, TrainingData, TrainingPlan

Array = np.ndarray


@dataclass
class TrainingResult:
    """Per-model outcome of ``train``.

    ``histories[k]`` has shape ``(n_rows_k, len(columns))``; a diverged model's history ends with
    the row whose cost was not finite, and its parameters are those of the last finite row.
    """

    weights: list[list[Array]]
    biases: list[list[Array]]
    columns: list[str]
    histories: list[Array]
    diverged_at: list[int | None]

    @classmethod
    def merge(cls, parts: list[tuple[list[int], TrainingResult]], n_models: int) -> TrainingResult:
        """One result from the results of disjoint groups of models (model indices, result)."""
        weights: list = [None] * n_models
        biases: list = [None] * n_models
        histories: list = [None] * n_models
        diverged_at: list = [None] * n_models
        for indices, part in parts:
            for position, k in enumerate(indices):
                weights[k], biases[k] = part.weights[position], part.biases[position]
                histories[k], diverged_at[k] = part.histories[position], part.diverged_at[position]
        return cls(weights, biases, parts[0][1].columns, histories, diverged_at)


def logged_epochs(epochs: int, log_every: int) -> list[int]:
    """Epochs that get a history row: 0, every ``log_every`` epochs, and ``epochs`` (the end)."""
    return sorted({*range(0, epochs + 1, log_every), epochs})


def random_state_of(seed: int | np.random.RandomState | None) -> np.random.RandomState:
    """``np.random.RandomState(seed)``, or the generator itself when one is given."""
    return seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)


def penalty_entries(stack: ParameterStack, models: Sequence[ModelSettings]) -> tuple[Array, Array]:
    """Per-entry coefficients of J's penalty part: ``(l2 + decay, l1)`` on penalized entries.

    Returns
    -------
    sq_coef, abs_coef : ndarray of shape (stack.size,)
    """
    return PenaltyVectors.of(models).cost_entries(stack)


def penalty_value(stack: ParameterStack, sq_coef: Array, abs_coef: Array, m: int | Array) -> Array:
    """J's penalty part for every model, shape ``(K,)``, with ``m`` samples (one per model or
    shared)."""
    sq_terms, abs_terms = penalty_cost_terms(stack.flat, sq_coef, abs_coef, 1)
    return (stack.per_model_sum(sq_terms) + stack.per_model_sum(abs_terms)) / m


def data_groups(data: Sequence[TrainingData]) -> list[tuple[TrainingData, list[int]]]:
    """The distinct data objects of a pack, each with the models (indices) that train on it."""
    groups: dict[int, tuple[TrainingData, list[int]]] = {}
    for k, item in enumerate(data):
        groups.setdefault(id(item), (item, []))[1].append(k)
    return list(groups.values())


class _Diagnostics:
    """Computes one history row for every model: the values of ``columns[1:]``."""

    def __init__(
        self,
        plan: TrainingPlan,
        stack: ParameterStack,
        models: Sequence[ModelSettings],
        data: Sequence[TrainingData],
    ) -> None:
        n_out = plan.layer_sizes[-1]
        self.plan, self.stack = plan, stack
        self.groups = []
        for item, indices in data_groups(data):
            self.groups.append(
                (
                    indices,
                    np.ascontiguousarray(item.x.T),
                    item.y_index,
                    one_hot_targets(item.y_index, n_out, plan.dtype),
                    None if item.x_dev is None else np.ascontiguousarray(item.x_dev.T),
                    item.y_dev_index,
                    None
                    if item.x_dev is None
                    else one_hot_targets(item.y_dev_index, n_out, plan.dtype),
                )
            )
        self.has_dev = data[0].has_dev
        self.tanh = plan.activation == "tanh"
        self.columns = metrics.history_columns(stack.n_layers, has_dev=self.has_dev, tanh=self.tanh)
        self.sq_coef, self.abs_coef = penalty_entries(stack, models)
        self.n_weights = sum(w[0].size for w in stack.W)
        self.buffers: dict[tuple[int, str], tuple[list[Array], list[Array]]] = {}

    def _forward(self, group: ParameterStack, index: int, part: str, x_t: Array) -> list[Array]:
        """forward_logits into buffers kept from one row to the next (allocating them anew
        cost more than the products)."""
        if (index, part) not in self.buffers:
            self.buffers[index, part] = evaluation_buffers(group, x_t.shape[1])
        return forward_logits(group, x_t, self.plan.activation, self.buffers[index, part])

    def __call__(self) -> Array:
        """Values of ``columns[1:]``, shape ``(len(columns) - 1, K)``."""
        stack = self.stack
        out = np.empty((len(self.columns) - 1, stack.n_models))
        penalty_sums = penalty_value(stack, self.sq_coef, self.abs_coef, 1)
        for index, group_data in enumerate(self.groups):
            indices, x_t, y_index, targets, x_dev_t, y_dev_index, dev_targets = group_data
            group = stack if len(indices) == stack.n_models else stack.subset(indices)
            zs = self._forward(group, index, "train", x_t)
            loss = data_loss(zs[-1], targets)
            penalty = penalty_sums[indices] / y_index.shape[0]
            rows = [loss + penalty, loss, penalty, error_rate(zs[-1], y_index)]
            if self.has_dev:
                zs_dev = self._forward(group, index, "dev", x_dev_t)
                rows += [data_loss(zs_dev[-1], dev_targets), error_rate(zs_dev[-1], y_dev_index)]
            rows += [np.sqrt(np.square(w).sum(axis=(1, 2))) for w in group.W]
            rows += [np.abs(w).sum(axis=(1, 2)) for w in group.W]
            rows.append(sum((w == 0).sum(axis=(1, 2)) for w in group.W) / self.n_weights)
            if self.tanh:
                rows += [(np.abs(z) < metrics.LINEAR_RANGE).mean(axis=(1, 2)) for z in zs[:-1]]
            out[:, indices] = np.array(rows, dtype=np.float64)
        return out


def train(
    plan: TrainingPlan,
    models: Sequence[ModelSettings],
    data: Sequence[TrainingData],
    engine: str = "auto",
) -> TrainingResult:
    """Train K models of one architecture together.

    Parameters
    ----------
    plan : TrainingPlan
        Architecture, optimizer, epochs and batching shared by all models.
    models : sequence of ModelSettings, length K
        Penalty, strength, dropout, initialization and seed of each model.
    data : sequence of TrainingData, length K
        Each model's data (validated, of ``plan.dtype``); models given the same object share it.
        Dev data is given to all models or to none.
    engine : {"auto", "numpy", "compiled"}
        Which implementation runs the epochs (see :mod:`regcore.engines`).

    Returns
    -------
    TrainingResult
    """
    engine = resolve(engine, plan)
    groups = data_groups(data)
    if len(groups) > 1 and not engine_class(engine).per_model_data:
        # one stack per data set: each trains exactly as its own stack would
        parts = [
            (indices, train(plan, [models[k] for k in indices], [item] * len(indices), engine))
            for item, indices in groups
        ]
        return TrainingResult.merge(parts, len(models))
    n_models = len(models)
    stack = ParameterStack(plan.layer_sizes, n_models, plan.dtype)
    rngs = [random_state_of(s.random_state) for s in models]
    for k, (settings, rng) in enumerate(zip(models, rngs, strict=True)):
        initialize(stack, k, rng, settings.init)
    theta = stack.flat
    diagnose = _Diagnostics(plan, stack, models, data)
    runner = engine_class(engine)(plan, models, stack, rngs, data if len(groups) > 1 else data[0])
    logged = logged_epochs(plan.epochs, plan.log_every)

    active = np.ones(n_models, dtype=bool)
    good = theta.copy()  # each model's parameters at its last finite row
    diverged_at: list[int | None] = [None] * n_models
    epochs_logged: list[int] = []
    rows: list[Array] = []
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for epoch, next_logged in zip(logged, [*logged[1:], None], strict=True):
            values = diagnose()
            epochs_logged.append(epoch)
            rows.append(values)
            finite = np.isfinite(values[0]) & np.isfinite(stack.per_model_sum(np.abs(theta)))
            newly = active & ~finite
            for k in np.flatnonzero(newly):
                diverged_at[k] = epoch
            active &= finite
            active_entries = stack.per_entry(active, active).astype(bool)
            np.copyto(good, theta, where=active_entries)
            if newly.any():
                # the diverged models' result is their snapshot in `good`
                runner.freeze(newly)
            if not active.any() or next_logged is None:
                break
            runner.run(next_logged - epoch)

    final = stack.like(good)
    table = np.array(rows).transpose(2, 0, 1)  # (K, n_rows, n_columns - 1)
    epochs_column = np.array(epochs_logged, dtype=np.float64)[:, None]
    histories = []
    for k in range(n_models):
        n_rows = (
            len(epochs_logged)
            if diverged_at[k] is None
            else epochs_logged.index(diverged_at[k]) + 1
        )
        histories.append(np.hstack([epochs_column[:n_rows], table[k, :n_rows]]))
    weights, biases = zip(*(final.model(k) for k in range(n_models)), strict=True)
    return TrainingResult(list(weights), list(biases), diagnose.columns, histories, diverged_at)
