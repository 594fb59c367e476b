"""Checks of estimator parameters and inputs, each failing with a ValueError that names the
parameter and the value it got. Run at ``fit`` (scikit-learn's convention: ``__init__`` and
``set_params`` store values untouched)."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from regcore.activations import ACTIVATIONS
from regcore.engines import ENGINE_NAMES

# regcore.datasets imports the message helpers from here
from regcore.messages import first_line as first_line
from regcore.messages import plain as plain
from regcore.network import INIT_SCALES
from regcore.optimizers import OPTIMIZERS
from regcore.penalties import PENALTIES

DTYPES = {"float64": np.float64, "float32": np.float32}


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _one_of(options: Any) -> Callable[[Any], str | None]:
    names = sorted(options)

    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in options:
            return None
        return f"must be one of {', '.join(map(repr, names))}"

    return check


def _real(low: float, high: float = np.inf, *, low_open: bool = False) -> Callable:
    def check(value: Any) -> str | None:
        if not _is_real(value):
            return "must be a finite real number"
        if value < low or (low_open and value == low):
            return f"must be {'>' if low_open else '>='} {low:g}"
        if value > high:
            return f"must be <= {high:g}"
        return None

    return check


def _int(low: int, *, allow_none: bool = False) -> Callable:
    def check(value: Any) -> str | None:
        if value is None and allow_none:
            return None
        if not _is_int(value):
            return "must be an integer" + (" or None" if allow_none else "")
        if value < low:
            return f"must be >= {low}"
        return None

    return check


def _hidden_layer_sizes(value: Any) -> str | None:
    try:
        sizes = list(value)
    except TypeError:
        return "must be a tuple of positive integers (empty for logistic regression)"
    if not all(_is_int(n) and n >= 1 for n in sizes):
        return "must be a tuple of positive integers (empty for logistic regression)"
    return None


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool | np.bool_) else "must be True or False"


def _random_state(value: Any) -> str | None:
    if value is None or isinstance(value, np.random.RandomState):
        return None
    if _is_int(value) and 0 <= value < 2**32:
        return None
    return "must be None, an integer in [0, 2**32) or a numpy RandomState"


def _n_jobs(value: Any) -> str | None:
    if value is None or (_is_int(value) and value != 0):
        return None
    return "must be None or a nonzero integer (-1: every core)"


def _dtype(value: Any) -> str | None:
    try:
        name = np.dtype(value).name
    except TypeError:
        name = None
    return None if name in DTYPES else "must be 'float64' or 'float32'"


PARAMETER_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "hidden_layer_sizes": _hidden_layer_sizes,
    "activation": _one_of(ACTIVATIONS),
    "penalty": _one_of(PENALTIES),
    "lam": _real(0.0),
    "l1_ratio": _real(0.0, 1.0),
    "keep_prob": _real(0.0, 1.0, low_open=True),
    "penalize_bias": _bool,
    "optimizer": _one_of(OPTIMIZERS),
    "learning_rate": _real(0.0, low_open=True),
    "batch_size": _int(1, allow_none=True),
    "epochs": _int(1),
    "init": _one_of(INIT_SCALES),
    "log_every": _int(1),
    "random_state": _random_state,
    "dtype": _dtype,
    "engine": _one_of(ENGINE_NAMES),
    "n_jobs": _n_jobs,
}


def check_parameters(params: dict[str, Any], owner: str) -> None:
    """Raise ``ValueError("<owner>: <name> must ..., got <value>")`` for the first bad parameter."""
    for name, check in PARAMETER_CHECKS.items():
        if name not in params:
            continue
        problem = check(params[name])
        if problem is not None:
            raise ValueError(f"{owner}: {name} {problem}, got {params[name]!r}")


def dtype_of(value: Any) -> np.dtype:
    """The numpy dtype named by a valid ``dtype`` parameter."""
    return np.dtype(DTYPES[np.dtype(value).name])
