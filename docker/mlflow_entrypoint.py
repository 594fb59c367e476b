#!/usr/bin/env python3
"""The compose stack's MLflow entrypoint: secrets from the environment into MLflow's basic-auth
configuration, then ``exec`` of the service's command (``mlflow server --app-name basic-auth``).

No secret is ever on a command line (``ps`` and ``/proc/<pid>/cmdline`` show those to every
user of the machine). docker compose fills this script's environment from ``.env``:

``POSTGRES_HOST``, ``POSTGRES_PORT``, ``POSTGRES_USER``, ``POSTGRES_PASSWORD``, ``POSTGRES_DB``
    the backend store. The password is URL-encoded into ``MLFLOW_BACKEND_STORE_URI`` (which
    ``mlflow server`` reads from its environment), so ``@``, ``/``, ``:`` and ``%`` in it work.
    The auth app's users live in the same database (``database_uri`` in the ini; its tables,
    ``users``, ``roles`` and the like, are apart from the tracking tables). A
    ``MLFLOW_BACKEND_STORE_URI`` set instead of ``POSTGRES_PASSWORD`` is used as it is.
``MLFLOW_ADMIN_USERNAME`` (default ``admin``), ``MLFLOW_ADMIN_PASSWORD``
    the admin account MLflow creates on its first start; at least 12 characters, never
    ``password1234`` (the default that MLflow 2.x shipped, public knowledge).
``MLFLOW_FLASK_SERVER_SECRET_KEY``
    the auth app's CSRF key (MLflow reads it from the environment); at least 16 characters.
``MLFLOW_AUTH_CONFIG_PATH``
    where the ini goes (mode 0600, replaced whole); default: a new private temporary folder.
``MLFLOW_AUTH_DEFAULT_PERMISSION`` (default ``READ``), ``MLFLOW_AUTH_CACHE_SECONDS`` (default
``60``)
    the ini's ``default_permission`` and ``auth_cache_ttl_seconds``: how long a worker trusts a
    password it has checked (0 checks the salted hash on every request, which costs a server
    core tens of milliseconds per request: see ``bench/auth.py``).

The passwords leave the environment before ``exec``: the server's processes get the backend URI
and the secret key, which they need, and the ini's path. Anything missing or insecure stops the
container with one line on stderr and exit code 2.

Usage: ``mlflow_entrypoint.py mlflow server --app-name basic-auth [OPTIONS]``
"""

from __future__ import annotations

import configparser
import os
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

