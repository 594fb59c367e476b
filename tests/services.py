"""Real services on loopback for the tests and the benchmark: PostgreSQL from the machine's
server binaries and ``mlflow server`` (SQLite or PostgreSQL behind it), each a process of its own
on a free port."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import requests

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path:
    """The newest PostgreSQL server binaries on the machine (``initdb``, ``pg_ctl``)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb) on this machine")
    return Path(initdb).parent


class PostgresServer:
    """A PostgreSQL cluster of its own on a free loopback port, with a database ``mlflow``.

    As root, the server runs as the ``postgres`` system user (PostgreSQL refuses root), in a
    folder of its own under the system's temporary folder; :meth:`stop` removes it. With a
    ``password``, connections over TCP must give it (``scram-sha-256``, as the ``postgres``
    image sets up); without one, loopback is trusted.
    """

    user = "postgres"

    def __init__(self, database: str = "mlflow", password: str | None = None) -> None:
        self.bin = postgres_bin()
        self.folder = Path(tempfile.mkdtemp(prefix="regsweep-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.database = database
        self.password = password
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        auth = ["--auth=trust"]
        if password is not None:
            secret = self.folder / "pwfile"
            secret.write_text(password + "\n")
            secret.chmod(0o600)
            if os.geteuid() == 0:
                shutil.chown(secret, "postgres", "postgres")
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={secret}"]
        try:
            self._run("initdb", "-D", str(self.data), "-U", self.user, *auth, "-E", "UTF8")
        finally:
            (self.folder / "pwfile").unlink(missing_ok=True)
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.folder} -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w",
            "start",
        )  # fmt: skip
        # over the socket in its folder, which trusts its local users
        self._run(
            "createdb", "-h", str(self.folder), "-p", str(self.port), "-U", self.user, database
        )

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.folder, timeout=120)

    @property
    def uri(self) -> str:
        """The database's URI over TCP, with the password (URL-encoded) if it has one."""
        login = (
            self.user if self.password is None else f"{self.user}:{quote(self.password, safe='')}"
        )
        return f"postgresql://{login}@127.0.0.1:{self.port}/{self.database}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def server_options(folder: Path, port: int, workers: int) -> list[str]:
    """``mlflow server``'s options apart from the backend: artifacts proxied from ``folder``,
    loopback ``port``, ``workers`` worker processes."""
    return [
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


class MlflowServer:
    """``mlflow server`` on loopback with proxied artifact storage and a SQLite backend in
    ``folder`` (or ``backend``, e.g. a :class:`PostgresServer`'s URI).

    ``command`` and ``env`` replace the command line and the environment (default: this
    process's); ``auth``, a login, makes readiness mean that logged-in requests are answered
    promptly (an authenticating server answers 401s long before it can check a password).
    """

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        command: list[str] | None = None,
        *,
        backend: str | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.folder, self.workers = folder, workers
        self.env, self.auth = env, auth
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.command = command or [
            str(VENV_BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            backend or f"sqlite:///{folder / 'mlflow.db'}",
            *server_options(folder, self.port, workers),
        ]
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        log = self.folder / "server.log"
        self.process = subprocess.Popen(
            self.command,
            cwd=self.folder,
            env=self.env,
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_until_ready(log, timeout)
        except BaseException:  # not left running behind an error or a Ctrl-C
            self.stop()
            raise

    def _wait_until_ready(self, log: Path, timeout: float) -> None:
        # ready once its API has answered promptly several times in a row, on new connections:
        # /health answers as soon as one worker is up, while the others (and MLflow's job
        # runners) still start on the same cores and a client's first calls can time out
        deadline = time.monotonic() + timeout
        answered = 0
        while time.monotonic() < deadline:
            try:
                reply = requests.get(
                    f"{self.uri}/api/2.0/mlflow/experiments/search",
                    params={"max_results": 1},
                    auth=self.auth,
                    timeout=2,
                )
                # without a login, a 401 is an answer too
                ok = reply.status_code == 200 if self.auth else reply.status_code < 500
                answered = answered + 1 if ok else 0
            except requests.RequestException:
                answered = 0
            if answered >= 3 * self.workers:
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        raise TimeoutError(f"mlflow server not answering promptly after {timeout}s")

    def stop(self) -> None:
        """End the server and everything it started (its process group)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
