"""The source document's claims, measured on a fixed overfitting problem (a 30-30 network on
60 noisy moons): as lambda grows the weights shrink, the training cost rises, tanh units move
into their nearly linear range, and L1 zeroes weights."""

import itertools

import numpy as np
import pytest

from regcore import RegularizedClassifier, fit_many
from regcore.datasets import load_dataset

pytestmark = pytest.mark.usefixtures("engine")  # once per engine

LAMS = [0.0, 0.3, 1.0, 3.0, 10.0]


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons", n_samples=100, noise=0.3, seed=0)


def _final_rows(data, penalty, activation, **extra):
    estimators = [
        RegularizedClassifier(
            hidden_layer_sizes=(30, 30),
            activation=activation,
            penalty=penalty,
            lam=lam,
            learning_rate=0.1,
            epochs=3000,
            log_every=3000,
            random_state=0,
            **extra,
        )
        for lam in LAMS
    ]
    fit_many(estimators, data.X_train, data.y_train, data.X_dev, data.y_dev)
    return [est.history_.iloc[-1] for est in estimators]


def _strictly_increasing(values):
    return all(b > a for a, b in itertools.pairwise(values))


def test_l2_shrinks_weights_and_raises_training_cost(moons):
    rows = _final_rows(moons, "l2", "tanh")
    for layer in (1, 2, 3):
        norms = [row[f"weight_norm/W{layer}"] for row in rows]
        assert _strictly_increasing(norms[::-1]), norms
    assert _strictly_increasing([row["train_cost"] for row in rows])
    assert _strictly_increasing([row["train_loss"] for row in rows])
    # lambda = 0 overfits: (almost) zero training error, dev cost well above its best
    assert rows[0]["train_error"] == 0.0
    dev = [row["dev_cost"] for row in rows]
    assert min(dev) < 0.5 * dev[0]


def test_tanh_units_become_nearly_linear(moons):
    rows = _final_rows(moons, "l2", "tanh")
    for layer in (1, 2):
        fractions = [row[f"linear_fraction/L{layer}"] for row in rows]
        assert _strictly_increasing(fractions), fractions
        assert fractions[0] < 0.5
        assert fractions[-1] > 0.99


def test_l1_makes_weights_exactly_zero(moons):
    rows = _final_rows(moons, "l1", "tanh")
    sparsity = [row["sparsity"] for row in rows]
    assert sparsity[0] == 0.0
    assert all(b >= a for a, b in itertools.pairwise(sparsity)), sparsity
    assert sparsity[1] > 0.5
    assert sparsity[-1] == 1.0


def test_weight_decay_is_l2_under_gradient_descent(moons):
    """The source: W := (1 - lr lam/m) W - lr dW is why L2 is called weight decay."""
    kwargs = dict(hidden_layer_sizes=(10, 10), lam=3.0, epochs=500, log_every=50, random_state=0)
    l2 = RegularizedClassifier(penalty="l2", **kwargs).fit(moons.X_train, moons.y_train)
    decay = RegularizedClassifier(penalty="weight_decay", **kwargs).fit(
        moons.X_train, moons.y_train
    )
    for a, b in zip(l2.weights_ + l2.biases_, decay.weights_ + decay.biases_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(l2.history_.to_numpy(), decay.history_.to_numpy(), rtol=1e-10)


def test_weight_decay_differs_from_l2_under_adam(moons):
    """Decoupled decay (AdamW) is not Adam on the L2-penalized gradient."""
    kwargs = dict(
        hidden_layer_sizes=(10, 10),
        lam=3.0,
        optimizer="adam",
        learning_rate=0.01,
        epochs=500,
        random_state=0,
    )
    l2 = RegularizedClassifier(penalty="l2", **kwargs).fit(moons.X_train, moons.y_train)
    decay = RegularizedClassifier(penalty="weight_decay", **kwargs).fit(
        moons.X_train, moons.y_train
    )
    first_l2 = np.linalg.norm(l2.weights_[0])
    first_decay = np.linalg.norm(decay.weights_[0])
    assert abs(first_l2 - first_decay) > 0.01 * first_l2


def test_weight_decay_update_rule_by_hand(moons):
    """One Adam step of weight_decay equals W - lr (lam/m) W - lr * adam_step, written out."""
    X, y = moons.X_train, moons.y_train
    m, lr, lam = len(y), 0.01, 3.0
    clf = RegularizedClassifier(
        penalty="weight_decay",
        lam=lam,
        optimizer="adam",
        learning_rate=lr,
        epochs=1,
        random_state=0,
    ).fit(X, y)
    rng = np.random.RandomState(0)
    w = rng.randn(1, 2) * np.sqrt(2.0 / 2)  # the contract's he initialization
    p = 1.0 / (1.0 + np.exp(-(X @ w.T).ravel()))
    grad_w = ((p - y) @ X / m)[None, :]
    grad_b = np.mean(p - y)
    # Adam's first step: m_hat = g, v_hat = g^2, step = g / (|g| + eps)
    step_w = grad_w / (np.abs(grad_w) + 1e-8)
    step_b = grad_b / (abs(grad_b) + 1e-8)
    np.testing.assert_allclose(clf.weights_[0], w - lr * (lam / m) * w - lr * step_w, rtol=1e-12)
    np.testing.assert_allclose(clf.biases_[0].item(), -lr * step_b, rtol=1e-12)
