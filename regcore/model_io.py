"""Fitted models as files that hold data only: written and read here only.

A classifier is one ``.npz`` file (numpy's ``savez_compressed``): ``W1..WL``
(``(n[l], n[l-1])``) and ``b1..bL`` (``(n[l], 1)``) as the lecture numbers them, ``classes``
(as text), ``activation``, and ``params`` (the estimator's parameters as JSON, so that the model
is rebuilt as it was trained).

A whole model (the preprocessing of raw rows and the classifier, :func:`save_pipeline`) is a
folder of three files: ``weights.npz`` (the classifier), ``preprocessing.npz`` (the fitted
imputers' and scaler's statistics, :func:`regcore.tables.preprocessor_state`) and
``model.json`` (the format and its version, the columns with their kinds, the one-hot
categories and the classes). Everything is read with ``allow_pickle=False``: loading a model
runs no code from the file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from regcore.estimator import RegularizedClassifier
from regcore.tables import preprocessor_state, rebuild_preprocessor

Array = np.ndarray

#: ``model.json``'s ``format`` and the versions this module reads
MODEL_FORMAT = "regsweep-model"
MODEL_VERSION = 1
WEIGHTS_FILE, PREPROCESSING_FILE, MODEL_FILE = "weights.npz", "preprocessing.npz", "model.json"
#: a whole model's steps
PREPROCESS, CLASSIFIER = "preprocess", "classifier"


class ModelFileError(ValueError):
    """A model file that does not match this format: missing, malformed or of another version."""


def to_npz(estimator: RegularizedClassifier) -> bytes:
    """A fitted estimator's parameters, classes and settings as ``.npz`` bytes."""
    arrays: dict[str, Any] = {}
    for layer, (w, b) in enumerate(zip(estimator.weights_, estimator.biases_, strict=True), 1):
        arrays[f"W{layer}"], arrays[f"b{layer}"] = w, b
    arrays["classes"] = np.asarray(estimator.classes_).astype(str)
    arrays["activation"] = np.asarray(estimator.activation)
    params = {
        name: (list(value) if name == "hidden_layer_sizes" else value)
        for name, value in estimator.get_params().items()
        if name != "random_state" or value is None or isinstance(value, int | np.integer)
    }
    arrays["params"] = np.asarray(json.dumps(params, default=_plain))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def from_npz(source: bytes | str | Path) -> RegularizedClassifier:
    """A fitted estimator from :func:`to_npz`'s bytes or a file holding them.

    Files written before ``params`` was stored give an estimator with default settings apart from
    the architecture and activation (enough to predict).

    Raises
    ------
    ModelFileError
        When the file is not such an archive, misses an array, or its layers do not chain
        (``W[l]`` of shape ``(n[l], n[l-1])``, ``b[l]`` of shape ``(n[l], 1)``).
    """
    arrays = _load_npz(source, "weights")
    n_layers = sum(1 for name in arrays if name.startswith("W"))
    for name in (
        "classes",
        "activation",
        *(f"{k}{i}" for i in range(1, n_layers + 1) for k in "Wb"),
    ):
        if name not in arrays:
            raise ModelFileError(f"weights: missing array {name!r}")
    weights = [arrays[f"W{layer}"] for layer in range(1, n_layers + 1)]
    biases = [arrays[f"b{layer}"] for layer in range(1, n_layers + 1)]
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True), 1):
        fan_in = weights[layer - 2].shape[0] if layer > 1 else w.shape[1] if w.ndim == 2 else -1
        if w.ndim != 2 or w.shape[1] != fan_in or b.shape != (w.shape[0], 1):
            raise ModelFileError(
                f"weights: W{layer} {w.shape} and b{layer} {b.shape} do not chain "
                f"(W{layer} must be (n, {fan_in}) and b{layer} (n, 1))"
            )
    params = json.loads(str(arrays["params"])) if "params" in arrays else {}
    params["hidden_layer_sizes"] = tuple(w.shape[0] for w in weights[:-1])
    params["activation"] = str(arrays["activation"])
    estimator = RegularizedClassifier(**params)
    estimator.weights_, estimator.biases_ = weights, biases
    estimator.classes_ = np.asarray(arrays["classes"])
    outputs = weights[-1].shape[0]
    if outputs != (1 if len(estimator.classes_) == 2 else len(estimator.classes_)):
        raise ModelFileError(
            f"weights: {outputs} outputs for {len(estimator.classes_)} classes "
            "(1 output for 2 classes, one per class for more)"
        )
    estimator.n_features_in_ = weights[0].shape[1]
    estimator.diverged_ = False
    return estimator


