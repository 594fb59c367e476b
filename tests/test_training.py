"""Training semantics from the contract, each checked against a formula written out here."""

import itertools
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss

from regcore import DivergenceWarning, RegularizedClassifier
from regcore.datasets import load_dataset

pytestmark = pytest.mark.usefixtures("engine")  # once per engine


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons", n_samples=200, noise=0.3, seed=0)


@pytest.mark.parametrize(("init", "scale"), [("he", 2.0), ("xavier", 1.0)])
def test_initialization_follows_the_contract(moons, init, scale):
    clf = RegularizedClassifier(hidden_layer_sizes=(7, 5), init=init, epochs=1, random_state=7)
    clf.fit(moons.X_train, moons.y_train)
    rng = np.random.RandomState(7)
    sizes = [2, 7, 5, 1]
    first_row = clf.history_.iloc[0]
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes), start=1):
        w = rng.randn(fan_out, fan_in) * np.sqrt(scale / fan_in)
        assert first_row[f"weight_norm/W{layer}"] == pytest.approx(np.linalg.norm(w), rel=1e-12)
        assert first_row[f"weight_l1/W{layer}"] == pytest.approx(np.abs(w).sum(), rel=1e-12)


def test_same_seed_same_model_other_seed_other_model(moons):
    def fit(seed):
        return RegularizedClassifier(
            hidden_layer_sizes=(8,), penalty="dropout", keep_prob=0.6, epochs=30, random_state=seed
        ).fit(moons.X_train, moons.y_train)

    a, b, c = fit(3), fit(3), fit(4)
    np.testing.assert_array_equal(a.weights_[0], b.weights_[0])
    assert np.abs(a.weights_[0] - c.weights_[0]).max() > 1e-3


@pytest.mark.parametrize(
    ("epochs", "rows"), [(250, [0, 100, 200, 250]), (200, [0, 100, 200]), (1, [0, 1])]
)
def test_history_rows(moons, epochs, rows):
    clf = RegularizedClassifier(epochs=epochs, log_every=100, random_state=0)
    clf.fit(moons.X_train, moons.y_train)
    assert clf.history_["epoch"].tolist() == rows


def test_history_row_holds_the_parameters_before_that_epochs_update(moons):
    X, y = moons.X_train, moons.y_train
    long = RegularizedClassifier(hidden_layer_sizes=(6,), epochs=90, log_every=30, random_state=0)
    long.fit(X, y)
    for epoch in (30, 60, 90):
        short = RegularizedClassifier(**{**long.get_params(), "epochs": epoch}).fit(X, y)
        row = long.history_.set_index("epoch").loc[epoch]
        assert row["train_cost"] == pytest.approx(short.cost(X, y), rel=1e-12)


def test_history_metrics_against_sklearn_metrics(moons):
    X, y, Xd, yd = moons.X_train, moons.y_train, moons.X_dev, moons.y_dev
    clf = RegularizedClassifier(hidden_layer_sizes=(10,), penalty="l1", lam=0.2, random_state=0)
    clf.fit(X, y, Xd, yd)
    last = clf.history_.iloc[-1]
    assert last["train_loss"] == pytest.approx(log_loss(y, clf.predict_proba(X)), rel=1e-10)
    assert last["dev_cost"] == pytest.approx(log_loss(yd, clf.predict_proba(Xd)), rel=1e-10)
    assert last["train_error"] == pytest.approx(1 - accuracy_score(y, clf.predict(X)))
    assert last["dev_error"] == pytest.approx(1 - accuracy_score(yd, clf.predict(Xd)))
    weights = np.concatenate([w.ravel() for w in clf.weights_])
    penalty = 0.2 / len(y) * np.abs(weights).sum()  # the source's (lam/m) ||W||_1
    assert last["penalty_term"] == pytest.approx(penalty, rel=1e-12)
    expected_cost = log_loss(y, clf.predict_proba(X)) + penalty
    assert last["train_cost"] == pytest.approx(expected_cost, rel=1e-10)
    assert last["sparsity"] == pytest.approx(np.mean(weights == 0))
    assert last["weight_norm/W2"] == pytest.approx(np.linalg.norm(clf.weights_[1]), rel=1e-12)


