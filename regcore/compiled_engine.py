"""The compiled engine: the numpy engine's epochs, fused and compiled with numba.

Each model trains its epochs start to end in one compiled call (forward, backward, penalty and
update of one model in turn, its activations in cache), the models of a pack split between
``n_jobs`` threads. Models may have data of their own, of any size. Between the history's
logged epochs the Python loop of :func:`regcore.training.train` computes the history row with
numpy and freezes diverged models, as with the numpy engine.

numba compiles the kernels on their first call (about 10 s on 2 cores, once per dtype) and
caches them on disk beside this module, or in numba's user cache folder where that is read-only;
a process then loads them in a fraction of a second (:func:`warm_up` does it ahead of need).

Small networks train their batches' forward and backward passes with a kernel built for their
shape (:mod:`regcore.fused`: 2 to 4x the generic loops), which the generic driver calls by
address; the rest of an epoch (batches, random draws, penalty, optimizer) is the same code.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import ThreadpoolController

from regcore import fused, optimizers
from regcore.network import ParameterStack
from regcore.penalties import PenaltyVectors, StepCoefficients
from regcore.training_plan import ModelSettings, TrainingData, TrainingPlan

if TYPE_CHECKING:
    from regcore._kernels import KernelArgs

Array = np.ndarray

#: the optimizers' constants, in the order the kernels read them
OPTIMIZER_CONSTANTS = np.array(
    [
        optimizers.MOMENTUM_BETA,
        optimizers.RMSPROP_BETA,
        optimizers.RMSPROP_EPSILON,
        optimizers.ADAM_BETA1,
        optimizers.ADAM_BETA2,
        optimizers.ADAM_EPSILON,
    ]
)


@functools.lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    """The process's BLAS and OpenMP pools, listed once (after the kernels load scipy's BLAS):
    listing them scans every loaded library, too slow to repeat at every logged epoch."""
    return ThreadpoolController()


def _one_blas_thread():
    return _blas_controller().limit(limits=1)


def warm_up(dtype: np.dtype) -> None:
    """Compile the kernels for ``dtype`` (or load them from numba's disk cache): a two-epoch
    training of a tiny network. Raises whatever numba raises where it cannot."""
    from regcore.network import ParameterStack, initialize

    plan = TrainingPlan((2, 2, 1), "relu", "gd", 0.1, 2, None, 2, np.dtype(dtype))
    models = [ModelSettings("l2", 0.1, 0.0, 1.0, False, "he", 0)]
    stack = ParameterStack(plan.layer_sizes, 1, plan.dtype)
    rng = np.random.RandomState(0)
    initialize(stack, 0, rng, "he")
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=plan.dtype)
    data = TrainingData(x, np.array([0, 1, 1]))
    CompiledEngine(plan, models, stack, [rng], data, fused_kernels=False).run(2)


def kernel_layout(sizes: Sequence[int]) -> tuple[Array, Array, int]:
    """Where ``W[l]`` and ``b[l]`` start in one model's block, and the block's size."""
    starts_w, starts_b, offset = [], [], 0
    for n_in, n_out in itertools.pairwise(sizes):
        starts_w.append(offset)
        offset += n_out * n_in
        starts_b.append(offset)
        offset += n_out
    return np.array(starts_w, np.int64), np.array(starts_b, np.int64), offset


def kernel_arguments(
    plan: TrainingPlan,
    models: Sequence[ModelSettings],
    x_t: Array,
    y_t: Array,
    column: Array,
    count: Array,
) -> KernelArgs:
    """The kernels' arguments for training ``models`` on the columns ``column[k] .. column[k] +
    count[k]`` of ``x_t`` (n[0], columns) and ``y_t`` (n_out, columns), with zeroed state."""
    from regcore._kernels import ACTIVATION_CODES, OPTIMIZER_CODES, KernelArgs

    k = len(models)
    batch = int(plan.batch_size or count.max())
    starts_w, starts_b, block = kernel_layout(plan.layer_sizes)
    # each model's batches: full ones of min(batch, m) samples and the rest, m mod that
    full = np.minimum(batch, count)
    last = count - full * ((count - 1) // full)
    penalties = PenaltyVectors.of(models)
    coefficients = np.empty((3, k, 2, block), dtype=plan.dtype)
    for kind, m in enumerate((full, last)):
        step = StepCoefficients.of(penalties, plan.learning_rate, m)
        values = (step.l2_over_m, step.decay_factor, step.threshold)
        for out, value, neutral in zip(coefficients, values, (0.0, 1.0, 0.0), strict=True):
            out[:, kind, :] = value[:, None]  # the weights
            for start, end in zip(starts_b, [*starts_w[1:], block], strict=True):
                out[:, kind, start:end] = np.where(step.bias, value, neutral)[:, None]
    return KernelArgs(
        activation=ACTIVATION_CODES[plan.activation],
        optimizer=OPTIMIZER_CODES[plan.optimizer],
        learning_rate=float(plan.learning_rate),
        constants=OPTIMIZER_CONSTANTS,
        batch=batch,
        sizes=np.asarray(plan.layer_sizes, dtype=np.int64),
        starts_w=starts_w,
        starts_b=starts_b,
        block=block,
        fused=0,
        fused_scratch=0,
        params=np.zeros(k * block, dtype=plan.dtype),
        first=np.zeros(k * block, dtype=plan.dtype),
        second=np.zeros(k * block, dtype=plan.dtype),
        steps=np.zeros(k, np.int64),
        keys=np.empty((k, 624), dtype=np.uint32),
        positions=np.empty(k, dtype=np.int64),
        x_t=x_t,
        y_t=y_t,
        column=column,
        count=count,
        keep_prob=np.array([s.keep_prob if s.uses_dropout else 1.0 for s in models]),
        l2_over_m=coefficients[0],
        decay_factor=coefficients[1],
        threshold=coefficients[2],
    )


class CompiledEngine:
    """Trains the models of ``stack`` with the numba kernels of :mod:`regcore._kernels`.

    Parameters as :class:`regcore.numpy_engine.NumpyEngine`, except that ``data`` may be one
    :class:`TrainingData` shared by all models or a sequence of them, one per model, and
    ``fused_kernels``: whether models without dropout may train with the network's fused batch
    kernel (:mod:`regcore.fused`, as ``REGCORE_FUSED`` says) rather than the generic one.
    """

    per_model_data = True

    def __init__(
        self,
        plan: TrainingPlan,
        models: Sequence[ModelSettings],
        stack: ParameterStack,
        rngs: Sequence[np.random.RandomState],
        data: TrainingData | Sequence[TrainingData],
        *,
        fused_kernels: bool = True,
    ) -> None:
        from regcore import _kernels

        self.kernels = _kernels
        self.plan, self.stack, self.rngs = plan, stack, rngs
        k = stack.n_models
        sizes = plan.layer_sizes
        n_out = sizes[-1]
        per_model = [data] * k if isinstance(data, TrainingData) else list(data)
        # each distinct data set once, its columns padded: X.T and one-hot targets
        first_column: dict[int, int] = {}
        parts: list[TrainingData] = []
        columns, counts = np.empty(k, np.int64), np.empty(k, np.int64)
        total = 0
        for index, item in enumerate(per_model):
            if id(item) not in first_column:
                first_column[id(item)] = total
                parts.append(item)
                total += _kernels.padded(item.x.shape[0])
            columns[index], counts[index] = first_column[id(item)], item.x.shape[0]
        self.x_t = np.zeros((sizes[0], total), dtype=plan.dtype)
        self.y_t = np.zeros((n_out, total), dtype=plan.dtype)
        for item in parts:
            start, m = first_column[id(item)], item.x.shape[0]
            self.x_t[:, start : start + m] = item.x.T
            if n_out == 1:
                self.y_t[0, start : start + m] = item.y_index
            else:
                self.y_t[item.y_index, start + np.arange(m)] = 1.0
        self.active = np.ones(k, dtype=bool)
        self.args = kernel_arguments(plan, models, self.x_t, self.y_t, columns, counts)
        # which models draw random numbers: mini-batch orders and dropout masks
        self.draws = (self.args.batch < counts) | (self.args.keep_prob < 1.0)
        self.gaussians: list[tuple[int, float]] | None = None
        if fused_kernels and not all(s.uses_dropout for s in models):
            # the multiply-adds of training: three passes over every weight, per sample
            weights = sum(a * b for a, b in itertools.pairwise(sizes))
            work = 3.0 * weights * float(counts.sum()) * plan.epochs
            kernel = fused.kernel_for(sizes, plan.activation, plan.dtype, work)
            if kernel is not None:
                self.fused_kernel = kernel  # alive while its address is in use
                self.args = self.args._replace(fused=kernel.address, fused_scratch=kernel.scratch)

    def _models(self) -> Array:
        return self.args.params.reshape(self.stack.n_models, self.args.block)

    def _pack(self) -> None:
        """The stack's parameters into the kernels' layout."""
        models = self._models()
        for layer, (w, b) in enumerate(zip(self.stack.W, self.stack.b, strict=True)):
            start_w, start_b = self.args.starts_w[layer], self.args.starts_b[layer]
            models[:, start_w:start_b] = w.reshape(w.shape[0], -1)
            models[:, start_b : start_b + b.shape[1]] = b[:, :, 0]

    def _unpack(self) -> None:
        models = self._models()
        for layer, (w, b) in enumerate(zip(self.stack.W, self.stack.b, strict=True)):
            start_w, start_b = self.args.starts_w[layer], self.args.starts_b[layer]
            w[...] = models[:, start_w:start_b].reshape(w.shape)
            b[:, :, 0] = models[:, start_b : start_b + b.shape[1]]

    def freeze(self, models: Array) -> None:
        """Stop training the models where ``models`` is True (their parameters are zeroed, as
        the numpy engine does)."""
        entries = self.stack.per_entry(models, models).astype(bool)
        self.stack.flat[entries] = 0.0
        self.active &= ~models

    def run(self, epochs: int) -> None:
        """Train for ``epochs`` epochs, the models split between ``plan.threads`` threads."""
        self._pack()
        args = self.args
        if self.gaussians is None:
            # the kernels continue each generator from here, in args; the Gaussian cache
            # (untouched by training) goes back with the state
            self.gaussians = []
            for k, rng in enumerate(self.rngs):
                _, key, position, has_gauss, gauss = rng.get_state()
                args.keys[k], args.positions[k] = key, position
                self.gaussians.append((has_gauss, gauss))
        active = np.flatnonzero(self.active)
        shares = [part for part in np.array_split(active, self.plan.threads) if part.size]
        # one BLAS thread per kernel: the products inside are small, and a BLAS thread pool
        # costs more to wake than it saves (measured 0.6x with two); the parallelism is over
        # models, the kernels releasing the GIL
        with _one_blas_thread():
            if len(shares) > 1:
                with ThreadPoolExecutor(len(shares)) as pool:
                    list(pool.map(lambda part: self._train(part, epochs), shares))
            elif shares:
                self._train(shares[0], epochs)
        self._unpack()
        # generators that drew (mini-batch orders, dropout masks) move on; a state round trip
        # costs about 0.1 ms a model, so those that did not draw are left alone
        for k in np.flatnonzero(self.draws):
            has_gauss, gauss = self.gaussians[k]
            state = ("MT19937", args.keys[k], int(args.positions[k]), has_gauss, gauss)
            self.rngs[k].set_state(state)

    def _train(self, models: Array, epochs: int) -> None:
        self.kernels.train_models(models, epochs, self.args)
