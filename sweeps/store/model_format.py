"""The chosen models in MLflow, as data only, loaded through this module of the installed package.

A refit model (:mod:`sweeps.execution.refit`) is logged as an MLflow ``python_function`` model
whose ``loader_module`` is this module: its ``data`` folder holds the files
:func:`regcore.model_io.save_pipeline` writes (weights, imputer and scaler statistics, one-hot
categories: arrays read with ``allow_pickle=False``, and JSON). No pickle, no cloudpickle and no
code travel with the model, so ``mlflow.pyfunc.load_model`` works with
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``, and whoever can write to the registry cannot make
a model run code on the machine that loads it. The model takes raw rows as they are in the
user's table (missing values and unseen categories included) and predicts the probability of
each class (columns in the order of ``classes`` in its ``model.json``).

For the scikit-learn estimator itself, :func:`load_pipeline` rebuilds the ``Pipeline``
(preprocessing, then :class:`regcore.RegularizedClassifier`) from the same files.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from regcore.model_io import load_pipeline as load_pipeline_files
from regcore.model_io import save_pipeline
from regcore.tables import BOOLEAN, NUMBER, Columns

#: the distribution that holds this module: a model's one requirement besides its libraries
DISTRIBUTION = "regsweep"


class _Predictor:
    """What ``mlflow.pyfunc`` wraps: raw rows in, class probabilities out."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        """Probabilities of shape (n_rows, n_classes)."""
        return self.pipeline.predict_proba(model_input)


def _load_pyfunc(data_path: str) -> _Predictor:
    """MLflow's entry point (``loader_module``): the model in ``data_path``."""
    return _Predictor(load_pipeline_files(data_path))


def load_pipeline(model_uri: str) -> Pipeline:
    """The scikit-learn ``Pipeline`` of a logged or registered model (``models:/NAME@alias``,
    ``runs:/...``), rebuilt from its arrays: ``predict``, ``predict_proba`` and ``score`` on
    raw rows."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="regsweep-model-") as folder:
        local = mlflow.artifacts.download_artifacts(model_uri, dst_path=folder)
        model = mlflow.models.Model.load(local)
        data = model.flavors["python_function"].get("data", "data")
        return load_pipeline_files(Path(local) / data)


def requirements() -> list[str]:
    """What a model needs installed: this package (its loader) and the libraries it uses."""
    names = [DISTRIBUTION, "numpy", "scipy", "scikit-learn", "pandas"]
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:  # a source tree run without installing it
            out.append(name)
    return out


def column_type(values: pd.Series, kind: str) -> Any:
    """A column's MLflow type: ``double`` for a column of numbers with a fraction or a missing
    value in the file, ``any`` for whole numbers (MLflow takes a JSON column of whole numbers
    only as ``long``, and one with a missing value only as ``double``: the model's own check
    turns both into numbers and refuses text naming the column), ``boolean`` and ``string``
    for categories."""
    from mlflow.types.schema import AnyType

    if kind == NUMBER:
        return AnyType() if pd.api.types.is_integer_dtype(values) else "double"
    return "boolean" if kind == BOOLEAN else "string"


def signature(rows: pd.DataFrame, columns: Columns, classes: list[Any]) -> Any:
    """The model's MLflow signature: the table's columns by name and type as ``rows`` (the
    training rows) hold them, each required (a missing value is imputed, a missing column is
    an error), and a (n_rows, n_classes) array of probabilities."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([ColSpec(column_type(rows[name], kind), name) for name, kind in columns.kinds])
    outputs = Schema([TensorSpec(np.dtype(np.float64), (-1, len(classes)))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_model(
    client: Any,
    run_id: str,
    experiment_id: str,
    name: str,
    pipeline: Pipeline,
    columns: Columns,
    rows: pd.DataFrame,
) -> Any:
    """Log ``pipeline`` (raw rows in, trained on ``rows``) as the data-only model ``name`` of
    run ``run_id``, with its signature and the first rows as input example; returns MLflow's
    ``ModelInfo``."""
    import mlflow
    from mlflow.models import Model

    from sweeps.store.tracking import tracking_uri

    classes = list(pipeline.named_steps["classifier"].classes_)
    # the logged model is created here, in the sweep's experiment: left to Model.log, it would
    # go to the fluent API's current experiment (the default one)
    logged = client.create_logged_model(
        experiment_id=experiment_id, name=name, source_run_id=run_id
    )
    with tempfile.TemporaryDirectory(prefix="regsweep-model-") as scratch:
        folder = Path(scratch) / "model"  # MLflow keeps the folder's name: data/model/
        save_pipeline(pipeline, folder)
        with tracking_uri(client.tracking_uri):
            return Model.log(
                artifact_path=None,
                name=name,
                flavor=mlflow.pyfunc,
                loader_module=__name__,
                data_path=str(folder),
                run_id=run_id,  # no fluent run: the caller ends the run itself
                model_id=logged.model_id,
                signature=signature(rows, columns, classes),
                input_example=rows.head(5),
                pip_requirements=requirements(),  # no inference subprocess (seconds)
            )
