"""regcore's parameter table against what it stands for: the estimator's signature (written out
for scikit-learn), the contract's list of what a ``fit_many`` pack may differ in, and the
boundaries the contract gives in words."""

import inspect

import numpy as np
import pytest

from regcore import RegularizedClassifier
from regcore.parameters import PARAMETERS, SHARED


def test_signature_defaults_are_the_tables():
    signature = inspect.signature(RegularizedClassifier.__init__).parameters
    written = {name: p.default for name, p in signature.items() if name != "self"}
    assert list(written) == list(PARAMETERS)
    for name, default in written.items():
        assert default == PARAMETERS[name].default, name
    # every parameter is documented, with its default
    for name, parameter in PARAMETERS.items():
        assert f"{name} : {parameter.constraint.type_text}, default=" in (
            RegularizedClassifier.__doc__
        )


def test_what_a_pack_may_differ_in_is_the_contracts():
    # DESIGN.md: they may differ in penalty, lam, l1_ratio, keep_prob, random_state (and the
    # README adds penalize_bias and init); they share architecture, optimizer, epochs, batching
    per_model = {"penalty", "lam", "l1_ratio", "keep_prob", "random_state", "penalize_bias", "init"}
    assert set(PARAMETERS) - set(SHARED) == per_model
    for name in ("hidden_layer_sizes", "activation", "optimizer", "learning_rate", "epochs"):
        assert name in SHARED
    assert "batch_size" in SHARED


# the contract's boundaries, written out: (name, allowed, refused)
BOUNDARIES = [
    ("lam", [0, 0.0, 3, 1e9], [-1e-12, float("inf"), float("nan"), "1", True]),
    ("l1_ratio", [0.0, 0.5, 1], [-0.1, 1.0000001]),
    ("keep_prob", [1e-9, 0.5, 1.0], [0.0, -1, 1.5]),
    ("learning_rate", [1e-12, 5.0], [0.0, -1.0]),
    ("batch_size", [None, 1, 10**6, np.int64(3)], [0, 2.0, -4]),
    ("epochs", [1, np.int32(7)], [0, 1.5, None]),
    ("hidden_layer_sizes", [(), (3,), [4, 5], (np.int64(2),)], [(0,), (3, -1), 5, ("a",)]),
    ("penalize_bias", [True, False, np.bool_(True)], [1, "yes", None]),
    ("random_state", [None, 0, 2**32 - 1, np.random.RandomState(0)], [-1, 2**32, 1.5]),
    ("dtype", ["float64", "float32", np.float32, np.dtype("float64")], ["float16", "int64"]),
    ("n_jobs", [None, 1, -1, 4], [0, 1.5]),
    ("penalty", ["none", "l2", "l1", "elasticnet", "dropout", "weight_decay"], ["L2", None]),
    ("activation", ["relu", "tanh"], ["sigmoid"]),
    ("optimizer", ["gd", "momentum", "rmsprop", "adam"], ["sgd"]),
    ("init", ["he", "xavier"], ["zeros"]),
    ("engine", ["auto", "numpy", "compiled"], ["numba"]),
]


@pytest.mark.parametrize(("name", "allowed", "refused"), BOUNDARIES, ids=[b[0] for b in BOUNDARIES])
def test_boundaries(name, allowed, refused):
    parameter = PARAMETERS[name]
    for value in allowed:
        assert parameter.problem(value) is None, (name, value)
    for value in refused:
        assert parameter.problem(value) is not None, (name, value)


def test_every_parameter_has_its_boundaries_written_out_here():
    assert {b[0] for b in BOUNDARIES} == set(PARAMETERS) - {"log_every"}
    assert PARAMETERS["log_every"].problem(1) is None
    assert PARAMETERS["log_every"].problem(0) is not None
