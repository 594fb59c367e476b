"""Results waiting for the MLflow writer: in memory up to a bound, on disk beyond it.

During a long tracking outage a sweep keeps producing results; holding them all in the driver's
memory would grow it without limit. The backlog keeps at most ``memory_limit`` bytes of records
in memory (``REGSWEEP_WRITER_MEMORY_MB``, default 256 MB) and appends the rest to a spill file
in ``REGSWEEP_SPILL_DIR`` (default: the driver's temporary folder), read back in order as the
writers catch up. The file is the driver's own and lives only while it runs, so records are
pickled (nothing from elsewhere is ever unpickled); a full disk there is :class:`DiskFull`.
"""

from __future__ import annotations

import collections
import os
import pickle
import tempfile
import threading
from typing import Any

from sweeps.errors import DiskFull
from sweeps.options import MEMORY_MB


def record_bytes(record: Any) -> int:
    """A record's approximate size in memory: its result's arrays and weights, plus overhead."""
    result = getattr(record, "result", None)
    if result is None:
        return 1024
    return len(result.weights) + result.rows.nbytes + 4096


def write_all(descriptor: int, data: bytes, offset: int) -> None:
    """``data`` at ``offset``, all of it: a short write (a signal, a nearly full disk) goes on
    where it stopped; no progress at all is an OSError (ENOSPC)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(descriptor, view, offset)
        if written <= 0:
            import errno

            raise OSError(errno.ENOSPC, "no space left on device (nothing written)")
        view, offset = view[written:], offset + written


class Backlog:
    """A thread-safe first-in, first-out queue that spills to disk beyond ``memory_limit``."""

    def __init__(self, memory_limit: float = MEMORY_MB * 2**20, folder: str | None = None) -> None:
        self.memory_limit = memory_limit
        self.spill_dir = folder  # where the spill file goes (None: the temporary folder)
        self._memory: collections.deque[tuple[Any, int]] = collections.deque()
        self._spilled: collections.deque[tuple[int, int]] = collections.deque()  # offset, size
        self._bytes = 0
        self._condition = threading.Condition()
        self._folder: tempfile.TemporaryDirectory | None = None
        self._file = None
        self._end = 0  # where the next spilled record goes
        self.spilled_total = 0  # records that went to disk, over the backlog's life
        self.peak_bytes = 0

    def __len__(self) -> int:
        with self._condition:
            return len(self._memory) + len(self._spilled)

    @property
    def spill_path(self) -> str | None:
        """The spill file, once anything went to disk."""
        return None if self._file is None else self._file.name

    def put(self, record: Any) -> None:
        """Append ``record``: in memory while the bound allows and nothing waits on disk, else
        at the end of the spill file."""
        size = record_bytes(record)
        with self._condition:
            if not self._spilled and self._bytes + size <= self.memory_limit:
                self._memory.append((record, size))
                self._bytes += size
                self.peak_bytes = max(self.peak_bytes, self._bytes)
            else:  # on disk, behind what is there already: order is kept
                data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
                try:
                    handle = self._spill_file()
                    write_all(handle.fileno(), data, self._end)
                except OSError as error:  # nothing recorded: the record was not taken
                    folder = self._folder.name if self._folder else self.spill_dir
                    folder = folder or tempfile.gettempdir()
                    raise DiskFull(folder, f"spilling a result: {error}") from error
                self._spilled.append((self._end, len(data)))
                self._end += len(data)
                self.spilled_total += 1
            self._condition.notify()

    def get(self, timeout: float | None = None) -> Any | None:
        """The oldest record, waiting up to ``timeout`` seconds for one; None if none came."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._memory or self._spilled, timeout):
                return None
            if self._memory:
                record, size = self._memory.popleft()
                self._bytes -= size
                self._refill()
                return record
            offset, size = self._spilled.popleft()
            record = pickle.loads(os.pread(self._file.fileno(), size, offset))
            if not self._spilled:
                self._file.truncate(0)
                self._end = 0
            return record

    def _refill(self) -> None:
        """Move spilled records back to memory while they fit (called with the lock held)."""
        while self._spilled and self._bytes < self.memory_limit / 2:
            offset, size = self._spilled.popleft()
            record = pickle.loads(os.pread(self._file.fileno(), size, offset))
            size = record_bytes(record)
            self._memory.append((record, size))
            self._bytes += size
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            if not self._spilled:
                self._file.truncate(0)
                self._end = 0

    def _spill_file(self) -> Any:
        if self._file is None:
            self._folder = tempfile.TemporaryDirectory(
                prefix="regsweep-backlog-", dir=self.spill_dir
            )
            self._file = open(os.path.join(self._folder.name, "results.spill"), "w+b")  # noqa: SIM115
        return self._file

    def close(self) -> None:
        """Remove the spill file (what it holds is lost: the writer gave up on it)."""
        with self._condition:
            if self._file is not None:
                self._file.close()
                self._folder.cleanup()
                self._file = self._folder = None
            self._memory.clear()
            self._spilled.clear()
            self._bytes = 0
