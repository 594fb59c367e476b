"""``sweeps report``: the bias-variance report of a sweep, from its MLflow runs.

Writes to the output folder and logs under ``report/`` on the sweep's parent run:
``report.html`` (one self-contained file), ``tradeoff_<penalty>.png``,
``mechanisms_<penalty>.png``, ``boundaries_<penalty>.png`` (2-D datasets), ``curves.csv`` (the
aggregated curves) and ``summary.json`` (best points). The runs of each curve's best strength get
the tag ``regsweep.best = true``. The rules behind best, lambda.1se and the shaded sides are in
:mod:`sweeps.curves`.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regcore import metrics
from sweeps import curves as curve_rules
from sweeps import tracking
from sweeps.config import SweepConfig, config_from_text, load_data
from sweeps.errors import UsageError
from sweeps.results import child_frame


def sweep_config(client: Any, parent: Any) -> SweepConfig:
    """The config a sweep ran with, from its parent run's ``sweep.yaml`` artifact."""
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(parent.info.run_id, "sweep.yaml", folder)
        return config_from_text(Path(path).read_text())


def _weights(client: Any, run_id: str, folder: str) -> dict[str, np.ndarray]:
    path = client.download_artifacts(run_id, "weights.npz", folder)
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def _pictures(
    client: Any,
    frame: pd.DataFrame,
    curve: pd.DataFrame,
    summary: curve_rules.CurveSummary,
    folder: str,
    majority_error: float,
) -> list[tuple[str, float, dict[str, np.ndarray]]]:
    """Weights at the smallest, the best and a large strength (lowest seed of each).

    The large one is the largest strength whose model still beats the majority class on the
    training set by 5 points: past it, deep networks predict a constant and the picture is
    blank. Without such a strength, the largest.
    """
    strengths = curve["strength"].to_numpy()
    train_error = curve[f"{metrics.TRAIN_ERROR}_mean"].to_numpy()
    above = (strengths > summary.best_strength) & (train_error < majority_error - 0.05)
    large = float(strengths[above].max()) if above.any() else float(strengths[-1])
    chosen = [
        ("small strength", float(strengths[0])),
        ("best strength", summary.best_strength),
        ("large strength", large),
    ]
    captions = {
        "small strength": "high variance" if summary.high_variance else "small strength",
        "best strength": "just right (best dev cost)",
        "large strength": "high bias" if summary.high_bias else "large strength",
    }
    out = []
    runs = frame[
        (frame["penalty"] == summary.penalty)
        & (frame["depth"] == summary.depth)
        & (frame["width"] == summary.width)
        & (frame["l1_ratio"] == summary.l1_ratio)
        & (frame["status"] == "FINISHED")
    ]
    for caption, strength in chosen:
        match = runs[np.isclose(runs["strength"], strength, rtol=1e-12, atol=0)].sort_values("seed")
        out.append((captions[caption], strength, _weights(client, match["run_id"].iloc[0], folder)))
    return out


def png_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _summary_table(summaries: list[curve_rules.CurveSummary], references: dict) -> pd.DataFrame:
    rows = []
    for s in summaries:
        knob = "1-keep_prob" if s.penalty == "dropout" else "lambda"
        row = {
            "curve": s.name,
            f"best ({knob})": s.best_strength,
            "1-SE rule": s.strength_1se,
            "train cost": s.train_cost,
            "dev cost": s.dev_cost,
            "train error": s.train_error,
            "dev error": s.dev_error,
            "gap (dev - train loss)": s.gap,
        }
        if s.test_cost is not None:
            row["test error"] = s.test_error
        row["no penalty: dev cost"] = references.get((s.depth, s.width), np.nan)
        row["seeds"] = s.seeds
        row["verdict"] = s.verdict
        rows.append(row)
    return pd.DataFrame(rows)


