"""The report's pictures (matplotlib; Okabe-Ito colour-blind-safe palette).

Figures are made as ``matplotlib.figure.Figure`` objects, never through pyplot, and in a style
of their own (:data:`STYLE`, applied while a figure is drawn): a notebook that draws a sweep's
figures keeps its backend, its rcParams and its own figures as they were.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from regcore import RegularizedClassifier, metrics
from sweeps.analysis.curves import CurveSummary, reference_levels
from sweeps.settings import strength_axis, strength_name

OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
TRAIN, DEV, TEST = "#0072B2", "#D55E00", "#009E73"
VARIANCE_SHADE, BIAS_SHADE = "#E69F00", "#56B4E9"
BRACKET_SHADE = "#999999"
DIVERGED = "#CC79A7"

#: the figures' rcParams, in force only while one is drawn (:func:`styled`)
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def styled(draw: Callable[..., Any]) -> Callable[..., Any]:
    """Run a figure function with :data:`STYLE` in force (rcParams are read as artists are
    made and as the figure is saved)."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _subplots(
    rows: int, columns: int, *, figsize: tuple[float, float], layout: str | None = None, **kw: Any
) -> tuple[Figure, np.ndarray]:
    """A figure of its own (not pyplot's) and its grid of axes."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(rows, columns, **kw)


def metric_label(metric: str) -> str:
    """An axis label with units for a metric name."""
    if metric.endswith(("_cost", "_loss", "_term")):
        return f"{metric.replace('_', ' ')} (cross-entropy, nats per sample)"
    if metric.endswith("_error"):
        return f"{metric.replace('_', ' ')} (misclassification rate)"
    return metric.replace("_", " ")


def _log_axis(axis) -> None:
    """A log axis labelled with plain numbers (0.001, 0.01, ...): as readable as 10^-3 and far
    cheaper to draw than mathtext."""
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _x_scale(ax, penalty: str, strengths: np.ndarray) -> None:
    if penalty != "dropout" and (strengths > 0).all():
        ax.set_xscale("log")
        _log_axis(ax.xaxis)


def _mean_band(
    ax, curve: pd.DataFrame, metric: str, color: str, label: str, marker: str = "o"
) -> None:
    x = curve["strength"].to_numpy()
    mean = curve[f"{metric}_mean"].to_numpy()
    se = curve[f"{metric}_se"].fillna(0.0).to_numpy()
    ax.plot(x, mean, marker=marker, ms=3.5, lw=1.6, color=color, label=label)
    if (se > 0).any():
        ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.18, lw=0)


def _shade(ax, curve: pd.DataFrame, summary: CurveSummary, log: bool) -> None:
    """Shade the flagged sides out to the axis edges, split halfway to the neighbouring point."""
    x = curve["strength"].to_numpy()

    def midpoint(a: float, b: float) -> float:
        return float(np.sqrt(a * b)) if log and a > 0 and b > 0 else (a + b) / 2

    lo, hi = ax.get_xlim()
    if summary.high_variance:
        last = max(summary.high_variance)
        right = midpoint(last, x[np.searchsorted(x, last) + 1])
        ax.axvspan(lo, right, color=VARIANCE_SHADE, alpha=0.12, lw=0)
    if summary.high_bias:
        first = min(summary.high_bias)
        left = midpoint(x[np.searchsorted(x, first) - 1], first)
        ax.axvspan(left, hi, color=BIAS_SHADE, alpha=0.15, lw=0)
    ax.set_xlim(lo, hi)


def _mark_best(ax, summary: CurveSummary) -> None:
    for item in summary.diverged:  # never chosen: marked where it stands
        ax.axvline(item["strength"], color=DIVERGED, lw=0.9, ls=(0, (1, 2)))
        ax.annotate(
            f"diverged {item['diverged']}/{item['trainings']}",
            (item["strength"], 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color=DIVERGED,
        )
    if not summary.chosen:
        return
    ax.axvline(summary.best_strength, color="black", lw=1.1)
    if summary.strength_1se != summary.best_strength:
        ax.axvline(summary.strength_1se, color="black", lw=1.1, ls="--")
    bracket = summary.bracket or {}
    if bracket.get("min"):
        ax.axvspan(*bracket["min"], color=BRACKET_SHADE, alpha=0.35, lw=0)
    if bracket.get("one_se"):
        ax.axvspan(*bracket["one_se"], color=BRACKET_SHADE, alpha=0.2, lw=0, hatch="//")


def _tradeoff_legend(fig, columns: int) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color=TRAIN, marker="o", ms=3.5, label="training set (loss / error)"),
        Line2D([], [], color=DEV, marker="o", ms=3.5, label="dev set (cost / error)"),
        Line2D([], [], color="#555555", ls=":", label="same model without penalty"),
        Line2D([], [], color="black", label="lambda.min (lowest mean)"),
        Line2D([], [], color="black", ls="--", label="lambda.1se (1-SE rule)"),
        Patch(color=VARIANCE_SHADE, alpha=0.25, label="high variance (overfitting)"),
        Patch(color=BIAS_SHADE, alpha=0.3, label="high bias (underfitting)"),
        Patch(color=BRACKET_SHADE, alpha=0.35, label="search's bracket of lambda.min"),
        Patch(
            facecolor=BRACKET_SHADE, alpha=0.2, hatch="//", label="search's bracket of lambda.1se"
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(4, 2 * columns), frameon=False)


def _per_layer(ax, curve: pd.DataFrame, prefix: str, label) -> None:
    """One band per layer of a per-layer metric (``weight_norm/W1``, ...); ``label`` gets the
    layer's name (``W1``, ``L1``)."""
    for i, name in enumerate(_present(curve, prefix)):
        _mean_band(ax, curve, name, OKABE_ITO[i % len(OKABE_ITO)], label(name[len(prefix) :]))


