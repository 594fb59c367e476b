"""Hidden-unit activations and their derivatives.

Shapes are stacked, ``(K, n, m)`` (K models, n units, m samples). The activations are plain
functions (used for evaluation); training replays each pass as a list of numpy calls with their
arguments bound (see :class:`regcore.network.Workspace`), so the training forms are builders of
such lists, writing into preallocated buffers:

- relu: ``g(z) = max(z, 0)``, ``dZ = dA * 1[z > 0]``;
- tanh: ``g(z) = tanh(z)``, ``dZ = dA * (1 - a**2)`` with ``a = tanh(z)`` before any dropout mask.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

Array = np.ndarray
Operation = Callable[[], object]


def relu(z: Array, out: Array | None = None) -> Array:
    """``max(z, 0)``."""
    return np.maximum(z, 0.0, out=out)


def tanh(z: Array, out: Array | None = None) -> Array:
    """``tanh(z)``."""
    return np.tanh(z, out=out)


def relu_operations(z: Array, out: Array) -> list[Operation]:
    """``out = max(z, 0)``."""
    return [partial(np.maximum, z, 0.0, out=out)]


def tanh_operations(z: Array, out: Array) -> list[Operation]:
    """``out = tanh(z)``."""
    return [partial(np.tanh, z, out=out)]


def relu_backward_operations(
    da: Array, z: Array, a: Array, out: Array, positive: Array
) -> list[Operation]:
    """``out = da * 1[z > 0]``; ``positive`` is a boolean buffer shaped like ``z``, ``a`` unused."""
    return [partial(np.greater, z, 0, out=positive), partial(np.multiply, da, positive, out=out)]


def tanh_backward_operations(
    da: Array, z: Array, a: Array, out: Array, positive: Array | None
) -> list[Operation]:
    """``out = da * (1 - a**2)``; ``z`` and ``positive`` unused."""
    return [
        partial(np.multiply, a, a, out=out),
        partial(np.subtract, 1.0, out, out=out),
        partial(np.multiply, out, da, out=out),
    ]


ACTIVATIONS: dict[str, Callable[..., Array]] = {"relu": relu, "tanh": tanh}
FORWARD_OPERATIONS: dict[str, Callable[..., list[Operation]]] = {
    "relu": relu_operations,
    "tanh": tanh_operations,
}
BACKWARD_OPERATIONS: dict[str, Callable[..., list[Operation]]] = {
    "relu": relu_backward_operations,
    "tanh": tanh_backward_operations,
}
