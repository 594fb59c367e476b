"""Packs that do not fit in memory train in halves, with the results their points get alone.

The memory limit is real: a child process caps its data segment (``RLIMIT_DATA``) and numpy's
allocations past it raise ``MemoryError``, as they do on a machine out of memory.
"""

import json
import subprocess
import sys

import pytest

from sweeps.config.data import load_data
from sweeps.config.points import expand
from sweeps.config.reading import read_config
from sweeps.execution.packing import model_bytes
from sweeps.execution.trainable import train_pack

CONFIG = {
    "name": "oom",
    "dataset": {"name": "moons", "n_samples": 400},
    "model": {"width": 512, "epochs": 20, "log_every": 10, "engine": "numpy"},
    "search": {
        "depths": [2],
        "seeds": [0, 1],
        "penalties": {"l2": {"lam": [0.001, 0.01, 0.1, 1.0]}},
    },
}
CHILD = """
import json, resource, sys
from sweeps.config.data import load_data
from sweeps.config.points import expand
from sweeps.config.reading import read_config
from sweeps.execution.trainable import train_fitting, train_pack
config, _ = read_config(json.loads(sys.argv[1]))
config, data = load_data(config)
points = expand(config)
train_pack(config, points[:1], data)  # imports and the fold, before the limit
with open("/proc/self/status") as status:
    used = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmData"))
resource.setrlimit(resource.RLIMIT_DATA, (used + 100 * 2**20, resource.RLIM_INFINITY))
packs = []
train_fitting(config, points, data, packs.append)
print(json.dumps([{r.key: r.final["dev_cost"] for r in pack} for pack in packs]))
"""


def test_a_pack_out_of_memory_trains_in_halves_with_the_results_of_its_points_alone():
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(CONFIG)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr
    packs = json.loads(child.stdout.strip().splitlines()[-1])
    assert len(packs) > 1 and sum(len(p) for p in packs) == 8  # halved, every point once
    config, _ = read_config(CONFIG)
    config, data = load_data(config)
    alone = {
        r.key: r.final["dev_cost"] for p in expand(config) for r in train_pack(config, [p], data)
    }
    for pack in packs:
        for key, value in pack.items():
            assert value == pytest.approx(alone[key], rel=1e-8)


def test_the_planner_counts_what_a_model_holds():
    """Per sample and unit six activations, per parameter six copies (weights, gradients, two
    optimizer moments, two scratch), written out here for 2-512-512-(10) in float64."""
    config, _ = read_config(CONFIG)
    point = expand(config)[0]
    units = 512 + 512 + 10
    parameters = (2 + 1) * 512 + (512 + 1) * 512 + (512 + 1) * 10
    assert model_bytes(config, point, 240, 2) == (6 * units * 240 + 6 * parameters) * 8


def test_coarse_order_visits_each_index_once_ends_and_middle_first():
    from sweeps.execution.packing import coarse_order

    for n in range(1, 40):
        order = coarse_order(n)
        assert sorted(order) == list(range(n))
        if n >= 3:
            assert order[:3] == [0, n - 1, (n - 1) // 2]
    # every prefix of 2**k + 1 strengths is an even grid: 0, 8, 4 | 2, 6 | 1, 3, 5, 7
    assert coarse_order(9) == [0, 8, 4, 2, 6, 1, 3, 5, 7]


def test_the_first_pack_spans_every_curve_and_keeps_a_strengths_trainings_together():
    from sweeps.execution.packing import plan_packs

    raw = {
        "name": "order",
        "dataset": {"name": "moons"},
        "search": {
            "depths": [1],
            "seeds": [0, 1],
            "penalties": {"l2": {"lam": {"logspace": [-3, 1, 9]}}, "l1": {"lam": [0.1, 1, 10]}},
        },
        "execution": {"pack_size": 6},
    }
    config, _ = read_config(raw)
    packs = plan_packs(config, expand(config), 2, 180, 2)
    # the two slots' first packs: both ends and the middle of each curve
    first = [p for pack in packs[:2] for p in pack]
    for penalty, expected in (("l2", {1e-3, 0.1, 10.0}), ("l1", {0.1, 1.0, 10.0})):
        strengths = {round(p.strength, 9) for p in first if p.penalty == penalty}
        assert strengths == expected, (penalty, strengths)
    for pack in packs:  # both seeds of a strength in the same pack
        for point in pack:
            mates = [p for p in pack if p.strength == point.strength and p.penalty == point.penalty]
            assert len(mates) == 2
    grid, _ = read_config({**raw, "execution": {"pack_size": 6, "order": "grid"}})
    first = plan_packs(grid, expand(grid), 2, 180, 2)[0]
    # neighbouring strengths together: the three smallest of l2
    assert {round(p.strength, 9) for p in first} == {0.001, 0.003162278, 0.01}


def test_coarse_to_fine_starts_a_pack_of_every_depth_before_a_second_of_any():
    """Three depths of three packs each: coarse to fine, the first round holds one pack per
    depth (deepest, the costliest, first) and each holds both ends of its curve; in grid order
    the deepest depth's three packs come first."""
    from sweeps.execution.packing import plan_packs

    raw = {
        "name": "rounds",
        "dataset": {"name": "moons"},
        "search": {
            "depths": [1, 2, 3],
            "seeds": [0],
            "penalties": {"l2": {"lam": {"logspace": [-3, 1, 9]}}},
        },
        "execution": {"pack_size": 3},
    }
    config, _ = read_config(raw)
    packs = plan_packs(config, expand(config), 2, 180, 2)
    assert [pack[0].depth for pack in packs] == [3, 2, 1] * 3
    for pack in packs[:3]:
        assert {round(p.strength, 9) for p in pack} == {0.001, 0.1, 10.0}
    grid, _ = read_config({**raw, "execution": {"pack_size": 3, "order": "grid"}})
    assert [pack[0].depth for pack in plan_packs(grid, expand(grid), 2, 180, 2)] == [3] * 3 + [
        2
    ] * 3 + [1] * 3


def test_the_planner_keeps_each_pack_within_the_trial_memory_budget():
    """``execution.trial_memory_mb`` caps the packs the planner makes, by its own estimate (a
    trial halves a pack only when the estimate was wrong): room for three and a half models
    makes packs of at most three."""
    from sweeps.execution.packing import plan_packs

    raw = {
        "name": "budget",
        "dataset": {"name": "moons"},
        "model": {"width": 256},
        "search": {
            "depths": [2],
            "seeds": [0],
            "penalties": {"l2": {"lam": [0.01 * k for k in range(1, 17)]}},
        },
    }
    config, _ = read_config(raw)
    points = expand(config)
    one = model_bytes(config, points[0], 1000, 2)
    unbounded = plan_packs(config, points, 1, 1000, 2)
    config, _ = read_config({**raw, "execution": {"trial_memory_mb": int(3.5 * one / 2**20)}})
    bounded = plan_packs(config, points, 1, 1000, 2)
    assert max(len(pack) for pack in unbounded) > 3
    assert max(len(pack) for pack in bounded) == 3
    assert sorted(p.key for pack in bounded for p in pack) == sorted(p.key for p in points)
