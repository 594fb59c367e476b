"""Datasets for regularization experiments, split deterministically and standardized.

- 2-D synthetic sets where over- and underfitting can be seen: ``moons``, ``circles``,
  ``spirals`` and ``blobs`` (two overlapping Gaussian clusters); ``noise`` sets how much the
  classes overlap.
- the real datasets that scikit-learn ships (no download): ``breast_cancer``, ``digits``,
  ``wine``, ``iris``.
- ``file``: a CSV or Parquet file (``path``) with a ``target`` column; every other column must
  be numeric.

Splits are stratified by class where every class has at least two samples, and depend only on
``seed``. Standardization (zero mean, unit variance per feature) is fitted on the training part
alone and applied to all parts; constant features are left unscaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets as sk_datasets
from sklearn.model_selection import StratifiedKFold, train_test_split

from regcore._validation import first_line, plain

Array = np.ndarray

#: synthetic sets and their default (n_samples, noise)
SYNTHETIC = {
    "moons": (300, 0.3),
    "circles": (300, 0.1),
    "spirals": (300, 0.2),
    "blobs": (300, 1.0),
}
BUILTIN = {
    "breast_cancer": sk_datasets.load_breast_cancer,
    "digits": sk_datasets.load_digits,
    "wine": sk_datasets.load_wine,
    "iris": sk_datasets.load_iris,
}
FILE = "file"
DATASET_NAMES = (*SYNTHETIC, *BUILTIN, FILE)
FILE_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class Dataset:
    """Standardized train/dev/test parts of one dataset.

    ``X_*`` have shape (n_part, n_features) and ``y_*`` shape (n_part,). ``mean`` and ``scale``
    (shape (n_features,)) are the training part's statistics; ``standardize`` applies them to new
    raw inputs.
    """

    name: str
    X_train: Array
    y_train: Array
    X_dev: Array
    y_dev: Array
    X_test: Array
    y_test: Array
    feature_names: tuple[str, ...]
    mean: Array
    scale: Array

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def classes(self) -> Array:
        return np.unique(self.y_train)

    def standardize(self, X: Array) -> Array:
        """Scale raw inputs of shape (n, n_features) as the training part was scaled."""
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.scale

    def describe(self) -> str:
        return (
            f"{self.name}: {self.n_features} features, {len(self.classes)} classes, "
            f"{len(self.y_train)} train / {len(self.y_dev)} dev / {len(self.y_test)} test"
        )


def make_spirals(
    n_samples: int = 300, noise: float = 0.2, random_state: int | None = None
) -> tuple[Array, Array]:
    """Two interleaved spirals (1.5 turns each).

    Parameters
    ----------
    n_samples : int
        Total points, split evenly between the classes.
    noise : float
        Standard deviation of Gaussian noise added to each coordinate.
    random_state : int or None

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
    y : ndarray of shape (n_samples,) with values 0 and 1
    """
    rng = np.random.RandomState(random_state)
    counts = (n_samples // 2, n_samples - n_samples // 2)
    parts, labels = [], []
    for label, count in enumerate(counts):
        turn = np.sqrt(rng.uniform(0.0, 1.0, count)) * 3.0 * np.pi  # uniform density along arc
        radius = turn / (3.0 * np.pi)
        angle = turn + label * np.pi
        points = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
        parts.append(points + rng.normal(scale=noise, size=points.shape))
        labels.append(np.full(count, label))
    X, y = np.vstack(parts), np.concatenate(labels)
    order = rng.permutation(n_samples)
    return X[order], y[order]


def _synthetic(name: str, n_samples: int, noise: float, seed: int) -> tuple[Array, Array]:
    if name == "moons":
        return sk_datasets.make_moons(n_samples, noise=noise, random_state=seed)
    if name == "circles":
        return sk_datasets.make_circles(n_samples, noise=noise, factor=0.5, random_state=seed)
    if name == "spirals":
        return make_spirals(n_samples, noise=noise, random_state=seed)
    return sk_datasets.make_blobs(
        n_samples, centers=[(-1.0, -1.0), (1.0, 1.0)], cluster_std=noise, random_state=seed
    )


def _read_file(path: str | Path, target: str | None) -> tuple[Array, Array, tuple[str, ...]]:
    path = Path(path)
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise ValueError(f"dataset.path: must end in .csv, .parquet or .pq, got '{path}'")
    if not path.is_file():
        raise ValueError(f"dataset.path: no such file, got '{path}'")
    if target is None:
        raise ValueError("dataset.target: required for a file dataset (the label column), got None")
    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as error:  # parser errors come in many types
        raise ValueError(f"dataset.path: cannot read '{path}': {first_line(error)}") from error
    if target not in frame.columns:
        raise ValueError(
            f"dataset.target: no column '{target}' in '{path}' "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    labels = frame[target]
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise ValueError(f"dataset.path: '{path}' has no feature columns besides '{target}'")
    for column in features.columns:
        values = features[column]
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            example = values.dropna().iloc[0] if values.notna().any() else None
            raise ValueError(
                f"dataset.path: column '{column}' is not numeric (e.g. {example!r}); "
                "encode it as numbers first"
            )
    data = features.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(data)
    if bad.any():
        position = np.flatnonzero(bad.any(axis=0))[0]
        raise ValueError(
            f"dataset.path: column '{features.columns[position]}' has "
            f"{int(bad[:, position].sum())} missing or infinite values; fill or drop them first"
        )
    if labels.isna().any():
        raise ValueError(
            f"dataset.target: column '{target}' has {int(labels.isna().sum())} missing labels"
        )
    return data, labels.to_numpy(), tuple(map(str, features.columns))


def load_raw(
    name: str,
    *,
    n_samples: int | None = None,
    noise: float | None = None,
    path: str | Path | None = None,
    target: str | None = None,
    seed: int = 0,
) -> tuple[Array, Array, tuple[str, ...]]:
    """Unsplit, unscaled data: ``X`` (n, n_features), ``y`` (n,) and the feature names."""
    if name not in DATASET_NAMES:
        raise ValueError(f"dataset.name: must be one of {', '.join(DATASET_NAMES)}, got {name!r}")
    if name != FILE and (path is not None or target is not None):
        raise ValueError(f"dataset.path: only for name 'file', got path with name {name!r}")
    if name in SYNTHETIC:
        default_n, default_noise = SYNTHETIC[name]
        n_samples = default_n if n_samples is None else n_samples
        noise = default_noise if noise is None else noise
        if not (isinstance(n_samples, int | np.integer) and n_samples >= 4):
            raise ValueError(f"dataset.n_samples: must be an integer >= 4, got {n_samples!r}")
        if not (np.isfinite(noise) and noise >= 0):
            raise ValueError(f"dataset.noise: must be >= 0, got {noise!r}")
        X, y = _synthetic(name, int(n_samples), float(noise), seed)
        return X, y, ("x1", "x2")
    if n_samples is not None or noise is not None:
        field = "n_samples" if n_samples is not None else "noise"
        value = n_samples if n_samples is not None else noise
        raise ValueError(
            f"dataset.{field}: only for synthetic datasets, got {value!r} for {name!r}"
        )
    if name == FILE:
        if path is None:
            raise ValueError("dataset.path: required for name 'file', got None")
        return _read_file(path, target)
    bunch = BUILTIN[name]()
    return bunch.data.astype(np.float64), bunch.target, tuple(map(str, bunch.feature_names))


def _check_labels(X: Array, y: Array) -> None:
    if len(X) != len(y):
        raise ValueError(f"dataset: X and y differ in length, got {len(X)} and {len(y)}")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"dataset: needs at least 2 classes, got 1 ({plain(classes[0])!r})")


def _hold_out(y: Array, remaining: Array, share: float, part: str, seed: int) -> tuple:
    """Split ``share`` of all samples off ``remaining`` (stratified where every class has two
    samples): ``(remaining, held out)``, both unsorted."""
    n = len(y)
    size = round(share * n)
    if share > 0 and size == 0:
        raise ValueError(f"dataset.split.{part}: {share} of {n} samples is no sample at all")
    if size == 0:
        return remaining, remaining[:0]
    labels = y[remaining]
    stratify = labels if np.unique(labels, return_counts=True)[1].min() >= 2 else None
    try:
        return train_test_split(remaining, test_size=size, random_state=seed, stratify=stratify)
    except ValueError:  # too few samples per class for a stratified split of this size
        return train_test_split(remaining, test_size=size, random_state=seed)


@dataclass(frozen=True)
class Fold:
    """One training's rows: ``train`` and ``dev`` index the dataset's rows (sorted).

    ``repeat`` and ``fold`` number a cross-validation's folds (from 0); both are None for a
    single train/dev split.
    """

    repeat: int | None
    fold: int | None
    train: Array
    dev: Array


@dataclass(frozen=True)
class Resampled:
    """A dataset's raw rows and how model selection splits them.

    The ``test`` rows are held out first; the others (``rest``, in their original order) are
    split into ``folds``: one train/dev split, or K stratified folds per repeat. Nothing is
    standardized here: :meth:`fold_data` standardizes on a fold's training part, as a
    scikit-learn ``Pipeline`` would inside ``cross_validate``.
    """

    name: str
    X: Array
    y: Array
    feature_names: tuple[str, ...]
    rest: Array
    test: Array
    folds: tuple[Fold, ...]
    kfold: int | None = None
    repeats: int = 1

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def classes(self) -> Array:
        return np.unique(self.y[self.rest])

    def fold_data(self, index: int) -> Dataset:
        """Fold ``index``'s train/dev parts (and the test rows) standardized on its training
        part."""
        fold = self.folds[index]
        return _standardized(self, fold.train, fold.dev, self.test)

    def fold_index(self, repeat: int | None, fold: int | None) -> int:
        """The position in :attr:`folds` of fold ``fold`` of repeat ``repeat``."""
        if self.kfold is None:
            return 0
        return int(repeat) * self.kfold + int(fold)

    def fold_sizes(self) -> dict[tuple[int | None, int | None], tuple[int, int]]:
        """``(n_train, n_dev)`` of every fold by ``(repeat, fold)``."""
        return {(f.repeat, f.fold): (len(f.train), len(f.dev)) for f in self.folds}

    def refit_data(self) -> tuple[Array, Array, Array, Array]:
        """Raw ``(X_rest, y_rest, X_test, y_test)``: all non-test rows, for a final fit, and the
        test rows."""
        return self.X[self.rest], self.y[self.rest], self.X[self.test], self.y[self.test]

    def describe(self) -> str:
        n_classes = len(np.unique(self.y))
        head = f"{self.name}: {self.n_features} features, {n_classes} classes, "
        if self.kfold is None:
            fold = self.folds[0]
            return head + f"{len(fold.train)} train / {len(fold.dev)} dev / {len(self.test)} test"
        repeats = f" x {self.repeats} repeats" if self.repeats > 1 else ""
        return head + f"{self.kfold}-fold CV{repeats} of {len(self.rest)} / {len(self.test)} test"


def _standardized(data: Resampled, train: Array, dev: Array, test: Array) -> Dataset:
    x_train = data.X[train]
    mean = x_train.mean(axis=0)
    scale = x_train.std(axis=0)
    scale[scale == 0.0] = 1.0

    def take(rows: Array) -> tuple[Array, Array]:
        return (data.X[rows] - mean) / scale, data.y[rows]

    return Dataset(
        data.name, *take(train), *take(dev), *take(test), data.feature_names, mean, scale
    )


def resample(
    X: Array,
    y: Array,
    *,
    train: float = 0.6,
    dev: float = 0.2,
    test: float = 0.2,
    kfold: int | None = None,
    repeats: int = 1,
    seed: int = 0,
    name: str = "data",
    feature_names: tuple[str, ...] | None = None,
) -> Resampled:
    """Hold out a test share, then split the rest for model selection.

    Without ``kfold``: one train/dev split (``train + dev + test = 1``). With ``kfold = K``: the
    non-test rows, in their original order, are split by scikit-learn's
    ``StratifiedKFold(n_splits=K, shuffle=True, random_state=seed + r)`` for each repeat
    ``r = 0..repeats-1`` (``train`` and ``dev`` are not used).

    Parameters
    ----------
    X : ndarray of shape (n, n_features)
    y : ndarray of shape (n,)
    train, dev, test : float
        Fractions of all samples.
    kfold : int, optional
        The number of folds (>= 2).
    repeats : int
        Repeats of the K-fold split, each with another shuffle.
    seed : int
        Decides the test share, the dev share and the folds.
    """
    _check_labels(X, y)
    fields = (("test", test),) if kfold else (("train", train), ("dev", dev), ("test", test))
    for field, value in fields:
        if not (np.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"dataset.split.{field}: must be in [0, 1], got {value!r}")
    rows = np.arange(len(y))
    names = feature_names or tuple(f"x{i + 1}" for i in range(X.shape[1]))
    if kfold is None:
        if train <= 0.0:
            raise ValueError(f"dataset.split.train: must be > 0, got {train!r}")
        if abs(train + dev + test - 1.0) > 1e-9:
            raise ValueError(
                f"dataset.split: train + dev + test must be 1, got {train} + {dev} + {test}"
            )
        remaining, test_rows = _hold_out(y, rows, test, "test", seed)
        rest = np.sort(remaining)
        remaining, dev_rows = _hold_out(y, remaining, dev, "dev", seed)
        if len(np.unique(y[remaining])) < 2:
            raise ValueError(
                f"dataset.split.train: the training part of {name!r} has only one class"
            )
        folds = (Fold(None, None, np.sort(remaining), np.sort(dev_rows)),)
        return Resampled(name, X, y, names, rest, np.sort(test_rows), folds)
    if test >= 1.0:
        raise ValueError(f"dataset.split.test: must be < 1 with kfold, got {test!r}")
    remaining, test_rows = _hold_out(y, rows, test, "test", seed)
    rest = np.sort(remaining)
    classes, counts = np.unique(y[rest], return_counts=True)
    if counts.min() < kfold:
        raise ValueError(
            f"dataset.split.kfold: {kfold} folds need {kfold} samples of every class outside "
            f"the test share, but class {plain(classes[counts.argmin()])!r} has "
            f"{counts.min()}, got {kfold}"
        )
    folds = []
    for repeat in range(repeats):
        splitter = StratifiedKFold(n_splits=kfold, shuffle=True, random_state=seed + repeat)
        for fold, (train_pos, dev_pos) in enumerate(splitter.split(rest, y[rest])):
            folds.append(Fold(repeat, fold, rest[train_pos], rest[dev_pos]))
    return Resampled(name, X, y, names, rest, np.sort(test_rows), tuple(folds), kfold, repeats)


def _single_split(resampled: Resampled, standardize: bool) -> Dataset:
    """The one train/dev split as a :class:`Dataset`, standardized on its training part or not."""
    if standardize:
        return resampled.fold_data(0)
    fold, X, y = resampled.folds[0], resampled.X, resampled.y
    return Dataset(
        resampled.name,
        X[fold.train],
        y[fold.train],
        X[fold.dev],
        y[fold.dev],
        X[resampled.test],
        y[resampled.test],
        resampled.feature_names,
        np.zeros(X.shape[1]),
        np.ones(X.shape[1]),
    )


def load_dataset(
    name: str,
    *,
    n_samples: int | None = None,
    noise: float | None = None,
    path: str | Path | None = None,
    target: str | None = None,
    train: float = 0.6,
    dev: float = 0.2,
    test: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
) -> Dataset:
    """Load a dataset by name, split it and standardize it.

    ``seed`` draws the synthetic data and the split. Errors are ValueErrors naming the field
    (``dataset.<field>``) and the bad value.

    Examples
    --------
    >>> data = load_dataset("moons", n_samples=200, noise=0.3, seed=0)
    >>> data.X_train.shape
    (120, 2)
    """
    resampled = load_resampled(
        name,
        n_samples=n_samples,
        noise=noise,
        path=path,
        target=target,
        train=train,
        dev=dev,
        test=test,
        seed=seed,
    )
    return _single_split(resampled, standardize)


def load_resampled(
    name: str,
    *,
    n_samples: int | None = None,
    noise: float | None = None,
    path: str | Path | None = None,
    target: str | None = None,
    train: float = 0.6,
    dev: float = 0.2,
    test: float = 0.2,
    kfold: int | None = None,
    repeats: int = 1,
    seed: int = 0,
) -> Resampled:
    """Load a dataset by name and split it for model selection (see :func:`resample`).

    Examples
    --------
    >>> data = load_resampled("breast_cancer", kfold=5, test=0.2, seed=0)
    >>> len(data.folds), len(data.test)
    (5, 114)
    """
    X, y, names = load_raw(
        name, n_samples=n_samples, noise=noise, path=path, target=target, seed=seed
    )
    return resample(
        X,
        y,
        train=train,
        dev=dev,
        test=test,
        kfold=kfold,
        repeats=repeats,
        seed=seed,
        name=name,
        feature_names=names,
    )
