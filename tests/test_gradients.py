"""Backpropagation against two-sided finite differences (an outside oracle: the definition of
the derivative), over penalty x activation x depth, binary and multiclass."""

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_moons

from regcore import RegularizedClassifier, gradient_check
from regcore.network import forward_logits

EPSILON = 1e-7
DEPTHS = {0: (), 1: (6,), 2: (6, 5), 3: (6, 5, 4)}


def _moons():
    return make_moons(40, noise=0.3, random_state=0)


def _iris():
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X[::3], y[::3]


def _min_abs_preactivation(clf, X):
    stack = clf._stack()
    return min(
        np.abs(z).min() for z in forward_logits(stack, np.ascontiguousarray(X.T), clf.activation)
    )


@pytest.mark.parametrize("data", [_moons, _iris], ids=["binary", "softmax"])
@pytest.mark.parametrize("depth", sorted(DEPTHS))
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("penalty", ["none", "l2", "elasticnet", "l1", "weight_decay"])
def test_backprop_matches_finite_differences(penalty, activation, depth, data):
    X, y = data()
    # a few unpenalized epochs first: biases move off zero (no relu sits exactly on its kink)
    # and no weight is zeroed by L1; then check J with the penalty under test at those weights
    clf = RegularizedClassifier(
        hidden_layer_sizes=DEPTHS[depth],
        activation=activation,
        penalty="none",
        learning_rate=0.05,
        epochs=20,
        random_state=0,
    ).fit(X, y)
    clf.set_params(penalty=penalty, lam=0.5)
    # the finite difference is only meaningful away from kinks (relu at 0, |w| at 0)
    assert _min_abs_preactivation(clf, X) > 10 * EPSILON
    assert min(np.abs(w).min() for w in clf.weights_) > 10 * EPSILON
    assert gradient_check(clf, X, y, epsilon=EPSILON) < 1e-7


def test_penalized_bias_gradient():
    X, y = _moons()
    clf = RegularizedClassifier(
        hidden_layer_sizes=(6, 5), activation="tanh", penalty="none", epochs=20, random_state=0
    ).fit(X, y)
    clf.set_params(penalty="elasticnet", lam=2.0, penalize_bias=True)
    assert gradient_check(clf, X, y) < 1e-7


def test_unfitted_estimator_is_checked_at_its_initial_weights():
    X, y = _iris()
    clf = RegularizedClassifier(hidden_layer_sizes=(5,), activation="tanh", random_state=3)
    assert gradient_check(clf, X, y) < 1e-7


def test_dropout_is_refused():
    X, y = _moons()
    with pytest.raises(ValueError, match="penalty='dropout'"):
        gradient_check(RegularizedClassifier(penalty="dropout"), X, y)
