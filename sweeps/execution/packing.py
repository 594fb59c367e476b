"""Points into packs: the points of one architecture trained together in one trial
(``regcore.fit_many``), sized by their work and their memory.
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Sequence

from sweeps.config.points import TrainingPoint
from sweeps.config.schema import SweepConfig
from sweeps.settings import curve_name

#: points per trial, at most, in a sweep of few points (a pack is the unit of scheduling)
MAX_PACK = 32
#: a sweep of many points gets at most this many trials per slot: larger packs, since Ray Tune
#: spends tens of milliseconds on each trial
WAVES = 4
#: keep what one trial's models hold under this many bytes (:func:`model_bytes`), unless
#: ``execution.trial_memory_mb`` says otherwise
PACK_MEMORY_BUDGET = 512 * 2**20
#: elementwise work per hidden activation, in matrix multiply-adds (fitted to bench/ timings)
ACTIVATION_COST = 50


def model_bytes(config: SweepConfig, point: TrainingPoint, n_train: int, n_features: int) -> int:
    """The memory one model of a pack holds while it trains: per sample and unit of the batch
    its activations (z, a, their gradients, dropout masks, scratch), and per parameter the
    weights, their gradients, two optimizer moments and two scratch copies."""
    batch = config.model.batch_size or n_train
    sizes = [n_features, *[point.width] * point.depth, MAX_OUTPUTS]
    units = sum(sizes[1:])
    parameters = sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(sizes))
    itemsize = 4 if config.model.dtype == "float32" else 8
    return (6 * units * batch + 6 * parameters) * itemsize


#: the output units a model's memory is planned for (softmax over up to this many classes; more
#: classes than this are rare enough to be covered by halving a pack that does not fit)
MAX_OUTPUTS = 10


def point_cost(config: SweepConfig, point: TrainingPoint, n_features: int, n_train: int) -> float:
    """Estimated training work of one point: per sample and epoch, the multiply-adds of the
    forward and backward products plus :data:`ACTIVATION_COST` per hidden activation."""
    sizes = [n_features, *[point.width] * point.depth, 1]
    products = sum(
        fan_out * (fan_in + 1) * 2 + (fan_out * fan_in if layer else 0)
        for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes))
    )
    return config.model.epochs * n_train * (products + ACTIVATION_COST * point.width * point.depth)


def plan_packs(
    config: SweepConfig,
    points: Sequence[TrainingPoint],
    slots: int,
    n_train: int,
    n_features: int,
) -> list[list[TrainingPoint]]:
    """Group points that share an architecture into packs, one trial each, longest first.

    ``execution.pack_size: auto``: each architecture is cut into packs of at most
    :data:`MAX_PACK` points, or of an even share of :data:`WAVES` trials per slot when that is
    more (and within ``execution.trial_memory_mb``, else :data:`PACK_MEMORY_BUDGET` bytes); then
    the most expensive pack
    is halved while it alone would take longer than an even share of all the work per slot.
    An integer ``pack_size`` fixes the size (1 = one point per trial).

    ``execution.order: coarse_to_fine`` (the default) puts each architecture's strengths in
    the packs coarse to fine (:func:`coarse_to_fine`) and returns the packs in rounds: every
    architecture's coarsest pack, then every architecture's next one, and so on, the costliest
    first within a round. The first packs to finish span the range of every curve of every
    depth, so the curves' shapes (and lambda.min) show early, while each round still starts
    its longest packs first. ``grid`` keeps the grid's order (neighbouring strengths together)
    and returns the packs in decreasing estimated cost, longest first, so that the slots finish
    together.
    """
    groups: dict[tuple[int, int], list[TrainingPoint]] = {}
    for point in points:
        groups.setdefault((point.depth, point.width), []).append(point)
    if config.execution.order == "coarse_to_fine":
        groups = {key: coarse_to_fine(group) for key, group in groups.items()}
    setting = config.execution.pack_size
    unit = {key: point_cost(config, group[0], n_features, n_train) for key, group in groups.items()}
    packs: list[list[TrainingPoint]] = []
    most = max(MAX_PACK, math.ceil(len(points) / (max(1, slots) * WAVES)))
    megabytes = config.execution.trial_memory_mb
    budget = PACK_MEMORY_BUDGET if megabytes is None else megabytes * 2**20
    for group in groups.values():
        if setting == "auto":
            memory_cap = budget // model_bytes(config, group[0], n_train, n_features)
            size = max(1, min(most, memory_cap))
        else:
            size = setting
        packs += _split(group, math.ceil(len(group) / size))
    if setting == "auto" and packs:
        share = sum(unit[(p.depth, p.width)] for p in points) / max(1, slots)

        def cost(pack: list[TrainingPoint]) -> float:
            return len(pack) * unit[(pack[0].depth, pack[0].width)]

        while True:
            largest = max(packs, key=cost)
            if len(largest) < 2 or cost(largest) <= share:
                break
            packs.remove(largest)
            packs += _split(largest, 2)

    def cost_first(pack: list[TrainingPoint]) -> float:
        return -len(pack) * unit[(pack[0].depth, pack[0].width)]

    if config.execution.order != "coarse_to_fine":
        return sorted(packs, key=cost_first)
    rounds = _rounds(packs, groups)
    return sorted(packs, key=lambda pack: (rounds[id(pack)], cost_first(pack)))


def _rounds(
    packs: list[list[TrainingPoint]], groups: dict[tuple[int, int], list[TrainingPoint]]
) -> dict[int, int]:
    """Each pack's round (by ``id``): 0 for the coarsest pack of its architecture (the one
    whose first point comes first in the group's coarse-to-fine order), 1 for the next, ..."""
    position = {id(point): index for group in groups.values() for index, point in enumerate(group)}
    by_architecture: dict[tuple[int, int], list[list[TrainingPoint]]] = {}
    for pack in packs:
        by_architecture.setdefault((pack[0].depth, pack[0].width), []).append(pack)
    rounds = {}
    for mates in by_architecture.values():
        for index, pack in enumerate(sorted(mates, key=lambda pack: position[id(pack[0])])):
            rounds[id(pack)] = index
    return rounds


