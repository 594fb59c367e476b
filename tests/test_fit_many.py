"""``fit_many`` trains a pack as its members' own fits would."""

import numpy as np
import pytest

from regcore import DivergenceWarning, RegularizedClassifier, fit_many
from regcore.datasets import load_dataset

pytestmark = pytest.mark.usefixtures("engine")  # once per engine

PACK = [
    dict(penalty="none", random_state=0),
    dict(penalty="l2", lam=0.3, random_state=1),
    dict(penalty="l1", lam=0.5, random_state=2),
    dict(penalty="elasticnet", lam=0.4, l1_ratio=0.3, random_state=3),
    dict(penalty="weight_decay", lam=0.7, random_state=4, penalize_bias=True),
    dict(penalty="dropout", keep_prob=0.7, random_state=5),
    dict(penalty="dropout", keep_prob=0.5, random_state=5, init="xavier"),
]


@pytest.fixture(scope="module")
def data():
    return load_dataset("spirals", n_samples=200, noise=0.2, seed=1)


@pytest.mark.parametrize("batch_size", [None, 32])
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_pack_equals_separate_fits(data, optimizer, batch_size, activation):
    shared = dict(
        hidden_layer_sizes=(8, 6),
        activation=activation,
        optimizer=optimizer,
        batch_size=batch_size,
        learning_rate=0.05,
        epochs=60,
        log_every=7,
    )
    pack = [RegularizedClassifier(**shared, **member) for member in PACK]
    alone = [
        RegularizedClassifier(**est.get_params()).fit(
            data.X_train, data.y_train, data.X_dev, data.y_dev
        )
        for est in pack
    ]
    fitted = fit_many(pack, data.X_train, data.y_train, data.X_dev, data.y_dev)
    assert fitted == pack
    for together, single in zip(pack, alone, strict=True):
        for a, b in zip(
            together.weights_ + together.biases_, single.weights_ + single.biases_, strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)
        assert list(together.history_.columns) == list(single.history_.columns)
        np.testing.assert_allclose(
            together.history_.to_numpy(), single.history_.to_numpy(), atol=1e-8
        )
        np.testing.assert_array_equal(together.predict(data.X_dev), single.predict(data.X_dev))


def test_pack_members_differ(data):
    """The comparison above is not trivial: members with different settings end differently."""
    pack = fit_many(
        [
            RegularizedClassifier(hidden_layer_sizes=(8,), lam=lam, epochs=50, random_state=0)
            for lam in (0.0, 5.0)
        ],
        data.X_train,
        data.y_train,
    )
    assert np.abs(pack[0].weights_[0] - pack[1].weights_[0]).max() > 1e-3


def test_multiclass_pack(data):
    digits = load_dataset("digits", seed=0)
    pack = [
        RegularizedClassifier(
            hidden_layer_sizes=(16,), penalty=p, lam=1.0, epochs=30, random_state=s
        )
        for p, s in (("l2", 0), ("l1", 1), ("dropout", 2))
    ]
    alone = [
        RegularizedClassifier(**e.get_params()).fit(digits.X_train, digits.y_train) for e in pack
    ]
    fit_many(pack, digits.X_train, digits.y_train)
    for together, single in zip(pack, alone, strict=True):
        np.testing.assert_allclose(
            together.predict_proba(digits.X_dev), single.predict_proba(digits.X_dev), atol=1e-8
        )


def test_pack_must_share_the_architecture(data):
    pack = [
        RegularizedClassifier(hidden_layer_sizes=(8,)),
        RegularizedClassifier(hidden_layer_sizes=(9,)),
    ]
    with pytest.raises(ValueError, match=r"share hidden_layer_sizes.*\(8,\).*\(9,\)"):
        fit_many(pack, data.X_train, data.y_train)
    pack = [RegularizedClassifier(learning_rate=0.1), RegularizedClassifier(learning_rate=0.2)]
    with pytest.raises(ValueError, match="share learning_rate"):
        fit_many(pack, data.X_train, data.y_train)


