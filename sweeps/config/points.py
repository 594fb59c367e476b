"""The trainings a config asks for: one per point of the search space, seed and fold.

A point's key is deterministic (the same training gets the same key in every run), so a resumed
sweep or a retried trial finds its run instead of adding a second.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from sweeps.config.schema import BracketSearch, SweepConfig, digest, grid_values
from sweeps.settings import PENALTY_NAMES, curve_name, strength


@dataclass(frozen=True)
class TrainingPoint:
    """One training of a sweep: the point in the search space, its seed and its fold.

    ``fold`` and ``repeat`` number the cross-validation fold it trains on (both None on a
    single train/dev split).
    """

    penalty: str
    lam: float
    l1_ratio: float
    keep_prob: float
    depth: int
    width: int
    seed: int
    key: str
    fold: int | None = None
    repeat: int | None = None

    @property
    def strength(self) -> float:
        """Regularization strength on the report's x axis (:func:`sweeps.settings.strength`)."""
        return strength(self.penalty, self.lam, self.keep_prob)

    @property
    def run_name(self) -> str:
        if self.penalty == "dropout":
            knob = f"keep_prob={self.keep_prob:g}"
        elif self.penalty == "none":
            knob = "lam=0"
        elif self.penalty == "elasticnet":
            knob = f"lam={self.lam:g},r={self.l1_ratio:g}"
        else:
            knob = f"lam={self.lam:g}"
        name = f"{self.penalty} {knob} depth={self.depth} width={self.width} seed={self.seed}"
        if self.fold is not None:
            name += f" fold={self.fold}" + (f" repeat={self.repeat}" if self.repeat else "")
        return name

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rounded_strength(x: float) -> float:
    """The strength at ``x = log10(strength)``, rounded to 12 significant digits (so that the
    same proposal gives the same key, the same param and the same run name everywhere)."""
    return float(f"{10.0**x:.12g}")


def log_grid(low: float, high: float, count: int) -> list[float]:
    """``count`` (>= 2) strengths from ``low`` to ``high``, evenly spaced in log strength."""
    lo, hi = math.log10(low), math.log10(high)
    return [rounded_strength(lo + (hi - lo) * i / (count - 1)) for i in range(count)]


def point_key(config: SweepConfig, fields: dict[str, Any]) -> str:
    """Deterministic key of a training: the same training gets the same key in every run
    (``fold`` and ``repeat`` count only where they are set, so a single split's keys do not
    mention them)."""
    fields = {k: v for k, v in fields.items() if not (k in ("fold", "repeat") and v is None)}
    return digest(
        {
            "dataset": config.dataset.identity(),
            "model": config.model.model_dump(mode="json"),
            "point": fields,
        }
    )


@dataclass(frozen=True)
class CurveSpec:
    """One curve of a sweep as its config asks for it: the points that differ only in strength
    (and seed and fold). ``strengths`` are a grid's (``lam``, or ``1 - keep_prob`` for dropout;
    ``(0,)`` for ``none``); a bracketing search has ``search`` instead (its first round is
    :meth:`initial`)."""

    penalty: str
    depth: int
    width: int
    l1_ratio: float
    strengths: tuple[float, ...] = ()
    search: BracketSearch | None = None

    @property
    def name(self) -> str:
        """The curve's name (:func:`sweeps.settings.curve_name`)."""
        return curve_name(self.penalty, self.depth, self.width, self.l1_ratio)

    def search_range(self) -> tuple[float, float]:
        """The strengths a bracketing search starts between (``1 - keep_prob`` for dropout)."""
        low, high = self.search.bracket
        if self.penalty == "dropout":
            low, high = 1.0 - high, 1.0 - low
        return low, high

    def initial(self) -> list[float]:
        """The strengths trained before any result: the grid, or the search's first round
        (``start`` strengths evenly spaced in log strength over :meth:`search_range`)."""
        if self.search is None:
            return list(self.strengths)
        low, high = self.search_range()
        return log_grid(low, high, max(2, min(self.search.start, self.search.budget)))

    def trainings(self, config: SweepConfig, strength: float) -> list[TrainingPoint]:
        """The trainings of one strength: one per seed and cross-validation fold."""
        dropout = self.penalty == "dropout"
        knob = dict(
            penalty=self.penalty,
            lam=0.0 if dropout else strength,
            l1_ratio=self.l1_ratio,
            # 12 significant digits: 1 - (1 - 0.7) is 0.7 again, not 0.7000000000000001
            keep_prob=float(f"{1.0 - strength:.12g}") if dropout else 1.0,
            depth=self.depth,
            width=self.width,
        )
        out = []
        for seed in config.search.seeds:
            for repeat, fold in config.dataset.split.folds:
                fields = dict(knob, seed=seed, fold=fold, repeat=repeat)
                out.append(TrainingPoint(**fields, key=point_key(config, fields)))
        return out


def curve_specs(config: SweepConfig) -> list[CurveSpec]:
    """The curves of a sweep, in a stable order (depth, width, penalty, l1_ratio).

    ``l1_ratio`` is the share of L1 in the penalty (0 for l2, 1 for l1); ``none`` is a curve of
    one strength, 0. Depth 0 (logistic regression) has no hidden layer and takes width 0.
    """
    search = config.search
    widths = search.widths or [config.model.width]
    kinds: list[tuple[str, float, Any]] = []  # penalty, l1_ratio, grid or search
    for penalty in PENALTY_NAMES:
        grid = getattr(search.penalties, penalty)
        if grid is None:
            continue
        if penalty == "none":
            kinds.append(("none", 0.0, (0.0,)))
        elif penalty == "dropout":
            values = grid.keep_prob
            if isinstance(values, BracketSearch):
                kinds.append(("dropout", 0.0, values))
            else:
                kinds.append(
                    ("dropout", 0.0, tuple(1.0 - kp for kp in sorted(set(values), reverse=True)))
                )
        else:
            ratios = (
                sorted(set(grid.l1_ratio))
                if penalty == "elasticnet"
                else [1.0 if penalty == "l1" else 0.0]
            )
            for ratio in ratios:
                if isinstance(grid.lam, BracketSearch):
                    kinds.append((penalty, ratio, grid.lam))
                else:
                    kinds.append((penalty, ratio, tuple(sorted(set(grid_values(grid.lam))))))
    specs = []
    for depth in sorted(search.depths):
        for width in [0] if depth == 0 else sorted(widths):
            for penalty, ratio, grid in kinds:
                searched = isinstance(grid, BracketSearch)
                specs.append(
                    CurveSpec(
                        penalty,
                        depth,
                        width,
                        ratio,
                        () if searched else grid,
                        grid if searched else None,
                    )
                )
    return specs


def expand(config: SweepConfig) -> list[TrainingPoint]:
    """All trainings a sweep starts with, in a stable order (depth, width, penalty, strength,
    seed, repeat, fold): one per point, seed and cross-validation fold. A grid's curves are all
    here; a bracketing search's curves only with their first round (the search proposes the
    rest as results arrive: :mod:`sweeps.execution.searcher`).

    ``none`` and ``dropout`` points have ``lam = 0``; points without dropout have
    ``keep_prob = 1``; ``l1_ratio`` is the share of L1 in the penalty (0 for l2, 1 for l1).
    """
    return [
        point
        for spec in curve_specs(config)
        for strength in spec.initial()
        for point in spec.trainings(config, strength)
    ]


def searched(config: SweepConfig) -> bool:
    """Whether a sweep has a bracketing search (its trainings are not all known upfront)."""
    return any(spec.search is not None for spec in curve_specs(config))
