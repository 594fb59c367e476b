"""Test helpers: the sweeps CLI as a subprocess, small sweep configs, and real Ray nodes and MLflow
servers run as processes on loopback."""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.services import VENV_BIN, MlflowServer, PostgresServer, free_port

__all__ = ["VENV_BIN", "MlflowServer", "PostgresServer", "free_port"]

ROOT = Path(__file__).resolve().parents[1]


def cli(
    *args: str, cwd: Path, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``sweeps ARGS`` (``python -m sweeps.cli``) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "sweeps.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def predicted_in_a_fresh_process(model_uri: str, tracking_uri: str, rows: Any, cwd: Path) -> list:
    """``mlflow.pyfunc.load_model(model_uri).predict(rows)`` in a new Python process that
    refuses to unpickle anything (``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``); ``rows`` (a
    DataFrame) travels as CSV, as a user's file would hold them."""
    import json

    script = (
        "import json, sys, mlflow, numpy as np, pandas as pd\n"
        "rows = pd.read_csv(sys.stdin)\n"
        f"model = mlflow.pyfunc.load_model({model_uri!r})\n"
        "print(json.dumps(np.asarray(model.predict(rows)).tolist()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=rows.to_csv(index=False, float_format="%.17g"),
        capture_output=True,
        text=True,
        cwd=cwd,
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        },
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def cli_background(*args: str, cwd: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start ``sweeps ARGS`` in the background (its own process group), output to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Kill a background process and everything it started in its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    process.wait(timeout=60)


SMALL = {
    "name": "small",
    "experiment": "tests",
    "dataset": {"name": "moons", "n_samples": 120, "noise": 0.3, "seed": 0},
    "model": {
        "activation": "tanh",
        "width": 8,
        "learning_rate": 0.5,
        "epochs": 300,
        "log_every": 50,
    },
    "search": {
        "depths": [1, 2],
        "seeds": [0, 1],
        "penalties": {"none": {}, "l2": {"lam": [0.01, 0.3, 3.0]}, "l1": {"lam": [0.1]}},
    },
    "execution": {"max_failures": 2},
}


def deep_update(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def run_options(folder: Path, address: str, tracking_uri: str | None = None) -> tuple[str, list]:
    """``sweeps run`` options for a sweep on the cluster at ``address``, with Tune's state in
    ``folder`` and runs in ``tracking_uri`` (default: a SQLite store in ``folder``).

    Returns
    -------
    (tracking URI, options)
    """
    uri = tracking_uri or f"sqlite:///{folder / 'mlflow.db'}"
    return uri, ["--address", address, "--tracking-uri", uri, "--storage-path", str(folder / "ray")]


def write_config(path: Path, changes: dict | None = None, base: dict = SMALL) -> Path:
    path.write_text(yaml.safe_dump(deep_update(base, changes or {}), sort_keys=False))
    return path


def wait_for_text(log: Path, needle: str, process: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until ``needle`` appears in a background process's log (fail if it exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"process exited early:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)
    raise TimeoutError(f"no {needle!r} in {log} after {timeout}s:\n{log.read_text()[-3000:]}")


class RayNode:
    """``ray start [--head] ... --block`` as a child process; stop() ends just this node."""

    def __init__(
        self,
        log: Path,
        *,
        head: bool,
        port: int | None = None,
        address: str | None = None,
        num_cpus: int = 2,
        command: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.log = log
        self.port = port
        if command is None:
            command = [str(VENV_BIN / "ray"), "start", f"--num-cpus={num_cpus}", "--block"]
            if head:
                command += ["--head", f"--port={port}", "--include-dashboard=false"]
            else:
                command += [f"--address={address}"]
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_text(log, "Ray runtime started", self.process, timeout=120)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def sweep_runs(
    uri: str, experiment: str = "tests", kind: str | None = "point"
) -> tuple[list[Any], list[Any]]:
    """(parent runs, child runs) of an experiment, read back with MlflowClient: the children of
    one kind (``point``: trainings, ``refit``), or all of them (``kind=None``)."""
    mlflow_client = client(uri)
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is None:
        return [], []
    runs = mlflow_client.search_runs([found.experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get("regsweep.kind") == "sweep"]
    children = [
        r
        for r in runs
        if "mlflow.parentRunId" in r.data.tags
        and (kind is None or r.data.tags.get("regsweep.kind") == kind)
    ]
    return parents, children
