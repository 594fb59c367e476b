"""The compose stack as its files say: docker-compose.yml, the Dockerfile, .env.example and the
ignore files read as docker compose, Docker and git read them; the MLflow service's entrypoint
run as a process on loopback (real PostgreSQL, real ``mlflow server --app-name basic-auth``); and
the ``sweeps`` driver stopped as ``docker stop`` and a twice-pressed Ctrl-C stop it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import requests

from sweeps.config.points import expand
from sweeps.config.reading import read_config
from tests.compose import (
    IMAGE_DOCKER_FOLDER,
    ROOT,
    SERVICES,
    MissingVariableError,
    env_for_tests,
    interpolate,
    mlflow_service,
    read_env_file,
    service_argv,
    service_environment,
    service_words,
)
from tests.helpers import (
    MlflowServer,
    PostgresServer,
    cli,
    cli_background,
    run_options,
    sweep_runs,
    wait_for_text,
    write_config,
)

ENTRYPOINT = ROOT / "docker" / "mlflow_entrypoint.py"
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET")
#: a compose reference to a variable whose name says it holds a secret
SECRET_REFERENCE = re.compile(r"\$\{?\w*(?:PASSWORD|TOKEN|SECRET)\w*")


# --- the compose file ---------------------------------------------------------------------------


def test_compose_services_and_health_checks():
    assert {"postgres", "mlflow", "ray-head", "ray-worker", "sweeps"} <= set(SERVICES)
    for name in ("postgres", "mlflow", "ray-head"):
        assert SERVICES[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    mlflow = SERVICES["mlflow"]
    command = service_words("mlflow", "command")
    assert command[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in command
    hosts = command[command.index("--allowed-hosts") + 1].split(",")
    assert {"mlflow", "mlflow:5000"} <= set(hosts)
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    environment = mlflow["environment"]
    assert (environment["POSTGRES_HOST"], str(environment["POSTGRES_PORT"])) == ("postgres", "5432")
    head, worker = SERVICES["ray-head"], SERVICES["ray-worker"]
    assert head["command"][:3] == ["ray", "start", "--head"] and "--block" in head["command"]
    assert "--address=ray-head:6379" in worker["command"]
    # scalable: no fixed name, no published port
    assert "container_name" not in worker and "ports" not in worker
    for node in (head, worker, SERVICES["sweeps"]):
        assert node["environment"]["RAY_AUTH_MODE"] == "token"
        assert node["shm_size"]
        storage = node["environment"]["REGSWEEP_STORAGE_PATH"]
        assert any(v.split(":")[1] == storage for v in node["volumes"])  # a shared volume
    assert SERVICES["sweeps"]["environment"]["RAY_ADDRESS"] == "ray-head:6379"
    assert SERVICES["sweeps"]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_mlflow_runs_its_basic_auth_app_through_the_entrypoint():
    command = service_words("mlflow", "command")
    assert command[command.index("--app-name") + 1] == "basic-auth"
    # the backend URI (with the database password) reaches the server through its environment
    assert not any(word.startswith("--backend-store-uri") for word in command)
    entrypoint = service_words("mlflow", "entrypoint")
    assert entrypoint == ["python", f"{IMAGE_DOCKER_FOLDER}/mlflow_entrypoint.py"]
    assert ENTRYPOINT.is_file()
    # the auth ini lives on a tmpfs of the service: the secrets never reach a disk
    ini = Path(SERVICES["mlflow"]["environment"]["MLFLOW_AUTH_CONFIG_PATH"])
    mounts = [entry.split(":", 1) for entry in SERVICES["mlflow"]["tmpfs"]]
    assert any(ini.parent == Path(path) and "mode=0700" in options for path, options in mounts)
    # the image has the script where the entrypoint looks, and the auth app's dependencies
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^WORKDIR /opt/regsweep$", dockerfile, re.M)
    assert re.search(r"^COPY docker \./docker$", dockerfile, re.M)
    assert '"mlflow[auth]"' in dockerfile and '".[postgres]"' in dockerfile
    assert dockerfile.startswith("#") and "FROM python:3.11" in dockerfile


def test_no_secret_on_any_command_line():
    """Command lines are public on a machine (``ps``, ``/proc/<pid>/cmdline``, ``docker
    inspect``): secrets reach services through their environment only."""
    lines = 0
    for name, service in SERVICES.items():
        words = service_words(name, "command") + service_words(name, "entrypoint")
        words += [str(word) for word in (service.get("healthcheck") or {}).get("test", [])]
        lines += bool(words)
        assert not [w for w in words if SECRET_REFERENCE.search(w)], name
    assert lines == len(SERVICES)
    # and the same pattern does find them where they belong
    found = [
        value
        for service in SERVICES.values()
        for value in (service.get("environment") or {}).values()
        if SECRET_REFERENCE.search(str(value))
    ]
    assert len(found) >= 5, found


def test_secrets_come_from_env_and_nowhere_else():
    text = (ROOT / "docker-compose.yml").read_text()
    secret_keys = set()
    for service in SERVICES.values():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in SECRET_WORDS):
                # required (compose stops with the message when it is empty), never a default
                assert re.fullmatch(rf"\$\{{{key}:\?[^}}]+\}}", str(value)), (key, value)
                secret_keys.add(key)
    assert {
        "POSTGRES_PASSWORD",
        "MLFLOW_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "MLFLOW_TRACKING_PASSWORD",
        "RAY_AUTH_TOKEN",
    } <= secret_keys
    example = read_env_file(ROOT / ".env.example")
    for key in secret_keys:
        assert example[key] == "", key  # listed in the template, and left empty there
    assert "password1234" not in text


def test_env_example_is_all_compose_needs():
    """With .env.example's secrets filled in, every service's settings resolve; with any one of
    them left empty, compose refuses, naming it."""
    env = env_for_tests()
    for name in SERVICES:
        service_argv(name, env, {})
        service_environment(name, env)
    for key in ("POSTGRES_PASSWORD", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_TRACKING_PASSWORD"):
        service = "sweeps" if key == "MLFLOW_TRACKING_PASSWORD" else "mlflow"
        with pytest.raises(MissingVariableError, match=f"{key}: set {key} in .env"):
            service_environment(service, {**env, key: ""})
    assert interpolate("$${POSTGRES_USER}", env) == "${POSTGRES_USER}"  # escaped, for the shell


def test_compose_ports_bind_loopback_only():
    published = []
    for service in SERVICES.values():
        for port in service.get("ports", []):
            if isinstance(port, dict):  # the long syntax
                published.append(f"{port.get('host_ip', '')}:{port.get('published')}")
            else:
                published.append(str(port))
    assert len(published) == 2, "the UI and the Ray head should be reachable from the host"
    assert all(port.startswith("127.0.0.1:") for port in published), published


def test_the_driver_stops_cleanly_under_docker_stop():
    """``docker stop`` sends SIGTERM to process 1 and SIGKILL after the grace period: tini as
    process 1 passes the SIGTERM on, and the period leaves time to write what finished."""
    driver = SERVICES["sweeps"]
    assert driver["init"] is True
    assert driver.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = parse_duration(driver["stop_grace_period"])
    assert 60 <= grace <= 600, grace  # Docker's default of 10 s cuts the writing short
    cluster = (ROOT / "docs" / "cluster.md").read_text()  # where the compose stack is told
    assert "`stop_grace_period` of 2 minutes" in cluster and "exits 143" in cluster


def parse_duration(value: str) -> float:
    """A compose duration (``2m``, ``90s``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(value))
    assert "".join(n + u for n, u in parts) == str(value), value
    return sum(float(number) * units[unit] for number, unit in parts)