def _split(group: list[TrainingPoint], parts: int) -> list[list[TrainingPoint]]:
    """``group`` cut into ``parts`` consecutive packs whose sizes differ by at most one."""
    base, extra = divmod(len(group), parts)
    packs, start = [], 0
    for index in range(parts):
        stop = start + base + (index < extra)
        packs.append(group[start:stop])
        start = stop
    return packs


def coarse_to_fine(points: Sequence[TrainingPoint]) -> list[TrainingPoint]:
    """``points`` reordered so that every curve's strengths come coarse to fine: both ends,
    the middle, the quarters, and so on (:func:`coarse_order`), the curves taking turns; the
    trainings of one strength (seeds, folds) stay together, so a pack that finishes completes
    its strengths."""
    strengths: dict[str, list[float]] = {}
    for point in points:
        curve = _curve_of(point)
        if point.strength not in strengths.setdefault(curve, []):
            strengths[curve].append(point.strength)
    rank: dict[tuple[str, float], int] = {}
    for curve, values in strengths.items():
        ordered = sorted(values)
        for position, index in enumerate(coarse_order(len(ordered))):
            rank[(curve, ordered[index])] = position
    curves = list(strengths)
    return sorted(
        points,
        key=lambda p: (rank[(_curve_of(p), p.strength)], curves.index(_curve_of(p))),
    )


def coarse_order(n: int) -> list[int]:
    """The indices ``0..n-1`` coarse to fine: 0 and n-1, then the midpoints of the intervals
    between chosen ones, breadth first (``coarse_order(9)`` = 0, 8, 4, 2, 6, 1, 3, 5, 7)."""
    if n <= 2:
        return list(range(n))
    order, seen = [0, n - 1], {0, n - 1}
    intervals = collections.deque([(0, n - 1)])
    while intervals:
        low, high = intervals.popleft()
        if high - low < 2:
            continue
        middle = (low + high) // 2
        if middle not in seen:
            seen.add(middle)
            order.append(middle)
        intervals += [(low, middle), (middle, high)]
    return order


def _curve_of(point: TrainingPoint) -> str:
    return curve_name(point.penalty, point.depth, point.width, point.l1_ratio)
