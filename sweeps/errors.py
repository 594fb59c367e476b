"""The two kinds of failure the CLI distinguishes (exit codes are part of the contract)."""

from __future__ import annotations

from regcore._validation import first_line

__all__ = ["SweepError", "UsageError", "first_line"]


class UsageError(ValueError):
    """Bad input (config, data, command-line arguments): exit code 2.

    The message is one line that names the bad field and the value it got.
    """

    exit_code = 2


class SweepError(RuntimeError):
    """Anything else that stops a command (unreachable cluster or server, ...): exit code 1."""

    exit_code = 1