# --- what git and docker leave out ----------------------------------------------------------


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_env_is_ignored_by_git():
    """``cp .env.example .env`` (the README's first step) leaves nothing for git to commit."""
    for path in (".env", "docker/.env", ".env.local"):
        assert git("check-ignore", "-q", path).returncode == 0, path
    assert git("check-ignore", "-q", ".env.example").returncode == 1  # the template is shared
    assert git("ls-files", "--error-unmatch", ".env").returncode != 0  # and .env never was


def docker_patterns(text: str) -> list[tuple[re.Pattern, bool]]:
    """``.dockerignore`` as Docker reads it: one pattern a line, ``#`` comments, ``!`` re-includes,
    paths relative to the context's root (a name without a slash matches there only), Go's
    ``filepath.Match`` wildcards plus ``**`` for any number of folders."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if keep else line).lstrip("/")
        patterns.append((re.compile(_glob_regex(pattern) + r"\Z"), keep))
    return patterns


def _glob_regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out, i = out + "(?:.*/)?", i + 1
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end
        elif char == "\\":
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(char)
        i += 1
    return out


def docker_ignores(path: str, patterns: list[tuple[re.Pattern, bool]]) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last pattern matching it or
    one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for regex, keep in patterns:
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not keep
    return ignored


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    patterns = docker_patterns((ROOT / ".dockerignore").read_text())
    left_out = [
        ".env",
        ".env.production",
        "docker/.env",
        "configs/.env",
        ".git/config",
        "mlflow.db",
        "mlflow.db-wal",
        "mlruns/0/meta.yaml",
        "mlartifacts/1/weights.npz",
        ".venv/bin/python",
        ".venv-ci/bin/python",
        "reports/quickstart/report.html",
        "bench/results/latest.json",
        "sweeps/__pycache__/cli.cpython-311.pyc",
    ]
    for path in left_out:
        assert docker_ignores(path, patterns), path
    # every file the Dockerfile copies is in the context
    copied = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied += line.split()[1:-1]
    assert {"pyproject.toml", "README.md", "regcore", "sweeps", "configs", "docker"} <= set(copied)
    # the repository's files there (committed or not), as a clean checkout has them
    tracked = git("ls-files", "--cached", "--others", "--exclude-standard", *copied).stdout.split()
    assert "docker/mlflow_entrypoint.py" in tracked and "sweeps/cli.py" in tracked
    for path in tracked:
        assert not docker_ignores(path, patterns), path


def test_the_dockerignore_reader_follows_dockers_rules():
    """The reader above against examples from Docker's documentation of .dockerignore."""
    patterns = docker_patterns("*/temp*\n*/*/temp*\ntemp?\n**/*.go\n*.md\n!README.md\n")
    assert docker_ignores("somedir/temporary.txt", patterns)
    assert docker_ignores("somedir/temp", patterns)
    assert docker_ignores("somedir/subdir/temporary.txt", patterns)
    assert docker_ignores("tempa", patterns) and not docker_ignores("tempab", patterns)
    assert docker_ignores("a/b/c.go", patterns) and docker_ignores("c.go", patterns)
    assert docker_ignores("CHANGELOG.md", patterns) and not docker_ignores("README.md", patterns)
    assert not docker_ignores("temporary.txt", patterns)  # no slash before it: root only
    assert docker_ignores("mlruns/0/x", docker_patterns("mlruns"))  # a folder takes its files


