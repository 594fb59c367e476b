"""Progress of a running sweep on stderr: points done / total, failures, elapsed time and ETA."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """One status line, rewritten in place on a terminal (or shown by ``live``, e.g. a
    notebook's display handle), printed every few seconds otherwise.

    The ETA is the work left at the pace measured since the first result arrived (start-up
    costs are not a pace), shown once that pace rests on at least two results and 5% of the
    work; until then it reads ``--``.
    """

    def __init__(
        self,
        name: str,
        total: int,
        already: int = 0,
        stream: TextIO | None = None,
        unit: str = "points",
        live: Callable[[str], None] | None = None,
    ) -> None:
        self.name, self.total, self.unit = name, total, unit
        self.already = already  # done before this run (resume)
        self.done = 0
        self.failed = 0
        self.diverged = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.live = live
        self.started = time.monotonic()
        self._first: tuple[float, int] | None = None  # (when, how many) of the first result
        self.curves = RunningMinimum()
        self._last_print = 0.0
        self._lock = threading.Lock()

    def eta(self, now: float | None = None) -> str:
        """The time left, or ``--`` while the pace is not measured yet."""
        if self._first is None:
            return "--"
        now = time.monotonic() if now is None else now
        when, count = self._first
        since = self.done + self.failed - count
        if since < max(2, 0.05 * (self.total - self.already)) or now <= when:
            return "--"
        left = self.total - self.already - self.done - self.failed
        return _clock(left * (now - when) / since)

    def line(self) -> str:
        finished = self.already + self.done + self.failed
        elapsed = time.monotonic() - self.started
        eta = self.eta()
        extra = []
        if self.diverged:
            extra.append(f"{self.diverged} diverged")
        if self.failed:
            extra.append(f"{self.failed} failed")
        tail = f" ({', '.join(extra)})" if extra else ""
        return (
            f"[{self.name}] {finished}/{self.total} {self.unit}{tail}, "
            f"{_clock(elapsed)} elapsed, ETA {eta}{self.curves.text()}"
        )

    def _arrived(self, count: int) -> None:
        # results of one pack arrive together: those within half a second of the first one
        # are all "the first result"
        now = time.monotonic()
        if self._first is None or now - self._first[0] < 0.5:
            when = now if self._first is None else self._first[0]
            self._first = (when, self.done + self.failed + count)

    def add(self, count: int) -> None:
        """More trainings to do (a search's next round)."""
        with self._lock:
            self.total += count

    def point_done(
        self,
        *,
        diverged: bool = False,
        curve: str = "",
        strength: float = 0.0,
        value: float = math.nan,
        weight: float = 1.0,
    ) -> None:
        """A training's result came in (``value``: its selection metric, weighed by ``weight``,
        for the running lambda.min of its ``curve``)."""
        with self._lock:
            self._arrived(1)
            self.done += 1
            self.diverged += diverged
            if curve:
                self.curves.add(curve, strength, math.inf if diverged else value, weight)
            self._show()

    def point_failed(self, count: int = 1) -> None:
        with self._lock:
            self._arrived(count)
            self.failed += count
            self._show()

    def note(self, message: str) -> None:
        """A message on its own line (keeps the status line intact on a terminal)."""
        with self._lock:
            prefix = "\r\033[K" if self.tty else ""
            print(f"{prefix}{message}", file=self.stream, flush=True)

    def _show(self, force: bool = False) -> None:
        if self.live is not None:
            self.live(self.line())
            return
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


class RunningMinimum:
    """Each curve's lambda.min as its results come in: the strength with the lowest weighted
    mean of the selection metric so far, a strength where a training diverged never chosen
    (the curves' rule, :mod:`sweeps.analysis.curves`); shown once a curve has two strengths."""

    SHOWN = 6  # curves on the line, at most

    def __init__(self) -> None:
        # curve -> strength -> [sum of weight * value, sum of weights]
        self._sums: dict[str, dict[float, list[float]]] = {}

    def add(self, curve: str, strength: float, value: float, weight: float) -> None:
        sums = self._sums.setdefault(curve, {}).setdefault(strength, [0.0, 0.0])
        sums[0] += weight * value
        sums[1] += weight

    def minima(self) -> dict[str, float]:
        """lambda.min per curve with at least two strengths in."""
        out = {}
        for curve, by_strength in self._sums.items():
            means = {s: total / weights for s, (total, weights) in by_strength.items() if weights}
            finite = {s: m for s, m in means.items() if math.isfinite(m)}
            if len(means) >= 2 and finite:
                out[curve] = min(finite, key=lambda s: (finite[s], s))
        return out

    def text(self) -> str:
        """``; lambda.min 0.1, 0.0316, 1`` (curves in order of arrival), or nothing yet."""
        minima = self.minima()
        if not minima:
            return ""
        shown = [f"{v:.3g}" for v in list(minima.values())[: self.SHOWN]]
        more = ", ..." if len(minima) > self.SHOWN else ""
        return f"; lambda.min {', '.join(shown)}{more}"
