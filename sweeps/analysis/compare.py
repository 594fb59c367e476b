"""``sweeps compare``: lambda curves of several sweeps, or of several groups of one sweep, overlaid.

Each argument is a sweep (name or parent run id), which contributes every curve it has, or
``SWEEP:key=value,...`` selecting some of them (keys: ``penalty``, ``depth``, ``width``,
``l1_ratio``). Curves share axes over the union of their strength grids. A curve has values only
at the strengths it was trained at: ``compare.csv`` leaves the other grid cells empty, and the
plot joins two neighbouring points with a dotted line when the shared grid has strengths between
them that this curve lacks (no interpolation across gaps). Dropout curves (strength
1 - keep_prob) get a panel of their own.

Outputs in ``--out``: ``compare.png``, ``compare.html`` (self-contained), ``compare.csv`` (the
curves on the union grid) and a table of the best strength per curve.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regcore import metrics
from sweeps.analysis import curves as curve_rules
from sweeps.analysis.report import STYLE, png_tag
from sweeps.errors import UsageError
from sweeps.settings import CURVE_KEYS, curve_name
from sweeps.store import layout, tracking
from sweeps.store.results import child_frame

SELECTABLE = {"penalty": str, "depth": int, "width": int, "l1_ratio": float}


@dataclass(frozen=True)
class Selection:
    sweep: str
    filters: tuple[tuple[str, Any], ...]
    text: str


def parse_selection(text: str) -> Selection:
    """``"moons:penalty=l2,depth=3"`` -> the sweep and its filters (a UsageError if malformed)."""
    sweep, sep, rest = text.partition(":")
    if not sweep:
        raise UsageError(f"SWEEP_OR_GROUP: missing the sweep before ':', got {text!r}")
    filters = []
    if sep:
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or key not in SELECTABLE:
                raise UsageError(
                    f"SWEEP_OR_GROUP: expected key=value with key in "
                    f"{', '.join(SELECTABLE)}, got {item!r} in {text!r}"
                )
            try:
                filters.append((key, SELECTABLE[key](value.strip())))
            except ValueError:
                raise UsageError(
                    f"SWEEP_OR_GROUP: {key} must be {SELECTABLE[key].__name__}, got {value!r}"
                ) from None
    return Selection(sweep, tuple(filters), text)


def _selected_curves(
    client: Any, selection: Selection, metric: str
) -> list[tuple[str, pd.DataFrame]]:
    parent = tracking.find_sweep(client, selection.sweep)
    name = parent.data.tags.get(layout.SWEEP_TAG, parent.info.run_name)
    frame = child_frame(client, parent)
    for key, value in selection.filters:
        if key in frame:
            frame = frame[
                np.isclose(frame[key], value) if key == "l1_ratio" else frame[key] == value
            ]
    aggregated = curve_rules.aggregate(frame)
    if aggregated.empty:
        raise UsageError(f"SWEEP_OR_GROUP: {selection.text!r} selects no finished runs")
    if f"{metric}_mean" not in aggregated:
        known = sorted(c[:-5] for c in aggregated.columns if c.endswith("_mean"))
        raise UsageError(
            f"--metric: the runs have no metric {metric!r} (known: {', '.join(known)})"
        )
    found = curve_rules.curves_of(aggregated)
    if not found:
        raise UsageError(
            f"SWEEP_OR_GROUP: {selection.text!r} selects only 'none' runs (no strength)"
        )
    return [
        (f"{name} · {curve_name(**dict(zip(CURVE_KEYS, key, strict=True)))}", curve)
        for key, curve in found.items()
    ]


def write_comparison(
    client: Any, arguments: list[str], metric: str, out: str | Path | None
) -> Path:
    """Overlay the selected curves; return the output folder."""
    selections = [parse_selection(text) for text in arguments]
    labelled: list[tuple[str, pd.DataFrame]] = []
    for selection in selections:
        labelled += _selected_curves(client, selection, metric)
    seen: set[str] = set()
    labelled = [(label, c) for label, c in labelled if not (label in seen or seen.add(label))]
    out = Path(out) if out else Path("reports") / "compare"
    out.mkdir(parents=True, exist_ok=True)

    table_rows, long_rows = [], []
    for label, curve in labelled:
        # a strength where a training diverged is never the best; nor is any when all did
        values = curve_rules.selection_means(curve, metric)
        best = int(np.argmin(np.where(np.isnan(values), np.inf, values)))
        found = bool(np.isfinite(values[best]))
        summary = curve_rules.summarize(curve) if metric == metrics.DEV_COST else None
        table_rows.append(
            {
                "curve": label,
                "penalty": curve["penalty"].iloc[0],
                "best strength": float(curve["strength"].iloc[best]) if found else np.nan,
                f"{metric} at best": float(values[best]) if found else np.nan,
                "1-SE rule": summary.strength_1se if summary else np.nan,
                "points": len(curve),
                "verdict": summary.verdict if summary else "",
            }
        )
        for _, row in curve.iterrows():
            long_rows.append(
                {
                    "curve": label,
                    "penalty": row["penalty"],
                    "strength": row["strength"],
                    f"{metric}_mean": row[f"{metric}_mean"],
                    f"{metric}_se": row[f"{metric}_se"],
                    "seeds": row["seeds"],
                }
            )
    table = pd.DataFrame(table_rows)
    long = pd.DataFrame(long_rows)
    wide = long.pivot_table(
        index="strength", columns="curve", values=f"{metric}_mean", aggfunc="first"
    )
    wide.to_csv(out / "compare.csv")

    from sweeps.analysis import plots

    plots.comparison_figure(out / "compare.png", long, metric)
    page = [
        "<!doctype html><html><head><meta charset='utf-8'><title>regsweep comparison</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Lambda curves compared: {html.escape(metric)}</h1>",
        f"<p>{html.escape(', '.join(arguments))}</p>",
        table.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0),
        png_tag(out / "compare.png", "lambda curves compared"),
        "<p>Markers are the strengths each curve was trained at. A dotted segment joins two "
        "points between which the shared grid has strengths this curve was not trained at: "
        "no value is drawn as if measured there. compare.csv holds the curves on the shared "
        "grid, with empty cells where a curve has no value.</p></body></html>",
    ]
    (out / "compare.html").write_text("\n".join(page))
    table.to_csv(out / "best.csv", index=False)
    return out
