"""A fitted model's arrays as one ``.npz`` file: written and read here only.

Layout (numpy's ``savez_compressed``): ``W1..WL`` (``(n[l], n[l-1])``) and ``b1..bL``
(``(n[l], 1)``) as the lecture numbers them, ``classes`` (as text), ``activation``, and ``params``
(the estimator's parameters as JSON, so that the model is rebuilt as it was trained).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from regcore.estimator import RegularizedClassifier

Array = np.ndarray


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
    """
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    with np.load(handle) as archive:
        arrays = {name: archive[name] for name in archive.files}
    n_layers = sum(1 for name in arrays if name.startswith("W"))
    weights = [arrays[f"W{layer}"] for layer in range(1, n_layers + 1)]
    biases = [arrays[f"b{layer}"] for layer in range(1, n_layers + 1)]
    params = json.loads(str(arrays["params"])) if "params" in arrays else {}
    params["hidden_layer_sizes"] = tuple(w.shape[0] for w in weights[:-1])
    params["activation"] = str(arrays["activation"])
    estimator = RegularizedClassifier(**params)
    estimator.weights_, estimator.biases_ = weights, biases
    estimator.classes_ = np.asarray(arrays["classes"])
    estimator.n_features_in_ = weights[0].shape[1]
    estimator.diverged_ = False
    return estimator


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.dtype | type):
        return np.dtype(value).name
    raise TypeError(f"cannot store {type(value).__name__} in params")
