"""``RegularizedClassifier``, a scikit-learn estimator, and ``fit_many``, which trains several of
them together."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from regcore import metrics, parameters
from regcore._validation import check_parameters, dtype_of
from regcore.losses import data_loss, n_outputs, one_hot_targets, output_activation
from regcore.messages import plain
from regcore.network import ParameterStack, forward_logits
from regcore.training import penalty_entries, penalty_value, train
from regcore.training_plan import ModelSettings, TrainingData, TrainingPlan

Array = np.ndarray


class DivergenceWarning(RuntimeWarning):
    """Training stopped because the cost stopped being finite (e.g. too large a learning rate)."""


class RegularizedClassifier(ClassifierMixin, BaseEstimator):
    __doc__ = f"""Logistic regression or an L-layer network with the lecture's regularization.

    The objective is ``J = (1/m) sum_i L(yhat_i, y_i) + penalty`` with cross-entropy ``L``
    (sigmoid output for two classes, softmax for more) and the penalties of
    :mod:`regcore.penalties` (``lam/(2m) sum ||W||_F^2`` for l2, ``lam/m sum ||W||_1`` for l1).

    Parameters
    ----------
{parameters.numpydoc()}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    weights_ : list of ndarray, entry l of shape (n[l], n[l-1])
    biases_ : list of ndarray, entry l of shape (n[l], 1)
    history_ : pandas.DataFrame
        One row per logged epoch; the row for epoch ``e`` holds values computed with the
        parameters before epoch ``e``'s update (the row for ``epochs`` holds the final ones).
        Columns are named as in :mod:`regcore.metrics`.
    diverged_ : bool
        Whether training stopped early because the cost was not finite. The history then ends
        with the non-finite row and the parameters are those of the row before.
    n_features_in_ : int
    """

    # the defaults are regcore.parameters' (a test holds them equal): scikit-learn reads the
    # parameters from this signature, so it stays written out
    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (),
        activation: str = "relu",
        penalty: str = "l2",
        lam: float = 1.0,
        l1_ratio: float = 0.5,
        keep_prob: float = 0.8,
        penalize_bias: bool = False,
        optimizer: str = "gd",
        learning_rate: float = 0.1,
        batch_size: int | None = None,
        epochs: int = 1000,
        init: str = "he",
        log_every: int = 100,
        random_state: int | np.random.RandomState | None = None,
        dtype: str = "float64",
        engine: str = "auto",
        n_jobs: int | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.penalty = penalty
        self.lam = lam
        self.l1_ratio = l1_ratio
        self.keep_prob = keep_prob
        self.penalize_bias = penalize_bias
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.init = init
        self.log_every = log_every
        self.random_state = random_state
        self.dtype = dtype
        self.engine = engine
        self.n_jobs = n_jobs

    # --- training ---------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any,
        X_dev: Any | None = None,
        y_dev: Any | None = None,
    ) -> RegularizedClassifier:
        """Train on ``X`` of shape (n_samples, n_features) and labels ``y`` of shape (n_samples,).

        ``X_dev``/``y_dev`` (optional) add ``dev_cost`` and ``dev_error`` to the history.
        ``X`` is used as given: scale it beforehand (see :mod:`regcore.datasets`).
        """
        fit_many([self], X, y, X_dev, y_dev)
        return self

    def _settings(self) -> ModelSettings:
        return ModelSettings(
            penalty=self.penalty,
            lam=float(self.lam),
            l1_ratio=float(self.l1_ratio),
            keep_prob=float(self.keep_prob),
            penalize_bias=bool(self.penalize_bias),
            init=self.init,
            random_state=self.random_state,
        )

    # --- prediction -------------------------------------------------------------------------

    def _stack(self) -> ParameterStack:
        return ParameterStack.single(self.weights_, self.biases_)

    def _logits(self, X: Any) -> Array:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=dtype_of(self.dtype))
        return forward_logits(self._stack(), np.ascontiguousarray(X.T), self.activation)[-1]

    def decision_function(self, X: Any) -> Array:
        """Output-layer logits: shape (n_samples,) for two classes, (n_samples, n_classes) else."""
        z = self._logits(X)[0]
        return z[0] if z.shape[0] == 1 else z.T

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        a = output_activation(self._logits(X))[0]
        return np.vstack([1.0 - a[0], a[0]]).T if a.shape[0] == 1 else a.T

    def predict(self, X: Any) -> Array:
        """Predicted labels, shape (n_samples,)."""
        z = self._logits(X)[0]
        index = (z[0] > 0).astype(np.intp) if z.shape[0] == 1 else z.argmax(axis=0)
        return self.classes_[index]

    def loss(self, X: Any, y: Any) -> float:
        """The data term ``(1/m) sum_i L`` on (X, y), no penalty (how ``dev_cost`` is defined)."""
        return self._loss_and_penalty(X, y)[0]

    def cost(self, X: Any, y: Any) -> float:
        """J on (X, y) with the current weights, penalty included (``m = len(X)``)."""
        return sum(self._loss_and_penalty(X, y))

    def _loss_and_penalty(self, X: Any, y: Any) -> tuple[float, float]:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=dtype_of(self.dtype))
        y_index = _label_indices(self.classes_, np.asarray(y), "y", len(X))
        stack = self._stack()
        z = forward_logits(stack, np.ascontiguousarray(X.T), self.activation)[-1]
        targets = one_hot_targets(y_index, z.shape[1], z.dtype)
        sq_coef, abs_coef = penalty_entries(stack, [self._settings()])
        penalty = penalty_value(stack, sq_coef, abs_coef, len(X))[0]
        return float(data_loss(z, targets)[0]), float(penalty)


def _label_indices(classes: Array, labels: Array, name: str, n_samples: int) -> Array:
    """Indices of ``labels`` in ``classes``; a ValueError names any label not in ``classes``."""
    if labels.ndim != 1 or labels.shape[0] != n_samples:
        raise ValueError(
            f"{name} must have shape ({n_samples},) to match the samples, got {labels.shape}"
        )
    index = np.searchsorted(classes, labels)
    index[index >= len(classes)] = 0
    unseen = classes[index] != labels
    if unseen.any():
        raise ValueError(
            f"{name} contains a label not seen in training: {plain(labels[unseen][0])!r}"
        )
    return index


def _check_pack(estimators: Sequence[RegularizedClassifier]) -> None:
    if len(estimators) == 0:
        raise ValueError("fit_many: estimators must not be empty, got []")
    for i, est in enumerate(estimators):
        if not isinstance(est, RegularizedClassifier):
            raise ValueError(
                f"fit_many: estimators[{i}] must be a RegularizedClassifier, got {est!r}"
            )
        owner = type(est).__name__ if len(estimators) == 1 else f"estimators[{i}]"
        check_parameters(est.get_params(), owner)
    first = estimators[0]
    for i, est in enumerate(estimators[1:], start=1):
        for name in parameters.SHARED:
            a, b = getattr(first, name), getattr(est, name)
            if name == "hidden_layer_sizes":
                same = tuple(a) == tuple(b)
            elif name == "dtype":
                same = dtype_of(a) == dtype_of(b)
            else:
                same = a == b
            if not same:
                raise ValueError(
                    f"fit_many: estimators must share {name}; estimators[0] has {a!r}, "
                    f"estimators[{i}] has {b!r}"
                )


def fit_many(
    estimators: Sequence[RegularizedClassifier],
    X: Any = None,
    y: Any = None,
    X_dev: Any | None = None,
    y_dev: Any | None = None,
    *,
    data: Sequence[tuple] | None = None,
) -> list[RegularizedClassifier]:
    """Train several estimators of one architecture together, as stacked arrays.

    The estimators may differ in the parameters that :mod:`regcore.parameters` marks
    ``per_model`` (``penalty``, ``lam``, ``l1_ratio``, ``keep_prob``, ``penalize_bias``, ``init``,
    ``random_state``) and must share the others. Each ends as its own ``fit`` would leave it.

    They train on one data set (``X``, ``y``, ``X_dev``, ``y_dev``), or each on its own
    (``data``), for example the folds of a cross-validation: data sets may differ in size but
    must have the same features and give every estimator the same classes (each must see every
    class in training). Dev data is given to all estimators or to none.

    Parameters
    ----------
    estimators : sequence of RegularizedClassifier
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    X_dev : array-like of shape (n_dev, n_features), optional
    y_dev : array-like of shape (n_dev,), optional
    data : sequence of tuples, one per estimator, optional
        ``(X, y)`` or ``(X, y, X_dev, y_dev)`` for each estimator, instead of ``X``... Entries
        that are the same tuple object are validated once and trained as shared data.

    Returns
    -------
    list of RegularizedClassifier
        The same estimators, fitted.
    """
    _check_pack(estimators)
    first = estimators[0]
    dtype = dtype_of(first.dtype)
    if data is None:
        data = [(X, y, X_dev, y_dev)] * len(estimators)
    elif X is not None or y is not None or X_dev is not None or y_dev is not None:
        raise ValueError("fit_many: give X and y, or data, got both")
    elif len(data) != len(estimators):
        raise ValueError(
            f"fit_many: data must hold one entry per estimator ({len(estimators)}), got {len(data)}"
        )
    validated: dict[int, tuple] = {}
    for item in data:
        if id(item) not in validated:
            validated[id(item)] = _validated(first, item, dtype)
    parts = [validated[id(item)] for item in data]
    classes = parts[0][1]
    for other in parts[1:]:
        if not np.array_equal(other[1], classes):
            raise ValueError(
                "fit_many: every data set must hold the same classes in training, got "
                f"{[plain(c) for c in classes]} and {[plain(c) for c in other[1]]}"
            )
    if len({part[0].x.shape[1] for part in parts}) > 1:
        raise ValueError(
            "fit_many: every data set must have the same features, got "
            f"{sorted({part[0].x.shape[1] for part in parts})} features"
        )
    if len({part[0].has_dev for part in parts}) > 1:
        raise ValueError("fit_many: give dev data to every estimator or to none")
    n_features = parts[0][0].x.shape[1]

    plan = TrainingPlan(
        layer_sizes=(n_features, *first.hidden_layer_sizes, n_outputs(len(classes))),
        activation=first.activation,
        optimizer=first.optimizer,
        learning_rate=float(first.learning_rate),
        epochs=int(first.epochs),
        batch_size=None if first.batch_size is None else int(first.batch_size),
        log_every=int(first.log_every),
        dtype=dtype,
        threads=_threads(first.n_jobs),
    )
    models = [est._settings() for est in estimators]
    result = train(plan, models, [part[0] for part in parts], engine=first.engine)
    for k, est in enumerate(estimators):
        est.n_features_in_ = n_features
        names = parts[k][2]
        if names is not None:
            est.feature_names_in_ = names
        elif hasattr(est, "feature_names_in_"):
            del est.feature_names_in_
        est.classes_ = classes
        est.weights_ = result.weights[k]
        est.biases_ = result.biases[k]
        table = result.histories[k]
        est.history_ = pd.DataFrame(  # column by column: a frame's setitem costs more
            {
                name: table[:, i].astype(int) if name == metrics.EPOCH else table[:, i]
                for i, name in enumerate(result.columns)
            }
        )
        est.diverged_ = result.diverged_at[k] is not None
        if est.diverged_:
            warnings.warn(
                f"training diverged at epoch {result.diverged_at[k]} (cost not finite; "
                f"learning_rate={plan.learning_rate:g}); stopped there, parameters kept from the "
                "last finite history row",
                DivergenceWarning,
                stacklevel=2,
            )
    return list(estimators)


def _threads(n_jobs: int | None) -> int:
    """scikit-learn's ``n_jobs``: None is 1, -1 every core, -2 all but one, ..."""
    if n_jobs is None:
        return 1
    return n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)


