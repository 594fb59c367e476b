"""K fully connected networks of one architecture, stacked: parameters, forward and backward.

Layout follows the lecture: ``W[l]`` has shape ``(n[l], n[l-1])``, ``b[l]`` has shape ``(n[l], 1)``
and activations are ``(n[l], m)`` with samples in columns. K models of the same architecture are
stacked on a leading axis, ``(K, n[l], n[l-1])``, and all their parameters live in one flat
vector (layer by layer: ``W[1]`` of every model, then ``b[1]`` of every model, then ``W[2]``, ...)
so that optimizer and penalty updates are a handful of whole-vector operations.

A single model is simply ``K = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from regcore.activations import (
    ACTIVATIONS,
    BACKWARD_OPERATIONS,
    FORWARD_OPERATIONS,
    Operation,
)
from regcore.losses import output_activation

Array = np.ndarray

INIT_SCALES = {
    "he": lambda fan_in: np.sqrt(2.0 / fan_in),
    "xavier": lambda fan_in: np.sqrt(1.0 / fan_in),
}


class ParameterStack:
    """The parameters (or gradients) of K stacked models in one flat vector.

    Each layer is stored as one block ``[W[l] | b[l]]`` of shape ``(K, n[l], n[l-1] + 1)`` so that
    ``Z = [W | b] @ [A; 1]`` is a single matrix product and ``[dW | db] = dZ @ [A; 1].T`` another.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(n[0], n[1], ..., n[L])``: inputs, hidden layers, outputs.
    n_models : int
        K.
    dtype : numpy dtype
    flat : ndarray of shape (size,), optional
        Existing storage to view; zeros are allocated when omitted.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        n_models: int,
        dtype: np.dtype,
        flat: Array | None = None,
    ) -> None:
        self.layer_sizes = tuple(int(n) for n in layer_sizes)
        self.n_models = n_models
        shapes = [
            (n_models, fan_out, fan_in + 1)
            for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True)
        ]
        self.size = sum(math.prod(shape) for shape in shapes)
        self.flat = np.zeros(self.size, dtype=dtype) if flat is None else flat
        self.layers: list[Array] = []
        offset = 0
        for shape in shapes:
            self.layers.append(self.flat[offset : offset + math.prod(shape)].reshape(shape))
            offset += math.prod(shape)
        self.W: list[Array] = [block[..., :-1] for block in self.layers]  # (K, n[l], n[l-1])
        self.b: list[Array] = [block[..., -1:] for block in self.layers]  # (K, n[l], 1)

    @classmethod
    def single(cls, weights: Sequence[Array], biases: Sequence[Array]) -> ParameterStack:
        """A stack of one model (K = 1) holding copies of the given parameters.

        Parameters
        ----------
        weights : list of ndarray, entry l of shape (n[l+1], n[l])
        biases : list of ndarray, entry l of shape (n[l+1], 1)
        """
        sizes = [weights[0].shape[1], *(w.shape[0] for w in weights)]
        stack = cls(sizes, 1, weights[0].dtype)
        stack.set_model(0, weights, biases)
        return stack

    @property
    def n_layers(self) -> int:
        """L, the number of weight matrices."""
        return len(self.layers)

    def like(self, flat: Array | None = None) -> ParameterStack:
        """Another stack with the same layout (for gradients, snapshots, ...)."""
        dtype = self.flat.dtype if flat is None else flat.dtype
        return ParameterStack(self.layer_sizes, self.n_models, dtype, flat)

    def per_entry(self, values_w: Array, values_b: Array) -> Array:
        """A flat vector holding a per-model value on every entry of that model.

        Parameters
        ----------
        values_w, values_b : ndarray of shape (K,)
            The value for the model's weight entries and for its bias entries.

        Returns
        -------
        ndarray of shape (size,)
        """
        out = self.like(np.empty(self.size, dtype=self.flat.dtype))
        for w, b in zip(out.W, out.b, strict=True):
            w[...] = np.asarray(values_w, dtype=w.dtype)[:, None, None]
            b[...] = np.asarray(values_b, dtype=b.dtype)[:, None, None]
        return out.flat

    def per_model_sum(self, entries: Array) -> Array:
        """Sum a flat vector of entry values per model.

        Parameters
        ----------
        entries : ndarray of shape (size,)

        Returns
        -------
        ndarray of shape (K,)
        """
        view = self.like(entries)
        return sum(block.sum(axis=(1, 2), dtype=np.float64) for block in view.layers)

    def subset(self, models: Sequence[int]) -> ParameterStack:
        """A new stack holding copies of the given models, in that order."""
        index = np.asarray(models, dtype=np.intp)
        out = ParameterStack(self.layer_sizes, len(index), self.flat.dtype)
        for mine, theirs in zip(out.layers, self.layers, strict=True):
            mine[...] = theirs[index]
        return out

    def model(self, k: int) -> tuple[list[Array], list[Array]]:
        """Copies of model k's weights ``[(n[l], n[l-1])]`` and biases ``[(n[l], 1)]``."""
        return [w[k].copy() for w in self.W], [b[k].copy() for b in self.b]

    def set_model(self, k: int, weights: Sequence[Array], biases: Sequence[Array]) -> None:
        """Overwrite model k's parameters."""
        for w_stack, w in zip(self.W, weights, strict=True):
            w_stack[k] = w
        for b_stack, b in zip(self.b, biases, strict=True):
            b_stack[k] = b


