"""The training loop for K stacked models of one architecture (numpy only).

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
from regcore.losses import data_loss, error_rate, one_hot_targets
from regcore.network import (
    ParameterStack,
    Workspace,
    forward_logits,
    initialize,
    with_ones_column,
)
from regcore.optimizers import OPTIMIZERS
from regcore.penalties import add_l2_gradient, coefficients, penalty_cost_terms, soft_threshold

Array = np.ndarray


@dataclass(frozen=True)
class TrainingPlan:
    """What all models of a pack share."""

    layer_sizes: tuple[int, ...]
    activation: str
    optimizer: str
    learning_rate: float
    epochs: int
    batch_size: int | None
    log_every: int
    dtype: np.dtype


@dataclass(frozen=True)
class ModelSettings:
    """What may differ between the models of a pack."""

    penalty: str
    lam: float
    l1_ratio: float
    keep_prob: float
    penalize_bias: bool
    init: str
    random_state: int | np.random.RandomState | None

    @property
    def uses_dropout(self) -> bool:
        return self.penalty == "dropout" and self.keep_prob < 1.0


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
    coefs = [coefficients(s.penalty, s.lam, s.l1_ratio) for s in models]
    bias_on = np.array([s.penalize_bias for s in models], dtype=float)
    sq = np.array([c.l2 + c.decay for c in coefs])
    ab = np.array([c.l1 for c in coefs])
    return stack.per_entry(sq, sq * bias_on), stack.per_entry(ab, ab * bias_on)


def penalty_value(stack: ParameterStack, sq_coef: Array, abs_coef: Array, m: int) -> Array:
    """J's penalty part for every model, shape ``(K,)``, with ``m`` samples."""
    sq_terms, abs_terms = penalty_cost_terms(stack.flat, sq_coef, abs_coef, m)
    return stack.per_model_sum(sq_terms) + stack.per_model_sum(abs_terms)


class _Diagnostics:
    """Computes one history row for every model: the values of ``columns[1:]``."""

    def __init__(
        self,
        plan: TrainingPlan,
        stack: ParameterStack,
        models: Sequence[ModelSettings],
        x: Array,
        y_index: Array,
        x_dev: Array | None,
        y_dev_index: Array | None,
    ) -> None:
        n_out = plan.layer_sizes[-1]
        self.plan, self.stack = plan, stack
        self.x_t = np.ascontiguousarray(x.T)
        self.y_index, self.targets = y_index, one_hot_targets(y_index, n_out, plan.dtype)
        self.has_dev = x_dev is not None
        if self.has_dev:
            self.x_dev_t = np.ascontiguousarray(x_dev.T)
            self.y_dev_index = y_dev_index
            self.dev_targets = one_hot_targets(y_dev_index, n_out, plan.dtype)
        self.tanh = plan.activation == "tanh"
        self.columns = metrics.history_columns(stack.n_layers, has_dev=self.has_dev, tanh=self.tanh)
        self.sq_coef, self.abs_coef = penalty_entries(stack, models)
        self.n_weights = sum(w[0].size for w in stack.W)

    def __call__(self) -> Array:
        """Values of ``columns[1:]``, shape ``(len(columns) - 1, K)``."""
        stack, m = self.stack, self.y_index.shape[0]
        zs = forward_logits(stack, self.x_t, self.plan.activation)
        loss = data_loss(zs[-1], self.targets)
        penalty = penalty_value(stack, self.sq_coef, self.abs_coef, m)
        rows = [loss + penalty, loss, penalty, error_rate(zs[-1], self.y_index)]
        if self.has_dev:
            zs_dev = forward_logits(stack, self.x_dev_t, self.plan.activation)
            rows += [
                data_loss(zs_dev[-1], self.dev_targets),
                error_rate(zs_dev[-1], self.y_dev_index),
            ]
        rows += [np.sqrt(np.square(w).sum(axis=(1, 2))) for w in stack.W]
        rows += [np.abs(w).sum(axis=(1, 2)) for w in stack.W]
        rows.append(sum((w == 0).sum(axis=(1, 2)) for w in stack.W) / self.n_weights)
        if self.tanh:
            rows += [(np.abs(z) < metrics.LINEAR_RANGE).mean(axis=(1, 2)) for z in zs[:-1]]
        return np.array(rows, dtype=np.float64)


