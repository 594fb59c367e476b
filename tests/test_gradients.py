"""The gradient training applies, against two-sided finite differences of J (an outside oracle:
the definition of the derivative, of a J written out here from the contract), on each engine,
over penalty x activation x depth, binary and multiclass.

Training is observed, not asked: after ``E`` and ``E + 1`` epochs of full-batch gradient descent
with learning rate ``lr`` the parameters are ``theta_E`` and ``theta_E+1``, and

- for penalties applied through the gradient (none, l2, weight decay: ``W - lr (lam/m) W_old -
  lr dW`` is a gradient step under ``gd``), ``(theta_E - theta_E+1) / lr`` is the gradient the
  engine applied at ``theta_E``: it must be the finite differences of J there;
- for those with an L1 part (l1, elastic net), the step must be the closed form of the proximal
  step, ``sign(v) max(|v| - lr r lam/m, 0)`` with ``v = theta_E - lr grad(J without the L1
  term)`` (unpenalized biases: ``v`` itself), the gradient again by finite differences.
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.datasets import load_iris, make_moons

from regcore import RegularizedClassifier, gradient_check

pytestmark = pytest.mark.usefixtures("engine")  # once per engine

EPSILON = 1e-7
LR = 0.05
EPOCHS = 20  # the point checked: biases off zero, no relu unit on its kink
DEPTHS = {0: (), 1: (6,), 2: (6, 5), 3: (6, 5, 4)}


def _moons():
    return make_moons(40, noise=0.3, random_state=0)


def _iris():
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X[::3], y[::3]


def contract_coefficients(penalty, lam, l1_ratio):
    """(coefficient of ||W||_F^2 / 2m, coefficient of ||W||_1 / m), from DESIGN.md."""
    return {
        "none": (0.0, 0.0),
        "l2": (lam, 0.0),
        "l1": (0.0, lam),
        "elasticnet": ((1 - l1_ratio) * lam, l1_ratio * lam),
        "weight_decay": (lam, 0.0),  # the implied L2 term
    }[penalty]


def objective(weights, biases, X, y, activation, squared, absolute, penalize_bias):
    """J: mean cross-entropy (sigmoid for two classes, softmax for more) + the penalty."""
    a = X.T
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = w @ a + b
        if layer < len(weights) - 1:
            a = np.maximum(z, 0.0) if activation == "relu" else np.tanh(z)
    m = X.shape[0]
    if z.shape[0] == 1:
        loss = np.mean(np.logaddexp(0.0, z[0]) - y * z[0])
    else:
        loss = np.mean(logsumexp(z, axis=0) - z[y, np.arange(m)])
    penalized = list(weights) + (list(biases) if penalize_bias else [])
    sq = sum(np.sum(p**2) for p in penalized)
    ab = sum(np.sum(np.abs(p)) for p in penalized)
    return loss + squared / (2 * m) * sq + absolute / m * ab


def flat(clf):
    return np.concatenate([p.ravel() for p in clf.weights_ + clf.biases_])


def finite_differences(clf, X, y, squared, absolute):
    """dJ/dtheta at clf's parameters, theta = [W..., b...] flattened."""
    params = [p.copy() for p in clf.weights_ + clf.biases_]
    n = len(clf.weights_)

    def cost():
        return objective(
            params[:n], params[n:], X, y, clf.activation, squared, absolute, clf.penalize_bias
        )

    grads = []
    for p in params:
        g = np.empty_like(p)
        for index in np.ndindex(p.shape):
            saved = p[index]
            p[index] = saved + EPSILON
            plus = cost()
            p[index] = saved - EPSILON
            minus = cost()
            p[index] = saved
            g[index] = (plus - minus) / (2 * EPSILON)
        grads.append(g.ravel())
    return np.concatenate(grads)