def initialize(stack: ParameterStack, k: int, rng: np.random.RandomState, init: str) -> None:
    """Initialize model k as docs/engines.md says: layer by layer,
    ``W = randn(n[l], n[l-1]) * scale`` drawn from ``rng``; biases zero."""
    scale_of = INIT_SCALES[init]
    for w, b in zip(stack.W, stack.b, strict=True):
        fan_out, fan_in = w.shape[1:]
        w[k] = rng.randn(fan_out, fan_in) * scale_of(fan_in)
        b[k] = 0.0


def forward_logits(
    stack: ParameterStack,
    x_t: Array,
    activation: str,
    out: tuple[list[Array], list[Array]] | None = None,
) -> list[Array]:
    """Pre-activations of every layer on shared inputs, without dropout (evaluation).

    Parameters
    ----------
    stack : ParameterStack
    x_t : ndarray of shape (n[0], m)
        Inputs with samples in columns.
    activation : {"relu", "tanh"}
    out : (list of ndarray, list of ndarray), optional
        Buffers to write into instead of allocating (:func:`evaluation_buffers`): the
        pre-activations and the hidden activations.

    Returns
    -------
    list of ndarray, entry l of shape (K, n[l+1], m)
        ``Z[1], ..., Z[L]``; the last entry holds the output logits.
    """
    act = ACTIVATIONS[activation]
    zs, hidden = out if out is not None else ([], [])
    a = x_t
    for layer, (w, b) in enumerate(zip(stack.W, stack.b, strict=True)):
        if out is None:
            zs.append(np.matmul(w, a))
        else:
            np.matmul(w, a, out=zs[layer])
        z = zs[layer]
        z += b
        if layer < stack.n_layers - 1:
            a = act(z) if out is None else act(z, out=hidden[layer])
    return zs


def evaluation_buffers(stack: ParameterStack, m: int) -> tuple[list[Array], list[Array]]:
    """Buffers for :func:`forward_logits` of ``stack`` on ``m`` samples: each layer's
    pre-activations ``(K, n[l+1], m)`` and each hidden layer's activations."""
    shapes = [(stack.n_models, n, m) for n in stack.layer_sizes[1:]]
    dtype = stack.flat.dtype
    return [np.empty(s, dtype) for s in shapes], [np.empty(s, dtype) for s in shapes[:-1]]


def with_ones_column(x: Array) -> Array:
    """``[x, 1]``: inputs of shape (m, n[0]) with a column of ones appended, for the bias."""
    out = np.ones((x.shape[0], x.shape[1] + 1), dtype=x.dtype)
    out[:, :-1] = x
    return out


