"""``sweeps report``: the bias-variance report of a sweep, from its MLflow runs.

Writes to the output folder and logs under ``report/`` on the sweep's parent run:
``report.html`` (one self-contained file), ``tradeoff_<penalty>.png``,
``mechanisms_<penalty>.png``, ``boundaries_<penalty>.png`` (2-D datasets), ``curves.csv`` (the
aggregated curves) and ``summary.json`` (best points). The runs of each curve's best strength get
the tag ``regsweep.best = true``. The rules behind best, lambda.1se and the shaded sides are in
:mod:`sweeps.analysis.curves`.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regcore import RegularizedClassifier, metrics
from regcore.datasets import Resampled
from regcore.model_io import from_npz
from sweeps.analysis import curves as curve_rules
from sweeps.config.data import load_data
from sweeps.config.reading import config_from_text
from sweeps.config.schema import SweepConfig
from sweeps.errors import UsageError
from sweeps.settings import strength_name
from sweeps.store import layout, tracking
from sweeps.store.results import child_frame, refit_frame


def sweep_config(client: Any, parent: Any) -> SweepConfig:
    """The config a sweep ran with, from its parent run's ``sweep.yaml`` artifact."""
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(parent.info.run_id, layout.CONFIG_ARTIFACT, folder)
        return config_from_text(Path(path).read_text())


def _model(client: Any, run_id: str, folder: str) -> RegularizedClassifier:
    return from_npz(client.download_artifacts(run_id, layout.WEIGHTS_ARTIFACT, folder))


def _pictures(
    client: Any,
    frame: pd.DataFrame,
    curve: pd.DataFrame,
    summary: curve_rules.CurveSummary,
    folder: str,
    majority_error: float,
) -> list[tuple[str, float, RegularizedClassifier]]:
    """Models at the smallest, the best and a large strength (lowest seed of each; fold 0 of the
    first repeat under cross-validation).

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
    runs = curve_rules.curve_rows(frame, summary)
    runs = runs[runs["status"] == "FINISHED"]
    # the first fold's first seed where it finished, else any training of that strength that
    # did (folds differ in size, so one can diverge where the others do not)
    first = (runs["fold"].fillna(0) != 0) | (runs["repeat"].fillna(0) != 0)
    runs = runs.assign(_later=first).sort_values(["_later", "seed"])
    for caption, strength in chosen:
        match = curve_rules.at_strength(runs, strength)
        if len(match):
            run_id = match["run_id"].iloc[0]
            out.append((captions[caption], strength, _model(client, run_id, folder)))
    return out


def brackets_of(client: Any, parent: Any) -> dict[str, dict]:
    """A bracketing search's final brackets per curve name (``brackets.json`` on the parent
    run), or none for a grid."""
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = client.download_artifacts(parent.info.run_id, layout.BRACKETS_ARTIFACT, folder)
            return json.loads(Path(path).read_text())
    except Exception:  # a grid's sweep has no brackets
        return {}


def png_tag(path: Path, alt: str) -> str:
    """An ``<img>`` holding the PNG at ``path`` (the report is one self-contained file)."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def summary_table(summaries: list[curve_rules.CurveSummary], references: dict) -> pd.DataFrame:
    rows = []
    for s in summaries:
        knob = strength_name(s.penalty)
        row = {
            "curve": s.name,
            f"lambda.min ({knob})": s.best_strength,
            f"lambda.1se ({knob})": s.strength_1se,
            f"{s.metric} (mean)": s.best_mean,
            "SE": s.se,
            "train loss": s.train_loss,
            "dev cost": s.dev_cost,
            "train error": s.train_error,
            "dev error": s.dev_error,
            "gap (dev - train loss)": s.gap,
        }
        if s.test_cost is not None:
            row["test error"] = s.test_error
        row["no penalty: dev cost"] = references.get((s.depth, s.width), np.nan)
        row["trainings per strength"] = s.folds * s.seeds
        if s.bracket:
            row["search"] = _bracket_text(s.bracket)
        verdict = s.verdict
        if s.diverged:
            shown = ", ".join(
                f"{d['strength']:.3g} ({d['diverged']} of {d['trainings']} trainings)"
                for d in s.diverged
            )
            verdict += f"; diverged at {shown}: never chosen"
        if s.unexplained:
            shown = ", ".join(f"{v:.3g}" for v in s.unexplained)
            verdict += f"; rise explained by neither bias nor variance at {shown}"
        if s.disagreement:
            verdict += f"; {s.disagreement}"
        row["verdict"] = verdict
        rows.append(row)
    return pd.DataFrame(rows)


