"""regcore against scikit-learn, an independent implementation of the same objectives.

- ``LogisticRegression(C=1/lam)`` minimizes ``(1/m) sum L + lam/(2m) ||w||^2`` (l2),
  ``+ lam/m ||w||_1`` (l1) and the elastic net mix; intercept unpenalized.
- ``MLPClassifier(alpha=lam)`` uses ``lam/(2m) sum ||W||_F^2``; full-batch SGD without momentum
  is the lecture's gradient descent.
"""

import itertools
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from regcore import RegularizedClassifier
from regcore.datasets import load_dataset
from regcore.losses import one_hot_targets
from regcore.network import ParameterStack, Workspace, initialize, with_ones_column
from tests.references import gradient_descent_mlp

pytestmark = pytest.mark.usefixtures("engine")  # once per engine


def _objective(X, y, w, b, penalty, lam, l1_ratio=0.5):
    """The source's logistic regression objective, written out in numpy."""
    m = len(y)
    z = X @ w + b
    loss = np.mean(np.logaddexp(0.0, z) - y * z)
    l2, l1 = np.sum(w**2), np.sum(np.abs(w))
    if penalty == "l2":
        return loss + lam / (2 * m) * l2
    if penalty == "l1":
        return loss + lam / m * l1
    return loss + l1_ratio * lam / m * l1 + (1 - l1_ratio) * lam / (2 * m) * l2


@pytest.fixture(scope="module")
def cancer():
    data = load_dataset("breast_cancer", seed=0)
    return data.X_train, data.y_train