class Workspace:
    """Preallocated buffers for training K models on batches of m samples.

    A forward and backward pass fills ``grads`` with the gradient of the data term
    ``(1/m) sum_i L`` for every model (penalties are added by the trainer). :meth:`bind` prepares
    the pass once as a list of numpy calls bound to fixed buffers, so that each batch replays
    it without rebuilding views or branching again (``workspace.bind(...)()`` runs it once).
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        n_models: int,
        batch: int,
        dtype: np.dtype,
        activation: str,
        dropout: bool,
    ) -> None:
        hidden, n_out = tuple(layer_sizes)[1:-1], layer_sizes[-1]
        self.n_models, self.batch = n_models, batch
        self.forward_operations = FORWARD_OPERATIONS[activation]
        self.backward_operations = BACKWARD_OPERATIONS[activation]
        self.z = [np.empty((n_models, n, batch), dtype=dtype) for n in (*hidden, n_out)]
        # hidden activations carry a row of ones, [A; 1], so the next product adds the bias
        self.a_aug = [np.ones((n_models, n + 1, batch), dtype=dtype) for n in hidden]
        self.a = [a[:, :-1, :] for a in self.a_aug]
        self.out = np.empty((n_models, n_out, batch), dtype=dtype)
        # pre-mask tanh outputs, needed for tanh's derivative when dropout rescales a
        self.pre_mask = (
            [np.empty((n_models, n, batch), dtype=dtype) for n in hidden]
            if dropout and activation == "tanh"
            else None
        )
        self.dz = [np.empty((n_models, n, batch), dtype=dtype) for n in (*hidden, n_out)]
        self.da = [np.empty((n_models, n, batch), dtype=dtype) for n in hidden]
        # relu's derivative 1[z > 0], as a boolean buffer per hidden layer
        self.positive = [
            np.empty((n_models, n, batch), dtype=bool) if activation == "relu" else None
            for n in hidden
        ]
        self.inv_batch = 1.0 / batch

    def bind(
        self,
        params: ParameterStack,
        grads: ParameterStack,
        x_aug: Array,
        y: Array,
        masks: Sequence[Array] | None,
    ) -> Callable[[], None]:
        """One forward and backward pass over a batch, prepared for replaying.

        The pass reads the current contents of its arguments each time it runs, so refill them
        in place (parameters, batch, masks) between runs.

        Parameters
        ----------
        params, grads : ParameterStack
            Current parameters; gradients are written into ``grads``.
        x_aug : ndarray of shape (m, n[0] + 1) or (K, m, n[0] + 1)
            The batch with a column of ones (:func:`with_ones_column`), shared by all models or
            one per model; samples in rows.
        y : ndarray of shape (n_out, m) or (K, n_out, m)
            Targets in the output layer's layout.
        masks : list of ndarray of shape (K, n[l], m), or None
            Inverted-dropout multipliers (0 or ``1/keep_prob``) for each hidden layer.

        Returns
        -------
        callable
            Runs the pass.
        """
        operations = tuple(self._operations(params, grads, x_aug, y, masks))

        def run() -> None:
            for operation in operations:
                operation()

        return run

    def _operations(
        self,
        params: ParameterStack,
        grads: ParameterStack,
        x_aug: Array,
        y: Array,
        masks: Sequence[Array] | None,
    ) -> list[Operation]:
        n_layers = params.n_layers
        k, m = self.n_models, self.batch
        shared = x_aug.ndim == 2

        def one(array: Array) -> Array:
            # a single model's arrays as matrices: numpy's 2-D product is the lighter call
            return array[0] if k == 1 else array

        ops: list[Operation] = []
        for layer in range(n_layers):
            block, z = params.layers[layer], self.z[layer]
            if layer == 0 and shared:  # one product for all K models
                n = z.shape[1]
                ops.append(
                    partial(np.matmul, block.reshape(k * n, -1), x_aug.T, out=z.reshape(k * n, m))
                )
            elif layer == 0:
                ops.append(partial(np.matmul, block, x_aug.transpose(0, 2, 1), out=z))
            else:
                ops.append(partial(np.matmul, one(block), one(self.a_aug[layer - 1]), out=one(z)))
            if layer == n_layers - 1:
                ops.append(partial(output_activation, z, out=self.out))
            elif masks is None:
                ops += self.forward_operations(z, self.a[layer])
            elif self.pre_mask is not None:
                ops += self.forward_operations(z, self.pre_mask[layer])
                ops.append(
                    partial(np.multiply, self.pre_mask[layer], masks[layer], out=self.a[layer])
                )
            else:
                ops += self.forward_operations(z, self.a[layer])
                ops.append(partial(np.multiply, self.a[layer], masks[layer], out=self.a[layer]))

        dz = self.dz[-1]
        ops.append(partial(np.subtract, self.out, y, out=dz))
        ops.append(partial(np.multiply, dz, self.inv_batch, out=dz))
        for layer in range(n_layers - 1, -1, -1):
            dz, grad = self.dz[layer], grads.layers[layer]
            if layer == 0 and shared:
                n = dz.shape[1]
                ops.append(
                    partial(np.matmul, dz.reshape(k * n, m), x_aug, out=grad.reshape(k * n, -1))
                )
            elif layer == 0:
                ops.append(partial(np.matmul, dz, x_aug, out=grad))
            else:
                previous = one(self.a_aug[layer - 1]).swapaxes(-1, -2)
                ops.append(partial(np.matmul, one(dz), previous, out=one(grad)))
            if layer == 0:
                break
            da = self.da[layer - 1]
            weights_t = one(params.W[layer]).swapaxes(-1, -2)
            ops.append(partial(np.matmul, weights_t, one(dz), out=one(da)))
            if masks is not None:
                ops.append(partial(np.multiply, da, masks[layer - 1], out=da))
            activated = self.a[layer - 1] if self.pre_mask is None else self.pre_mask[layer - 1]
            ops += self.backward_operations(
                da, self.z[layer - 1], activated, self.dz[layer - 1], self.positive[layer - 1]
            )
        return ops
