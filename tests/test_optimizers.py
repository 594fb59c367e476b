"""Every optimizer's update rule, written out here from the README's formulas, against training.

RMSprop also against a closed form: with a constant gradient ``g`` its running average after
``t`` steps is ``s_t = (1 - beta^t) g^2``, so ``theta_t = theta_0 - lr sum_i g / (|g|
sqrt(1 - beta^i) + eps)``.
"""

import numpy as np
import pytest

from regcore import RegularizedClassifier
from regcore.optimizers import OPTIMIZERS

BETA = {"momentum": 0.9, "rmsprop": 0.9, "adam": (0.9, 0.999)}
EPS = 1e-8
EPOCHS = 25


def hand_written_steps(optimizer, grads, lr):
    """The parameter trajectory of ``optimizer`` for a sequence of gradients, by the formulas."""
    theta = np.zeros_like(grads[0])
    v = np.zeros_like(theta)
    s = np.zeros_like(theta)
    out = []
    for t, g in enumerate(grads, start=1):
        if optimizer == "gd":
            theta = theta - lr * g
        elif optimizer == "momentum":
            v = 0.9 * v + 0.1 * g
            theta = theta - lr * v
        elif optimizer == "rmsprop":
            s = 0.9 * s + 0.1 * g**2
            theta = theta - lr * g / (np.sqrt(s) + EPS)
        else:
            v = 0.9 * v + 0.1 * g
            s = 0.999 * s + 0.001 * g**2
            theta = theta - lr * (v / (1 - 0.9**t)) / (np.sqrt(s / (1 - 0.999**t)) + EPS)
        out.append(theta)
    return out


@pytest.mark.parametrize("name", ["gd", "momentum", "rmsprop", "adam"])
def test_update_rule_on_a_gradient_sequence(name):
    assert name in OPTIMIZERS
    rng = np.random.RandomState(0)
    grads = [rng.randn(50) * 10.0 ** rng.uniform(-4, 1) for _ in range(25)]
    optimizer = OPTIMIZERS[name](50, np.float64, 0.03)
    theta = np.zeros(50)
    for g, expected in zip(grads, hand_written_steps(name, grads, 0.03), strict=True):
        optimizer.update(theta, g.copy())
        np.testing.assert_allclose(theta, expected, rtol=1e-12, atol=1e-15)


def test_rmsprop_closed_form_for_a_constant_gradient():
    g = np.array([3.0, -0.02, 1e-3, -250.0])
    lr, steps = 0.01, 40
    optimizer = OPTIMIZERS["rmsprop"](g.size, np.float64, lr)
    theta = np.zeros_like(g)
    for _ in range(steps):
        optimizer.update(theta, g.copy())
    i = np.arange(1, steps + 1)[:, None]
    expected = -lr * (g / (np.abs(g) * np.sqrt(1 - 0.9**i) + EPS)).sum(axis=0)
    np.testing.assert_allclose(theta, expected, rtol=1e-12)


@pytest.mark.usefixtures("engine")  # once per engine: the compiled one has its own update
@pytest.mark.parametrize("name", ["gd", "momentum", "rmsprop", "adam"])
def test_training_follows_the_hand_written_rule(name):
    """25 full-batch epochs of L2 logistic regression, the gradient written out by hand."""
    rng = np.random.RandomState(3)
    X, y = rng.randn(30, 3), (rng.rand(30) > 0.5).astype(int)
    lam, lr, m = 0.7, 0.05, 30
    clf = RegularizedClassifier(
        penalty="l2", lam=lam, optimizer=name, learning_rate=lr, epochs=EPOCHS, random_state=4
    ).fit(X, y)
    init = np.random.RandomState(4).randn(1, 3) * np.sqrt(2 / 3)  # the contract's he init
    theta = np.concatenate([init.ravel(), [0.0]])  # [w, b]

    def gradient(theta):
        p = 1 / (1 + np.exp(-(X @ theta[:3] + theta[3])))
        return np.concatenate([(p - y) @ X / m + lam / m * theta[:3], [np.mean(p - y)]])

    # the trajectory of (theta - theta_0) for the gradients met along the way
    trajectory, grads = theta, []
    for _ in range(EPOCHS):
        grads.append(gradient(trajectory))
        trajectory = theta + hand_written_steps(name, grads, lr)[-1]
    np.testing.assert_allclose(clf.weights_[0].ravel(), trajectory[:3], rtol=1e-12)
    np.testing.assert_allclose(clf.biases_[0].item(), trajectory[3], rtol=1e-12, atol=1e-15)
