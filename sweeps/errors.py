"""The two kinds of failure the CLI distinguishes (exit codes are part of the contract)."""

from __future__ import annotations

import math
import os

from regcore.messages import first_line

__all__ = ["SweepError", "UsageError", "env_number", "first_line"]


class UsageError(ValueError):
    """Bad input (config, data, command-line arguments): exit code 2.

    The message is one line that names the bad field and the value it got.
    """

    exit_code = 2


class SweepError(RuntimeError):
    """Anything else that stops a command (unreachable cluster or server, ...): exit code 1."""

    exit_code = 1


def env_number(name: str, default: float) -> float:
    """The positive number in the environment variable ``name`` (``default`` where it is unset
    or empty); anything else is bad input naming the variable and its value."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{name}: must be a positive number, got {text!r}")
    return value