# --- the MLflow service's entrypoint as a process -------------------------------------------


#: a database password with every character a URI treats specially
DATABASE_PASSWORD = "p@ss/w:rd%40 #?&="


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """PostgreSQL with a password, and the compose file's ``mlflow`` service on it, filled in
    from a ``.env`` made from .env.example (the driver logging in as the admin); yields
    (server, the .env's values, PostgreSQL)."""
    postgres = PostgresServer(password=DATABASE_PASSWORD)
    admin_password = "adm!n:p@ss/word%41"
    env = env_for_tests(
        POSTGRES_USER=postgres.user,
        POSTGRES_PASSWORD=DATABASE_PASSWORD,
        POSTGRES_DB=postgres.database,
        MLFLOW_ADMIN_PASSWORD=admin_password,
        MLFLOW_TRACKING_PASSWORD=admin_password,
    )
    try:
        server = mlflow_service(tmp_path_factory.mktemp("mlflow"), env, postgres)
    except BaseException:
        postgres.stop()
        raise
    yield server, env, postgres
    server.stop()
    postgres.stop()


def session_processes(session: int) -> dict[int, tuple[str, str]]:
    """The processes of a session (pid: (command line, environment)), from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[3]) != session:  # state ppid pgrp session
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().replace(b"\0", b"\n").decode()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        found[int(entry.name)] = (cmdline, environ)
    return found


@pytest.mark.integration
def test_the_mlflow_service_asks_who_you_are(stack):
    server, env, _ = stack
    search = f"{server.uri}/api/2.0/mlflow/experiments/search"
    admin = (env["MLFLOW_ADMIN_USERNAME"], env["MLFLOW_ADMIN_PASSWORD"])
    assert requests.get(search, params={"max_results": 1}, timeout=30).status_code == 401
    wrong = (admin[0], admin[1] + "x")
    assert (
        requests.get(search, params={"max_results": 1}, auth=wrong, timeout=30).status_code == 401
    )
    reply = requests.get(search, params={"max_results": 1}, auth=admin, timeout=30)
    assert reply.status_code == 200, reply.text
    # the compose health check needs no login
    check = [str(w) for w in SERVICES["mlflow"]["healthcheck"]["test"][1:]]
    check = [w.replace("127.0.0.1:5000", f"127.0.0.1:{server.port}") for w in check]
    assert check[0] == "python"
    assert subprocess.run([sys.executable, *check[1:]], timeout=60).returncode == 0


@pytest.mark.integration
def test_no_secret_in_the_servers_command_lines_or_left_in_their_environment(stack):
    server, env, postgres = stack
    secrets = [env[k] for k in ("MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")]
    secrets += [DATABASE_PASSWORD, quote(DATABASE_PASSWORD, safe="")]
    processes = session_processes(server.process.pid)
    commands = [cmdline for cmdline, _ in processes.values()]
    assert any("mlflow.server.auth:create_app" in c for c in commands), commands  # the auth app
    assert len(processes) >= 3  # the server, uvicorn's supervisor and its workers
    for cmdline, environ in processes.values():
        for secret in secrets:
            assert secret not in cmdline, cmdline
        variables = dict(line.split("=", 1) for line in environ.splitlines() if "=" in line)
        # what the servers need stays; the passwords the ini and the URI hold are gone
        assert variables["MLFLOW_BACKEND_STORE_URI"] == postgres.uri
        assert "POSTGRES_PASSWORD" not in variables and "MLFLOW_ADMIN_PASSWORD" not in variables
        assert "MLFLOW_AUTH_ADMIN_PASSWORD" not in variables
    ini = Path(server.env["MLFLOW_AUTH_CONFIG_PATH"])
    assert ini.stat().st_mode & 0o777 == 0o600
    assert ini.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.integration
def test_the_driver_logs_in_and_writes_to_postgres(stack, tmp_path, ray_head):
    """A sweep through the server with the sweeps service's credentials: its runs land in the
    PostgreSQL database behind the server (reached with the URL-encoded password)."""
    server, env, postgres = stack
    driver_env = service_environment(
        "sweeps",
        {**env, "RAY_AUTH_TOKEN": os.environ["RAY_AUTH_TOKEN"]},  # the session's Ray head's
        {
            "MLFLOW_TRACKING_URI": server.uri,
            "RAY_ADDRESS": ray_head.address,
            "REGSWEEP_STORAGE_PATH": str(tmp_path / "ray"),
        },
    )
    assert driver_env["MLFLOW_TRACKING_USERNAME"] == env["MLFLOW_ADMIN_USERNAME"]
    config = write_config(tmp_path / "c.yaml", {"name": "compose-auth"})
    result = cli("run", str(config), "--no-report", "--no-refit", cwd=tmp_path, env=driver_env)
    assert result.returncode == 0, result.stdout + result.stderr
    total = len(expand(read_config(str(config))[0]))
    with psycopg.connect(postgres.uri) as connection:
        rows = connection.execute(
            "SELECT r.status, t.value FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "JOIN experiments e ON e.experiment_id = r.experiment_id "
            "WHERE e.name = 'tests' AND t.key = 'regsweep.key'"
        ).fetchall()
    keys = [key for _, key in rows]
    assert len(keys) == len(set(keys)) == total
    assert {status for status, _ in rows} == {"FINISHED"}
    # without the credentials the same server refuses the driver before anything is written
    anonymous = {**driver_env, "MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""}
    refused = cli("run", str(config), "--set", "name=anonymous", cwd=tmp_path, env=anonymous)
    assert refused.returncode == 1
    assert "refused the credentials (HTTP 401)" in refused.stderr


def change_password(server: MlflowServer, current: str, new: str) -> subprocess.CompletedProcess:
    """docker/mlflow_password.py as docs/security.md runs it, the new password on stdin."""
    env = {
        "PATH": os.environ["PATH"],
        "MLFLOW_TRACKING_URI": server.uri,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": current,
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "docker" / "mlflow_password.py")],
        input=new + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def logs_in(server: MlflowServer, password: str) -> bool:
    reply = requests.get(
        f"{server.uri}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        auth=("admin", password),
        timeout=30,
    )
    assert reply.status_code in (200, 401), reply.text
    return reply.status_code == 200


@pytest.mark.integration
def test_the_admin_password_rotates_as_the_security_page_says(stack):
    """Runs after the tests above that log in with the stack's password; puts it back."""
    server, env, _ = stack
    old, new = env["MLFLOW_ADMIN_PASSWORD"], "rotated:p@ss/word%2F"
    for refused, said in (("too-short", "fewer than 12"), ("password1234", "old default")):
        result = change_password(server, old, refused)
        assert result.returncode == 2 and said in result.stderr, result.stderr
    assert logs_in(server, old)
    result = change_password(server, old, new)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MLFLOW_ADMIN_PASSWORD" in result.stdout and "restart mlflow" in result.stdout
    assert logs_in(server, new)
    # `docker compose restart mlflow`, .env still holding the old password: that only creates
    # the admin on a first start, so the new one stands and the old one is refused
    server.stop()
    server.auth = ("admin", new)  # the login that tells when it is up again
    server.start()
    assert logs_in(server, new) and not logs_in(server, old)
    assert change_password(server, new, old).returncode == 0  # as the other tests expect
    server.auth = ("admin", old)
    assert logs_in(server, old)