HOW_TO_READ = """
<h2>How to read this report</h2>
<ul>
<li><b>Figure 1, the trade-off.</b> Each column is one curve: models that differ only in the
regularization strength (lambda; for dropout, the drop probability 1 - keep_prob). Blue is the
training set, vermillion the dev set; dots are means over seeds, bands one standard error; dotted
lines are the same model trained without a penalty. Reading left to right: at small lambda the
training loss is low but the dev cost is high (<b>high variance</b>, shaded orange: the gap
between the curves is wide); at large lambda both are high (<b>high bias</b>, shaded blue: the model
no longer fits even the training data); in between is the best lambda (solid line, lowest mean
dev cost). The
dashed line is the one-standard-error rule: the largest lambda whose dev cost is within one SE of
the best, the simplest model the data cannot tell apart from the best.</li>
<li><b>Figure 2, the mechanisms.</b> The lecture's explanations, measured: the Frobenius norm of
every weight matrix shrinks as lambda grows; with tanh units the share of pre-activations in
tanh's nearly linear range (|z| &lt; 0.5) rises toward 1, so the network computes an almost linear
function; with L1 the share of weights that are exactly zero rises.</li>
<li><b>Figure 3, the three pictures</b> (2-D data only): the decision boundary of the trained
networks at the smallest lambda, the best lambda and the largest lambda, over the training
points: an overfit, wiggly boundary; a smooth one; a nearly straight one.</li>
<li><b>The table</b> gives each curve's best lambda, the one-SE lambda, the costs and errors there,
and a verdict: U-shaped (both sides flagged), or which way to extend the grid.</li>
</ul>
<p>Rules: a strength is flagged <i>high variance</i> when it lies below the best, its dev cost
exceeds the best's by more than one SE, and its train/dev gap is wider than at the best; it is
flagged <i>high bias</i> when it lies above the best, its dev cost exceeds the best's by more than
one SE, and its training loss is higher than at the best.</p>
"""

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1400px;
margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} .meta{color:#555;margin-top:0}
table{border-collapse:collapse;font-size:.85em;margin:1em 0}
th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child,td:last-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
"""


def write_report(client: Any, parent: Any, out: str | Path | None = None) -> Path:
    """Build the report of the sweep whose parent run is ``parent``; return the folder."""
    name = parent.data.tags.get(tracking.SWEEP_TAG, parent.info.run_name)
    out = Path(out) if out else Path("reports") / name
    frame = child_frame(client, parent)
    aggregated = curve_rules.aggregate(frame)
    curves = curve_rules.curves_of(aggregated)
    if not curves:
        raise UsageError(f"SWEEP: {name!r} has no finished runs with a strength to report on")
    config = sweep_config(client, parent)
    data = load_data(config.dataset)
    out.mkdir(parents=True, exist_ok=True)

    from sweeps import plots

    summaries = {key: curve_rules.summarize(curve) for key, curve in curves.items()}
    references = {}  # the no-penalty dev cost per (depth, width), for the table
    for depth, width in {(s.depth, s.width) for s in summaries.values()}:
        level = curve_rules.reference_levels(aggregated, depth, width)
        if level is not None:
            references[(depth, width)] = float(level[f"{metrics.DEV_COST}_mean"])
    figures: list[tuple[str, Path]] = []
    by_penalty: dict[str, list[tuple]] = {}
    for key, curve in curves.items():
        by_penalty.setdefault(key[0], []).append((curve, summaries[key]))
    dataset = config.dataset.name
    # the training error of always predicting the most frequent class
    majority = 1.0 - np.unique(data.y_train, return_counts=True)[1].max() / len(data.y_train)
    with tempfile.TemporaryDirectory() as folder:
        for penalty, items in by_penalty.items():
            path = out / f"tradeoff_{penalty}.png"
            plots.tradeoff_figure(path, dataset, penalty, items, aggregated)
            figures.append((f"Figure 1 ({penalty}): the bias-variance trade-off", path))
            path = out / f"mechanisms_{penalty}.png"
            plots.mechanisms_figure(path, dataset, penalty, items)
            figures.append((f"Figure 2 ({penalty}): the mechanisms", path))
            if data.n_features == 2:
                rows = [(s, _pictures(client, frame, c, s, folder, majority)) for c, s in items]
                path = out / f"boundaries_{penalty}.png"
                plots.boundaries_figure(path, dataset, penalty, rows, data.X_train, data.y_train)
                figures.append((f"Figure 3 ({penalty}): small, best and large strength", path))

    ordered = [summaries[key] for key in curves]
    table = _summary_table(ordered, references)
    aggregated.to_csv(out / "curves.csv", index=False)
    summary = {
        "sweep": name,
        "parent_run_id": parent.info.run_id,
        "dataset": data.describe(),
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": len(frame),
        "finished": int((frame["status"] == "FINISHED").sum()),
        "curves": [s.as_dict() for s in ordered],
        "no_penalty_dev_cost": {f"depth={d} width={w}": v for (d, w), v in references.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    (out / "report.html").write_text(_html(name, summary, table, figures))
    _tag_best_runs(client, frame, ordered)
    client.log_artifacts(parent.info.run_id, str(out), "report")
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


def _html(name: str, summary: dict, table: pd.DataFrame, figures: list[tuple[str, Path]]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>regsweep report: {html.escape(name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Bias-variance report: {html.escape(name)}</h1>",
        f"<p class='meta'>{html.escape(summary['dataset'])} · {summary['finished']} finished "
        f"runs of {summary['runs']} · parent run {summary['parent_run_id']} · "
        f"{summary['generated']}</p>",
        "<h2>Best strength per curve</h2>",
        table.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0),
    ]
    for caption, path in figures:
        parts.append(f"<h3>{html.escape(caption)}</h3>{png_tag(path, caption)}")
    parts.append(HOW_TO_READ)
    parts.append("</body></html>")
    return "\n".join(parts)


def _tag_best_runs(
    client: Any, frame: pd.DataFrame, summaries: list[curve_rules.CurveSummary]
) -> None:
    best_ids: set[str] = set()
    for s in summaries:
        chosen = frame[
            (frame["penalty"] == s.penalty)
            & (frame["depth"] == s.depth)
            & (frame["width"] == s.width)
            & (frame["l1_ratio"] == s.l1_ratio)
            & np.isclose(frame["strength"], s.best_strength, rtol=1e-12, atol=0)
        ]
        best_ids.update(chosen["run_id"])
    for run_id, was_best in zip(frame["run_id"], frame["best"], strict=True):
        if run_id in best_ids and was_best != "true":
            client.set_tag(run_id, tracking.BEST_TAG, "true")
        elif run_id not in best_ids and was_best == "true":
            client.set_tag(run_id, tracking.BEST_TAG, "false")