#: the admin password older MLflow releases shipped in basic_auth.ini (GHSA-gq3w-7jj3-x7gr)
OLD_DEFAULT_PASSWORD = "password1234"
#: MLflow's own rule for passwords (mlflow.utils.validation._validate_password)
MIN_PASSWORD = 12
MIN_SECRET_KEY = 16
PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
AUTHORIZATION_FUNCTION = "mlflow.server.auth:authenticate_request_basic_auth"
#: variables that carry a secret; none may appear in the command
SECRETS = ("POSTGRES_PASSWORD", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")
#: removed before exec: the ini holds the admin's, the backend URI the database's; MLflow's own
#: MLFLOW_AUTH_ADMIN_* would override the ini's values (even when set to "")
DROPPED = (
    "POSTGRES_PASSWORD",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_AUTH_ADMIN_USERNAME",
)


class RefusedError(Exception):
    """A setting the server must not start with; the message is the one line to print."""


def required(env: dict[str, str], name: str, what: str) -> str:
    value = env.get(name, "")
    if not value:
        raise RefusedError(f"{name} is empty or unset: set {what} in .env")
    return value


def check_ini_value(name: str, value: str) -> None:
    """An ini value keeps every character only without line breaks and outer whitespace
    (configparser strips both)."""
    if "\n" in value or "\r" in value or value != value.strip():
        raise RefusedError(f"{name} must not contain line breaks or start or end with whitespace")


def backend_uri(env: dict[str, str]) -> str:
    """The backend store URI: built from ``POSTGRES_*`` with the user and password
    URL-encoded, or ``MLFLOW_BACKEND_STORE_URI`` as given when no password is."""
    if not env.get("POSTGRES_PASSWORD") and env.get("MLFLOW_BACKEND_STORE_URI"):
        return env["MLFLOW_BACKEND_STORE_URI"]
    password = required(env, "POSTGRES_PASSWORD", "the database password POSTGRES_PASSWORD")
    user = quote(env.get("POSTGRES_USER") or "mlflow", safe="")
    host = env.get("POSTGRES_HOST") or "postgres"
    port = env.get("POSTGRES_PORT") or "5432"
    database = quote(env.get("POSTGRES_DB") or "mlflow", safe="")
    return f"postgresql://{user}:{quote(password, safe='')}@{host}:{port}/{database}"


def auth_settings(env: dict[str, str], database_uri: str) -> dict[str, str]:
    """The ``[mlflow]`` section of the basic-auth ini, checked."""
    username = env.get("MLFLOW_ADMIN_USERNAME") or "admin"
    password = required(env, "MLFLOW_ADMIN_PASSWORD", "the MLflow admin's password")
    if password == OLD_DEFAULT_PASSWORD:
        raise RefusedError(
            f"MLFLOW_ADMIN_PASSWORD is {OLD_DEFAULT_PASSWORD!r}, the default that older MLflow "
            "releases shipped and everyone knows: set another in .env"
        )
    if len(password) < MIN_PASSWORD:
        raise RefusedError(f"MLFLOW_ADMIN_PASSWORD has fewer than {MIN_PASSWORD} characters")
    secret_key = required(env, "MLFLOW_FLASK_SERVER_SECRET_KEY", "the Flask secret key")
    if len(secret_key) < MIN_SECRET_KEY:
        raise RefusedError(
            f"MLFLOW_FLASK_SERVER_SECRET_KEY has fewer than {MIN_SECRET_KEY} characters"
        )
    permission = env.get("MLFLOW_AUTH_DEFAULT_PERMISSION") or "READ"
    if permission not in PERMISSIONS:
        raise RefusedError(
            f"MLFLOW_AUTH_DEFAULT_PERMISSION must be one of {', '.join(PERMISSIONS)}, "
            f"got {permission!r}"
        )
    cache = env.get("MLFLOW_AUTH_CACHE_SECONDS") or "60"
    if not cache.isdigit():
        raise RefusedError(f"MLFLOW_AUTH_CACHE_SECONDS must be a whole number, got {cache!r}")
    settings = {
        "default_permission": permission,
        "database_uri": database_uri,
        "admin_username": username,
        "admin_password": password,
        "authorization_function": AUTHORIZATION_FUNCTION,
        "auth_cache_ttl_seconds": cache,
    }
    for key, value in settings.items():
        check_ini_value(key, value)
    return settings


def check_command(command: list[str], env: dict[str, str]) -> None:
    """The command starts MLflow with its basic-auth app and carries no secret."""
    if len(command) < 2 or Path(command[0]).name != "mlflow" or command[1] != "server":
        raise RefusedError("the command must be `mlflow server --app-name basic-auth ...`")
    if not any(
        word == "--app-name=basic-auth" or (word == "--app-name" and following == "basic-auth")
        for word, following in zip(command, [*command[1:], ""], strict=True)
    ):
        raise RefusedError("the command must run `mlflow server` with `--app-name basic-auth`")
    if "--backend-store-uri" in command or any(
        w.startswith("--backend-store-uri=") for w in command
    ):
        raise RefusedError(
            "--backend-store-uri is on the command line: the backend URI comes from .env"
        )
    values = [env[name] for name in SECRETS if env.get(name)]
    values += [quote(value, safe="") for value in values]
    # inside a word for values long enough not to turn up by chance ("1" in "127.0.0.1")
    if any(
        value == word or (len(value) >= 8 and value in word) for value in values for word in command
    ):
        raise RefusedError("a secret from .env is on the command line: keep it in .env only")


def ini_text(settings: dict[str, str]) -> str:
    """The ini as MLflow reads it (``configparser.ConfigParser``, whose interpolation takes
    ``%%`` for ``%``: URL-encoded passwords are full of ``%``)."""
    lines = ["[mlflow]"] + [
        f"{key} = {value.replace('%', '%%')}" for key, value in settings.items()
    ]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, replacing any file there whole."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


def read_back(path: Path) -> dict[str, str]:
    """The ``[mlflow]`` section as MLflow's ``read_auth_config`` will read it."""
    parser = configparser.ConfigParser()
    parser.read(path)
    return dict(parser["mlflow"])


def prepare(command: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Check the settings, write the ini; the command to exec (its program resolved on
    ``PATH``) and its environment."""
    check_command(command, env)
    uri = backend_uri(env)
    settings = auth_settings(env, uri)
    given = env.get("MLFLOW_AUTH_CONFIG_PATH")
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="mlflow-auth-")) / "auth.ini"
    write_private(path, ini_text(settings))
    if read_back(path) != settings:  # an invariant of ini_text and check_ini_value
        raise RefusedError(f"{path} does not read back as written")
    program = shutil.which(command[0], path=env.get("PATH"))
    if program is None:
        raise RefusedError(f"{command[0]} is not on PATH")
    server_env = {k: v for k, v in env.items() if k not in DROPPED}
    server_env["MLFLOW_BACKEND_STORE_URI"] = uri
    server_env["MLFLOW_AUTH_CONFIG_PATH"] = str(path)
    return [program, *command[1:]], server_env


def main(argv: list[str]) -> int:
    try:
        command, env = prepare(argv, dict(os.environ))
    except (RefusedError, OSError) as error:
        print(f"mlflow entrypoint: {error}", file=sys.stderr)
        return 2
    os.execve(command[0], command, env)
    return 1  # not reached: execve replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