#: settings the entrypoint refuses, each with the one line it says (a regex)
BAD_SETTINGS = [
    ({"MLFLOW_ADMIN_PASSWORD": "password1234"}, r"MLFLOW_ADMIN_PASSWORD is 'password1234'"),
    ({"MLFLOW_ADMIN_PASSWORD": ""}, r"MLFLOW_ADMIN_PASSWORD is empty or unset"),
    ({"MLFLOW_ADMIN_PASSWORD": None}, r"MLFLOW_ADMIN_PASSWORD is empty or unset"),
    ({"MLFLOW_ADMIN_PASSWORD": "eleven-char"}, r"MLFLOW_ADMIN_PASSWORD has fewer than 12"),
    ({"MLFLOW_ADMIN_PASSWORD": "two\nlines-password"}, r"admin_password must not contain line"),
    ({"MLFLOW_FLASK_SERVER_SECRET_KEY": ""}, r"MLFLOW_FLASK_SERVER_SECRET_KEY is empty"),
    ({"MLFLOW_FLASK_SERVER_SECRET_KEY": "short"}, r"SECRET_KEY has fewer than 16"),
    ({"POSTGRES_PASSWORD": None}, r"POSTGRES_PASSWORD is empty or unset"),
    ({"MLFLOW_AUTH_DEFAULT_PERMISSION": "ALL"}, r"must be one of READ, EDIT, MANAGE"),
    ({"MLFLOW_AUTH_CACHE_SECONDS": "1m"}, r"MLFLOW_AUTH_CACHE_SECONDS must be a whole number"),
]
#: commands it refuses to run
BAD_COMMANDS = [
    (["mlflow", "server"], r"with `--app-name basic-auth`"),
    (["gunicorn", "app"], r"the command must be `mlflow server --app-name basic-auth"),
    (
        ["mlflow", "server", "--app-name", "basic-auth", "--backend-store-uri", "sqlite://"],
        r"--backend-store-uri is on the command line",
    ),
    (
        ["mlflow", "server", "--app-name", "basic-auth", "--static-prefix", "/{secret}"],
        r"a secret from \.env is on the command line",
    ),
]