def _present(curve: pd.DataFrame, prefix: str) -> list[str]:
    """Metric names with this prefix that have values on this curve (deeper layers may not)."""
    names = sorted(c[:-5] for c in curve.columns if c.startswith(prefix) and c.endswith("_mean"))
    return [n for n in names if curve[f"{n}_mean"].notna().any()]


@styled
def tradeoff_figure(
    path: Path | None,
    dataset: str,
    penalty: str,
    curves: list[tuple[pd.DataFrame, CurveSummary]],
    aggregated: pd.DataFrame,
) -> Figure | None:
    """Figure 1: train loss and dev cost (top) and errors (bottom) against strength, per curve;
    written to ``path``, or returned (open) when ``path`` is None."""
    n = len(curves)
    fig, axes = _subplots(
        2, n, figsize=(4.6 * n + 0.6, 6.8), squeeze=False, sharex="col", layout="constrained"
    )
    for column, (curve, summary) in enumerate(curves):
        top, bottom = axes[0, column], axes[1, column]
        x = curve["strength"].to_numpy()
        log = penalty != "dropout" and (x > 0).all()
        reference = reference_levels(aggregated, summary.depth, summary.width)
        for ax, pairs, ylabel in (
            (
                top,
                [(metrics.TRAIN_LOSS, TRAIN, "train loss"), (metrics.DEV_COST, DEV, "dev cost")],
                "cross-entropy (nats per sample)",
            ),
            (
                bottom,
                [
                    (metrics.TRAIN_ERROR, TRAIN, "train error"),
                    (metrics.DEV_ERROR, DEV, "dev error"),
                ],
                "misclassification rate",
            ),
        ):
            for metric, color, label in pairs:
                _mean_band(ax, curve, metric, color, label)
                if reference is not None:
                    ax.axhline(reference[f"{metric}_mean"], color=color, lw=1, ls=":")
            _x_scale(ax, penalty, x)
            _mark_best(ax, summary)
            _shade(ax, curve, summary, log)
            ax.set_ylabel(ylabel)
        top.set_title(
            f"{dataset} · {summary.name}\nbest {strength_name(penalty)} = "
            f"{summary.best_strength:.3g}, "
            f"1-SE rule = {summary.strength_1se:.3g}\n{summary.verdict.split(':')[0]}",
            loc="left",
        )
        bottom.set_xlabel(strength_axis(penalty))
    fig.suptitle(
        f"Bias-variance trade-off, {penalty}\n(mean over folds and seeds, band = 1 SE)",
        x=0.01,
        ha="left",
        fontsize=11,
    )
    _tradeoff_legend(fig, n)
    if path is None:
        return fig
    fig.savefig(path)
    return None


