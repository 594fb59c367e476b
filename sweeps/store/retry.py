"""Store calls that ride out a moment's trouble: SQLite busy or locked by another sweep, a
tracking server answering 429 or 5xx, a connection reset.

The driver's calls (start, resume look-up, finish, refit, report upload) go through a
:class:`RetryingClient`: a transient error is retried with the writer's backoff (1 s, doubling
up to :data:`MAX_BACKOFF`) until :data:`DEADLINE` seconds have passed; anything else is raised at
once. A call that creates something (``create_*``, ``register_model``) is retried only when the
store surely did not act on it (:func:`is_unsent`: busy, refused, asked to slow down): after a
lost answer a retry would make a second run or model version. The child-run writer
(:mod:`sweeps.store.writer`) retries on its own, with the raw client (:attr:`RetryingClient.raw`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

MAX_BACKOFF = 10.0
#: how long one call keeps retrying before its error is raised
DEADLINE = 120.0
#: MLflow error codes of a moment's trouble (HTTP 429, 500, 503)
TRANSIENT_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "INTERNAL_ERROR"})
#: how SQLite says another process holds the database
BUSY = ("database is locked", "database is busy", "database table is locked")
#: how a refused connection reads (the request never reached the server)
REFUSED = ("connection refused", "failed to establish a new connection")
#: calls that create something: a retry after a lost answer would create it twice
CREATING = ("create_", "register_model")


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a moment's trouble that a retry may get past (module note)."""
    import requests

    if isinstance(error, ConnectionError | TimeoutError | requests.RequestException):
        return True
    text = str(error).lower()
    if any(word in text for word in BUSY):
        return True
    code = getattr(error, "error_code", None)
    if code in TRANSIENT_CODES:
        return True
    status = getattr(getattr(error, "response", None), "status_code", None)
    return status == 429 or (status is not None and status >= 500)


def is_unsent(error: BaseException) -> bool:
    """Whether ``error`` says the store did not act on the call: SQLite busy (rolled back), a
    refused connection, HTTP 429 or 503."""
    text = str(error).lower()
    if any(word in text for word in BUSY + REFUSED):
        return True
    if getattr(error, "error_code", None) in {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}:
        return True
    status = getattr(getattr(error, "response", None), "status_code", None)
    return status in (429, 503)


def retrying(
    call: Callable[..., T],
    *args: Any,
    deadline: float = DEADLINE,
    sleep: Callable[[float], Any] = time.sleep,
    when: Callable[[BaseException], bool] = is_transient,
    **kwargs: Any,
) -> T:
    """``call(*args, **kwargs)``, retried while it fails in a way ``when`` accepts (by default
    transiently) and time is left."""
    started, delay = time.monotonic(), 1.0
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not when(error) or time.monotonic() - started + delay > deadline:
                raise
            sleep(delay)
            delay = min(2 * delay, MAX_BACKOFF)


class RetryingClient:
    """An ``MlflowClient`` whose every call is :func:`retrying`; ``raw`` is the client itself."""

    def __init__(self, client: Any, deadline: float = DEADLINE) -> None:
        self.raw = client
        self.deadline = deadline

    @property
    def tracking_uri(self) -> str:
        return self.raw.tracking_uri

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.raw, name)
        if not callable(attribute):
            return attribute

        when = is_unsent if name.startswith(CREATING) else is_transient

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            return retrying(attribute, *args, deadline=self.deadline, when=when, **kwargs)

        return call


def raw_client(client: Any) -> Any:
    """The MlflowClient behind a :class:`RetryingClient` (or ``client`` itself)."""
    return getattr(client, "raw", client)
