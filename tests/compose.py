"""docker-compose.yml read as docker compose reads it (``${VAR}`` interpolation from a ``.env``),
and its services run as processes on loopback: with no Docker engine on the test machines, the
commands, entrypoints and environments are taken from the file and only the container-specific
values (hostnames, container paths, ports) are swapped for their loopback equivalents."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import yaml

from tests.services import VENV_BIN, MlflowServer, PostgresServer, free_port

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
#: where the image puts the repository's docker/ folder (Dockerfile: WORKDIR + COPY docker)
IMAGE_DOCKER_FOLDER = "/opt/regsweep/docker"
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")


class MissingVariableError(KeyError):
    """A ``${VAR:?message}`` (or ``${VAR}``) whose variable is unset or empty."""


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` (``$$`` is a ``$``)."""

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name, "") != "":
            return env[name]
        if op == ":-":
            return arg
        if op is None:
            return ""
        raise MissingVariableError(f"{name}: {arg}")

    return VARIABLE.sub(one, value)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file (comments and blank lines skipped)."""
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


def env_for_tests(**values: str) -> dict[str, str]:
    """``.env.example`` with its empty secrets filled in with random values, then ``values``."""
    env = read_env_file(ROOT / ".env.example")
    for key, value in env.items():
        if value == "" and any(word in key for word in ("PASSWORD", "TOKEN", "SECRET")):
            env[key] = secrets.token_urlsafe(24)
    return {**env, **values}


def service_words(service: str, key: str) -> list[str]:
    """A service's ``command`` or ``entrypoint`` as a list of words (a string is one word)."""
    value = SERVICES[service].get(key) or []
    return [value] if isinstance(value, str) else [str(word) for word in value]


def service_argv(service: str, env: dict[str, str], replace: dict[str, str]) -> list[str]:
    """What the service's container runs (entrypoint, then command), interpolated from ``env``,
    with ``replace``'s substrings swapped and the program taken from this virtualenv."""
    words = service_words(service, "entrypoint") + service_words(service, "command")
    words = [interpolate(word, env) for word in words]
    for old, new in replace.items():
        words = [word.replace(old, new) for word in words]
    return [str(VENV_BIN / words[0]), *words[1:]] if words else []


def service_environment(
    service: str, env: dict[str, str], overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """The service's ``environment``, interpolated from ``env``, with the container-specific
    values in ``overrides`` (each one a variable the service sets) swapped."""
    values = {
        key: interpolate(str(value), env)
        for key, value in (SERVICES[service].get("environment") or {}).items()
    }
    unknown = set(overrides or {}) - set(values)
    assert not unknown, f"{service} sets no {sorted(unknown)}"
    return {**values, **(overrides or {})}


def mlflow_service(
    folder: Path, env: dict[str, str], postgres: PostgresServer, *, workers: int = 2
) -> MlflowServer:
    """The compose stack's ``mlflow`` service as a process on loopback: its entrypoint and
    command, its environment from ``env`` (a ``.env``'s values), on ``postgres``.

    ``workers`` is added to the command (the service runs MLflow's default of 4, too many for a
    2-core test machine that runs a Ray node beside it).
    """
    port = free_port()
    argv = service_argv(
        "mlflow",
        env,
        {
            IMAGE_DOCKER_FOLDER: str(ROOT / "docker"),
            "0.0.0.0": "127.0.0.1",
            "5000": str(port),
            "/data/mlartifacts": str(folder / "artifacts"),
        },
    )
    environment = service_environment(
        "mlflow",
        env,
        {
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(postgres.port),
            "MLFLOW_AUTH_CONFIG_PATH": str(folder / "run" / "basic_auth.ini"),
        },
    )
    process_env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **environment,
    }
    return MlflowServer(
        folder,
        port=port,
        command=[*argv, "--workers", str(workers)],
        workers=workers,
        env=process_env,
        auth=(environment["MLFLOW_ADMIN_USERNAME"], environment["MLFLOW_ADMIN_PASSWORD"]),
    )
