"""Checks of estimator parameters, each failing with a ValueError that names the parameter and
the value it got. Run at ``fit`` (scikit-learn's convention: ``__init__`` and ``set_params``
store values untouched); what is allowed is :mod:`regcore.parameters`' table."""

from __future__ import annotations

from typing import Any

import numpy as np

from regcore.parameters import DTYPES, PARAMETERS


def check_parameters(params: dict[str, Any], owner: str) -> None:
    """Raise ``ValueError("<owner>: <name> must ..., got <value>")`` for the first bad parameter."""
    for name, parameter in PARAMETERS.items():
        if name not in params:
            continue
        problem = parameter.problem(params[name])
        if problem is not None:
            raise ValueError(f"{owner}: {name} {problem}, got {params[name]!r}")


def dtype_of(value: Any) -> np.dtype:
    """The numpy dtype named by a valid ``dtype`` parameter."""
    return np.dtype(DTYPES[np.dtype(value).name])
