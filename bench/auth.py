"""The auth case: what MLflow's basic-auth app costs a sweep's writes.

Runs written per second by ``sweeps run`` (200 points of ``configs/scale.yaml``, its seed 0;
16 in ``--quick``) against ``mlflow server`` on loopback, on one PostgreSQL database, started
the same way each time apart from authentication:

- ``off``: no auth app (the baseline);
- ``on``: ``--app-name basic-auth`` through the compose stack's entrypoint
  (``docker/mlflow_entrypoint.py``) with MLflow's default of checking the password's salted
  hash on every request (``auth_cache_ttl_seconds = 0``);
- ``on, cached``: the same with the stack's setting, ``MLFLOW_AUTH_CACHE_SECONDS=60``;
- ``on, 16 writers``: the first again with twice the writer threads (``execution.writers``),
  to see whether more threads win back what authentication costs.

Each sweep gets a server of its own (4 workers, as the stack runs MLflow; 2 in ``--quick``),
started and stopped around it, and the variants run interleaved, their order rotating between
repeats. The driver always sends the credentials (a server without the auth app ignores them),
so the client does the same work in every variant. A row compares one variant with ``off``:
seconds per written run as the times, so ``speedup`` is the variant's rate over the baseline's.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.measure import Row, row
from bench.scale import QUICK_SERVER_WORKERS, SERVER_WORKERS, _scale_sweep
from tests.services import VENV_BIN, MlflowServer, PostgresServer, free_port, server_options

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "docker" / "mlflow_entrypoint.py"
ADMIN = ("admin", secrets.token_urlsafe(16))
#: name: (auth app on, auth_cache_ttl_seconds, writer threads)
VARIANTS: dict[str, tuple[bool, int, int]] = {
    "off": (False, 0, 8),
    "on": (True, 0, 8),
    "on, cached": (True, 60, 8),
    "on, 16 writers": (True, 0, 16),
}
#: in --quick, the stack's setting against none (a check that the case runs, not a measurement:
#: the uncached variant alone would write 16 runs for 10 s)
QUICK_VARIANTS = ("off", "on, cached")
#: 16 of scale.yaml's points (seed 0, 4 strengths per curve), in --quick
AUTH_QUICK = [
    "search.seeds=[0]",
    "search.penalties.l2.lam={logspace: [-4, 2, 4]}",
    "search.penalties.l1.lam={logspace: [-4, 1, 4]}",
]
#: 200 of scale.yaml's points: at the uncached rate (a few runs/s) a sweep writes for a minute
AUTH_SLICE = ["search.seeds=[0]"]


def auth_server(
    folder: Path, backend: str, workers: int, cache_seconds: int, secret_key: str
) -> MlflowServer:
    """``mlflow server --app-name basic-auth`` through the compose stack's entrypoint, the admin
    and the backend URI from its environment."""
    port = free_port()
    command = [
        sys.executable,
        str(ENTRYPOINT),
        "mlflow",
        "server",
        "--app-name",
        "basic-auth",
        *server_options(folder, port, workers),
    ]
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_BACKEND_STORE_URI": backend,
        "MLFLOW_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret_key,
        "MLFLOW_AUTH_CACHE_SECONDS": str(cache_seconds),
        "MLFLOW_AUTH_CONFIG_PATH": str(folder / "run" / "basic_auth.ini"),
    }
    return MlflowServer(folder, port=port, command=command, workers=workers, env=env, auth=ADMIN)


def plain_server(folder: Path, backend: str, workers: int) -> MlflowServer:
    """The same server without the auth app."""
    port = free_port()
    command = [
        str(VENV_BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        backend,
        *server_options(folder, port, workers),
    ]
    return MlflowServer(folder, port=port, command=command, workers=workers)


@contextlib.contextmanager
def logged_in() -> Iterator[None]:
    """The sweeps (child processes) and the bench's reads send the admin's credentials."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _measure(
    folder: Path, backend: str, variant: str, repeat: int, workers: int, quick: bool
) -> dict[str, Any]:
    """One sweep of ``variant`` against a server of its own on ``backend``."""
    auth, cache_seconds, writers = VARIANTS[variant]
    slug = variant.replace(", ", "-").replace(" ", "-")
    home = folder / f"{slug}-{repeat}"
    server = (
        auth_server(home, backend, workers, cache_seconds, secrets.token_urlsafe(32))
        if auth
        else plain_server(home, backend, workers)
    )
    try:
        name = f"auth-{slug}-{repeat}"
        overrides = [*(AUTH_QUICK if quick else AUTH_SLICE), f"execution.writers={writers}"]
        measured = _scale_sweep(folder, server.uri, name, overrides)
    finally:
        server.stop()
    return {
        "variant": variant,
        "repeat": repeat,
        "seconds_per_run": measured["write_seconds"] / measured["runs_written"],
        **measured,
    }


def case_auth(quick: bool) -> list[Row]:
    """Runs written per second with MLflow's basic-auth app off and on (with and without its
    password cache, with 8 and 16 writers), against the same server and database."""
    if not Path("/proc").is_dir():
        return [row("auth", "basic auth's cost to writes", "text", "needs Linux /proc")]
    variants = list(QUICK_VARIANTS if quick else VARIANTS)
    repeats = 1 if quick else 3
    workers = QUICK_SERVER_WORKERS if quick else SERVER_WORKERS
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory(prefix="regsweep-bench-") as folder, logged_in():
        postgres = PostgresServer()
        try:
            for repeat in range(repeats):
                shift = repeat % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    runs[variant].append(
                        _measure(Path(folder), postgres.uri, variant, repeat, workers, quick)
                    )
        finally:
            postgres.stop()
    points = runs["off"][0]["runs_written"]
    base = [run["seconds_per_run"] for run in runs["off"]]
    rows = []
    for variant in variants[1:]:
        cand = [run["seconds_per_run"] for run in runs[variant]]
        ratios = [b / c for b, c in zip(base, cand, strict=True)]
        writers = VARIANTS[variant][2]
        rows.append(
            row(
                "auth",
                f"MLflow writes with basic auth {variant}",
                "auth",
                f"{points} points of scale.yaml per sweep, server of {workers} workers on "
                f"PostgreSQL, auth off with 8 writers vs {variant} with {writers}",
                baseline_s=statistics.median(base),
                candidate_s=statistics.median(cand),
                speedup=statistics.median(base) / statistics.median(cand),
                speedup_min=min(ratios),
                speedup_max=max(ratios),
                repeats=repeats,
                baseline_times=base,
                candidate_times=cand,
                runs_per_s_off=1 / statistics.median(base),
                runs_per_s_on=1 / statistics.median(cand),
                server_workers=workers,
                runs=runs["off"] + runs[variant],
            )
        )
    return rows