def _bracket_text(bracket: dict) -> str:
    parts = [f"{bracket['strengths']} strengths in {bracket['rounds']} rounds"]
    for name, label in (("min", "lambda.min"), ("one_se", "lambda.1se crossing")):
        if bracket.get(name):
            parts.append(f"{label} in [{bracket[name][0]:.3g}, {bracket[name][1]:.3g}]")
    if not bracket.get("done"):
        parts.append("stopped before the search ended")
    return "; ".join(parts)


def selection_text(metric: str, folds: int, repeats: int, seeds: int) -> str:
    """How lambda.min, lambda.1se and the SE were computed, in words (the report says it)."""
    n = folds * repeats * seeds
    if folds > 1:
        over = f"{folds}-fold cross-validation"
        over += f" repeated {repeats} times" if repeats > 1 else ""
        over += f" and {seeds} seeds" if seeds > 1 else ""
    else:
        over = f"one train/dev split and {seeds} seed{'s' if seeds > 1 else ''}"
    return (
        f"lambda.min is the strength with the lowest mean {metric} over {over} ({n} "
        f"training{'s' if n > 1 else ''} per strength, each weighted by its dev part's size); "
        f"the SE is cv.glmnet's cvsd, sqrt(weighted mean of (x - mean)^2 / (N - 1)) over those "
        f"N = {n}"
        + (" (none with one training: lambda.1se = lambda.min)" if n == 1 else "")
        + "; lambda.1se is the largest strength whose mean is within one SE of lambda.min's."
    )


HOW_TO_READ = """
<h2>How to read this report</h2>
<ul>
<li><b>Figure 1, the trade-off.</b> Each column is one curve: models that differ only in the
regularization strength (lambda; for dropout, the drop probability 1 - keep_prob). Blue is the
training set, vermillion the dev set; dots are means over folds and seeds, bands one standard
error; dotted lines are the same model trained without a penalty. Reading left to right: at small
lambda the training loss is low but the dev cost is high (<b>high variance</b>, shaded orange:
the gap between the curves is wide); at large lambda both are high (<b>high bias</b>, shaded blue:
the model no longer fits even the training data); in between is lambda.min (solid line, the
lowest mean of the selection metric). The dashed line is lambda.1se, the one-standard-error rule:
the largest lambda whose mean is within one SE of the minimum, the simplest model the data cannot
tell apart from the best.</li>
<li><b>Figure 2, the mechanisms.</b> The lecture's explanations, measured: the Frobenius norm of
every weight matrix shrinks as lambda grows; with tanh units the share of pre-activations in
tanh's nearly linear range (|z| &lt; 0.5) rises toward 1, so the network computes an almost linear
function; with L1 the share of weights that are exactly zero rises.</li>
<li><b>Figure 3, the three pictures</b> (2-D data only): the decision boundary of the trained
networks at the smallest lambda, the best lambda and a large lambda, over the training
points: an overfit, wiggly boundary; a smooth one; a nearly straight one.</li>
<li><b>The table</b> gives each curve's lambda.min and lambda.1se, the costs and errors at
lambda.min, and a verdict: U-shaped (both regimes named), or which way to extend the grid.</li>
</ul>
<p>Regimes, as the lecture defines them: <i>high bias</i> is a model that cannot fit even its
training set, <i>high variance</i> a large gap between training and dev. At each strength the rise
of the dev metric over lambda.min's splits exactly into the rise of the training metric (the bias
part) and the rise of the dev - train gap (the variance part). A rise within the noise floor,
max(sqrt(SE<sub>min</sub>&sup2; + SE&sup2;), 2% of the minimum), names nothing. Above lambda.min a
rise is <i>high bias</i> when its bias part exceeds the floor and is at least its variance part;
below lambda.min it is <i>high variance</i> when its variance part exceeds the floor and is at least
its bias part; any other rise is named <i>explained by neither</i>. Where dev cost and dev error
pick different strengths (beyond their floors), the verdict says so.</p>
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


def report_folder(name: str) -> Path:
    """``reports/<name>``, the name made safe: a sweep name read back from the store is data, and
    never becomes ``..`` or an absolute path."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "sweep"
    return Path("reports") / safe[:100]