def test_linear_fraction_is_the_share_of_small_preactivations(moons):
    X, y = moons.X_train, moons.y_train
    clf = RegularizedClassifier(hidden_layer_sizes=(9, 4), activation="tanh", random_state=0)
    clf.fit(X, y)
    z1 = clf.weights_[0] @ X.T + clf.biases_[0]
    z2 = clf.weights_[1] @ np.tanh(z1) + clf.biases_[1]
    last = clf.history_.iloc[-1]
    assert last["linear_fraction/L1"] == pytest.approx(np.mean(np.abs(z1) < 0.5))
    assert last["linear_fraction/L2"] == pytest.approx(np.mean(np.abs(z2) < 0.5))
    relu = RegularizedClassifier(hidden_layer_sizes=(9,), epochs=5).fit(X, y)
    assert not any(c.startswith("linear_fraction") for c in relu.history_.columns)


def test_saturated_logits_give_finite_exact_losses():
    X = np.array([[1.0], [-1.0], [2.0], [-2.0]])
    y = np.array([0, 1, 1, 0])
    clf = RegularizedClassifier(penalty="none", epochs=1, random_state=0).fit(X, y)
    clf.weights_ = [np.array([[800.0]])]
    clf.biases_ = [np.array([[0.0]])]
    z = np.array([800.0, -800.0, 1600.0, -1600.0])
    expected = np.mean(np.maximum(z, 0) - y * z)  # log(1 + e^z) - y z for |z| >> 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clf.cost(X, y) == pytest.approx(expected, rel=1e-15)
        proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()


def test_divergence_stops_warns_and_keeps_finite_weights(moons):
    clf = RegularizedClassifier(
        hidden_layer_sizes=(50, 50, 50),
        penalty="none",
        learning_rate=1e6,
        epochs=100_000,
        log_every=10,
        random_state=0,
    )
    with pytest.warns(DivergenceWarning, match="diverged at epoch"):
        clf.fit(moons.X_train, moons.y_train)
    assert clf.diverged_
    assert not np.isfinite(clf.history_["train_cost"].iloc[-1])
    assert clf.history_["epoch"].iloc[-1] < 100_000
    assert all(np.isfinite(w).all() for w in clf.weights_ + clf.biases_)
    assert set(clf.predict(moons.X_dev)) <= {0, 1}
    ok = RegularizedClassifier(epochs=10).fit(moons.X_train, moons.y_train)
    assert not ok.diverged_


def test_dropout_is_off_at_predict_time(moons):
    X, y = moons.X_train, moons.y_train
    clf = RegularizedClassifier(
        hidden_layer_sizes=(12,), penalty="dropout", keep_prob=0.5, epochs=200, random_state=0
    ).fit(X, y)
    a1 = np.maximum(clf.weights_[0] @ X.T + clf.biases_[0], 0.0)  # no mask, no rescaling
    z2 = clf.weights_[1] @ a1 + clf.biases_[1]
    np.testing.assert_allclose(clf.predict_proba(X)[:, 1], 1 / (1 + np.exp(-z2[0])), rtol=1e-12)
    plain = RegularizedClassifier(**{**clf.get_params(), "penalty": "none"}).fit(X, y)
    assert np.abs(plain.weights_[0] - clf.weights_[0]).max() > 1e-3