class _Batches:
    """Per batch size: the prepared forward/backward pass, its batch buffers ``x`` and ``y``
    (mini-batches), the dropout masks and the penalty coefficients."""

    def __init__(
        self,
        plan: TrainingPlan,
        stack: ParameterStack,
        grads: ParameterStack,
        models: Sequence[ModelSettings],
        x_aug: Array,
        targets: Array,
    ) -> None:
        self.plan, self.stack, self.grads, self.models = plan, stack, grads, models
        self.x_aug, self.targets = x_aug, targets
        self.dropout = any(s.uses_dropout for s in models)
        coefs = [coefficients(s.penalty, s.lam, s.l1_ratio) for s in models]
        bias_on = np.array([s.penalize_bias for s in models], dtype=float)
        self._l2 = np.array([c.l2 for c in coefs])
        self._l1 = np.array([c.l1 for c in coefs])
        self._decay = np.array([c.decay for c in coefs])
        self._bias_on = bias_on
        self.has_l2 = bool(self._l2.any())
        self.has_l1 = bool(self._l1.any())
        self.has_decay = bool(self._decay.any())
        self._cache: dict[int, dict] = {}

    def _entries(self, values: Array) -> Array:
        return self.stack.per_entry(values, values * self._bias_on)

    def for_size(self, m: int) -> dict:
        """Buffers, coefficients and the prepared forward/backward pass for batches of ``m``
        samples: the whole training set (shared by all models), or a mini-batch per model,
        copied into ``x`` and ``y`` before each pass."""
        if m in self._cache:
            return self._cache[m]
        plan, lr = self.plan, self.plan.learning_rate
        k = self.stack.n_models
        workspace = Workspace(plan.layer_sizes, k, m, plan.dtype, plan.activation, self.dropout)
        buffers: dict = {
            "l2_over_m": self._entries(self._l2) / m if self.has_l2 else None,
            "decay_factor": 1.0 - lr * self._entries(self._decay) / m if self.has_decay else None,
            "threshold": lr * self._entries(self._l1) / m if self.has_l1 else None,
            "masks": None,
        }
        if self.dropout:
            hidden = plan.layer_sizes[1:-1]
            buffers["masks"] = [np.ones((k, n, m), dtype=plan.dtype) for n in hidden]
            buffers["draws"] = sum(hidden) * m
        if m == self.x_aug.shape[0]:
            x, y = self.x_aug, self.targets
        else:
            buffers["x"] = np.empty((k, m, self.x_aug.shape[1]), dtype=plan.dtype)
            buffers["y"] = np.empty((self.targets.shape[0], k, m), dtype=plan.dtype)
            x, y = buffers["x"], buffers["y"].transpose(1, 0, 2)  # (K, n_out, m)
        buffers["forward_backward"] = workspace.bind(self.stack, self.grads, x, y, buffers["masks"])
        self._cache[m] = buffers
        return buffers

    def draw_masks(self, buffers: dict, rngs: Sequence[np.random.RandomState], m: int) -> None:
        """Fill the masks of the dropout models from their generators (layer by layer)."""
        for k, (settings, rng) in enumerate(zip(self.models, rngs, strict=True)):
            if not settings.uses_dropout:
                continue
            draws = rng.random_sample(buffers["draws"])
            start = 0
            for mask in buffers["masks"]:
                n = mask.shape[1]
                block = draws[start : start + n * m].reshape(n, m)
                np.multiply(block < settings.keep_prob, 1.0 / settings.keep_prob, out=mask[k])
                start += n * m


def train(
    plan: TrainingPlan,
    models: Sequence[ModelSettings],
    x: Array,
    y_index: Array,
    x_dev: Array | None = None,
    y_dev_index: Array | None = None,
) -> TrainingResult:
    """Train K models of one architecture together.

    Parameters
    ----------
    plan : TrainingPlan
        Architecture, optimizer, epochs and batching shared by all models.
    models : sequence of ModelSettings, length K
        Penalty, strength, dropout, initialization and seed of each model.
    x : ndarray of shape (m, n[0])
        Training inputs (already validated and of ``plan.dtype``).
    y_index : ndarray of shape (m,)
        Class indices ``0..n_classes-1``.
    x_dev, y_dev_index : optional
        Dev inputs ``(m_dev, n[0])`` and class indices ``(m_dev,)``.

    Returns
    -------
    TrainingResult
    """
    n_models = len(models)
    stack = ParameterStack(plan.layer_sizes, n_models, plan.dtype)
    rngs = [random_state_of(s.random_state) for s in models]
    for k, (settings, rng) in enumerate(zip(models, rngs, strict=True)):
        initialize(stack, k, rng, settings.init)
    grads = stack.like()
    theta, grad = stack.flat, grads.flat
    scratch = np.empty_like(theta)
    optimizer = OPTIMIZERS[plan.optimizer](theta.size, plan.dtype, plan.learning_rate)
    diagnose = _Diagnostics(plan, stack, models, x, y_index, x_dev, y_dev_index)
    m = x.shape[0]
    batch_size = m if plan.batch_size is None else min(plan.batch_size, m)
    targets = one_hot_targets(y_index, plan.layer_sizes[-1], plan.dtype)
    batches = _Batches(plan, stack, grads, models, with_ones_column(x), targets)
    log_at = set(logged_epochs(plan.epochs, plan.log_every))

    active = np.ones(n_models, dtype=bool)
    frozen = None  # entries of diverged models, once there are any
    good = theta.copy()  # each model's parameters at its last finite row
    diverged_at: list[int | None] = [None] * n_models
    epochs_logged: list[int] = []
    rows: list[Array] = []
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for epoch in range(plan.epochs + 1):
            if epoch in log_at:
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
                    # freeze the diverged models at zero (their result is the snapshot in
                    # `good`): zero parameters, optimizer state and, below, gradients keep
                    # NaN out of the shared BLAS calls
                    theta[~active_entries] = 0.0
                    optimizer.reset(~active_entries)
                    frozen = ~active_entries
                if not active.any():
                    break
            if epoch == plan.epochs:
                break
            order = None if batch_size == m else np.stack([rng.permutation(m) for rng in rngs])
            for start in range(0, m, batch_size):
                if order is None:
                    mb = m
                    buffers = batches.for_size(mb)
                else:
                    index = order[:, start : start + batch_size]  # (K, mb)
                    mb = index.shape[1]
                    buffers = batches.for_size(mb)
                    # indices are a permutation: "clip" never clips, and is not buffered
                    np.take(batches.x_aug, index, axis=0, out=buffers["x"], mode="clip")
                    np.take(targets, index, axis=1, out=buffers["y"], mode="clip")
                if batches.dropout:
                    batches.draw_masks(buffers, rngs, mb)
                buffers["forward_backward"]()
                if frozen is not None:
                    grad[frozen] = 0.0
                if batches.has_l2:
                    add_l2_gradient(grad, theta, buffers["l2_over_m"], scratch)
                if batches.has_decay:
                    theta *= buffers["decay_factor"]  # decoupled: from the weights before the step
                optimizer.update(theta, grad)
                if batches.has_l1:
                    soft_threshold(theta, buffers["threshold"], scratch)

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
