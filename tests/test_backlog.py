"""The writer's backlog keeps at most its bound in memory and the rest on disk, in order."""

import threading

import numpy as np

from sweeps.store.backlog import Backlog, record_bytes
from sweeps.store.point_result import PointResult
from sweeps.store.writer import PointRecord


def record(i, size=100_000):
    result = PointResult(
        key=f"k{i}",
        columns=["epoch", "train_cost"],
        rows=np.array([[0.0, 1.0 * i]]),
        final={"train_cost": 1.0 * i},
        diverged=False,
        weights=bytes([i % 256]) * size,
        fit_seconds=0.1,
        finished_ms=i,
    )
    return PointRecord(point=None, result=result)


def test_spills_beyond_the_bound_and_keeps_the_order():
    one = record_bytes(record(0))
    backlog = Backlog(memory_limit=5 * one)
    for i in range(50):
        backlog.put(record(i))
    assert len(backlog) == 50
    assert backlog.spilled_total == 45  # 5 fit in memory
    assert backlog.peak_bytes <= 5 * one
    got = [backlog.get(timeout=1) for _ in range(50)]
    assert [r.result.key for r in got] == [f"k{i}" for i in range(50)]
    assert all(r.result.weights == record(i).result.weights for i, r in enumerate(got))
    assert backlog.get(timeout=0.01) is None
    assert backlog.peak_bytes <= 5 * one  # refilled from disk within the bound
    backlog.close()


def test_many_threads_take_each_record_once():
    backlog = Backlog(memory_limit=3 * record_bytes(record(0, 1000)))
    taken, lock = [], threading.Lock()

    def consume():
        while (item := backlog.get(timeout=0.5)) is not None:
            with lock:
                taken.append(item.result.key)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(200):
        backlog.put(record(i, 1000))
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(f"k{i}" for i in range(200))
    backlog.close()