def test_inverted_dropout_masks_by_hand():
    """One gd step of a 1-hidden-layer net with dropout, the mask drawn as the contract says."""
    rng_data = np.random.RandomState(1)
    X, y = rng_data.randn(8, 3), np.array([0, 1] * 4)
    lr, keep = 0.5, 0.6
    clf = RegularizedClassifier(
        hidden_layer_sizes=(4,),
        penalty="dropout",
        keep_prob=keep,
        learning_rate=lr,
        epochs=1,
        random_state=5,
    ).fit(X, y)
    rng = np.random.RandomState(5)
    w1 = rng.randn(4, 3) * np.sqrt(2 / 3)
    w2 = rng.randn(1, 4) * np.sqrt(2 / 4)
    mask = (rng.rand(4, 8) < keep) / keep
    z1 = w1 @ X.T
    a1 = np.maximum(z1, 0) * mask
    a2 = 1 / (1 + np.exp(-(w2 @ a1)))
    dz2 = (a2 - y) / 8
    dw2 = dz2 @ a1.T
    dz1 = (w2.T @ dz2) * mask * (z1 > 0)
    dw1 = dz1 @ X
    np.testing.assert_allclose(clf.weights_[0], w1 - lr * dw1, rtol=1e-12)
    np.testing.assert_allclose(clf.weights_[1], w2 - lr * dw2, rtol=1e-12)


def test_mini_batches_shuffle_and_use_the_batch_size_as_m():
    """Two gd steps of l2 logistic regression on batches of 3 (m = 3 in the penalty)."""
    X = np.random.RandomState(0).randn(6, 2)
    y = np.array([0, 1, 0, 1, 1, 0])
    lr, lam = 0.3, 2.0
    clf = RegularizedClassifier(
        penalty="l2", lam=lam, learning_rate=lr, batch_size=3, epochs=1, random_state=9
    ).fit(X, y)
    rng = np.random.RandomState(9)
    w, b = rng.randn(1, 2) * np.sqrt(2 / 2), 0.0
    order = rng.permutation(6)
    for batch in (order[:3], order[3:]):
        p = 1 / (1 + np.exp(-(X[batch] @ w.T).ravel() - b))
        grad_w = (p - y[batch]) @ X[batch] / 3 + lam / 3 * w
        grad_b = np.mean(p - y[batch])
        w, b = w - lr * grad_w, b - lr * grad_b
    np.testing.assert_allclose(clf.weights_[0], w, rtol=1e-12)
    np.testing.assert_allclose(clf.biases_[0].item(), b, rtol=1e-12)


def test_penalize_bias(moons):
    X, y = moons.X_train, moons.y_train
    kwargs = dict(penalty="l2", lam=500.0, epochs=2000, random_state=0)
    free = RegularizedClassifier(**kwargs).fit(X, y)
    tied = RegularizedClassifier(penalize_bias=True, **kwargs).fit(X, y)
    weights = np.concatenate([w.ravel() for w in tied.weights_])
    bias = tied.biases_[0].ravel()
    expected = 500.0 / (2 * len(y)) * (weights @ weights + bias @ bias)
    assert tied.history_["penalty_term"].iloc[-1] == pytest.approx(expected, rel=1e-12)
    assert abs(tied.biases_[0].item()) < 0.5 * abs(free.biases_[0].item())


def test_float32_is_close_to_float64(moons):
    X, y = moons.X_train, moons.y_train
    kwargs = dict(hidden_layer_sizes=(10,), lam=0.5, epochs=300, random_state=0)
    single = RegularizedClassifier(dtype="float32", **kwargs).fit(X, y)
    double = RegularizedClassifier(**kwargs).fit(X, y)
    assert single.weights_[0].dtype == np.float32
    np.testing.assert_allclose(single.weights_[0], double.weights_[0], rtol=1e-3, atol=1e-4)


def test_labels_of_any_type_and_softmax_probabilities():
    iris = load_dataset("iris", seed=0)
    names = np.array(["setosa", "versicolor", "virginica"])[iris.y_train]
    clf = RegularizedClassifier(hidden_layer_sizes=(6,), epochs=300, random_state=0)
    clf.fit(iris.X_train, names)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    proba = clf.predict_proba(iris.X_dev)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert set(clf.predict(iris.X_dev)) <= set(names)
    assert clf.score(iris.X_train, names) > 0.9