def write_report(
    client: Any, parent: Any, out: str | Path | None = None, data: Resampled | None = None
) -> Path:
    """Build the report of the sweep whose parent run is ``parent``; return the folder.

    ``data`` is the sweep's data where the caller has them (the driver at a sweep's end); else
    they are loaded as the sweep's config says, and a file that is gone or changed leaves the
    decision-boundary pictures out.
    """
    name = parent.data.tags.get(layout.SWEEP_TAG, parent.info.run_name)
    out = Path(out) if out else report_folder(name)
    frame = child_frame(client, parent)
    aggregated = curve_rules.aggregate(frame)
    curves = curve_rules.curves_of(aggregated)
    if not curves:
        raise UsageError(f"SWEEP: {name!r} has no finished runs with a strength to report on")
    config = sweep_config(client, parent)
    if data is None:
        try:
            config, data = load_data(config)
        except UsageError:  # the file moved or changed: the runs still hold the curves
            data = None
    # the pictures show fold 0's models on its training part
    first = data.fold_data(0) if data is not None and data.n_features == 2 else None
    out.mkdir(parents=True, exist_ok=True)
    brackets = brackets_of(client, parent)
    summaries = {}
    for key, curve in curves.items():
        summary = curve_rules.summarize(curve, config.select)
        summaries[key] = dataclasses.replace(summary, bracket=brackets.get(summary.name))
    references = {}  # the no-penalty dev cost per (depth, width), for the table
    for depth, width in {(s.depth, s.width) for s in summaries.values()}:
        level = curve_rules.reference_levels(aggregated, depth, width)
        if level is not None:
            references[(depth, width)] = float(level[f"{metrics.DEV_COST}_mean"])
    by_penalty: dict[str, list[tuple]] = {}
    for key, curve in curves.items():
        by_penalty.setdefault(key[0], []).append((curve, summaries[key]))
    figures = _figures(client, frame, aggregated, by_penalty, first, config.dataset.name, out)

    ordered = [summaries[key] for key in curves]
    table = summary_table(ordered, references)
    refits = refit_frame(client, parent)
    aggregated.to_csv(out / "curves.csv", index=False)
    split = config.dataset.split
    seeds = len(config.search.seeds)
    folds, repeats = getattr(split, "kfold", 1), getattr(split, "repeats", 1)
    summary = {
        "sweep": name,
        "parent_run_id": parent.info.run_id,
        "dataset": data.describe()
        if data is not None
        else parent.data.tags.get(layout.DATA_TAG, config.dataset.name),
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": len(frame),
        "finished": int((frame["status"] == "FINISHED").sum()),
        "selection": {
            "metric": config.select,
            "folds": folds,
            "repeats": repeats,
            "seeds": seeds,
            "rule": selection_text(config.select, folds, repeats, seeds),
        },
        "curves": [s.as_dict() for s in ordered],
        "refits": refits.to_dict(orient="records"),
        "no_penalty_dev_cost": {f"depth={d} width={w}": v for (d, w), v in references.items()},
    }
    (out / "summary.json").write_text(
        json.dumps(_no_nan(summary), indent=2, default=_json_default, allow_nan=False)
    )
    (out / "report.html").write_text(_html(name, summary, table, refits, figures))
    try:
        _tag_best_runs(client, parent, frame, ordered)
        client.log_artifacts(parent.info.run_id, str(out), layout.REPORT_FOLDER)
    except Exception as error:  # a reader's report: written here, not in the store
        if not tracking.is_refused(error):
            raise
        print(
            f"note: the report is in {out} only: the tracking server lets this user read the "
            "sweep but not write to it",
            file=sys.stderr,
        )
    return out


