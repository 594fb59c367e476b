"""Lambda curves: trainings aggregated over folds and seeds, lambda.min, lambda.1se and verdicts.

A *curve* is the set of points that differ only in regularization strength (and seed and fold):
one per (penalty, depth, width), and per ``l1_ratio`` for the elastic net. Its x axis is the
strength: ``lam``, or ``1 - keep_prob`` for dropout. ``none`` runs have no strength: they are a
reference level for the curves of the same depth and width.

Rules, stated once (the selection metric is ``dev_cost`` unless a sweep selects by ``dev_error``,
as scikit-learn's ``scoring`` chooses):

- **mean**: per strength, the mean over every training of that strength (each fold of each
  repeat, each seed), weighted by its dev part's size, as cv.glmnet's ``cvm``: for the dev cost
  that is the loss per held-out sample, pooled over the folds.
- **standard error**: cv.glmnet's ``cvsd``, ``sqrt(weighted mean of (x - mean)^2 / (N - 1))``
  over the same N trainings (N = folds x repeats x seeds; NaN when N = 1). On a single split the
  trainings are the seeds, and it is the sample standard deviation over seeds / sqrt(seeds).
  Repeats reuse the same samples and seeds the same folds, so with either it understates the
  uncertainty of a fresh sample: read it as cv.glmnet's, not as an independent-sample SE.
- **lambda.min**: the strength with the lowest mean.
- **lambda.1se** (glmnet's rule): the largest strength whose mean is within one SE (of
  lambda.min's mean) of the minimum; lambda.min itself when the SE is NaN.
- **regimes**, from the lecture: high bias is a model that cannot fit even its training set, high
  variance a large gap between training and dev. At strength ``s`` the rise of the dev metric
  over lambda.min's splits exactly into the rise of the training metric (the *bias part*) and
  the rise of the gap dev - train (the *variance part*). A rise is noise when it is within the
  *floor*: ``max(sqrt(se_min^2 + se_s^2), 2% of the minimum)``. Above lambda.min, a rise whose
  bias part exceeds the floor and is at least its variance part is **high bias**; below it, a
  rise whose variance part exceeds the floor and is at least its bias part is **high
  variance**; any other rise above the floor is **explained by neither** and named as such.
  The training metric is ``train_loss`` for ``dev_cost`` and ``train_error`` for
  ``dev_error``.
- **disagreement**: dev cost and dev error disagree when the other metric's own minimum is at
  another strength and its value at the chosen strength is above that minimum by more than its
  floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from regcore import metrics
from sweeps.settings import CURVE_KEYS, SELECTION, curve_name

#: the relative part of the noise floor (of the minimum's mean)
RELATIVE_FLOOR = 0.02


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns present in a child frame, in docs/mlflow-layout.md's order."""
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
    """Mean and standard error (cv.glmnet's ``cvm`` and ``cvsd``) of every metric, per curve
    and strength, over the FINISHED trainings of that strength; and how many of its complete
    trainings (finished or diverged) diverged.

    Columns: the curve keys, ``strength``, ``lam``, ``keep_prob``, ``seeds`` (distinct seeds),
    ``folds`` (distinct folds, repeats counted apart; 1 on a single split), ``n`` (finished
    trainings), ``trainings`` (complete trainings), ``diverged`` (of those, how many diverged)
    and ``<metric>_mean`` / ``<metric>_se`` for each metric. Trainings are weighted by their
    ``n_dev`` where the frame has it. A strength whose trainings all diverged has a row with no
    means.
    """
    diverged = (
        frame["diverged"].fillna(False).astype(bool)
        if "diverged" in frame
        else pd.Series(False, index=frame.index)
    )
    complete = (frame["status"] == "FINISHED") | ((frame["status"] == "FAILED") & diverged)
    done = frame[complete].copy()
    finished = (done["status"] == "FINISHED").to_numpy()
    columns = metric_columns(done)
    keys = [*CURVE_KEYS, "strength"]
    if done.empty:
        columns_out = [*keys, "lam", "keep_prob", "seeds", "folds", "n", "trainings", "diverged"]
        return pd.DataFrame(columns=columns_out)
    weight = (
        pd.to_numeric(done["n_dev"], errors="coerce").fillna(1.0).astype(float)
        if "n_dev" in done
        else pd.Series(1.0, index=done.index)
    )
    done["_fold"] = _fold_labels(done)
    done["_finished"] = finished
    grouped = done.groupby(keys, dropna=False, sort=True)
    out = grouped[["lam", "keep_prob"]].first()
    out["seeds"] = grouped["seed"].nunique().astype(int)
    out["folds"] = grouped["_fold"].nunique().astype(int)
    out["n"] = grouped["_finished"].sum().astype(int)
    out["trainings"] = grouped["seed"].count().astype(int)
    out["diverged"] = out["trainings"] - out["n"]
    group_of = grouped.ngroup()
    for column in columns:
        values = done[column].astype(float).where(finished)  # a diverged run has no value
        mean, se = _weighted_stats(values, weight, group_of, len(out))
        out[f"{column}_mean"] = mean
        out[f"{column}_se"] = se
    return out.reset_index()


