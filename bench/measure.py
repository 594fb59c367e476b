"""How the benchmarks measure: interleaved timings, their medians and spread, a table row
with its goal, and a watched process's output lines and peak memory."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = dict[str, Any]


# --- measuring --------------------------------------------------------------------------------


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def interleaved(
    baseline: Callable, candidate: Callable, repeats: int, warm: bool = False
) -> dict[str, Any]:
    """Median wall times of both, run alternately (ABAB..., starting order swapped each repeat),
    their ratio ``speedup = baseline / candidate`` and its spread over the repeats.

    ``warm`` runs each once, untimed, first (imports, caches, worker pools).
    """
    if warm:
        baseline()
        candidate()
    times: dict[str, list[float]] = {"baseline": [], "candidate": []}
    for repeat in range(repeats):
        pair = [("baseline", baseline), ("candidate", candidate)]
        for name, function in pair if repeat % 2 == 0 else pair[::-1]:
            times[name].append(timed(function))
    base, cand = statistics.median(times["baseline"]), statistics.median(times["candidate"])
    ratios = [b / c for b, c in zip(times["baseline"], times["candidate"], strict=True)]
    return {
        "baseline_s": base,
        "candidate_s": cand,
        "speedup": base / cand,
        "speedup_min": min(ratios),
        "speedup_max": max(ratios),
        "repeats": repeats,
        "baseline_times": times["baseline"],
        "candidate_times": times["candidate"],
    }


def spread(times: list[float]) -> dict[str, Any]:
    """The median, lowest and highest of repeated timings."""
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "repeats": len(times),
        "times": times,
    }


def goal(of: str, text: str, *, at_least: float | None = None, at_most: float | None = None):
    """A case's goal: the row's number ``of`` at least or at most a bound."""
    bound = {"at_least": at_least} if at_least is not None else {"at_most": at_most}
    return {"of": of, "text": text, **bound}


def goal_met(target: dict[str, Any], result: Row) -> bool:
    value = result[target["of"]]
    return value >= target["at_least"] if "at_least" in target else value <= target["at_most"]


def row(case: str, name: str, kind: str, detail: str, target: dict | None = None, **numbers) -> Row:
    """One row of the table: ``case`` (the ``--only`` name), ``name`` (its label), ``kind`` (how
    it is shown: :data:`FORMATS`), a detail line, the goal if any, and the numbers."""
    result = {"id": case, "case": name, "kind": kind, "detail": detail, "goal": target, **numbers}
    if target is not None:
        result["met"] = goal_met(target, result)
    return result


def with_time_ratio(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` of :func:`interleaved` plus the candidate's time over the baseline's (a cost,
    where the candidate does more work) and its spread."""
    return {
        **result,
        "time_ratio": result["candidate_s"] / result["baseline_s"],
        "time_ratio_min": 1 / result["speedup_max"],
        "time_ratio_max": 1 / result["speedup_min"],
    }


# --- processes watched: output lines in time, memory --------------------------------------------


def _tree_rss_by_pid(root: int) -> dict[int, int]:
    """Resident memory (bytes) of a process and of each of its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    found, stack = {}, [root]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm") as handle:
                found[pid] = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return found


def watched(command: list[str], cwd: str | Path) -> dict[str, Any]:
    """Run ``command`` (stdout and stderr together): its wall time, each output line with the
    seconds since the start at which it arrived, and the peak resident memory of the process
    and of its process tree (sampled every 0.2 s from /proc)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peaks = {"tree": 0, "process": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            tree = _tree_rss_by_pid(process.pid)
            peaks["tree"] = max(peaks["tree"], sum(tree.values()))
            peaks["process"] = max(peaks["process"], tree.get(process.pid, 0))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = [(time.perf_counter() - started, line.rstrip("\n")) for line in process.stdout]
    code = process.wait()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    if code != 0:
        tail = "\n".join(line for _, line in lines[-40:])
        raise RuntimeError(f"{' '.join(command[2:5])} failed ({code}):\n{tail}")
    return {
        "wall_s": seconds,
        "lines": lines,
        "peak_rss_mb": peaks["tree"] / 2**20,
        "driver_peak_rss_mb": peaks["process"] / 2**20,
    }