def two_steps(X, y, **params):
    """The estimator after EPOCHS and after EPOCHS + 1 epochs of full-batch gradient descent."""
    settings = dict(optimizer="gd", learning_rate=LR, random_state=0, log_every=1000, **params)
    before = RegularizedClassifier(epochs=EPOCHS, **settings).fit(X, y)
    after = RegularizedClassifier(epochs=EPOCHS + 1, **settings).fit(X, y)
    return before, after


def check_step(X, y, penalty, lam, **params):
    before, after = two_steps(X, y, penalty=penalty, lam=lam, **params)
    # finite differences are only meaningful away from relu's kink (|w|'s stays out of them)
    a = X.T
    for w, b in zip(before.weights_[:-1], before.biases_[:-1], strict=True):
        z = w @ a + b
        assert before.activation == "tanh" or np.abs(z).min() > 10 * EPSILON
        a = np.maximum(z, 0) if before.activation == "relu" else np.tanh(z)
    squared, absolute = contract_coefficients(penalty, lam, before.l1_ratio)
    theta, theta_next = flat(before), flat(after)
    n_weights = sum(w.size for w in before.weights_)
    penalized = np.arange(theta.size) < n_weights if not before.penalize_bias else theta == theta
    if absolute == 0.0:
        applied = (theta - theta_next) / LR
        expected = finite_differences(before, X, y, squared, absolute)
        np.testing.assert_allclose(applied, expected, rtol=1e-6, atol=1e-8)
        assert np.abs(expected).max() > 1e-3  # not a check of zeros against zeros
        return
    smooth = finite_differences(before, X, y, squared, 0.0)
    v = theta - LR * smooth
    threshold = LR * absolute / X.shape[0]
    expected = np.where(penalized, np.sign(v) * np.maximum(np.abs(v) - threshold, 0.0), v)
    np.testing.assert_allclose(theta_next, expected, rtol=0, atol=LR * 1e-7)
    # the closed form did something: the threshold moved the weights (and zeroed some, for l1)
    assert np.abs(expected - v).max() > 0.1 * threshold


@pytest.mark.parametrize("data", [_moons, _iris], ids=["binary", "softmax"])
@pytest.mark.parametrize("depth", sorted(DEPTHS))
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("penalty", ["none", "l2", "weight_decay", "elasticnet", "l1"])
def test_applied_step_matches_finite_differences(penalty, activation, depth, data):
    X, y = data()
    check_step(X, y, penalty, 0.5, hidden_layer_sizes=DEPTHS[depth], activation=activation)


@pytest.mark.parametrize("penalty", ["l2", "weight_decay", "elasticnet"])
def test_penalized_biases(penalty):
    X, y = _moons()
    check_step(X, y, penalty, 2.0, hidden_layer_sizes=(6, 5), activation="tanh", penalize_bias=True)


def test_l1_zeros_weights_exactly():
    # a strength at which the threshold outweighs some weights' data gradient: the steps up to
    # the one checked have zeroed some weights, and the closed form holds there too
    X, y = _moons()
    before, _ = two_steps(X, y, penalty="l1", lam=10.0, hidden_layer_sizes=(6,))
    assert sum((w == 0).sum() for w in before.weights_) >= 2
    check_step(X, y, "l1", 10.0, hidden_layer_sizes=(6,))


@pytest.mark.parametrize("penalty", ["none", "l2", "weight_decay", "elasticnet", "l1"])
def test_gradient_check_agrees(penalty):
    """regcore's own gradient_check reads the applied gradient the same way."""
    X, y = _iris()
    clf = RegularizedClassifier(
        hidden_layer_sizes=(6, 5), activation="tanh", penalty=penalty, lam=0.5, epochs=20
    )
    clf.set_params(random_state=0).fit(X, y)
    assert gradient_check(clf, X, y) < 1e-7
    # an unfitted estimator is checked at its initial weights
    assert gradient_check(RegularizedClassifier(**clf.get_params()), X, y) < 1e-7


def test_gradient_check_refuses_dropout():
    X, y = _moons()
    with pytest.raises(ValueError, match="penalty='dropout'"):
        gradient_check(RegularizedClassifier(penalty="dropout"), X, y)
