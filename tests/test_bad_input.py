"""Bad input fails before any training with a ValueError naming the parameter and the value.

Every estimator here asks for 10**12 epochs: had training started, the test would time out.
"""

import numpy as np
import pytest

from regcore import RegularizedClassifier

pytestmark = pytest.mark.timeout(30)

X = np.random.RandomState(0).randn(20, 3)
Y = np.array([0, 1] * 10)
ENDLESS = dict(epochs=10**12)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(lam=-1), r"lam must be >= 0, got -1"),
        (dict(lam=float("nan")), r"lam must be a finite real number, got nan"),
        (dict(keep_prob=0.0), r"keep_prob must be > 0, got 0.0"),
        (dict(keep_prob=1.5), r"keep_prob must be <= 1, got 1.5"),
        (dict(l1_ratio=2), r"l1_ratio must be <= 1, got 2"),
        (dict(penalty="l3"), r"penalty must be one of .*'l2'.*, got 'l3'"),
        (dict(activation="sigmoid"), r"activation must be one of 'relu', 'tanh', got 'sigmoid'"),
        (
            dict(optimizer="sgd"),
            r"optimizer must be one of 'adam', 'gd', 'momentum', 'rmsprop', got 'sgd'",
        ),
        (dict(init="zeros"), r"init must be one of 'he', 'xavier', got 'zeros'"),
        (dict(learning_rate=0), r"learning_rate must be > 0, got 0"),
        (dict(batch_size=0), r"batch_size must be >= 1, got 0"),
        (dict(log_every=0), r"log_every must be >= 1, got 0"),
        (
            dict(hidden_layer_sizes=(5, 0)),
            r"hidden_layer_sizes must be a tuple of positive integers.*got \(5, 0\)",
        ),
        (dict(penalize_bias="yes"), r"penalize_bias must be True or False, got 'yes'"),
        (dict(dtype="float16"), r"dtype must be 'float64' or 'float32', got 'float16'"),
        (dict(random_state=-3), r"random_state must be None, an integer.*got -3"),
    ],
)
def test_bad_parameters(params, message):
    clf = RegularizedClassifier(**{**ENDLESS, **params})
    with pytest.raises(ValueError, match=message):
        clf.fit(X, Y)
    assert not hasattr(clf, "weights_")


def test_epochs_must_be_positive():
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        RegularizedClassifier(epochs=0).fit(X, Y)


def _bad(values):
    return np.where(np.arange(X.size).reshape(X.shape) == 4, values, X)


@pytest.mark.parametrize(
    ("X_bad", "y_bad", "message"),
    [
        (_bad(np.nan), Y, "Input X contains NaN"),
        (_bad(np.inf), Y, "Input X contains infinity"),
        (
            np.array([["a", "b", "c"]] * 20, dtype=object),
            Y,
            "could not convert string to float: 'a'",
        ),
        (X, np.zeros(20, dtype=int), r"y must contain at least 2 classes.*got 1 class \(0\)"),
        (X, Y[:15], r"inconsistent numbers of samples: \[20, 15\]"),
        (X[:0], Y[:0], r"0 sample\(s\)"),
        (X[:, :0], Y, r"0 feature\(s\)"),
        (X, np.linspace(0, 1, 20), "Unknown label type"),
    ],
)
def test_bad_data(X_bad, y_bad, message):
    with pytest.raises(ValueError, match=message):
        RegularizedClassifier(**ENDLESS).fit(X_bad, y_bad)


def test_bad_dev_data():
    clf = RegularizedClassifier(**ENDLESS)
    with pytest.raises(ValueError, match="X_dev and y_dev must be given together"):
        clf.fit(X, Y, X_dev=X)
    with pytest.raises(
        ValueError, match="X has 2 features, but RegularizedClassifier is expecting 3"
    ):
        clf.fit(X, Y, X[:, :2], Y)
    with pytest.raises(ValueError, match="y_dev contains a label not seen in training: 7"):
        clf.fit(X, Y, X, np.where(Y == 1, 7, 0))
    with pytest.raises(ValueError, match=r"y_dev must have shape \(20,\).*got \(19,\)"):
        clf.fit(X, Y, X, Y[:19])


def test_cost_with_unknown_labels():
    clf = RegularizedClassifier(epochs=2).fit(X, Y)
    with pytest.raises(ValueError, match="y contains a label not seen in training: 'z'"):
        clf.cost(X, np.array(["z"] * 20))