@pytest.mark.parametrize(
    ("penalty", "lam", "solver", "sk_ratio"),
    [("l2", 1.0, "lbfgs", 0.0), ("l1", 5.0, "saga", 1.0), ("elasticnet", 5.0, "saga", 0.5)],
)
def test_logistic_regression_reaches_sklearns_objective(cancer, penalty, lam, solver, sk_ratio):
    X, y = cancer
    reference = LogisticRegression(
        C=1.0 / lam, l1_ratio=sk_ratio, solver=solver, tol=1e-12, max_iter=200_000
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference.fit(X, y)
    clf = RegularizedClassifier(
        penalty=penalty,
        lam=lam,
        l1_ratio=0.5,
        learning_rate=0.3,
        epochs=20_000,
        log_every=20_000,
        random_state=0,
    ).fit(X, y)
    w, b = clf.weights_[0].ravel(), clf.biases_[0].item()
    j_reference = _objective(X, y, reference.coef_.ravel(), reference.intercept_[0], penalty, lam)
    j_regcore = _objective(X, y, w, b, penalty, lam)
    assert j_regcore == pytest.approx(j_reference, rel=1e-9, abs=1e-12)
    assert clf.cost(X, y) == pytest.approx(j_regcore, rel=1e-12)
    np.testing.assert_allclose(w, reference.coef_.ravel(), atol=1e-5)
    if penalty != "l2":
        # the proximal step gives exact zeros, in the same places as saga's
        assert (w == 0).sum() > 0
        np.testing.assert_array_equal(w == 0, reference.coef_.ravel() == 0)


def test_multinomial_logistic_regression_matches_sklearn():
    data = load_dataset("wine", seed=0)
    X, y = data.X_train, data.y_train
    lam = 2.0
    reference = LogisticRegression(C=1.0 / lam, tol=1e-12, max_iter=10_000).fit(X, y)
    clf = RegularizedClassifier(
        penalty="l2", lam=lam, learning_rate=0.5, epochs=20_000, log_every=20_000, random_state=0
    ).fit(X, y)
    np.testing.assert_allclose(clf.weights_[0], reference.coef_, atol=1e-6)
    # softmax is invariant to a shift of all intercepts; the penalty fixes W, not b's mean
    np.testing.assert_allclose(
        clf.biases_[0].ravel() - clf.biases_[0].mean(),
        reference.intercept_ - reference.intercept_.mean(),
        atol=1e-6,
    )
    np.testing.assert_allclose(clf.predict_proba(X), reference.predict_proba(X), atol=1e-6)


def _mlp(hidden, activation, lam, lr, max_iter, n_samples, **extra):
    return gradient_descent_mlp(
        hidden,
        activation=activation,
        alpha=lam,
        learning_rate=lr,
        epochs=max_iter,
        n_samples=n_samples,
        **extra,
    )


NETS = [("moons", (20, 3), "relu"), ("wine", (8, 6), "tanh"), ("iris", (5,), "relu")]


@pytest.mark.parametrize(("dataset", "hidden", "activation"), NETS)
def test_mlp_cost_and_gradients_for_the_same_weights(dataset, hidden, activation):
    data = load_dataset(dataset, seed=0)
    X, y = data.X_train, data.y_train
    lam = 0.7
    clf = RegularizedClassifier(
        hidden_layer_sizes=hidden, activation=activation, lam=lam, epochs=50, random_state=0
    ).fit(X, y)
    mlp = _mlp(hidden, activation, lam, 0.1, 1, len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(X, y)  # sets up the label binarizer and layer bookkeeping
    mlp.coefs_ = [w.T.copy() for w in clf.weights_]
    mlp.intercepts_ = [b.ravel().copy() for b in clf.biases_]
    units = [X.shape[1], *hidden, mlp.n_outputs_]
    activations = [X] + [np.empty((len(y), u)) for u in units[1:]]
    deltas = [np.empty_like(a) for a in activations[1:]]
    coef_grads = [np.empty((a, b)) for a, b in itertools.pairwise(units)]
    intercept_grads = [np.empty(b) for b in units[1:]]
    targets = mlp._label_binarizer.transform(y)
    loss, coef_grads, intercept_grads = mlp._backprop(
        X, targets, None, activations, deltas, coef_grads, intercept_grads
    )
    assert clf.cost(X, y) == pytest.approx(loss, rel=1e-13)

    stack = ParameterStack.single(clf.weights_, clf.biases_)
    grads = stack.like()
    workspace = Workspace(units, 1, len(y), np.float64, activation, dropout=False)
    y_index = np.searchsorted(clf.classes_, y)
    workspace.bind(
        stack, grads, with_ones_column(X), one_hot_targets(y_index, units[-1], np.float64), None
    )()
    for layer, (w, gw, gb) in enumerate(zip(clf.weights_, grads.W, grads.b, strict=True)):
        full_gradient = gw[0] + lam / len(y) * w  # data term + the source's (lam/m) W
        np.testing.assert_allclose(full_gradient, coef_grads[layer].T, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(gb[0].ravel(), intercept_grads[layer], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize(("dataset", "hidden", "activation"), NETS)
def test_full_batch_training_follows_mlp_sgd(dataset, hidden, activation):
    """300 epochs of gradient descent from the same initial weights land on the same weights."""
    data = load_dataset(dataset, seed=0)
    X, y = data.X_train, data.y_train
    lam, lr, epochs = 0.7, 0.1, 300
    units = [X.shape[1], *hidden, 1 if len(np.unique(y)) == 2 else len(np.unique(y))]
    start = ParameterStack(units, 1, np.float64)
    initialize(start, 0, np.random.RandomState(0), "he")
    weights, biases = start.model(0)

    mlp = _mlp(hidden, activation, lam, lr, 1, len(y), warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(X, y)
        mlp.coefs_ = [w.T.copy() for w in weights]
        mlp.intercepts_ = [b.ravel().copy() for b in biases]
        mlp.set_params(max_iter=epochs)
        mlp.fit(X, y)
    clf = RegularizedClassifier(
        hidden_layer_sizes=hidden,
        activation=activation,
        lam=lam,
        learning_rate=lr,
        epochs=epochs,
        log_every=50,
        random_state=0,
    ).fit(X, y)
    for ours, theirs in zip(clf.weights_, mlp.coefs_, strict=True):
        np.testing.assert_allclose(ours, theirs.T, rtol=1e-9, atol=1e-12)
    for ours, theirs in zip(clf.biases_, mlp.intercepts_, strict=True):
        np.testing.assert_allclose(ours.ravel(), theirs, rtol=1e-9, atol=1e-12)
    # sklearn's loss_curve_[e] is J before update e+1: the contract's history row for epoch e
    # (the warm start keeps the set-up fit's one entry in front)
    loss_curve = mlp.loss_curve_[-epochs:]
    history = clf.history_.set_index("epoch")["train_cost"]
    for epoch in range(0, epochs, 50):
        assert history[epoch] == pytest.approx(loss_curve[epoch], rel=1e-12)
