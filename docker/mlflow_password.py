#!/usr/bin/env python3
"""Change the MLflow password of the account the environment logs in as (the compose stack's
``sweeps`` service: ``MLFLOW_TRACKING_USERNAME``, by default the admin), without the new password
touching a command line::

    docker compose run --rm --entrypoint python sweeps /opt/regsweep/docker/mlflow_password.py

It asks for the new password twice (or reads one line from stdin when that is not a terminal),
changes it through MLflow's API (``MLFLOW_TRACKING_URI``, logged in with
``MLFLOW_TRACKING_PASSWORD``, which the API wants as the current password), checks that the new
one logs in, and says what to update in ``.env``. The admin's password in ``.env``
(``MLFLOW_ADMIN_PASSWORD``) only creates the admin on the server's first start; after that the
server's user store holds the password, so this is how it changes. Exit code 0 when changed, 2
when the new password is refused before anything is sent, 1 when the server refuses.
"""

from __future__ import annotations

import getpass
import os
import sys

import requests

OLD_DEFAULT_PASSWORD = "password1234"
MIN_PASSWORD = 12


def new_password() -> str:
    """The new password: typed twice on a terminal, else the first line of stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("new MLflow password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def check(password: str, current: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the new password has fewer than {MIN_PASSWORD} characters")
    if password == OLD_DEFAULT_PASSWORD:
        raise ValueError(f"{OLD_DEFAULT_PASSWORD!r} is the old default everyone knows")
    if password == current:
        raise ValueError("the new password is the current one")
    if password != password.strip() or "\n" in password:
        raise ValueError("the new password must not start or end with whitespace")


def main() -> int:
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").rstrip("/")
    username = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    current = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    if not (uri and username and current):
        print(
            "error: set MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (the current password)",
            file=sys.stderr,
        )
        return 2
    try:
        password = new_password()
        check(password, current)
    except ValueError as error:
        print(f"error: {error}; nothing changed", file=sys.stderr)
        return 2
    reply = requests.patch(
        f"{uri}/api/2.0/mlflow/users/update-password",
        json={"username": username, "password": password, "current_password": current},
        auth=(username, current),
        timeout=60,
    )
    if reply.status_code != 200:
        print(
            f"error: {uri} refused the change (HTTP {reply.status_code}): "
            f"{reply.text.strip()[:200]}",
            file=sys.stderr,
        )
        return 1
    probe = requests.get(
        f"{uri}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        auth=(username, password),
        timeout=60,
    )
    if probe.status_code != 200:
        print(
            f"error: the new password does not log in (HTTP {probe.status_code})", file=sys.stderr
        )
        return 1
    print(
        f"changed the MLflow password of {username!r}. Now put it in .env as "
        "MLFLOW_TRACKING_PASSWORD (and MLFLOW_ADMIN_PASSWORD, if this is the admin), then "
        "`docker compose restart mlflow`: until then the server's workers may accept the old "
        "password for up to MLFLOW_AUTH_CACHE_SECONDS."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