def _figures(
    client: Any,
    frame: pd.DataFrame,
    aggregated: pd.DataFrame,
    by_penalty: dict[str, list[tuple]],
    first: Any,
    dataset: str,
    out: Path,
) -> list[tuple[str, Path]]:
    """Each penalty's figures in ``out``: the trade-off, the mechanisms and, for 2-D data
    (``first``: fold 0's part), the decision boundaries; ``(caption, path)`` each."""
    from sweeps.analysis import plots

    figures: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory() as folder:
        for penalty, items in by_penalty.items():
            path = out / f"tradeoff_{penalty}.png"
            plots.tradeoff_figure(path, dataset, penalty, items, aggregated)
            figures.append((f"Figure 1 ({penalty}): the bias-variance trade-off", path))
            path = out / f"mechanisms_{penalty}.png"
            plots.mechanisms_figure(path, dataset, penalty, items)
            figures.append((f"Figure 2 ({penalty}): the mechanisms", path))
            if first is not None:
                # the training error of always predicting the most frequent class
                counts = np.unique(first.y_train, return_counts=True)[1]
                majority = 1.0 - counts.max() / len(first.y_train)
                rows = [(s, _pictures(client, frame, c, s, folder, majority)) for c, s in items]
                path = out / f"boundaries_{penalty}.png"
                plots.boundaries_figure(path, dataset, penalty, rows, first.X_train, first.y_train)
                figures.append((f"Figure 3 ({penalty}): small, best and large strength", path))

    return figures


def _no_nan(value: Any) -> Any:
    """``value`` with every NaN or infinity as None: summary.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


def _html(
    name: str,
    summary: dict,
    table: pd.DataFrame,
    refits: pd.DataFrame,
    figures: list[tuple[str, Path]],
) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>regsweep report: {html.escape(name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Bias-variance report: {html.escape(name)}</h1>",
        f"<p class='meta'>{html.escape(summary['dataset'])} · {summary['finished']} finished "
        f"runs of {summary['runs']} · parent run {summary['parent_run_id']} · "
        f"{summary['generated']}</p>",
        "<h2>lambda.min and lambda.1se per curve</h2>",
        f"<p>{html.escape(summary['selection']['rule'])}</p>",
        table.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0),
    ]
    if not refits.empty:
        parts += [
            "<h2>Refits on all non-test data, scored once on the test set</h2>",
            refits.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0),
        ]
    for caption, path in figures:
        parts.append(f"<h3>{html.escape(caption)}</h3>{png_tag(path, caption)}")
    parts.append(HOW_TO_READ)
    parts.append("</body></html>")
    return "\n".join(parts)


def _tag_best_runs(
    client: Any, parent: Any, frame: pd.DataFrame, summaries: list[curve_rules.CurveSummary]
) -> None:
    """``regsweep.best = true`` on the runs at each curve's lambda.min, ``false`` on runs that
    had it before and no longer do (asked of the store: a stored table's tags may be older)."""
    best_ids: set[str] = set()
    for s in summaries:
        chosen = curve_rules.at_strength(curve_rules.curve_rows(frame, s), s.best_strength)
        best_ids.update(chosen["run_id"])
    marked = tracking.search_all(
        client,
        [parent.info.experiment_id],
        f"{tracking.children_filter(parent.info.run_id)} and tags.`{layout.BEST_TAG}` = 'true'",
    )
    previous = {run.info.run_id for run in marked}
    for run_id in best_ids - previous:
        client.set_tag(run_id, layout.BEST_TAG, "true")
    for run_id in previous - best_ids:
        client.set_tag(run_id, layout.BEST_TAG, "false")
