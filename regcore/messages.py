"""Helpers for one-line, readable error messages and the warnings regcore gives, shared by regcore
and sweeps."""

from __future__ import annotations

from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, for readable messages (``np.int64(3)``
    reads ``3``); anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def first_line(error: BaseException, *, with_type: bool = False, limit: int = 300) -> str:
    """The first non-blank line of an error's message, cut to ``limit`` characters.

    An error without a message gives its type's name; ``with_type`` prefixes the type
    (``"TimeoutError: timed out"``).
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    name = type(error).__name__
    if not lines:
        return name
    return f"{name}: {lines[0][:limit]}" if with_type else lines[0][:limit]


class CompiledEngineWarning(RuntimeWarning):
    """The compiled engine (or one of its fused kernels) is not available here; training uses
    the numpy engine (or the generic kernels)."""