def _validated(
    first: RegularizedClassifier, item: tuple, dtype: np.dtype
) -> tuple[TrainingData, Array, Array | None]:
    """One data set checked as scikit-learn checks ``fit``'s arguments: the training data, its
    classes and its feature names (if it has them)."""
    if not isinstance(item, tuple) or len(item) not in (2, 4):
        raise ValueError(
            "fit_many: each data entry must be (X, y) or (X, y, X_dev, y_dev), "
            f"got {type(item).__name__} of length {len(item) if hasattr(item, '__len__') else '?'}"
        )
    X, y, X_dev, y_dev = (*item, None, None) if len(item) == 2 else item
    probe = clone(first)  # validate_data records the features on the estimator it is given
    X, y = validate_data(probe, X, y, dtype=dtype)
    check_classification_targets(y)
    classes, y_index = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            "y must contain at least 2 classes to train a classifier, "
            f"got 1 class ({plain(classes[0])!r})"
        )
    if (X_dev is None) != (y_dev is None):
        raise ValueError("X_dev and y_dev must be given together, got only one of them")
    x_dev = y_dev_index = None
    if X_dev is not None:
        x_dev = validate_data(probe, X_dev, reset=False, dtype=dtype)
        y_dev_index = _label_indices(classes, np.asarray(y_dev), "y_dev", len(x_dev))
    names = getattr(probe, "feature_names_in_", None)
    return TrainingData(X, y_index, x_dev, y_dev_index), classes, names
