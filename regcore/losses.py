"""The output layer: sigmoid + binary cross-entropy (two classes) or softmax + cross-entropy.

Losses are computed from the logits ``z`` with log-sigmoid / log-softmax identities, so there is
no ``log(0)`` and saturated units give large finite losses instead of NaN:

- binary: ``L = log(1 + exp(z)) - y z`` (``np.logaddexp(0, z) - y z``),
- softmax: ``L = logsumexp(z) - z_y``.

Both pair with their output activation to give ``dL/dz = a - y``
(the lecture's ``dZ[L] = A[L] - Y``).
Shapes: logits ``(K, n_out, m)``; targets ``Y`` ``(n_out, m)`` shared by the K models or
``(K, n_out, m)``; ``n_out = 1`` for two classes, the number of classes otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

Array = np.ndarray


def n_outputs(n_classes: int) -> int:
    """Units in the output layer: one sigmoid unit for two classes (or fewer), else one softmax
    unit per class."""
    return 1 if n_classes <= 2 else n_classes


def output_activation(z: Array, out: Array | None = None) -> Array:
    """Sigmoid for one output unit, softmax over the unit axis (axis 1) otherwise."""
    if z.shape[1] == 1:
        return expit(z, out=out)
    if out is None:
        out = np.empty_like(z)
    np.subtract(z, z.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def data_loss(z: Array, y: Array) -> Array:
    """Mean cross-entropy per model.

    Parameters
    ----------
    z : ndarray of shape (K, n_out, m)
        Output-layer logits.
    y : ndarray of shape (n_out, m) or (K, n_out, m)
        0/1 targets (one-hot rows for softmax).

    Returns
    -------
    ndarray of shape (K,)
        ``(1/m) sum_i L(yhat_i, y_i)``.
    """
    m = z.shape[2]
    if z.shape[1] == 1:
        per_sample = np.logaddexp(0.0, z) - y * z
        return per_sample.sum(axis=(1, 2)) / m
    zmax = z.max(axis=1, keepdims=True)
    logsumexp = np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)) + zmax
    return (logsumexp.sum(axis=(1, 2)) - (y * z).sum(axis=(1, 2))) / m


def predict_index(z: Array) -> Array:
    """Predicted class index per sample, shape ``(K, m)``, from logits ``(K, n_out, m)``."""
    if z.shape[1] == 1:
        return (z[:, 0, :] > 0).astype(np.intp)
    return z.argmax(axis=1)


def error_rate(z: Array, y_index: Array) -> Array:
    """Misclassification rate per model, shape ``(K,)``; ``y_index`` has shape ``(m,)``."""
    return (predict_index(z) != y_index).mean(axis=1)


def one_hot_targets(y_index: Array, n_out: int, dtype: np.dtype) -> Array:
    """Targets in the output layer's layout, shape ``(n_out, m)``.

    ``n_out = 1``: the 0/1 labels as one row; otherwise one-hot columns.
    """
    if n_out == 1:
        return y_index.astype(dtype)[None, :]
    targets = np.zeros((n_out, y_index.shape[0]), dtype=dtype)
    targets[y_index, np.arange(y_index.shape[0])] = 1.0
    return targets
