"""Optimizers on a flat parameter vector, with their state kept alongside it.

- ``gd``: ``theta := theta - lr * g`` (the lecture's update).
- ``momentum``: ``v := beta v + (1 - beta) g``; ``theta := theta - lr v`` (beta = 0.9).
- ``rmsprop``: ``s := beta2 s + (1 - beta2) g**2``; ``theta := theta - lr g / (sqrt(s) + eps)``
  (beta2 = 0.9, eps = 1e-8; no bias correction, as the lecture series writes it).
- ``adam``: bias-corrected first and second moments, ``theta := theta - lr m_hat / (sqrt(v_hat) +
  eps)`` (beta1 = 0.9, beta2 = 0.999, eps = 1e-8).

``update`` uses ``grad`` as scratch space: its contents are undefined afterwards.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray

MOMENTUM_BETA = 0.9
RMSPROP_BETA = 0.9  # Hinton's lecture 6e, where RMSprop comes from (torch uses 0.99)
RMSPROP_EPSILON = 1e-8
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-8


class GradientDescent:
    """Plain gradient descent."""

    def __init__(self, size: int, dtype: np.dtype, learning_rate: float) -> None:
        self.learning_rate = learning_rate

    def update(self, theta: Array, grad: Array) -> None:
        grad *= self.learning_rate
        theta -= grad

    def reset(self, where: Array) -> None:
        """Forget the state of the entries in ``where`` (none is kept)."""


class Momentum:
    """Gradient descent with momentum (exponentially weighted average of gradients)."""

    def __init__(self, size: int, dtype: np.dtype, learning_rate: float) -> None:
        self.learning_rate = learning_rate
        self.velocity = np.zeros(size, dtype=dtype)

    def update(self, theta: Array, grad: Array) -> None:
        self.velocity *= MOMENTUM_BETA
        grad *= 1.0 - MOMENTUM_BETA
        self.velocity += grad
        np.multiply(self.velocity, self.learning_rate, out=grad)
        theta -= grad

    def reset(self, where: Array) -> None:
        """Forget the state of the entries in ``where``."""
        self.velocity[where] = 0.0


class RMSprop:
    """RMSprop: each entry's step divided by a running root mean square of its gradients."""

    def __init__(self, size: int, dtype: np.dtype, learning_rate: float) -> None:
        self.learning_rate = learning_rate
        self.second = np.zeros(size, dtype=dtype)
        self.scratch = np.empty(size, dtype=dtype)

    def update(self, theta: Array, grad: Array) -> None:
        self.second *= RMSPROP_BETA
        np.square(grad, out=self.scratch)
        self.scratch *= 1.0 - RMSPROP_BETA
        self.second += self.scratch
        np.sqrt(self.second, out=self.scratch)
        self.scratch += RMSPROP_EPSILON
        np.divide(grad, self.scratch, out=grad)
        grad *= self.learning_rate
        theta -= grad

    def reset(self, where: Array) -> None:
        """Forget the state of the entries in ``where``."""
        self.second[where] = 0.0


class Adam:
    """Adam with bias correction."""

    def __init__(self, size: int, dtype: np.dtype, learning_rate: float) -> None:
        self.learning_rate = learning_rate
        self.first = np.zeros(size, dtype=dtype)
        self.second = np.zeros(size, dtype=dtype)
        self.scratch = np.empty(size, dtype=dtype)
        self.steps = 0

    def update(self, theta: Array, grad: Array) -> None:
        self.steps += 1
        self.first *= ADAM_BETA1
        np.multiply(grad, 1.0 - ADAM_BETA1, out=self.scratch)
        self.first += self.scratch
        np.square(grad, out=grad)
        grad *= 1.0 - ADAM_BETA2
        self.second *= ADAM_BETA2
        self.second += grad
        # denominator sqrt(v / (1 - beta2^t)) + eps, numerator lr m / (1 - beta1^t)
        np.multiply(self.second, 1.0 / (1.0 - ADAM_BETA2**self.steps), out=grad)
        np.sqrt(grad, out=grad)
        grad += ADAM_EPSILON
        np.divide(self.first, grad, out=grad)
        grad *= self.learning_rate / (1.0 - ADAM_BETA1**self.steps)
        theta -= grad

    def reset(self, where: Array) -> None:
        """Forget the state of the entries in ``where``."""
        self.first[where] = 0.0
        self.second[where] = 0.0


#: the optimizers by name, in the order the lecture series introduces them
OPTIMIZERS = {"gd": GradientDescent, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam}