def selection_means(curve: pd.DataFrame, metric: str) -> np.ndarray:
    """The means that choose lambda: ``<metric>_mean``, infinite at a strength where any
    training diverged (it cannot be lambda.min or lambda.1se: its mean would be that of the
    trainings that survived)."""
    means = curve[f"{metric}_mean"].to_numpy(dtype=float)
    if "diverged" in curve:
        means = np.where(curve["diverged"].to_numpy() > 0, np.inf, means)
    return means


def _fold_labels(frame: pd.DataFrame) -> pd.Series:
    """``"repeat/fold"`` per training (one label on a single split)."""
    if "fold" not in frame:
        return pd.Series("-", index=frame.index)
    repeat = frame["repeat"].astype("Int64").fillna(-1).astype(int).astype(str)
    return repeat + "/" + frame["fold"].astype("Int64").fillna(-1).astype(int).astype(str)


def cv_stats(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """cv.glmnet's ``cvm`` and ``cvsd`` of one strength's trainings (module rules)."""
    group = pd.Series(np.zeros(len(values), dtype=np.intp))
    mean, se = _weighted_stats(pd.Series(values, dtype=float), pd.Series(weights), group, 1)
    return float(mean[0]), float(se[0])


def _weighted_stats(
    values: pd.Series, weight: pd.Series, group: pd.Series, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """cv.glmnet's ``cvm`` and ``cvsd`` per group, leaving out missing values."""
    present = values.notna().to_numpy()
    x = values.to_numpy()[present]
    w = weight.to_numpy()[present]
    g = group.to_numpy()[present]
    total = np.bincount(g, weights=w, minlength=n_groups)
    count = np.bincount(g, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(g, weights=w * x, minlength=n_groups) / total
        spread = np.bincount(g, weights=w * (x - mean[g]) ** 2, minlength=n_groups) / total
        se = np.sqrt(spread / (count - 1))
    se[count < 2] = np.nan
    mean[count == 0] = np.nan
    return mean, se


@dataclass
class CurveSummary:
    """The verdict on one curve."""

    name: str
    penalty: str
    depth: int
    width: int
    l1_ratio: float
    metric: str  # the selection metric
    best_strength: float  # lambda.min
    strength_1se: float  # lambda.1se
    se: float  # the standard error at lambda.min (NaN: a single training per strength)
    train_cost: float
    train_loss: float
    dev_cost: float
    train_error: float
    dev_error: float
    gap: float
    test_cost: float | None
    test_error: float | None
    seeds: int
    folds: int
    points: int
    high_variance: list[float]
    high_bias: list[float]
    unexplained: list[float]
    verdict: str
    disagreement: str | None = None
    strengths: list[dict] = field(default_factory=list)
    bracket: dict | None = None  # a bracketing search's final brackets (sweeps.analysis.bracket)
    #: strengths where trainings diverged: ``{"strength", "diverged", "trainings"}`` each
    diverged: list[dict] = field(default_factory=list)

    @property
    def chosen(self) -> bool:
        """Whether the curve has a lambda.min (some strength without a diverged training)."""
        return bool(np.isfinite(self.best_strength))

    @property
    def best_mean(self) -> float:
        return self.dev_cost if self.metric == metrics.DEV_COST else self.dev_error

    def as_dict(self) -> dict:
        return asdict(self)


def _floor(mean_min: float, se_a: float, se_b: float) -> float:
    se = np.sqrt(np.nan_to_num(se_a) ** 2 + np.nan_to_num(se_b) ** 2)
    return max(float(se), RELATIVE_FLOOR * abs(mean_min))


def regimes(curve: pd.DataFrame, best: int, metric: str) -> dict[str, list[float]]:
    """The strengths named high variance, high bias or explained by neither (module rules)."""
    train = curve[f"{SELECTION[metric]}_mean"].to_numpy()
    dev = selection_means(curve, metric)  # a strength where a training diverged names nothing
    se = curve[f"{metric}_se"].to_numpy()
    strengths = curve["strength"].to_numpy()
    named: dict[str, list[float]] = {"high_variance": [], "high_bias": [], "unexplained": []}
    for i, s in enumerate(strengths):
        if i == best or not np.isfinite(dev[i]):
            continue
        floor = _floor(dev[best], se[best], se[i])
        rise = dev[i] - dev[best]
        if rise <= floor:
            continue
        bias_part = train[i] - train[best]
        variance_part = rise - bias_part
        if i > best and bias_part > floor and bias_part >= variance_part:
            named["high_bias"].append(float(s))
        elif i < best and variance_part > floor and variance_part >= bias_part:
            named["high_variance"].append(float(s))
        else:
            named["unexplained"].append(float(s))
    return named


def disagreement(curve: pd.DataFrame, best: int, metric: str) -> str | None:
    """How dev cost and dev error disagree on this curve, or None (module rules)."""
    other = metrics.DEV_ERROR if metric == metrics.DEV_COST else metrics.DEV_COST
    if f"{other}_mean" not in curve:
        return None
    values = selection_means(curve, other)
    if not np.isfinite(values).any():
        return None
    se = curve[f"{other}_se"].to_numpy()
    own = int(np.nanargmin(values))
    strengths = curve["strength"].to_numpy()
    if own == best or values[best] - values[own] <= _floor(values[own], se[own], se[best]):
        return None
    return (
        f"dev cost and dev error disagree: {metric} is lowest at {strengths[best]:.3g}, "
        f"{other} at {strengths[own]:.3g} ({values[own]:.4g} there, {values[best]:.4g} at "
        f"{strengths[best]:.3g})"
    )


def one_se_rule(means: Sequence[float], ses: Sequence[float]) -> tuple[int, int]:
    """lambda.min and lambda.1se, as indices into a curve's strengths in ascending order.

    Parameters
    ----------
    means, ses : sequences of float, of shape (n_strengths,)
        The selection metric's mean and standard error at each strength (NaN means: none).

    Returns
    -------
    best, within : int
        The lowest mean (the first of equal ones), and the largest strength whose mean is at
        most the lowest plus its standard error (cv.glmnet's rule; a NaN SE counts as 0).
    """
    values = np.asarray(means, dtype=float)
    if not np.isfinite(values).any():
        raise ValueError("no strength has a finite mean")
    best = int(np.nanargmin(values))
    se = float(ses[best])
    threshold = values[best] + (se if np.isfinite(se) else 0.0)
    return best, int(np.flatnonzero(values <= threshold).max())


def summarize(curve: pd.DataFrame, metric: str = metrics.DEV_COST) -> CurveSummary:
    """lambda.min, lambda.1se, the named regimes and a verdict for one curve.

    ``curve`` holds one curve's rows of :func:`aggregate`, sorted by strength. A strength where
    a training diverged is never chosen (:func:`selection_means`); a curve where every strength
    did has no lambda.min (NaN) and says so.
    """
    curve = curve.sort_values("strength").reset_index(drop=True)
    if "diverged" not in curve:
        curve = curve.assign(diverged=0, trainings=curve["n"])
    first = curve.iloc[0]
    strengths = curve["strength"].to_numpy()
    diverged = [
        {"strength": float(s), "diverged": int(d), "trainings": int(n)}
        for s, d, n in zip(strengths, curve["diverged"], curve["trainings"], strict=True)
        if d
    ]
    common = dict(
        name=curve_name(
            first["penalty"], int(first["depth"]), int(first["width"]), float(first["l1_ratio"])
        ),
        penalty=str(first["penalty"]),
        depth=int(first["depth"]),
        width=int(first["width"]),
        l1_ratio=float(first["l1_ratio"]),
        metric=metric,
        points=len(curve),
        strengths=_strength_rows(curve, metric),
        diverged=diverged,
    )
    values = selection_means(curve, metric)
    if not np.isfinite(values).any():
        return _no_choice(curve, common)
    best, within = one_se_rule(values, curve[f"{metric}_se"].to_numpy())
    se = float(curve[f"{metric}_se"].iloc[best])
    strength_1se = float(strengths[within])
    named = regimes(curve, best, metric)
    train_loss = curve[f"{metrics.TRAIN_LOSS}_mean"].to_numpy()
    dev_cost = curve[f"{metrics.DEV_COST}_mean"].to_numpy()
    if len(curve) == 1:
        verdict = "a single strength: no curve to judge"
    elif best == 0:
        verdict = (
            "best at the smallest strength: no overfitting across this grid "
            "(extend it to smaller values, or use a larger model)"
        )
    elif best == len(curve) - 1:
        verdict = "best at the largest strength: still overfitting (extend the grid upward)"
    elif named["high_variance"] and named["high_bias"]:
        verdict = "U-shaped: high variance below the best strength, high bias above it"
    else:
        verdict = "best strength inside the grid"

    def at_best(name: str) -> float | None:
        column = f"{name}_mean"
        return float(curve[column].iloc[best]) if column in curve else None

    return CurveSummary(
        **common,
        best_strength=float(strengths[best]),
        strength_1se=strength_1se,
        se=se,
        train_cost=at_best(metrics.TRAIN_COST),
        train_loss=at_best(metrics.TRAIN_LOSS),
        dev_cost=at_best(metrics.DEV_COST),
        train_error=at_best(metrics.TRAIN_ERROR),
        dev_error=at_best(metrics.DEV_ERROR),
        gap=float(dev_cost[best] - train_loss[best]),
        test_cost=at_best(metrics.TEST_COST),
        test_error=at_best(metrics.TEST_ERROR),
        seeds=int(curve["seeds"].iloc[best]),
        folds=int(curve["folds"].iloc[best]),
        verdict=verdict,
        disagreement=disagreement(curve, best, metric),
        **named,
    )


def _strength_rows(curve: pd.DataFrame, metric: str) -> list[dict]:
    """Per strength, the selection metric's mean and SE and the trainings' counts."""
    return [
        {
            "strength": float(row["strength"]),
            "mean": float(row[f"{metric}_mean"]),
            "se": float(row[f"{metric}_se"]),
            "folds": int(row["folds"]),
            "n": int(row["n"]),
            "diverged": int(row["diverged"]),
            "trainings": int(row["trainings"]),
        }
        for _, row in curve.iterrows()
    ]


def _no_choice(curve: pd.DataFrame, common: dict) -> CurveSummary:
    """The summary of a curve whose every strength diverged: no lambda.min."""
    nan = float("nan")
    return CurveSummary(
        **common,
        best_strength=nan,
        strength_1se=nan,
        se=nan,
        train_cost=None,
        train_loss=None,
        dev_cost=None,
        train_error=None,
        dev_error=None,
        gap=nan,
        test_cost=None,
        test_error=None,
        seeds=int(curve["seeds"].max()),
        folds=int(curve["folds"].max()),
        high_variance=[],
        high_bias=[],
        unexplained=[],
        verdict=(
            "every strength diverged: no lambda.min (the cost stopped being finite; "
            "lower model.learning_rate)"
        ),
    )


def best_per_curve(aggregated: pd.DataFrame, metric: str = metrics.DEV_COST) -> pd.DataFrame:
    """Per curve (``none`` runs included, one "curve" per depth and width): the strength with
    the lowest mean ``metric``, with the means of the costs and errors there."""
    if aggregated.empty or f"{metric}_mean" not in aggregated:
        return pd.DataFrame()
    names = (metrics.TRAIN_COST, metrics.DEV_COST, metrics.TRAIN_ERROR, metrics.DEV_ERROR)
    shown = [f"{name}_mean" for name in names if f"{name}_mean" in aggregated]
    ranked = aggregated.assign(_select=selection_means(aggregated, metric))
    ranked = ranked[np.isfinite(ranked["_select"])]
    if ranked.empty:
        return pd.DataFrame()
    best = ranked.loc[ranked.groupby(CURVE_KEYS, dropna=False)["_select"].idxmin()]
    best = best[[*CURVE_KEYS, "strength", *shown, "folds", "seeds"]]
    best = best.rename(columns={column: column[: -len("_mean")] for column in shown})
    return best.sort_values(CURVE_KEYS).reset_index(drop=True)


def curve_rows(frame: pd.DataFrame, summary: CurveSummary) -> pd.DataFrame:
    """The rows of a child-run frame (or of :func:`aggregate`) that belong to one curve."""
    return frame[
        (frame["penalty"] == summary.penalty)
        & (frame["depth"] == summary.depth)
        & (frame["width"] == summary.width)
        & (frame["l1_ratio"] == summary.l1_ratio)
    ]


def at_strength(frame: pd.DataFrame, value: float) -> pd.DataFrame:
    """The rows whose strength is ``value`` (to rounding: strengths come back from text)."""
    return frame[np.isclose(frame["strength"], value, rtol=1e-12, atol=0)]


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
