"""Shared test setup.

- SCIPY_ARRAY_API is set before scipy is first imported so that scikit-learn's
  ``check_array_api_input`` runs (on numpy inputs) instead of being skipped.
- Ray's token authentication is on for every Ray process the tests start (the same random token
  everywhere), as on a real cluster.
- One Ray head (2 CPUs) serves the whole session: tests pass its address to the CLI.
- ``engine``: the oracle tests of regcore run once per engine (``REGCORE_ENGINE``, which the
  estimators' ``engine="auto"`` follows); on the compiled one, every network small enough for
  a fused kernel trains with it (``REGCORE_FUSED=always``). Elsewhere the compiled engine keeps
  its generic kernels (``never``), so that no test depends on what earlier ones compiled.
"""

import os
import secrets
import signal

os.environ.setdefault("SCIPY_ARRAY_API", "1")
os.environ["RAY_AUTH_MODE"] = "token"
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ.pop("RAY_ADDRESS", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)
# MLflow servers start their GenAI job runners (four processes) unless told not to: sweeps use
# none of them, and on two cores they slow every server the tests start
os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
os.environ.setdefault("REGCORE_FUSED", "never")

import pytest

from tests.helpers import RayNode, free_port


@pytest.fixture(params=["numpy", "compiled"])
def engine(request, monkeypatch):
    """Every estimator of the test trains on this engine."""
    monkeypatch.setenv("REGCORE_ENGINE", request.param)
    if request.param == "compiled":
        monkeypatch.setenv("REGCORE_FUSED", "always")
    return request.param


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """A Ray head node shared by the session (2 CPUs, loopback, token authentication)."""
    folder = tmp_path_factory.mktemp("ray-head")
    node = RayNode(folder / "head.log", head=True, port=free_port(), num_cpus=2)
    yield node
    node.stop(signal.SIGKILL)  # a clean stop drains for 30 s; nothing here needs it
