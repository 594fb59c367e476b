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