def save_pipeline(pipeline: Pipeline, folder: str | Path) -> None:
    """Write a fitted ``Pipeline([(PREPROCESS, preprocessor), (CLASSIFIER, estimator)])``
    (the preprocessor from :func:`regcore.tables.preprocessor`) into ``folder`` as data
    only (module note)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    estimator: RegularizedClassifier = pipeline.named_steps[CLASSIFIER]
    arrays, state = preprocessor_state(pipeline.named_steps[PREPROCESS])
    (folder / WEIGHTS_FILE).write_bytes(to_npz(estimator))
    np.savez(folder / PREPROCESSING_FILE, **arrays)
    description = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "preprocessing": state,
        "classes": [c.item() if isinstance(c, np.generic) else c for c in estimator.classes_],
    }
    (folder / MODEL_FILE).write_text(json.dumps(description, indent=1))


def load_pipeline(folder: str | Path) -> Pipeline:
    """The fitted pipeline :func:`save_pipeline` wrote: raw rows in, ``predict_proba`` out.

    Raises
    ------
    ModelFileError
        Naming what does not match: a missing file or array, a shape, an unknown format or
        version.
    """
    folder = Path(folder)
    try:
        description = json.loads((folder / MODEL_FILE).read_text())
    except FileNotFoundError:
        raise ModelFileError(f"model: no {MODEL_FILE} in {folder}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelFileError(f"model: {MODEL_FILE} is not JSON ({error})") from None
    if not isinstance(description, dict) or description.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"model: {MODEL_FILE} is not a {MODEL_FORMAT} description")
    if description.get("version") != MODEL_VERSION:
        raise ModelFileError(
            f"model: format version {description.get('version')!r} is not one this version "
            f"reads ({MODEL_VERSION}): install the version that wrote it"
        )
    for name in ("preprocessing", "classes"):
        if name not in description:
            raise ModelFileError(f"model: {MODEL_FILE} has no {name!r}")
    try:
        preprocess = rebuild_preprocessor(
            _load_npz(folder / PREPROCESSING_FILE, "preprocessing"), description["preprocessing"]
        )
    except (KeyError, TypeError) as error:
        raise ModelFileError(f"preprocessing: malformed description ({error})") from None
    except ValueError as error:
        raise ModelFileError(str(error)) from None
    estimator = from_npz(folder / WEIGHTS_FILE)
    classes = description["classes"]
    if len(classes) != len(estimator.classes_):
        raise ModelFileError(
            f"model: {len(classes)} classes in {MODEL_FILE}, {len(estimator.classes_)} in "
            f"{WEIGHTS_FILE}"
        )
    estimator.classes_ = np.asarray(classes)
    n_inputs = len(preprocess.named_steps["coerce"].kw_args["columns"].numeric) + sum(
        len(c) for c in description["preprocessing"]["categories"]
    )
    if n_inputs != estimator.n_features_in_:
        raise ModelFileError(
            f"model: the preprocessing gives {n_inputs} inputs, the classifier takes "
            f"{estimator.n_features_in_}"
        )
    return Pipeline([(PREPROCESS, preprocess), (CLASSIFIER, estimator)])


def _load_npz(source: bytes | str | Path, what: str) -> dict[str, Array]:
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with np.load(handle, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise ModelFileError(f"{what}: no such file {source}") from None
    except (ValueError, OSError, EOFError) as error:  # not an npz, or object arrays
        raise ModelFileError(f"{what}: not a numpy archive of plain arrays ({error})") from None


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.dtype | type):
        return np.dtype(value).name
    raise TypeError(f"cannot store {type(value).__name__} in params")
