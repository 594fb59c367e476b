"""Progress of a running sweep on stderr: points done / total, failures, elapsed time and ETA."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """One status line, rewritten in place on a terminal, printed every few seconds otherwise."""

    def __init__(
        self, name: str, total: int, already: int = 0, stream: TextIO | None = None
    ) -> None:
        self.name, self.total = name, total
        self.already = already  # done before this run (resume)
        self.done = 0
        self.failed = 0
        self.diverged = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last_print = 0.0
        self._lock = threading.Lock()

    def line(self) -> str:
        finished = self.already + self.done + self.failed
        elapsed = time.monotonic() - self.started
        eta = "--"
        if self.done + self.failed:
            rate = (self.done + self.failed) / elapsed
            eta = _clock((self.total - finished) / rate) if rate > 0 else "--"
        extra = []
        if self.diverged:
            extra.append(f"{self.diverged} diverged")
        if self.failed:
            extra.append(f"{self.failed} failed")
        tail = f" ({', '.join(extra)})" if extra else ""
        return (
            f"[{self.name}] {finished}/{self.total} points{tail}, "
            f"{_clock(elapsed)} elapsed, ETA {eta}"
        )

    def point_done(self, *, diverged: bool = False) -> None:
        with self._lock:
            self.done += 1
            self.diverged += diverged
            self._show()

    def point_failed(self, count: int = 1) -> None:
        with self._lock:
            self.failed += count
            self._show()

    def note(self, message: str) -> None:
        """A message on its own line (keeps the status line intact on a terminal)."""
        with self._lock:
            prefix = "\r\033[K" if self.tty else ""
            print(f"{prefix}{message}", file=self.stream, flush=True)

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        finished = self.already + self.done + self.failed >= self.total
        if self.tty:
            end = "\n" if finished else ""
            print(f"\r\033[K{self.line()}", end=end, file=self.stream, flush=True)
        elif force or finished or now - self._last_print >= 5.0:
            print(self.line(), file=self.stream, flush=True)
            self._last_print = now

    def start(self) -> None:
        with self._lock:
            self._show(force=True)
