"""Two-sided finite-difference gradient check (the lecture's "grad check")."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array

from regcore._validation import check_parameters
from regcore.estimator import RegularizedClassifier, _label_indices
from regcore.losses import data_loss, n_outputs, one_hot_targets
from regcore.network import (
    ParameterStack,
    Workspace,
    forward_logits,
    initialize,
    with_ones_column,
)
from regcore.penalties import penalty_gradient
from regcore.training import penalty_entries, penalty_value, random_state_of

Array = np.ndarray


def gradient_check(
    estimator: RegularizedClassifier, X: Any, y: Any, epsilon: float = 1e-7
) -> float:
    """Compare backpropagation's gradient of J with two-sided finite differences.

    Uses the estimator's fitted parameters, or, if it is not fitted, its initial parameters
    (``random_state``) for the classes in ``y``. Everything runs in float64. For L1 the gradient
    of ``|w|`` is ``sign(w)``, exact away from zero.

    Parameters
    ----------
    estimator : RegularizedClassifier
        Any penalty but ``dropout`` (whose cost is random).
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    epsilon : float, default=1e-7
        Step of ``(J(theta + eps) - J(theta - eps)) / (2 eps)``.

    Returns
    -------
    float
        ``||g - g_approx|| / (||g|| + ||g_approx||)``; below about 1e-7 means the gradient is right.
    """
    check_parameters(estimator.get_params(), "gradient_check")
    if estimator.penalty == "dropout":
        raise ValueError(
            "gradient_check: penalty='dropout' makes J random (a new mask per evaluation); "
            "check the same estimator with penalty='none' instead, got penalty='dropout'"
        )
    if not (np.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"gradient_check: epsilon must be > 0, got {epsilon!r}")
    X = check_array(X, dtype=np.float64)
    y = np.asarray(y)
    check_classification_targets(y)
    if hasattr(estimator, "weights_"):
        classes = estimator.classes_
        weights = [w.astype(np.float64) for w in estimator.weights_]
        biases = [b.astype(np.float64) for b in estimator.biases_]
    else:
        classes = np.unique(y)
        weights = biases = None
    y_index = _label_indices(classes, y, "y", len(X))
    n_out = n_outputs(len(classes))
    sizes = (X.shape[1], *estimator.hidden_layer_sizes, n_out)
    if weights is None:
        stack = ParameterStack(sizes, 1, np.float64)
        initialize(stack, 0, random_state_of(estimator.random_state), estimator.init)
    else:
        stack = ParameterStack.single(weights, biases)

    m = X.shape[0]
    targets = one_hot_targets(y_index, n_out, np.float64)
    sq_coef, abs_coef = penalty_entries(stack, [estimator._settings()])
    x_t = np.ascontiguousarray(X.T)

    def cost() -> float:
        z = forward_logits(stack, x_t, estimator.activation)[-1]
        return float(data_loss(z, targets)[0] + penalty_value(stack, sq_coef, abs_coef, m)[0])

    grads = stack.like()
    workspace = Workspace(sizes, 1, m, np.float64, estimator.activation, dropout=False)
    workspace.bind(stack, grads, with_ones_column(X), targets, None)()
    analytic = grads.flat + penalty_gradient(stack.flat, sq_coef, abs_coef, m)

    theta = stack.flat
    approx = np.empty_like(theta)
    for i in range(theta.size):
        saved = theta[i]
        theta[i] = saved + epsilon
        plus = cost()
        theta[i] = saved - epsilon
        minus = cost()
        theta[i] = saved
        approx[i] = (plus - minus) / (2.0 * epsilon)
    denominator = np.linalg.norm(analytic) + np.linalg.norm(approx)
    if denominator == 0.0:
        return 0.0
    return float(np.linalg.norm(analytic - approx) / denominator)
