"""Bracketing search along log lambda: where to train next, from what a curve has so far.

A grid finds the best strength only to its spacing, and only if it contains it. This search
proposes strengths where the mean dev metric of one curve (over its folds and seeds) bottoms
out, in rounds, on ``x = log10(strength)``:

1. **start**: ``start`` strengths spread evenly from ``low`` to ``high`` (the ends included).
2. **extend**: while the lowest mean sits at the smallest or the largest strength tried, one
   step past that end (the step doubles each time, from the start's spacing), at most
   :data:`MAX_EXTENSION` decades beyond the bracket the config gave.
3. **refine the minimum**: bisect each side of the lowest mean (between it and its neighbour)
   that is wider than ``tol`` decades.
4. **refine lambda.1se**: with ``T`` = the lowest mean + its standard error, the largest strength
   whose mean is within ``T`` and the next one (whose mean is above): bisect between them while
   they are more than ``tol`` apart; extend to the right while every strength right of the
   minimum is within ``T``.

A curve is done when the minimum is bracketed within ``tol`` on both sides, the 1-SE crossing
too (or no more can be learned at the edge), or its ``budget`` of strengths is spent. A round is
a pure function of the results of the rounds before it, whatever order they arrived in: a
resumed search replays the same rounds from what the tracking store holds and asks for the same
strengths again (those already trained are found by their keys, not trained twice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sweeps.analysis.curves import one_se_rule
from sweeps.config.points import log_grid, rounded_strength

#: how far past the bracket's ends an extension may go, in decades
MAX_EXTENSION = 4.0
#: proposals closer than this share of ``tol`` to a strength already tried are dropped
DUPLICATE = 0.25


@dataclass(frozen=True)
class Evaluation:
    """What a curve learned at one strength: the mean of the selection metric over its
    trainings and cv.glmnet's standard error (NaN with a single training)."""

    mean: float
    se: float


@dataclass
class Bracket:
    """The search of one curve.

    Parameters
    ----------
    low, high : float
        The strengths the search starts between (> 0).
    tol : float
        The precision wanted, in decades of strength.
    budget : int
        The most strengths this curve may train.
    start : int
        Strengths of the first round.
    """

    low: float
    high: float
    tol: float = 0.1
    budget: int = 20
    start: int = 5
    results: dict[float, Evaluation] = field(default_factory=dict)  # by log10 strength

    def first_round(self) -> list[float]:
        """The strengths of the first round."""
        return log_grid(self.low, self.high, max(2, min(self.start, self.budget)))

    def record(self, strength: float, evaluation: Evaluation) -> None:
        """What the curve's trainings at ``strength`` gave."""
        self.results[_key(strength)] = evaluation

    def next_round(self) -> list[float]:
        """The strengths to train next (empty: this curve is done). Call with the results of
        every strength proposed so far recorded."""
        xs = sorted(self.results)
        left = self.budget - len(xs)
        if not xs or left <= 0:
            return []
        proposals = self._proposals(xs)
        kept: list[float] = []
        for x in proposals:
            close = [y for y in (*xs, *kept) if abs(y - x) < DUPLICATE * self.tol]
            if not close:
                kept.append(x)
        return [rounded_strength(x) for x in kept[:left]]

    def _rule(self, xs: list[float]) -> tuple[int, int]:
        """lambda.min and lambda.1se among ``xs`` (:func:`sweeps.analysis.curves.one_se_rule`)."""
        evaluations = [self.results[x] for x in xs]
        return one_se_rule([e.mean for e in evaluations], [e.se for e in evaluations])

    def _proposals(self, xs: list[float]) -> list[float]:
        best, within = self._rule(xs)
        lo_edge = math.log10(self.low) - MAX_EXTENSION
        hi_edge = math.log10(self.high) + MAX_EXTENSION
        step = self._start_spacing()
        out: list[float] = []
        # the minimum: extend past an end, or bisect both of its sides
        if best == 0 and len(xs) > 1:
            out += self._extend(xs[0], -1, step, lo_edge)
        elif best == len(xs) - 1 and len(xs) > 1:
            out += self._extend(xs[-1], +1, step, hi_edge)
        else:
            for neighbour in (xs[best - 1], xs[best + 1]):
                if abs(xs[best] - neighbour) > self.tol:
                    out.append((xs[best] + neighbour) / 2)
        # lambda.1se: the crossing of min + SE to the right of the minimum
        if within == len(xs) - 1:
            if best != len(xs) - 1:  # (already extending right for the minimum)
                out += self._extend(xs[-1], +1, step, hi_edge)
        elif xs[within + 1] - xs[within] > self.tol:
            out.append((xs[within] + xs[within + 1]) / 2)
        return out

    def _start_spacing(self) -> float:
        lo, hi = math.log10(self.low), math.log10(self.high)
        return max((hi - lo) / max(1, min(self.start, self.budget) - 1), self.tol)

    def _extend(self, end: float, direction: int, step: float, edge: float) -> list[float]:
        """One step past ``end``: ``step`` doubled for every step already taken past the
        bracket on that side."""
        bound = math.log10(self.low) if direction < 0 else math.log10(self.high)
        beyond = (bound - end) * -direction  # decades already past the bracket (>= 0)
        taken = 0
        while beyond > 1e-9 and taken < 30:
            beyond -= step * 2**taken
            taken += 1
        x = end + direction * step * 2**taken
        if (x < edge) if direction < 0 else (x > edge):
            x = edge
        return [] if abs(x - end) < DUPLICATE * self.tol else [x]

    def intervals(self) -> dict[str, tuple[float, float] | None]:
        """The final brackets: around the minimum (its two neighbours) and around the 1-SE
        crossing (the largest strength within, the next one above), as strengths."""
        xs = sorted(self.results)
        if len(xs) < 2:
            return {"min": None, "one_se": None}
        best, within = self._rule(xs)
        around = (xs[max(best - 1, 0)], xs[min(best + 1, len(xs) - 1)])
        crossing = (xs[within], xs[within + 1]) if within + 1 < len(xs) else None
        return {
            "min": (rounded_strength(around[0]), rounded_strength(around[1])),
            "one_se": None if crossing is None else tuple(rounded_strength(x) for x in crossing),
        }


def _key(strength: float) -> float:
    """Strengths are compared by their log10 rounded to 12 digits (they travel as text)."""
    return round(math.log10(strength), 12)
