"""Two-sided finite-difference gradient check (the lecture's "grad check"), of the gradient that
training applies.

The gradient compared is not computed for the check: it is read off one step of plain gradient
descent taken by the engine that trains the estimator, ``g = (theta_before - theta_after) / lr``,
so the check sees the penalty exactly as training applies it (the L2 gradient, decoupled decay,
L1's proximal step), on the numpy or the compiled engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array

from regcore._validation import check_parameters
from regcore.engines import engine_class, resolve
from regcore.estimator import RegularizedClassifier, _label_indices
from regcore.losses import data_loss, n_outputs, one_hot_targets
from regcore.network import ParameterStack, forward_logits, initialize
from regcore.training import penalty_entries, penalty_value, random_state_of
from regcore.training_plan import ModelSettings, TrainingData, TrainingPlan

Array = np.ndarray

#: the step read off: small, so that an L1 step moves no weight across zero unless it is
#: within about 1e-4 |g| of it, and large enough that theta's rounding stays below 1e-11 of g
STEP = 1e-4


def applied_gradient(
    stack: ParameterStack,
    settings: ModelSettings,
    activation: str,
    data: TrainingData,
    engine: str = "auto",
) -> Array:
    """The gradient one full-batch step of plain gradient descent applies at ``stack``'s
    parameters (K = 1, float64), ``(theta - theta_after) / lr`` with ``lr =`` :data:`STEP`.

    Returns
    -------
    ndarray of shape (stack.size,)
    """
    plan = TrainingPlan(stack.layer_sizes, activation, "gd", STEP, 1, None, 1, np.dtype("float64"))
    after = stack.like(stack.flat.copy())
    rng = random_state_of(settings.random_state)
    engine_class(resolve(engine, plan))(plan, [settings], after, [rng], data).run(1)
    return (stack.flat - after.flat) / STEP


def gradient_check(
    estimator: RegularizedClassifier, X: Any, y: Any, epsilon: float = 1e-7
) -> float:
    """Compare the gradient of J that training applies with two-sided finite differences.

    Uses the estimator's fitted parameters, or, if it is not fitted, its initial parameters
    (``random_state``) for the classes in ``y``. Everything runs in float64, on the estimator's
    engine. The applied gradient is read off one step of plain gradient descent (see
    :func:`applied_gradient`); with an L1 part, that step is the proximal one, whose gradient
    is J's wherever a weight stays off zero: weights that are exactly zero (where ``|w|`` has
    no derivative) are left out of the comparison.

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

    settings = estimator._settings()
    analytic = applied_gradient(
        stack, settings, estimator.activation, TrainingData(X, y_index), estimator.engine
    )

    m = X.shape[0]
    targets = one_hot_targets(y_index, n_out, np.float64)
    sq_coef, abs_coef = penalty_entries(stack, [settings])
    x_t = np.ascontiguousarray(X.T)

    def cost() -> float:
        z = forward_logits(stack, x_t, estimator.activation)[-1]
        return float(data_loss(z, targets)[0] + penalty_value(stack, sq_coef, abs_coef, m)[0])

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
    compared = ~((abs_coef != 0) & (theta == 0))
    analytic, approx = analytic[compared], approx[compared]
    denominator = np.linalg.norm(analytic) + np.linalg.norm(approx)
    if denominator == 0.0:
        return 0.0
    return float(np.linalg.norm(analytic - approx) / denominator)
