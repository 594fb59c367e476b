"""Hidden-unit activations and their derivatives, as name-to-function tables.

Every function works in place on stacked arrays of shape ``(K, n, m)`` (K models, n units,
m samples) and writes into ``out``; with ``out=None`` it allocates.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Array = np.ndarray


def relu(z: Array, out: Array | None = None) -> Array:
    """``max(z, 0)``."""
    return np.maximum(z, 0, out=out)


def tanh(z: Array, out: Array | None = None) -> Array:
    """``tanh(z)``."""
    return np.tanh(z, out=out)


def relu_backward(da: Array, z: Array, a: Array, out: Array | None = None) -> Array:
    """``dZ = dA * g'(z)`` with ``g'(z) = 1[z > 0]``; ``a`` (the activation) is unused."""
    return np.multiply(da, z > 0, out=out)


def tanh_backward(da: Array, z: Array, a: Array, out: Array | None = None) -> Array:
    """``dZ = dA * (1 - a**2)`` where ``a = tanh(z)`` (before any dropout mask)."""
    if out is None:
        out = np.empty_like(da)
    np.multiply(a, a, out=out)
    np.subtract(1.0, out, out=out)
    out *= da
    return out


ACTIVATIONS: dict[str, Callable[..., Array]] = {"relu": relu, "tanh": tanh}
DERIVATIVES: dict[str, Callable[..., Array]] = {"relu": relu_backward, "tanh": tanh_backward}
