"""The numpy engine: the reference implementation of a training epoch for K stacked models.

Each batch replays a forward/backward pass prepared once as numpy calls bound to preallocated
buffers (:class:`regcore.network.Workspace`), then adds the penalty, steps the optimizer and
applies the L1 proximal step on the whole flat parameter vector. The models of one engine share
their training data (mini-batches are drawn per model); :func:`regcore.training.train` gives
models with different data engines of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from regcore.losses import one_hot_targets
from regcore.network import ParameterStack, Workspace, with_ones_column
from regcore.optimizers import OPTIMIZERS
from regcore.penalties import PenaltyVectors, StepCoefficients, add_l2_gradient, soft_threshold
from regcore.training_plan import ModelSettings, TrainingData, TrainingPlan

Array = np.ndarray


class NumpyEngine:
    """Trains the models of ``stack`` epoch by epoch on shared data.

    Parameters
    ----------
    plan : TrainingPlan
    models : sequence of ModelSettings, length K
    stack : ParameterStack
        The K models' initialized parameters, updated in place.
    rngs : sequence of numpy RandomState, length K
        Each model's generator, already past its initialization draws.
    data : TrainingData
        The training data all K models share.
    """

    per_model_data = False

    def __init__(
        self,
        plan: TrainingPlan,
        models: Sequence[ModelSettings],
        stack: ParameterStack,
        rngs: Sequence[np.random.RandomState],
        data: TrainingData,
    ) -> None:
        self.plan, self.models, self.stack, self.rngs = plan, models, stack, rngs
        self.grads = stack.like()
        self.theta, self.grad = stack.flat, self.grads.flat
        self.scratch = np.empty_like(self.theta)
        self.optimizer = OPTIMIZERS[plan.optimizer](self.theta.size, plan.dtype, plan.learning_rate)
        self.penalties = PenaltyVectors.of(models)
        self.x_aug = with_ones_column(data.x)
        self.targets = one_hot_targets(data.y_index, plan.layer_sizes[-1], plan.dtype)
        self.m = data.x.shape[0]
        self.batch_size = self.m if plan.batch_size is None else min(plan.batch_size, self.m)
        self.dropout = any(s.uses_dropout for s in models)
        self.frozen: Array | None = None  # entries of diverged models, once there are any
        self._cache: dict[int, dict] = {}

    def freeze(self, models: Array) -> None:
        """Stop training the models where ``models`` is True: zero parameters, optimizer state
        and (from now on) gradients keep NaN out of the shared matrix products."""
        entries = self.stack.per_entry(models, models).astype(bool)
        self.theta[entries] = 0.0
        self.optimizer.reset(entries)
        self.frozen = entries if self.frozen is None else self.frozen | entries

    def run(self, epochs: int) -> None:
        """Train for ``epochs`` epochs."""
        for _ in range(epochs):
            self._epoch()

    def _epoch(self) -> None:
        m, batch_size, theta, grad = self.m, self.batch_size, self.theta, self.grad
        order = None if batch_size == m else np.stack([rng.permutation(m) for rng in self.rngs])
        for start in range(0, m, batch_size):
            if order is None:
                mb = m
                buffers = self._for_size(mb)
            else:
                index = order[:, start : start + batch_size]  # (K, mb)
                mb = index.shape[1]
                buffers = self._for_size(mb)
                # indices are a permutation: "clip" never clips, and is not buffered
                np.take(self.x_aug, index, axis=0, out=buffers["x"], mode="clip")
                np.take(self.targets, index, axis=1, out=buffers["y"], mode="clip")
            if self.dropout:
                self._draw_masks(buffers, mb)
            buffers["forward_backward"]()
            if self.frozen is not None:
                grad[self.frozen] = 0.0
            if buffers["l2_over_m"] is not None:
                add_l2_gradient(grad, theta, buffers["l2_over_m"], self.scratch)
            if buffers["decay_factor"] is not None:
                theta *= buffers["decay_factor"]  # decoupled: from the weights before the step
            self.optimizer.update(theta, grad)
            if buffers["threshold"] is not None:
                soft_threshold(theta, buffers["threshold"], self.scratch)

    def _for_size(self, m: int) -> dict:
        """Buffers, coefficients and the prepared forward/backward pass for batches of ``m``
        samples: the whole training set (shared by all models), or a mini-batch per model,
        copied into ``x`` and ``y`` before each pass."""
        if m in self._cache:
            return self._cache[m]
        plan, penalties, stack = self.plan, self.penalties, self.stack
        k = stack.n_models
        workspace = Workspace(plan.layer_sizes, k, m, plan.dtype, plan.activation, self.dropout)
        l2_over_m, decay_factor, threshold = StepCoefficients.of(
            penalties, plan.learning_rate, m
        ).entries(stack)
        buffers: dict = {
            "l2_over_m": l2_over_m if penalties.has_l2 else None,
            "decay_factor": decay_factor if penalties.has_decay else None,
            "threshold": threshold if penalties.has_l1 else None,
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
        buffers["forward_backward"] = workspace.bind(stack, self.grads, x, y, buffers["masks"])
        self._cache[m] = buffers
        return buffers

    def _draw_masks(self, buffers: dict, m: int) -> None:
        """Fill the masks of the dropout models from their generators (layer by layer)."""
        for k, (settings, rng) in enumerate(zip(self.models, self.rngs, strict=True)):
            if not settings.uses_dropout:
                continue
            draws = rng.random_sample(buffers["draws"])
            start = 0
            for mask in buffers["masks"]:
                n = mask.shape[1]
                block = draws[start : start + n * m].reshape(n, m)
                np.multiply(block < settings.keep_prob, 1.0 / settings.keep_prob, out=mask[k])
                start += n * m