def test_bad_member_is_named(data):
    pack = [RegularizedClassifier(), RegularizedClassifier(lam=-1.0)]
    with pytest.raises(ValueError, match=r"estimators\[1\]: lam must be >= 0, got -1.0"):
        fit_many(pack, data.X_train, data.y_train)
    with pytest.raises(ValueError, match="must not be empty"):
        fit_many([], data.X_train, data.y_train)


def test_a_diverging_member_leaves_the_others_alone(data):
    # lr * lam / m >> 2 for the middle member: gradient descent blows up its weights
    pack = [
        RegularizedClassifier(
            hidden_layer_sizes=(8,),
            lam=lam,
            learning_rate=0.5,
            epochs=200,
            log_every=10,
            random_state=0,
        )
        for lam in (0.1, 1e5, 1.0)
    ]
    alone = [RegularizedClassifier(**e.get_params()) for e in pack]
    with pytest.warns(DivergenceWarning):
        fit_many(pack, data.X_train, data.y_train)
    with pytest.warns(DivergenceWarning):
        alone[1].fit(data.X_train, data.y_train)
    for est in (alone[0], alone[2]):
        est.fit(data.X_train, data.y_train)
    assert [e.diverged_ for e in pack] == [False, True, False]
    for together, single in zip(pack, alone, strict=True):
        np.testing.assert_allclose(
            together.history_.to_numpy(), single.history_.to_numpy(), atol=1e-8
        )
        for a, b in zip(together.weights_, single.weights_, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-8)


def test_equal_dtypes_spelled_differently_share_a_pack(data):
    pack = [
        RegularizedClassifier(epochs=5, dtype="float64"),
        RegularizedClassifier(epochs=5, dtype=np.float64),
    ]
    fit_many(pack, data.X_train, data.y_train)
    assert all(e.weights_[0].dtype == np.float64 for e in pack)


@pytest.mark.parametrize("batch_size", [None, 16])
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_models_with_data_of_their_own_end_as_their_own_fits(data, optimizer, batch_size):
    """Cross-validation's stacking: each model trains on its fold (sizes differ by a few rows),
    and still ends where its own fit on that fold ends."""
    from sklearn.model_selection import StratifiedKFold

    X, y = np.vstack([data.X_train, data.X_dev]), np.concatenate([data.y_train, data.y_dev])
    folds = [
        (X[train], y[train], X[dev], y[dev])
        for train, dev in StratifiedKFold(7, shuffle=True, random_state=0).split(X, y)
    ]
    assert len({len(f[0]) for f in folds}) > 1  # the folds differ in size
    shared = dict(
        hidden_layer_sizes=(8, 6),
        optimizer=optimizer,
        batch_size=batch_size,
        learning_rate=0.05,
        epochs=40,
        log_every=9,
    )
    pack = [RegularizedClassifier(**shared, **member) for member in PACK]
    given = [folds[k % len(folds)] for k in range(len(pack))]
    alone = [
        RegularizedClassifier(**est.get_params()).fit(*part)
        for est, part in zip(pack, given, strict=True)
    ]
    fit_many(pack, data=given)
    for together, single in zip(pack, alone, strict=True):
        for a, b in zip(
            together.weights_ + together.biases_, single.weights_ + single.biases_, strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)
        np.testing.assert_allclose(
            together.history_.to_numpy(), single.history_.to_numpy(), atol=1e-8
        )


def test_data_of_their_own_is_checked(data):
    pack = [RegularizedClassifier(epochs=2), RegularizedClassifier(epochs=2)]
    part = (data.X_train, data.y_train)
    with pytest.raises(ValueError, match="one entry per estimator"):
        fit_many(pack, data=[part])
    with pytest.raises(ValueError, match="give X and y, or data, got both"):
        fit_many(pack, data.X_train, data.y_train, data=[part, part])
    with pytest.raises(ValueError, match="same features"):
        fit_many(pack, data=[part, (data.X_train[:, :1], data.y_train)])
    with pytest.raises(ValueError, match="dev data to every estimator or to none"):
        fit_many(pack, data=[part, (*part, data.X_dev, data.y_dev)])