@styled
def mechanisms_figure(
    path: Path, dataset: str, penalty: str, curves: list[tuple[pd.DataFrame, CurveSummary]]
) -> None:
    """Figure 2: weight norms per layer, tanh's linear fraction and L1 sparsity against strength."""
    sample = curves[0][0]
    panels = ["norms"]
    if any(c.startswith(metrics.LINEAR_FRACTION) and c.endswith("_mean") for c in sample.columns):
        panels.append("linear")
    if penalty in ("l1", "elasticnet"):
        panels.append("sparsity")
    n = len(curves)
    fig, axes = _subplots(
        len(panels),
        n,
        figsize=(4.2 * n + 0.6, 2.9 * len(panels)),
        squeeze=False,
        sharex="col",
        layout="constrained",
    )
    for column, (curve, summary) in enumerate(curves):
        x = curve["strength"].to_numpy()
        for row, panel in enumerate(panels):
            ax = axes[row, column]
            if panel == "norms":
                _per_layer(ax, curve, metrics.WEIGHT_NORM, lambda layer: f"||{layer}||_F")
                ax.set_ylabel("Frobenius norm")
                ax.set_ylim(bottom=0)  # linear: large lambda drives the norms to 0
                if row == 0:
                    ax.set_title(f"{dataset} · {summary.name}", loc="left")
            elif panel == "linear":
                _per_layer(ax, curve, metrics.LINEAR_FRACTION, lambda layer: f"layer {layer[1:]}")
                ax.set_ylim(-0.03, 1.03)
                ax.set_ylabel("share of |z| < 0.5\n(tanh nearly linear)")
            else:
                _mean_band(ax, curve, metrics.SPARSITY, OKABE_ITO[2], "weights exactly 0")
                ax.set_ylim(-0.03, 1.03)
                ax.set_ylabel("sparsity (share of zeros)")
            _x_scale(ax, penalty, x)
            if summary.chosen:
                ax.axvline(summary.best_strength, color="black", lw=1.1)
            if ax.get_legend_handles_labels()[0]:  # nothing to name where no training finished
                ax.legend(loc="best", framealpha=0.85)
        axes[-1, column].set_xlabel(strength_axis(penalty))
    fig.suptitle(
        f"Why it works, {penalty}: the lecture's mechanisms, measured",
        x=0.01,
        ha="left",
        fontsize=11,
    )
    fig.savefig(path)


