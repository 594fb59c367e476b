"""A sweep's child runs as a pandas table.

A running sweep's table is read from MLflow (one paged search of its child runs' params, final
metrics and tags, never their histories). When a sweep ends, the driver stores the table on the
parent run (``points.parquet``, tag ``regsweep.table``): ``ls``, ``show``, ``report`` and
``compare`` then read that one file instead (a 10,000-point sweep in about a second). A resumed
sweep is searched again until it ends and writes a new table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regcore import metrics
from sweeps.settings import SETTING_KEYS, read_params, strength
from sweeps.store import layout, tracking
from sweeps.store.retry import retrying

#: child-run tags as columns
TAGS = {
    "key": layout.KEY_TAG,
    "diverged": layout.DIVERGED_TAG,
    "node": layout.NODE_TAG,
    "best": layout.BEST_TAG,
    "error": layout.ERROR_TAG,
}


def child_frame(client: Any, parent: Any, *, search: bool = False) -> pd.DataFrame:
    """One row per child run of ``parent``: params, final metrics, status and tags.

    From the table the sweep stored when it ended, else (or with ``search``) from a search of
    its child runs. Columns: the child-run params (numeric ones as numbers), every final metric
    by its metric name, ``status``, ``run_id``, ``key``, ``diverged`` (bool), ``node`` and
    ``strength`` (lam, or ``1 - keep_prob`` for dropout).
    """
    if not search and parent.info.status != "RUNNING" and layout.TABLE_TAG in parent.data.tags:
        stored = _stored_table(client, parent.info.run_id)
        if stored is not None and len(stored) == int(parent.data.tags[layout.TABLE_TAG]):
            return stored
    return _searched_table(client, parent)


def store_table(client: Any, run_id: str, frame: pd.DataFrame) -> None:
    """Store a sweep's table (:func:`child_frame`) on its parent run, for later reads."""
    with tempfile.TemporaryDirectory(prefix="regsweep-") as folder:
        path = Path(folder) / layout.TABLE_ARTIFACT
        frame.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path))
    client.set_tag(run_id, layout.TABLE_TAG, str(len(frame)))


def _stored_table(client: Any, run_id: str) -> pd.DataFrame | None:
    try:
        with tempfile.TemporaryDirectory(prefix="regsweep-") as folder:
            return pd.read_parquet(client.download_artifacts(run_id, layout.TABLE_ARTIFACT, folder))
    except Exception:  # missing or unreadable: the search still answers
        return None


def _searched_table(client: Any, parent: Any) -> pd.DataFrame:
    import mlflow

    with tracking.tracking_uri(client.tracking_uri):
        raw = retrying(
            mlflow.search_runs,
            experiment_ids=[parent.info.experiment_id],
            filter_string=tracking.children_filter(parent.info.run_id),
            output_format="pandas",
            max_results=10**9,  # every child run: MLflow's default stops at 100,000
        )
    if raw.empty:
        columns = [*SETTING_KEYS, "seed", "repeat", "fold", "status", "run_id", "strength", *TAGS]
        empty = pd.DataFrame(columns=columns)
        empty["diverged"] = empty["diverged"].astype(bool)
        return empty
    frame = pd.DataFrame({"run_id": raw["run_id"], "status": raw["status"]})
    for column in raw.columns:
        if column.startswith("params."):
            frame[column[len("params.") :]] = raw[column]
        elif column.startswith("metrics."):
            frame[column[len("metrics.") :]] = raw[column].astype(float)
    read_params(frame)
    for name, tag in TAGS.items():
        column = f"tags.{tag}"
        frame[name] = raw.get(column)
    frame["diverged"] = frame["diverged"].eq("true")
    frame["strength"] = strength(frame["penalty"], frame["lam"], frame["keep_prob"])
    return frame.sort_values([*SETTING_KEYS, "seed", "repeat", "fold"]).reset_index(drop=True)


def complete_keys(frame: pd.DataFrame) -> set[str]:
    """Keys of the points whose run is complete
    (:func:`sweeps.store.tracking.is_complete_state`)."""
    done = [
        tracking.is_complete_state(status, bool(diverged))
        for status, diverged in zip(frame["status"], frame["diverged"], strict=True)
    ]
    return set(frame.loc[done, "key"].dropna()) if len(frame) else set()


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


def refit_frame(client: Any, parent: Any) -> pd.DataFrame:
    """A sweep's refit runs as a table: curve, rule, strength, test cost and error, model URI."""
    runs = tracking.child_runs(client, parent, kind=layout.REFIT)
    rows = []
    for run in runs:
        params, values = run.data.params, run.data.metrics
        penalty = params.get("penalty", "")
        rows.append(
            {
                "curve": run.data.tags.get(layout.CURVE_TAG, ""),
                "rule": run.data.tags.get(layout.RULE_TAG, ""),
                "strength": strength(
                    penalty, float(params.get("lam", "nan")), float(params.get("keep_prob", "nan"))
                ),
                "test cost": values.get(metrics.TEST_COST, np.nan),
                "test error": values.get(metrics.TEST_ERROR, np.nan),
                "status": run.info.status,
                "model": run.data.tags.get(layout.MODEL_URI_TAG, ""),
            }
        )
    frame = pd.DataFrame(
        rows, columns=["curve", "rule", "strength", "test cost", "test error", "status", "model"]
    )
    return frame.sort_values(["curve", "rule"]).reset_index(drop=True)
