"""The Ray Tune search algorithm of a sweep with bracketing searches
(:mod:`sweeps.analysis.bracket`).

Tune drives it as any ``Searcher``: it proposes trials, each a pack of trainings (the grid's
packs first, then one strength of a searched curve with all its seeds and folds), learns each
curve's results as they arrive, and proposes a curve's next round as soon as its round is
complete, so several trials stay in flight across curves and rounds. Tune's retries, actor reuse
and the driver-side MLflow writer work as for a grid.

Resume: the search starts from what the tracking store holds (the selection metric of every
complete training, by key) and replays each curve's rounds; a round is a pure function of the
rounds before it, so it asks for the same strengths again, and only trainings whose keys are not
complete are trained.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

import numpy as np

from sweeps.analysis.bracket import Bracket, Evaluation
from sweeps.analysis.curves import cv_stats
from sweeps.config.points import CurveSpec, TrainingPoint
from sweeps.config.schema import SweepConfig
from sweeps.execution.trial import TrialInput, grid_inputs
from sweeps.store.point_result import POINTS

#: what the search needs of a complete training: its selection metric and its weight (n_dev)
Outcome = tuple[float, float]


class CurveSearch:
    """One searched curve: its bracket, the round in flight and what its trainings gave."""

    def __init__(self, spec: CurveSpec, config: SweepConfig) -> None:
        self.spec, self.config = spec, config
        low, high = spec.search_range()
        search = spec.search
        self.bracket = Bracket(low, high, search.tol, search.budget, search.start)
        self.round: list[float] = []  # strengths of the round in flight
        self.rounds = 0

    def trainings(self, strength: float) -> list[TrainingPoint]:
        """The trainings (folds, seeds) of one strength of this curve."""
        return self.spec.trainings(self.config, strength)

    def start(self, known: dict[str, Outcome]) -> list[list[TrainingPoint]]:
        """Replay the rounds ``known`` completes; return the packs still to train."""
        self.round = self.bracket.first_round()
        self.rounds = 1
        return self.advance(known)

    def advance(self, known: dict[str, Outcome]) -> list[list[TrainingPoint]]:
        """Record the round in flight if ``known`` completes it, propose the next (and so on);
        the packs to train for the round now in flight (empty: wait, or done)."""
        while self.round:
            missing = [
                [p for p in self.trainings(s) if p.key not in known]
                for s in self.round
                if any(p.key not in known for p in self.trainings(s))
            ]
            if missing:
                return missing
            for strength in self.round:
                outcomes = [known[p.key] for p in self.trainings(strength)]
                self.bracket.record(strength, _evaluation(outcomes))
            self.round = self.bracket.next_round()
            self.rounds += bool(self.round)
        return []

    @property
    def done(self) -> bool:
        return not self.round


def _evaluation(outcomes: list[Outcome]) -> Evaluation:
    """cv.glmnet's mean and SE over a strength's trainings; a strength where any training gave
    no finite value (it diverged, or failed for good) is infinitely bad, as the curves' rule
    has it (:func:`sweeps.analysis.curves.selection_means`)."""
    if not all(math.isfinite(v) for v, _ in outcomes):
        return Evaluation(math.inf, math.nan)
    values, weights = zip(*outcomes, strict=True)
    mean, se = cv_stats(np.array(values), np.array(weights, dtype=float))
    return Evaluation(mean, se)


def _searcher_base() -> type:
    from ray.tune.search import Searcher

    return Searcher


class SweepSearcher(_searcher_base()):
    """Proposes a sweep's trials: grid packs, then searched curves round by round.

    Parameters
    ----------
    config : SweepConfig
    grid_packs : list of list of TrainingPoint
        The packs of the grid's trainings still to train.
    curves : list of CurveSpec
        The searched curves.
    known : dict of key to (value, weight)
        Complete trainings already in the tracking store (resume).
    sizes : dict of (repeat, fold) to (n_train, n_dev)
        Each fold's sizes (the dev size weighs a training's value).
    added : callable
        Told how many trainings each new round adds (the progress line's total grows).
    """

    def __init__(
        self,
        config: SweepConfig,
        grid_packs: list[list[TrainingPoint]],
        curves: list[CurveSpec],
        known: dict[str, Outcome],
        sizes: dict[tuple, tuple[int, int]],
        added: Callable[[int], None] = lambda count: None,
    ) -> None:
        super().__init__(metric=None, mode=None)
        self.config, self.sizes, self._added = config, sizes, added
        self.known = dict(known)
        # each trial to propose, with the index of the searched curve it belongs to (None: the
        # grid's)
        self.queue: collections.deque[tuple[int | None, TrialInput]] = collections.deque(
            (None, trial) for trial in grid_inputs(grid_packs)
        )
        self.searches = [CurveSearch(spec, config) for spec in curves]
        self.in_flight: dict[str, tuple[int | None, list[TrainingPoint]]] = {}
        # trials that failed, until the callback says how (Tune tells the searcher first)
        self.failed: dict[str, tuple[int | None, list[TrainingPoint]]] = {}
        # the progress line counts the first rounds already; a resumed search may stand in a
        # later round, whose trainings it has not counted yet
        first = {p.key for s in self.searches for st in s.spec.initial() for p in s.trainings(st)}
        for index, search in enumerate(self.searches):
            self._enqueue(index, search.start(self.known), counted=first)

    def __getstate__(self) -> dict:
        # Tune pickles its search algorithm with the experiment's state; the progress hook
        # stays behind (MLflow, not Tune's state, is what a resume reads)
        state = dict(self.__dict__)
        state["_added"] = None
        return state

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: a resumed search starts from the tracking store (module note)."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore (see :meth:`save`)."""

    def _enqueue(
        self, index: int, packs: list[list[TrainingPoint]], counted: set[str] | None = None
    ) -> None:
        """Queue curve ``index``'s packs (what is queued or in flight already, once); tell the
        progress line of the trainings not in ``counted``."""
        waiting = {p.key for _, (_, pack) in self.in_flight.items() for p in pack}
        waiting |= {key for _, trial in self.queue for key in trial.keys}
        for pack in packs:
            pack = [p for p in pack if p.key not in waiting]
            if pack:
                label = f"{self.searches[index].spec.name} {pack[0].strength:.4g}"
                self.queue.append((index, TrialInput(label, tuple(pack))))
                new = sum(p.key not in (counted or ()) for p in pack)
                if new and self._added:
                    self._added(new)

    def trial_failed(
        self, trial_id: str, label: str, points: list[TrainingPoint], out_of_memory: bool
    ) -> tuple[int, int] | None:
        """A trial failed for good, leaving ``points`` unreported. Out of memory with two points
        or more: they are queued again as two packs of halves, in the same curve, and their
        sizes returned. Otherwise its trainings count as infinitely bad, its curve's search
        goes on, and None is returned."""
        index, pack = self.failed.pop(trial_id, (None, []))
        if out_of_memory and len(points) >= 2:
            half = len(points) // 2
            for suffix, part in (("b", points[half:]), ("a", points[:half])):
                self.queue.appendleft((index, TrialInput(f"{label}{suffix}", tuple(part))))
            return half, len(points) - half
        for point in [*pack, *points]:
            self.known.setdefault(point.key, (math.inf, 1.0))
        if index is not None:
            self._enqueue(index, self.searches[index].advance(self.known))
        return None

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.queue:
            index, trial = self.queue.popleft()
            self.in_flight[trial_id] = (index, list(trial.points))
            return trial.config()
        if not self.in_flight and all(search.done for search in self.searches):
            return self.FINISHED
        return None  # a round in flight: ask again when its results are in

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        select = self.config.select
        for item in result.get(POINTS, []):
            point = next(
                (p for p in self.in_flight.get(trial_id, (None, []))[1] if p.key == item.key),
                None,
            )
            if point is None:
                continue
            value = math.inf if item.diverged else item.final.get(select, math.inf)
            self.known[item.key] = (value, self.sizes[(point.repeat, point.fold)][1])

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        index, pack = self.in_flight.pop(trial_id, (None, []))
        if error:  # what follows waits for the callback's word (trial_failed): retried or not
            self.failed[trial_id] = (index, pack)
            return
        if index is not None:
            self._enqueue(index, self.searches[index].advance(self.known))

    def brackets(self) -> dict[str, dict]:
        """Each searched curve's final brackets
        (:meth:`sweeps.analysis.bracket.Bracket.intervals`) and how many strengths and rounds it
        took."""
        return {
            search.spec.name: {
                **search.bracket.intervals(),
                "strengths": len(search.bracket.results),
                "rounds": search.rounds,
                "done": search.done,
            }
            for search in self.searches
        }
