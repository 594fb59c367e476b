"""The store's layout, stated once: every run kind, tag, artifact name and alias a sweep writes.

Writers and readers (the child-run writer, the parent run's life, the refit, the results table,
the report, ``ls`` and ``compare``) all name them from here.

One parent run per sweep (kind ``sweep``), one nested child run per training (kind ``point``,
tag ``mlflow.parentRunId``, a deterministic key tag) and one per refit (kind ``refit``).
"""

from __future__ import annotations

# --- run kinds (tag KIND_TAG) -------------------------------------------------------------------
SWEEP = "sweep"  # the parent run of a sweep
POINT = "point"  # a training
REFIT = "refit"  # a chosen strength trained on all non-test rows

# --- tags ---------------------------------------------------------------------------------------
PARENT_TAG = "mlflow.parentRunId"
KIND_TAG = "regsweep.kind"
# on the parent run
SWEEP_TAG = "regsweep.sweep"  # the sweep's name
HASH_TAG = "regsweep.config_hash"  # what decides its results (sweeps.config.schema)
POINTS_TAG = "regsweep.points"  # trainings wanted
SPLIT_TAG = "regsweep.split"  # the split, on the dataset input
DATA_TAG = "regsweep.data"  # the data as the start line describes them
DATA_SHA256_TAG = "regsweep.data_sha256"  # a file's sha256 (--resume refuses a changed file)
MISSING_TAG = "regsweep.missing"  # trainings without a complete run when it ended
TABLE_TAG = "regsweep.table"  # rows of the table it stored when it ended
DONE_TAG = "regsweep.done"  # trainings complete when it ended
BEST_COST_TAG = "regsweep.best_dev_cost"
LEASE_TAG = "regsweep.lease"  # the running driver's host, pid and last renewal (store/lease.py)
# on child runs
KEY_TAG = "regsweep.key"  # a training's deterministic key (sweeps.config.points.point_key)
WRITER_TAG = "regsweep.writer"  # which writer created it
NODE_TAG = "regsweep.node"  # host/node id that trained it
THREADS_TAG = "regsweep.threads"  # BLAS/OpenMP threads its training could use
FIT_SECONDS_TAG = "fit_seconds"
PACK_TAG = "regsweep.pack"  # how many points trained together with it
DIVERGED_TAG = "diverged"
BEST_TAG = "regsweep.best"  # at its curve's lambda.min
# on any run that failed
ERROR_TAG = "regsweep.error"
# on refit runs and registered versions
RULE_TAG = "regsweep.rule"
CURVE_TAG = "regsweep.curve"
MODEL_URI_TAG = "regsweep.model_uri"
# on a new experiment: MLflow's UI opens it on its model-training view
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
WRITABLE_TAG = "regsweep.writable"  # set by a sweep that checked it may write (tracking.py)

# --- artifacts ----------------------------------------------------------------------------------
CONFIG_ARTIFACT = "sweep.yaml"  # the parent's effective config
BRACKETS_ARTIFACT = "brackets.json"  # a bracketing search's final brackets, on the parent
TABLE_ARTIFACT = "points.parquet"  # the parent's table of runs when it ended
REPORT_FOLDER = "report"  # the report, under the parent
WEIGHTS_ARTIFACT = "weights.npz"  # a training's weights (regcore.model_io.to_npz)
MODEL_NAME = "model"  # a refit run's logged model

# --- the refit's rules and the aliases of their registered versions -----------------------------
RULES = {"lambda.min": "lambda-min", "lambda.1se": "lambda-1se"}
