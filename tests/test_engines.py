"""The compiled engine against the numpy engine (the reference): the same trainings end within
rounding of each other, feature by feature and over a long run, with the compiled engine's
generic kernels and with the fused kernels built for each network's shape; where it cannot
compile, a warning and the numpy engine."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_moons

from regcore import RegularizedClassifier, fit_many
from regcore.datasets import load_dataset
from tests.helpers import ROOT

PACK = [
    dict(penalty="none", random_state=0),
    dict(penalty="l2", lam=0.3, random_state=1),
    dict(penalty="l1", lam=30.0, random_state=2),
    dict(penalty="elasticnet", lam=0.4, l1_ratio=0.3, random_state=3),
    dict(penalty="weight_decay", lam=0.7, random_state=4, penalize_bias=True),
    dict(penalty="dropout", keep_prob=0.7, random_state=5),
    dict(penalty="dropout", keep_prob=0.5, random_state=5, init="xavier"),
]


@pytest.fixture(params=["generic", "fused"])
def kernels(request, monkeypatch):
    """The compiled engine's kernels: generic loops, or fused kernels built for the shape."""
    monkeypatch.setenv("REGCORE_FUSED", "never" if request.param == "generic" else "always")
    return request.param


def both(estimators, *args, **kwargs):
    """The estimators trained on each engine: (numpy, compiled)."""
    out = []
    for engine in ("numpy", "compiled"):
        pack = [RegularizedClassifier(**{**e.get_params(), "engine": engine}) for e in estimators]
        fit_many(pack, *args, **kwargs)
        out.append(pack)
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch_size", [None, 24])
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop", "adam"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_every_feature_on_both_engines(activation, optimizer, batch_size, dtype, kernels):
    data = load_dataset("spirals", n_samples=150, noise=0.2, seed=1)
    shared = dict(
        hidden_layer_sizes=(9, 17),
        activation=activation,
        optimizer=optimizer,
        batch_size=batch_size,
        learning_rate=0.02,
        epochs=40,
        log_every=13,
        dtype=dtype,
    )
    numpy_pack, compiled_pack = both(
        [RegularizedClassifier(**shared, **member) for member in PACK],
        data.X_train,
        data.y_train,
        data.X_dev,
        data.y_dev,
    )
    tolerance = 1e-10 if dtype == "float64" else 2e-4
    if dtype == "float32" and optimizer in ("rmsprop", "adam"):
        # steps of size lr whatever the gradient: a float32 rounding in a tiny gradient moves
        # a weight by up to lr; the costs still agree
        for reference, compiled in zip(numpy_pack, compiled_pack, strict=True):
            np.testing.assert_allclose(
                compiled.history_["train_cost"], reference.history_["train_cost"], rtol=2e-2
            )
        return
    for reference, compiled in zip(numpy_pack, compiled_pack, strict=True):
        for a, b in zip(
            reference.weights_ + reference.biases_,
            compiled.weights_ + compiled.biases_,
            strict=True,
        ):
            assert b.dtype == np.dtype(dtype)
            np.testing.assert_allclose(b, a, rtol=0, atol=tolerance)
        np.testing.assert_allclose(
            compiled.history_.to_numpy(), reference.history_.to_numpy(), rtol=0, atol=tolerance
        )
    # the comparison is not vacuous: dropout and the L1 zeros changed the models
    assert np.abs(numpy_pack[0].weights_[1] - numpy_pack[5].weights_[1]).max() > 1e-3
    assert any((w == 0).any() for w in compiled_pack[2].weights_)


@pytest.mark.parametrize(
    ("name", "hidden"),
    [("digits", (32,)), ("wine", (16,))],  # the generic kernel's; a fused one's on wine
)
def test_softmax_and_data_of_their_own(kernels, name, hidden):
    data = load_dataset(name, seed=0)
    X, y = data.X_train, data.y_train
    first, second = np.arange(len(y)) % 3 != 2, np.arange(len(y)) % 3 != 0  # of two sizes
    first[: len(y) // 4] = False
    parts = [(X[first], y[first], data.X_dev, data.y_dev), (X[second], y[second])]
    estimators = [
        RegularizedClassifier(hidden_layer_sizes=hidden, lam=1.0, epochs=30, random_state=s)
        for s in range(4)
    ]
    sets = [(*parts[0][:2],), (*parts[1],)]
    numpy_pack, compiled_pack = both(estimators, data=[sets[0], sets[1], sets[0], sets[1]])
    for reference, compiled in zip(numpy_pack, compiled_pack, strict=True):
        np.testing.assert_allclose(
            compiled.predict_proba(data.X_dev),
            reference.predict_proba(data.X_dev),
            rtol=0,
            atol=1e-12,
        )


def test_thirty_thousand_epochs_agree_to_1e_12(kernels):
    """The 2-20-3-1 relu network on 211 samples: the two engines sum in different orders, and
    30000 epochs of gradient descent keep the difference in the last digits."""
    X, y = make_moons(211, noise=0.3, random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    net = RegularizedClassifier(
        hidden_layer_sizes=(20, 3),
        lam=0.7,
        learning_rate=0.3,
        epochs=30_000,
        log_every=10_000,
        random_state=0,
    )
    numpy_fit, compiled_fit = (
        RegularizedClassifier(**{**net.get_params(), "engine": engine}).fit(X, y)
        for engine in ("numpy", "compiled")
    )
    a, b = numpy_fit.cost(X, y), compiled_fit.cost(X, y)
    print(f"cost after 30000 epochs: numpy {a!r}, compiled {b!r}, relative {abs(a - b) / a:.1e}")
    assert abs(a - b) <= 1e-12 * abs(a)
    for w_numpy, w_compiled in zip(numpy_fit.weights_, compiled_fit.weights_, strict=True):
        np.testing.assert_allclose(w_compiled, w_numpy, rtol=1e-9, atol=1e-12)


def test_no_compiler_means_a_warning_and_the_numpy_engine():
    """Where numba cannot be imported (here: hidden from a fresh process), one warning line,
    and the numpy engine's result."""
    script = """
import sys, warnings
sys.modules["numba"] = None  # `import numba` now fails, as on a machine without it
from regcore import RegularizedClassifier
from regcore.datasets import load_dataset
data = load_dataset("moons", n_samples=100, seed=0)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    clf = RegularizedClassifier(hidden_layer_sizes=(5,), epochs=50, random_state=0)
    clf.fit(data.X_train, data.y_train)
    clf.fit(data.X_train, data.y_train)
for w in caught:
    print(type(w.message).__name__, str(w.message).splitlines()[0])
print(repr(float(clf.cost(data.X_train, data.y_train))))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, lines  # one warning for two fits, then the cost
    assert lines[0].startswith("CompiledEngineWarning regcore: the compiled engine is not")
    assert lines[0].endswith("using the numpy engine")
    data = load_dataset("moons", n_samples=100, seed=0)
    reference = RegularizedClassifier(
        hidden_layer_sizes=(5,), epochs=50, random_state=0, engine="numpy"
    ).fit(data.X_train, data.y_train)
    assert float(lines[1]) == reference.cost(data.X_train, data.y_train)


def test_kernel_codes_name_every_activation_and_optimizer():
    """The compiled kernels branch on codes; each of regcore's names has one of its own."""
    from regcore._kernels import ACTIVATION_CODES, OPTIMIZER_CODES
    from regcore.parameters import PARAMETERS

    for name, codes in (("activation", ACTIVATION_CODES), ("optimizer", OPTIMIZER_CODES)):
        assert set(codes) == set(PARAMETERS[name].constraint.choices)
        assert len(set(codes.values())) == len(codes)