@styled
def boundaries_figure(
    path: Path,
    dataset: str,
    penalty: str,
    rows: list[tuple[CurveSummary, list[tuple[str, float, RegularizedClassifier]]]],
    X: np.ndarray,
    y: np.ndarray,
) -> None:
    """Figure 3: decision boundaries at a small, the best and a large strength (2-D data).

    ``rows``: per curve, up to three ``(caption, strength, fitted model)`` (a strength none of
    whose trainings finished has no picture: its panel stays empty).
    """
    fig, axes = _subplots(
        len(rows), 3, figsize=(11, 3.5 * len(rows)), squeeze=False, layout="constrained"
    )
    pad = 0.5
    xs = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, 150)
    ys = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, 150)
    grid_x, grid_y = np.meshgrid(xs, ys)
    grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
    classes = np.unique(y)
    for row, (summary, pictures) in enumerate(rows):
        for column in range(len(pictures), 3):
            axes[row, column].set_visible(False)
        for column, (caption, strength, clf) in enumerate(pictures):
            ax = axes[row, column]
            proba = clf.predict_proba(grid)
            if proba.shape[1] == 2:
                surface = proba[:, 1].reshape(grid_x.shape)
                ax.contourf(
                    grid_x,
                    grid_y,
                    surface,
                    levels=np.linspace(0, 1, 11),
                    cmap="RdBu_r",
                    alpha=0.55,
                    vmin=0,
                    vmax=1,
                )
                ax.contour(grid_x, grid_y, surface, levels=[0.5], colors="black", linewidths=1.3)
            else:
                surface = proba.argmax(axis=1).reshape(grid_x.shape)
                ax.contourf(
                    grid_x,
                    grid_y,
                    surface,
                    levels=np.arange(proba.shape[1] + 1) - 0.5,
                    colors=OKABE_ITO[: proba.shape[1]],
                    alpha=0.35,
                )
            for i, label in enumerate(classes):
                chosen = y == label
                color = ["#0072B2", "#D55E00", *OKABE_ITO[2:]][i % len(OKABE_ITO)]
                ax.scatter(
                    X[chosen, 0],
                    X[chosen, 1],
                    s=11,
                    color=color,
                    edgecolor="white",
                    linewidth=0.4,
                    label=f"class {label}",
                )
            ax.set_title(
                f"{caption}\n{summary.name}, {strength_name(penalty)} = {strength:.3g}", loc="left"
            )
            ax.set_xlabel("x1 (standardized)")
            ax.set_ylabel("x2 (standardized)")
            ax.set_xlim(xs[0], xs[-1])
            ax.set_ylim(ys[0], ys[-1])
            ax.grid(False)
            if column == 0:
                ax.legend(loc="lower left", framealpha=0.85)
    fig.suptitle(
        f"{dataset}: the lecture's three pictures, from the trained weights "
        "(training points; black line: p = 0.5)",
        x=0.01,
        ha="left",
        fontsize=11,
    )
    fig.savefig(path)


@styled
def comparison_figure(path: Path, long: pd.DataFrame, metric: str) -> None:
    """Curves of ``metric`` (mean, 1-SE band) on shared axes: lambda curves on a log axis,
    dropout curves on a panel of their own.

    Markers are the strengths each curve was trained at. Neighbouring points are joined by a
    solid line when no other curve has a strength between them, and by a thin dotted line when
    the shared grid has strengths this curve lacks: nothing is drawn as if measured there.
    """
    panels = [
        p for p in ("lam", "dropout") if ((long["penalty"] == "dropout") == (p == "dropout")).any()
    ]
    fig, axes = _subplots(
        1, len(panels), figsize=(6.4 * len(panels), 4.8), squeeze=False, layout="constrained"
    )
    for ax, panel in zip(axes[0], panels, strict=True):
        rows = long[(long["penalty"] == "dropout") == (panel == "dropout")]
        grid = np.sort(rows["strength"].unique())
        for i, (label, curve) in enumerate(rows.groupby("curve", sort=False)):
            curve = curve.sort_values("strength")
            x = curve["strength"].to_numpy(dtype=float)
            mean = curve[f"{metric}_mean"].to_numpy(dtype=float)
            se = curve[f"{metric}_se"].fillna(0.0).to_numpy(dtype=float)
            color = OKABE_ITO[i % len(OKABE_ITO)]
            marker = "osD^v<>p"[(i // len(OKABE_ITO)) % 8]
            ax.plot(x, mean, marker=marker, ms=4.5, lw=0, color=color, label=label)
            position = np.searchsorted(grid, x)
            for j in range(len(x) - 1):
                adjacent = position[j + 1] - position[j] == 1
                ax.plot(
                    x[j : j + 2],
                    mean[j : j + 2],
                    color=color,
                    lw=1.6 if adjacent else 0.9,
                    ls="-" if adjacent else ":",
                )
            if (se > 0).any():
                ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.15, lw=0)
        if panel == "lam" and (grid > 0).all():
            ax.set_xscale("log")
            _log_axis(ax.xaxis)
        ax.set_xlabel(strength_axis("dropout" if panel == "dropout" else "l2"))
        ax.set_ylabel(metric_label(metric))
        ax.set_title(
            f"{metric} against {'drop probability' if panel == 'dropout' else 'lambda'}", loc="left"
        )
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    fig.savefig(path, bbox_inches="tight")
