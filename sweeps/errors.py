"""The two kinds of failure the CLI distinguishes (exit codes are part of the command line's
interface, docs/cli.md)."""

from __future__ import annotations

import math
import os

from regcore.messages import first_line

__all__ = [
    "DiskFull",
    "SweepError",
    "TakenOver",
    "UsageError",
    "env_number",
    "first_line",
    "full_folder",
]


class UsageError(ValueError):
    """Bad input (config, data, command-line arguments): exit code 2.

    The message is one line that names the bad field and the value it got.
    """

    exit_code = 2


class SweepError(RuntimeError):
    """Anything else that stops a command (unreachable cluster or server, ...): exit code 1."""

    exit_code = 1


class DiskFull(SweepError):
    """A folder the driver writes to is full (ENOSPC): the sweep stops within seconds, keeps
    what is written and ends KILLED; ``--resume`` continues it once there is room."""

    def __init__(self, folder: str | os.PathLike, what: str) -> None:
        import shutil

        try:
            free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MB free"
        except OSError:
            free = "its free space unknown"
        self.folder = str(folder)
        super().__init__(f"the disk is full: {folder} has {free} ({what})")


class TakenOver(SweepError):
    """Another driver took this sweep over (``--resume --force``): this one stops at once,
    writes nothing more and leaves the parent run to it."""

    def __init__(self, holder: str) -> None:
        super().__init__(
            f"another driver ({holder}) took this sweep over with --resume --force; this one "
            "stopped and wrote nothing more"
        )


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) says no space is left on a device."""
    import errno

    while error is not None:
        if isinstance(error, DiskFull) or getattr(error, "errno", None) == errno.ENOSPC:
            return True
        error = error.__cause__ or error.__context__
    return False


def full_folder(error: BaseException | None, default: str | os.PathLike) -> str:
    """The folder of the file whose write found no space (from the error or what it was
    raised from), else ``default``."""
    import errno

    while error is not None:
        name = getattr(error, "filename", None)
        if getattr(error, "errno", None) == errno.ENOSPC and name:
            return os.path.dirname(os.path.abspath(os.fsdecode(name)))
        error = error.__cause__ or error.__context__
    return os.fspath(default)


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
