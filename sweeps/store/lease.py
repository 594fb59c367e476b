"""One driver per sweep: a lease on the parent run.

A running driver holds the tag ``regsweep.lease`` on its sweep's parent run: its host, its pid,
a token of its own and when it last refreshed it (every :data:`REFRESHES` th of the lease's
length, on a thread of its own). ``--resume`` of a sweep whose lease is fresher than the lease's
length (``REGSWEEP_LEASE_SECONDS``, default 30) is refused, naming the host, the pid and the
lease's age: a second driver would delete runs the first is still writing. ``--resume --force``
takes the lease over, and the driver that held it stops within a refresh (it writes nothing more
and leaves the parent run to the new driver); a driver that stopped (killed, or its machine
gone) stops refreshing, and its lease is free once it is older than the lease's length. A lease
whose driver ran on this machine and whose process is gone is free at once (a driver killed, or
stopped by a second Ctrl-C, is resumed without waiting). A sweep that ends releases it.

Ages are measured with each machine's clock: drivers on machines whose clocks differ by more
than a fraction of the lease's length should use a longer lease.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sweeps.errors import UsageError
from sweeps.store import layout
from sweeps.store.retry import raw_client, retrying

#: refreshes per lease length
REFRESHES = 6


@dataclass(frozen=True)
class Lease:
    """Who drives a sweep, and when they last said so (seconds since the epoch)."""

    host: str
    pid: int
    token: str
    at: float

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.at

    def text(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def read(cls, tags: dict[str, str]) -> Lease | None:
        """The lease among a parent run's tags, if any."""
        text = tags.get(layout.LEASE_TAG)
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError):  # not a lease: nobody holds it
            return None


def is_gone(lease: Lease) -> bool:
    """Whether the lease's driver ran on this machine and its process no longer exists (a
    process of another user with that pid counts as the driver: the safe side)."""
    if lease.host != socket.gethostname():
        return False
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def check_free(parent: Any, seconds: float, force: bool) -> None:
    """Refuse to resume a sweep whose lease is fresh (unless ``force``, or its driver's process
    on this machine is gone): a UsageError naming its holder and the lease's age."""
    lease = Lease.read(parent.data.tags)
    if lease is None or force or is_gone(lease):
        return
    age = lease.age()
    if age < seconds:
        raise UsageError(
            f"--resume: sweep {parent.data.tags.get(layout.SWEEP_TAG, '')!r} is running: its "
            f"driver (host {lease.host}, pid {lease.pid}) renewed its lease {max(age, 0.0):.0f}s "
            f"ago; wait for it, stop it, or take over with --resume --force (a lease is free "
            f"{seconds:g}s after its driver stops)"
        )


class LeaseKeeper:
    """Holds a sweep's lease while its driver runs: written at once, refreshed on a thread,
    released by :meth:`release`."""

    def __init__(self, client: Any, run_id: str, seconds: float) -> None:
        # the client's own calls, unretried: a refresh that fails waits for the next one, and a
        # release that fails (the store gone) must not hold the driver's exit for minutes
        self.client, self.run_id, self.seconds = raw_client(client), run_id, seconds
        self.token = uuid.uuid4().hex
        self.lost_to: Lease | None = None  # a driver that took the lease over (--force)
        self._stop = threading.Event()
        retrying(self._write)
        self._thread = threading.Thread(target=self._loop, name="sweep-lease", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        lease = Lease(socket.gethostname(), os.getpid(), self.token, time.time())
        self.client.set_tag(self.run_id, layout.LEASE_TAG, lease.text())

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds / REFRESHES):
            try:
                held = Lease.read(self.client.get_run(self.run_id).data.tags)
                if held is not None and held.token != self.token:
                    self.lost_to = held
                    return  # taken over: the new driver holds it now
                self._write()
            except Exception:  # a moment's trouble with the store: the next refresh tries again
                continue

    def lost(self) -> str | None:
        """Who took the sweep over (``--resume --force`` elsewhere), in words; None if nobody."""
        if self.lost_to is None:
            return None
        return f"host {self.lost_to.host}, pid {self.lost_to.pid}"

    def release(self) -> None:
        """Stop refreshing and free the lease, if it is still this driver's."""
        self._stop.set()
        self._thread.join(timeout=self.seconds)
        # an unreachable store: the lease expires by itself
        with contextlib.suppress(Exception):
            held = Lease.read(self.client.get_run(self.run_id).data.tags)
            if held is not None and held.token == self.token:
                self.client.delete_tag(self.run_id, layout.LEASE_TAG)