def run_entrypoint(
    folder: Path, changes: dict[str, str | None], command: list[str] | None = None
) -> subprocess.CompletedProcess:
    """The entrypoint with the mlflow service's environment (from a test .env) and ``changes``
    (None: unset), and the service's command unless ``command``."""
    env = env_for_tests()
    environment = {
        **service_environment("mlflow", env),
        "MLFLOW_AUTH_CONFIG_PATH": str(folder / "auth.ini"),
    }
    for key, value in changes.items():
        if value is None:
            environment.pop(key)
        else:
            environment[key] = value
    if command is None:
        command = service_words("mlflow", "command")
    command = [word.replace("{secret}", env["POSTGRES_PASSWORD"]) for word in command]
    return subprocess.run(
        [sys.executable, str(ENTRYPOINT), *command],
        env={"PATH": os.environ["PATH"], **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("changes", "said"), BAD_SETTINGS)
def test_the_entrypoint_refuses_insecure_settings(tmp_path, changes, said):
    result = run_entrypoint(tmp_path, changes)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(said, result.stderr), result.stderr
    assert not (tmp_path / "auth.ini").exists() and result.stdout == ""


@pytest.mark.parametrize(("command", "said"), BAD_COMMANDS)
def test_the_entrypoint_refuses_an_unsafe_command(tmp_path, command, said):
    result = run_entrypoint(tmp_path, {}, command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(said, result.stderr), result.stderr


def test_the_entrypoint_writes_what_mlflow_reads(tmp_path):
    """The ini, read by MLflow's own reader, holds the values from the environment exactly,
    ``%`` and all; the backend URI decodes back to the database password."""
    from sqlalchemy.engine import make_url

    env = env_for_tests(
        POSTGRES_PASSWORD=DATABASE_PASSWORD, MLFLOW_ADMIN_PASSWORD="100%-not-%(default)s"
    )
    # the command: print the environment the server would get, instead of starting it
    probe = tmp_path / "mlflow"
    probe.write_text(f"#!{sys.executable}\nimport json, os\nprint(json.dumps(dict(os.environ)))\n")
    probe.chmod(0o755)
    environment = {
        **service_environment("mlflow", env),
        "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "run" / "auth.ini"),
    }
    result = subprocess.run(
        [sys.executable, str(ENTRYPOINT), *service_words("mlflow", "command")],
        env={"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    server_env = json.loads(result.stdout)
    url = make_url(server_env["MLFLOW_BACKEND_STORE_URI"])
    assert (url.host, url.port, url.database) == ("postgres", 5432, env["POSTGRES_DB"])
    assert (url.username, url.password) == (env["POSTGRES_USER"], DATABASE_PASSWORD)

    from mlflow.server.auth.config import read_auth_config

    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = server_env["MLFLOW_AUTH_CONFIG_PATH"]
    try:
        config = read_auth_config()
    finally:
        del os.environ["MLFLOW_AUTH_CONFIG_PATH"]
    assert config.admin_username == env["MLFLOW_ADMIN_USERNAME"]
    assert config.admin_password == "100%-not-%(default)s"
    assert config.database_uri == server_env["MLFLOW_BACKEND_STORE_URI"]
    assert config.auth_cache_ttl_seconds == int(env["MLFLOW_AUTH_CACHE_SECONDS"])
    assert config.default_permission == "READ"
    assert "MLFLOW_ADMIN_PASSWORD" not in server_env and "POSTGRES_PASSWORD" not in server_env


# --- the driver stopped ---------------------------------------------------------------------


@pytest.mark.integration
def test_ctrl_c_twice_stops_at_once_and_resume_still_finishes(tmp_path, ray_head):
    """docs/cli.md: a second Ctrl-C stops at once, the parent run stays RUNNING, and --resume
    on the same machine continues at once. The first Ctrl-C comes while the tracking server is
    slow (frozen), so the driver is still writing results when the second one comes."""
    server = MlflowServer(tmp_path / "server")
    try:
        stop_twice_and_resume(tmp_path, ray_head.address, server)
    finally:
        server.stop()


def stop_twice_and_resume(folder: Path, address: str, server: MlflowServer) -> None:
    config = write_config(
        folder / "twice.yaml",
        {
            "name": "twice",
            # about a second a point: training goes on while the first Ctrl-C comes
            "model": {"epochs": 100000, "log_every": 10000},
            "execution": {"pack_size": 1, "max_concurrent_trials": 1},
        },
    )
    uri, common = run_options(folder, address, server.uri)
    common.append("--no-report")
    log = folder / "driver.log"
    driver = cli_background("run", str(config), *common, cwd=folder, log=log)
    frozen = False
    try:
        wait_for_text(log, "parent run", driver)
        deadline = time.monotonic() + 300
        while not any(c.info.status == "FINISHED" for c in sweep_runs(uri)[1]):
            assert driver.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        os.killpg(server.process.pid, signal.SIGSTOP)  # a server that takes its time
        frozen = True
        time.sleep(4)  # more results arrive; their writes wait on the server
        os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        wait_for_text(log, "interrupted: writing what finished", driver, timeout=60)
        time.sleep(1)
        assert "results to MLflow" in log.read_text()  # still writing
        os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C again
        started = time.monotonic()
        assert driver.wait(timeout=120) == 130, log.read_text()
        assert time.monotonic() - started < 30, "a second Ctrl-C should stop at once"
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=60)
        if frozen:
            os.killpg(server.process.pid, signal.SIGCONT)
    text = log.read_text()
    assert "Traceback" not in text, text
    parents, children = sweep_runs(uri)
    assert [p.info.status for p in parents] == ["RUNNING"]  # not closed: it stopped at once
    total = len(expand(read_config(str(config))[0]))
    finished = {c.data.tags["regsweep.key"] for c in children if c.info.status == "FINISHED"}
    assert 1 <= len(finished) < total

    result = cli("run", str(config), "--resume", *common, cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming:" in result.stdout
    parents, children = sweep_runs(uri)
    assert [p.info.status for p in parents] == ["FINISHED"]
    keys = [c.data.tags["regsweep.key"] for c in children]
    assert len(keys) == len(set(keys)) == total  # every point once
    assert {c.info.status for c in children} == {"FINISHED"}


@pytest.mark.integration
def test_a_reader_can_look_at_sweeps_but_not_run_one(stack, tmp_path, ray_head):
    """A user the admin made, with MLflow's default permission (READ): ``ls``, ``show``,
    ``report`` and ``compare`` work; ``run`` says at once that it cannot write (exit 1, one
    line) and writes nothing; a wrong password is refused as no password is."""
    server, env, _ = stack
    admin = (env["MLFLOW_ADMIN_USERNAME"], env["MLFLOW_ADMIN_PASSWORD"])
    base = {
        "MLFLOW_TRACKING_URI": server.uri,
        "RAY_ADDRESS": ray_head.address,
        "REGSWEEP_STORAGE_PATH": str(tmp_path / "ray"),
    }
    as_admin = {
        **base,
        "MLFLOW_TRACKING_USERNAME": admin[0],
        "MLFLOW_TRACKING_PASSWORD": admin[1],
    }
    config = write_config(
        tmp_path / "r.yaml", {"name": "readable", "search": {"depths": [1], "seeds": [0]}}
    )
    made = cli("run", str(config), "--no-report", "--no-refit", cwd=tmp_path, env=as_admin)
    assert made.returncode == 0, made.stdout + made.stderr
    created = requests.post(
        f"{server.uri}/api/2.0/mlflow/users/create",
        json={"username": "reader", "password": "reader-password-1"},
        auth=admin,
        timeout=60,
    )
    assert created.status_code == 200, created.text
    reader = {
        **base,
        "MLFLOW_TRACKING_USERNAME": "reader",
        "MLFLOW_TRACKING_PASSWORD": "reader-password-1",
    }
    before = _runs_in(server, "tests", admin)
    for command in (["ls"], ["show", "readable"], ["compare", "readable"]):
        looked = cli(*command, cwd=tmp_path, env=reader)
        assert looked.returncode == 0, (command, looked.stdout + looked.stderr)
    reported = cli("report", "readable", cwd=tmp_path, env=reader)
    assert reported.returncode == 0, reported.stdout + reported.stderr
    assert (tmp_path / "reports" / "readable" / "report.html").is_file()
    assert "the tracking server lets this user read the sweep but not write to it" in (
        reported.stderr
    )
    refused = cli("run", str(config), "--set", "name=by-reader", cwd=tmp_path, env=reader)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line == (
        "error: the tracking server lets MLFLOW_TRACKING_USERNAME='reader' read experiment "
        "'tests' but not write to it: a sweep cannot run there (ls, show, report and compare "
        "can)"
    )
    wrong = cli("run", str(config), cwd=tmp_path, env={**reader, "MLFLOW_TRACKING_PASSWORD": "x"})
    assert wrong.returncode == 1
    assert "refused the credentials (HTTP 401); set MLFLOW_TRACKING_USERNAME" in wrong.stderr
    assert _runs_in(server, "tests", admin) == before  # nothing written


def _runs_in(server: MlflowServer, experiment: str, auth: tuple[str, str]) -> int:
    """How many runs an experiment holds, asked over the REST API as ``auth``."""
    found = requests.get(
        f"{server.uri}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": experiment},
        auth=auth,
        timeout=60,
    ).json()["experiment"]["experiment_id"]
    count, token = 0, None
    while True:
        body = {
            "experiment_ids": [found],
            "max_results": 1000,
            **({"page_token": token} if token else {}),
        }
        page = requests.post(
            f"{server.uri}/api/2.0/mlflow/runs/search", json=body, auth=auth, timeout=60
        ).json()
        count += len(page.get("runs", []))
        token = page.get("next_page_token")
        if not token:
            return count
