"""Every option of a sweep, resolved in one place: what the caller gave, else the environment,
else the default.

=====================  =================================  ========================================
option                 environment                        default
=====================  =================================  ========================================
``tracking_uri``       ``MLFLOW_TRACKING_URI``            ``sqlite:///mlflow.db`` (MLflow's own,
                                                          in the working folder)
``address``            ``RAY_ADDRESS``                    a new local Ray
``storage_path``       ``REGSWEEP_STORAGE_PATH``          ``execution.storage_path``, else Ray's
                                                          ``~/ray_results``
``writer_memory_mb``   ``REGSWEEP_WRITER_MEMORY_MB``      256 (results waiting for MLflow, in
                                                          memory; beyond it on disk)
``drain_seconds``      ``REGSWEEP_WRITER_DRAIN_SECONDS``  900 (how long a sweep's end waits for
                                                          an unreachable tracking server)
``stop_drain_seconds`` ``REGSWEEP_STOP_DRAIN_SECONDS``    90 (the same wait when the sweep was
                                                          stopped: Ctrl-C, SIGTERM; within
                                                          ``docker stop``'s grace of 2 minutes)
``lease_seconds``      ``REGSWEEP_LEASE_SECONDS``         30 (a driver's lease on its sweep is
                                                          free this long after it stops)
``spill_dir``          ``REGSWEEP_SPILL_DIR``             the system's temporary folder (results
                                                          waiting for MLflow beyond the memory
                                                          bound, and weights being uploaded)
(the engine)           ``REGCORE_ENGINE``                 ``auto``
=====================  =================================  ========================================

A bad value in the environment is bad input (:class:`~sweeps.errors.UsageError` naming the
variable), found before anything is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sweeps.errors import UsageError, env_number

#: MLflow's own default tracking store: a SQLite file in the working folder
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MEMORY_MB, DRAIN_SECONDS, STOP_DRAIN_SECONDS, LEASE_SECONDS = 256.0, 900.0, 90.0, 30.0


def resolve_tracking_uri(given: str | None = None) -> str:
    """``given``, else ``MLFLOW_TRACKING_URI``, else :data:`DEFAULT_TRACKING_URI`."""
    return given or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


@dataclass(frozen=True)
class RunOptions:
    """How to run a sweep (the command line's ``sweeps run`` flags), resolved.

    Attributes
    ----------
    tracking_uri, address, storage_path, writer_memory_mb, drain_seconds, stop_drain_seconds,
    lease_seconds, spill_dir
        See the module's table (``address`` None: a new local Ray).
    overrides : tuple of str
        ``KEY.PATH=VALUE`` config overrides (``--set``).
    resume : bool
        Continue the newest sweep of the config's name.
    force : bool
        With ``resume``: take over a sweep whose driver's lease is fresh.
    refit, report : bool
        Refit lambda.min and lambda.1se at the end; write the report.
    register : str, optional
        A Model Registry name for the sweep's choice.
    out : str, optional
        The report's folder (default ``reports/<sweep>``).
    """

    tracking_uri: str = DEFAULT_TRACKING_URI
    address: str | None = None
    storage_path: str | None = None
    writer_memory_mb: float = MEMORY_MB
    drain_seconds: float = DRAIN_SECONDS
    stop_drain_seconds: float = STOP_DRAIN_SECONDS
    lease_seconds: float = LEASE_SECONDS
    spill_dir: str | None = None
    overrides: tuple[str, ...] = field(default_factory=tuple)
    resume: bool = False
    force: bool = False
    refit: bool = True
    report: bool = True
    register: str | None = None
    out: str | None = None

    @property
    def local(self) -> bool:
        """Whether the sweep starts a Ray of its own on this machine."""
        return self.address in (None, "local")


def run_options(
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    storage_path: str | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    resume: bool = False,
    force: bool = False,
    refit: bool = True,
    report: bool = True,
    register: str | None = None,
    out: str | None = None,
) -> RunOptions:
    """:class:`RunOptions` from what the caller gave and the environment (module table).

    Raises
    ------
    UsageError
        For a bad value of ``REGSWEEP_WRITER_MEMORY_MB``, ``REGSWEEP_WRITER_DRAIN_SECONDS``,
        ``REGSWEEP_STOP_DRAIN_SECONDS``, ``REGSWEEP_LEASE_SECONDS``, ``REGSWEEP_SPILL_DIR`` or
        ``REGCORE_ENGINE``, or ``force`` without ``resume``.
    """
    from regcore.engines import environment_engine

    try:
        environment_engine()
    except ValueError as error:
        raise UsageError(str(error)) from None
    if force and not resume:
        raise UsageError("--force: only with --resume (it takes over a running sweep)")
    return RunOptions(
        tracking_uri=resolve_tracking_uri(tracking_uri),
        address=address or os.environ.get("RAY_ADDRESS") or None,
        storage_path=storage_path or os.environ.get("REGSWEEP_STORAGE_PATH") or None,
        writer_memory_mb=env_number("REGSWEEP_WRITER_MEMORY_MB", MEMORY_MB),
        drain_seconds=env_number("REGSWEEP_WRITER_DRAIN_SECONDS", DRAIN_SECONDS),
        stop_drain_seconds=env_number("REGSWEEP_STOP_DRAIN_SECONDS", STOP_DRAIN_SECONDS),
        lease_seconds=env_number("REGSWEEP_LEASE_SECONDS", LEASE_SECONDS),
        spill_dir=_folder("REGSWEEP_SPILL_DIR"),
        overrides=tuple(overrides),
        resume=resume,
        force=force,
        refit=refit,
        report=report,
        register=register,
        out=out,
    )


def _folder(variable: str) -> str | None:
    """An existing folder named by ``variable`` (None where it is unset); anything else is bad
    input naming the variable."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    if not os.path.isdir(value):
        raise UsageError(f"{variable}: must be an existing folder, got {value!r}")
    return value
