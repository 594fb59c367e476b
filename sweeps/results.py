"""A sweep's child runs as a pandas table, and the per-group summaries built from it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from regcore import metrics
from sweeps import tracking

#: the numeric params of a child run
NUMERIC_PARAMS = (
    "lam",
    "l1_ratio",
    "keep_prob",
    "depth",
    "width",
    "seed",
    "learning_rate",
    "epochs",
)
#: one curve of the report: points that differ only in strength and seed
GROUP = ["penalty", "depth", "width"]
#: one point of a curve: the seeds of one setting
SETTING = [*GROUP, "lam", "l1_ratio", "keep_prob"]
#: child-run tags as columns
TAGS = {
    "key": tracking.KEY_TAG,
    "diverged": tracking.DIVERGED_TAG,
    "node": tracking.NODE_TAG,
    "best": tracking.BEST_TAG,
    "error": tracking.ERROR_TAG,
}


def child_frame(client: Any, parent: Any) -> pd.DataFrame:
    """One row per child run of ``parent``: params, final metrics, status and tags.

    Read with ``mlflow.search_runs`` (pandas output) on the client's tracking URI. Columns:
    the child-run params (numeric ones as numbers), every final metric by its metric name,
    ``status``, ``run_id``, ``key``, ``diverged`` (bool), ``node`` and ``strength``
    (lam, or ``1 - keep_prob`` for dropout).
    """
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        raw = mlflow.search_runs(
            experiment_ids=[parent.info.experiment_id],
            filter_string=f"tags.`{tracking.PARENT_TAG}` = '{parent.info.run_id}'",
            output_format="pandas",
            max_results=100_000,
        )
    finally:
        mlflow.set_tracking_uri(previous)
    if raw.empty:
        columns = [*SETTING, "seed", "status", "run_id", "strength", *TAGS]
        empty = pd.DataFrame(columns=columns)
        empty["diverged"] = empty["diverged"].astype(bool)
        return empty
    frame = pd.DataFrame({"run_id": raw["run_id"], "status": raw["status"]})
    for column in raw.columns:
        if column.startswith("params."):
            frame[column[len("params.") :]] = raw[column]
        elif column.startswith("metrics."):
            frame[column[len("metrics.") :]] = raw[column].astype(float)
    for name in NUMERIC_PARAMS:
        if name in frame:
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    for name in ("depth", "width", "seed", "epochs"):
        if name in frame:
            frame[name] = frame[name].astype("Int64")
    for name, tag in TAGS.items():
        column = f"tags.{tag}"
        frame[name] = raw.get(column)
    frame["diverged"] = frame["diverged"].eq("true")
    frame["strength"] = np.where(
        frame["penalty"] == "dropout", 1.0 - frame["keep_prob"], frame["lam"]
    )
    return frame.sort_values([*SETTING, "seed"]).reset_index(drop=True)


def complete_keys(frame: pd.DataFrame) -> set[str]:
    """Keys of the points whose run is complete (:func:`sweeps.tracking.is_complete_state`)."""
    done = [
        tracking.is_complete_state(status, bool(diverged))
        for status, diverged in zip(frame["status"], frame["diverged"], strict=True)
    ]
    return set(frame.loc[done, "key"].dropna()) if len(frame) else set()


def best_per_group(frame: pd.DataFrame, metric: str = metrics.DEV_COST) -> pd.DataFrame:
    """Per (penalty, depth, width): the setting with the lowest mean ``metric`` over seeds."""
    done = frame[frame["status"] == "FINISHED"]
    if done.empty or metric not in done:
        return pd.DataFrame()
    columns = [
        c
        for c in (metrics.TRAIN_COST, metrics.DEV_COST, metrics.TRAIN_ERROR, metrics.DEV_ERROR)
        if c in done
    ]
    means = done.groupby(SETTING, dropna=False)[columns].mean()
    means["seeds"] = done.groupby(SETTING, dropna=False)["seed"].count()
    means = means.reset_index()
    best = means.loc[means.groupby(GROUP, dropna=False)[metric].idxmin()]
    return best.sort_values(GROUP).reset_index(drop=True)


def format_table(frame: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """A plain-text table (no index) with compact numbers."""
    if frame.empty:
        return "(nothing yet)"
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(
                lambda v: "" if pd.isna(v) else float_format.format(v)
            )
    return shown.to_string(index=False)
