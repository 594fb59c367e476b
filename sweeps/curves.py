"""Lambda curves: child runs aggregated over seeds, the best strength, lambda.1se and verdicts.

A *curve* is the set of points that differ only in regularization strength (and seed): one per
(penalty, depth, width), and per ``l1_ratio`` for the elastic net. Its x axis is the strength:
``lam``, or ``1 - keep_prob`` for dropout. ``none`` runs have no strength: they are a reference
level for the curves of the same depth and width.

Rules, stated once:

- **best**: the strength with the lowest mean dev cost over seeds.
- **lambda.1se** (glmnet's rule): the largest strength whose mean dev cost is within one standard
  error (of the best point's mean) of the best. With a single seed the standard error is taken as
  0, so lambda.1se is the best strength.
- **high variance** (overfitting): a strength below the best whose mean dev cost is more than one
  SE above the best's and whose generalization gap (dev cost - train loss) is larger than the
  best's gap.
- **high bias** (underfitting): a strength above the best whose mean dev cost is more than one SE
  above the best's and whose train loss is higher than the best's train loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from regcore import metrics

CURVE_KEYS = ["penalty", "depth", "width", "l1_ratio"]


def curve_name(penalty: str, depth: int, width: int, l1_ratio: float) -> str:
    name = f"{penalty} depth={depth}"
    if depth:
        name += f" width={width}"
    if penalty == "elasticnet":
        name += f" l1_ratio={l1_ratio:g}"
    return name


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns present in a child frame, in the contract's order."""
    known = [
        metrics.TRAIN_COST,
        metrics.TRAIN_LOSS,
        metrics.PENALTY_TERM,
        metrics.DEV_COST,
        metrics.TRAIN_ERROR,
        metrics.DEV_ERROR,
        metrics.SPARSITY,
        metrics.TEST_COST,
        metrics.TEST_ERROR,
    ]
    layered = sorted(
        (c for c in frame.columns if c.startswith(metrics.PER_LAYER)),
        key=lambda c: (c.split("/")[0], int("".join(ch for ch in c.split("/")[1] if ch.isdigit()))),
    )
    return [c for c in known if c in frame.columns] + layered


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over seeds of every metric, per curve and strength.

    Uses FINISHED runs only. Columns: the curve keys, ``strength``, ``lam``, ``keep_prob``,
    ``seeds``, and ``<metric>_mean`` / ``<metric>_se`` for each metric (``se`` is the sample
    standard deviation over seeds divided by sqrt(seeds); NaN for a single seed).
    """
    done = frame[frame["status"] == "FINISHED"].copy()
    columns = metric_columns(done)
    keys = [*CURVE_KEYS, "strength"]
    if done.empty:
        return pd.DataFrame(columns=[*keys, "lam", "keep_prob", "seeds"])
    grouped = done.groupby(keys, dropna=False, sort=True)
    out = grouped[["lam", "keep_prob"]].first()
    out["seeds"] = grouped["seed"].count().astype(int)
    means = grouped[columns].mean()
    ses = grouped[columns].std(ddof=1).div(np.sqrt(out["seeds"].to_numpy(dtype=float)), axis=0)
    for column in columns:
        out[f"{column}_mean"] = means[column]
        out[f"{column}_se"] = ses[column]
    return out.reset_index()


@dataclass
class CurveSummary:
    """The verdict on one curve."""

    name: str
    penalty: str
    depth: int
    width: int
    l1_ratio: float
    best_strength: float
    strength_1se: float
    train_cost: float
    train_loss: float
    dev_cost: float
    train_error: float
    dev_error: float
    gap: float
    test_cost: float | None
    test_error: float | None
    seeds: int
    points: int
    high_variance: list[float]
    high_bias: list[float]
    verdict: str

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(curve: pd.DataFrame) -> CurveSummary:
    """Best strength, lambda.1se, the flagged sides and a verdict for one curve.

    ``curve`` holds one curve's rows of :func:`aggregate`, sorted by strength.
    """
    curve = curve.sort_values("strength").reset_index(drop=True)
    dev = curve[f"{metrics.DEV_COST}_mean"].to_numpy()
    best = int(np.nanargmin(dev))
    se = curve[f"{metrics.DEV_COST}_se"].iloc[best]
    se = 0.0 if not np.isfinite(se) else float(se)
    threshold = dev[best] + se
    strengths = curve["strength"].to_numpy()
    within = np.flatnonzero(dev <= threshold)
    strength_1se = float(strengths[within.max()])
    train_loss = curve[f"{metrics.TRAIN_LOSS}_mean"].to_numpy()
    gap = dev - train_loss
    worse = dev > threshold
    high_variance = [
        float(s) for i, s in enumerate(strengths) if i < best and worse[i] and gap[i] > gap[best]
    ]
    high_bias = [
        float(s)
        for i, s in enumerate(strengths)
        if i > best and worse[i] and train_loss[i] > train_loss[best]
    ]
    first = curve.iloc[0]
    if len(curve) == 1:
        verdict = "a single strength: no curve to judge"
    elif best == 0:
        verdict = (
            "best at the smallest strength: no overfitting across this grid "
            "(extend it to smaller values, or use a larger model)"
        )
    elif best == len(curve) - 1:
        verdict = "best at the largest strength: still overfitting (extend the grid upward)"
    elif high_variance and high_bias:
        verdict = "U-shaped: high variance below the best strength, high bias above it"
    else:
        verdict = "best strength inside the grid"

    def at_best(name: str) -> float | None:
        column = f"{name}_mean"
        return float(curve[column].iloc[best]) if column in curve else None

    return CurveSummary(
        name=curve_name(
            first["penalty"], int(first["depth"]), int(first["width"]), float(first["l1_ratio"])
        ),
        penalty=str(first["penalty"]),
        depth=int(first["depth"]),
        width=int(first["width"]),
        l1_ratio=float(first["l1_ratio"]),
        best_strength=float(strengths[best]),
        strength_1se=strength_1se,
        train_cost=at_best(metrics.TRAIN_COST),
        train_loss=at_best(metrics.TRAIN_LOSS),
        dev_cost=at_best(metrics.DEV_COST),
        train_error=at_best(metrics.TRAIN_ERROR),
        dev_error=at_best(metrics.DEV_ERROR),
        gap=float(gap[best]),
        test_cost=at_best(metrics.TEST_COST),
        test_error=at_best(metrics.TEST_ERROR),
        seeds=int(curve["seeds"].iloc[best]),
        points=len(curve),
        high_variance=high_variance,
        high_bias=high_bias,
        verdict=verdict,
    )


def curves_of(aggregated: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """Each curve's rows (penalty ``none`` excluded: it is a reference level)."""
    swept = aggregated[aggregated["penalty"] != "none"]
    return {
        key: rows.sort_values("strength").reset_index(drop=True)
        for key, rows in swept.groupby(CURVE_KEYS, dropna=False, sort=True)
    }


def reference_levels(aggregated: pd.DataFrame, depth: int, width: int) -> pd.Series | None:
    """The ``none`` runs' aggregated row for this depth and width, if the sweep has them."""
    rows = aggregated[
        (aggregated["penalty"] == "none")
        & (aggregated["depth"] == depth)
        & (aggregated["width"] == width)
    ]
    return None if rows.empty else rows.iloc[0]
