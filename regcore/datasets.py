"""Datasets for regularization experiments: loaded as tables, split deterministically, and
preprocessed on each split's training part alone.

- 2-D synthetic sets where over- and underfitting can be seen: ``moons``, ``circles``,
  ``spirals`` and ``blobs`` (two overlapping Gaussian clusters); ``noise`` sets how much the
  classes overlap. One table, :data:`SYNTHETIC`, says how each is made: the loader calls it and
  a sweep logs it as a call anyone can repeat (:meth:`Synthetic.recipe`).
- the real datasets that scikit-learn ships (no download): ``breast_cancer``, ``digits``,
  ``wine``, ``iris``.
- ``file``: a user's table (``.csv``, ``.tsv``, ``.csv.gz``, ``.parquet``) with a ``target``
  column of any labels; text and boolean columns are categorical, missing values are imputed
  (:mod:`regcore.tables`).

Splits are stratified by class where every class has at least two samples, and depend only on
``seed``. Preprocessing (imputing, one-hot encoding, standardizing: zero mean and unit variance
per numeric feature, constant features left unscaled) is fitted on the training part alone and
applied to all parts, as a scikit-learn ``Pipeline`` inside ``cross_validate`` would.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets as sk_datasets
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from regcore.messages import plain
from regcore.tables import (
    MAX_CATEGORIES,
    Columns,
    TableNotes,
    check_target,
    feature_names,
    file_digest,
    plan_columns,
    preprocessor,
    read_table,
    select_columns,
    table_format,
)

Array = np.ndarray


@dataclass(frozen=True)
class Synthetic:
    """How a synthetic dataset is made: ``module.function(n_samples=..., <noise_arg>=noise,
    **fixed, random_state=seed)``, with its default size and noise."""

    module: str
    function: str
    n_samples: int
    noise: float
    noise_arg: str = "noise"
    fixed: dict[str, Any] = field(default_factory=dict)

    def arguments(self, n_samples: int, noise: float, seed: int) -> dict[str, Any]:
        return {"n_samples": n_samples, self.noise_arg: noise, **self.fixed, "random_state": seed}

    def make(self, n_samples: int, noise: float, seed: int) -> tuple[Array, Array]:
        """``X`` (n_samples, 2) and ``y`` (n_samples,)."""
        maker = getattr(importlib.import_module(self.module), self.function)
        return maker(**self.arguments(n_samples, noise, seed))

    def recipe(self, n_samples: int, noise: float, seed: int) -> str:
        """The call that makes the data, as Python anyone can run."""
        arguments = ", ".join(
            f"{k}={v!r}" for k, v in self.arguments(n_samples, noise, seed).items()
        )
        return f"{self.module}.{self.function}({arguments})"


#: the synthetic sets, each with how it is made and its default (n_samples, noise)
SYNTHETIC = {
    "moons": Synthetic("sklearn.datasets", "make_moons", 300, 0.3),
    "circles": Synthetic("sklearn.datasets", "make_circles", 300, 0.1, fixed={"factor": 0.5}),
    "spirals": Synthetic("regcore.datasets", "make_spirals", 300, 0.2),
    "blobs": Synthetic(
        "sklearn.datasets",
        "make_blobs",
        300,
        1.0,
        noise_arg="cluster_std",
        fixed={"centers": [(-1.0, -1.0), (1.0, 1.0)]},
    ),
}
BUILTIN = {
    "breast_cancer": sk_datasets.load_breast_cancer,
    "digits": sk_datasets.load_digits,
    "wine": sk_datasets.load_wine,
    "iris": sk_datasets.load_iris,
}
FILE = "file"
DATASET_NAMES = (*SYNTHETIC, *BUILTIN, FILE)
#: ``missing``: what to do with rows that miss a feature value
MISSING = ("impute", "drop")


@dataclass(frozen=True)
class Dataset:
    """Preprocessed train/dev/test parts of one dataset.

    ``X_*`` have shape (n_part, n_features) and ``y_*`` shape (n_part,). ``preprocessor`` is
    the training part's fitted preprocessing (:func:`regcore.tables.preprocessor`);
    :meth:`standardize` applies it to new raw rows.
    """

    name: str
    X_train: Array
    y_train: Array
    X_dev: Array
    y_dev: Array
    X_test: Array
    y_test: Array
    feature_names: tuple[str, ...]
    preprocessor: Pipeline

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def classes(self) -> Array:
        return np.unique(self.y_train)

    @property
    def mean(self) -> Array:
        """Per model input (n_features,): the training part's mean of a numeric feature, 0 for a
        one-hot column (not scaled)."""
        return self._scaling()[0]

    @property
    def scale(self) -> Array:
        """Per model input (n_features,): the standard deviation a numeric feature was divided
        by (1 where it is constant), 1 for a one-hot column."""
        return self._scaling()[1]

    def _scaling(self) -> tuple[Array, Array]:
        mean, scale = np.zeros(self.n_features), np.ones(self.n_features)
        encode = self.preprocessor.named_steps["encode"]
        if "numeric" in encode.named_transformers_:
            scaler = encode.named_transformers_["numeric"].named_steps["scale"]
            mean[: len(scaler.mean_)], scale[: len(scaler.scale_)] = scaler.mean_, scaler.scale_
        return mean, scale

    def standardize(self, X: Any) -> Array:
        """Raw rows (an array of shape (n, n_columns) or a DataFrame with the table's columns)
        preprocessed as the training part was."""
        return self.preprocessor.transform(X)

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


@dataclass(frozen=True)
class Table:
    """A dataset's rows before any split.

    Attributes
    ----------
    name : str
    features : DataFrame of shape (n, n_columns)
        The feature columns as given (text, booleans and missing values included).
    y : ndarray of shape (n,)
        The labels (any type).
    columns : Columns
        Each feature column's kind (:class:`regcore.tables.Columns`).
    notes : TableNotes
        What reading did (rows dropped, values left to impute, model inputs).
    source : str
        Where the rows come from: a call that makes them, or a file's absolute path.
    digest : str or None
        A file's sha256 (hex).
    """

    name: str
    features: pd.DataFrame
    y: Array
    columns: Columns
    notes: TableNotes = field(default_factory=TableNotes)
    source: str = ""
    digest: str | None = None

    @property
    def X(self) -> Array:
        """The features as numbers, shape (n, n_columns) (all-numeric tables only)."""
        return self.features.to_numpy(dtype=np.float64)


def _numeric_table(name: str, X: Array, y: Array, names: tuple[str, ...], source: str) -> Table:
    frame = pd.DataFrame(np.asarray(X, dtype=np.float64), columns=list(names))
    columns = Columns.numbers(names)
    return Table(name, frame, np.asarray(y), columns, TableNotes(len(y)), source)


def _read_file(
    path: str | Path,
    target: str | None,
    keep: list[str] | None,
    drop: list[str] | None,
    missing: str,
    max_categories: int,
) -> Table:
    path = Path(path)
    table_format(path)  # a suffix it cannot read is refused before looking for the file
    if not path.is_file():
        raise ValueError(f"dataset.path: no such file, got '{path}'")
    if target is None:
        raise ValueError("dataset.target: required for a file dataset (the label column), got None")
    frame = read_table(path)
    rows = len(frame)
    frame.columns = [str(c) for c in frame.columns]
    if target not in frame.columns:
        raise ValueError(
            f"dataset.target: no column '{target}' in '{path}' "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    features = select_columns(frame, target, keep, drop)
    labels = frame[target]
    check_target(labels, target)
    has_target = labels.notna().to_numpy()
    features, labels = features[has_target], labels[has_target]
    numbers = features.select_dtypes("number")
    infinite = ~np.isfinite(numbers.to_numpy(dtype=np.float64)) & numbers.notna().to_numpy()
    if infinite.any():
        column = numbers.columns[np.flatnonzero(infinite.any(axis=0))[0]]
        count = int(infinite[:, list(numbers.columns).index(column)].sum())
        raise ValueError(
            f"dataset.path: column {column!r} has {count} infinite values; a feature must be "
            "finite or missing"
        )
    gaps = features.isna().to_numpy()
    missing_rows = 0
    if missing == "drop":
        complete = ~gaps.any(axis=1)
        missing_rows = int((~complete).sum())
        features, labels = features[complete], labels[complete]
        gaps = gaps[complete]
    columns = plan_columns(features, max_categories)
    notes = TableNotes(
        rows=rows,
        missing_target=int((~has_target).sum()),
        missing_rows=missing_rows,
        imputed=int(gaps.sum()),
    )
    return Table(
        FILE,
        features.reset_index(drop=True),
        labels.to_numpy(),
        columns,
        notes,
        str(path.resolve()),
        file_digest(path),
    )


def load_raw(
    name: str,
    *,
    n_samples: int | None = None,
    noise: float | None = None,
    path: str | Path | None = None,
    target: str | None = None,
    seed: int = 0,
    columns: list[str] | None = None,
    drop: list[str] | None = None,
    missing: str = "impute",
    max_categories: int = MAX_CATEGORIES,
) -> Table:
    """A dataset's rows, unsplit and unprocessed (:class:`Table`).

    ``columns`` keeps only these feature columns, ``drop`` leaves these out; ``missing`` is
    ``impute`` (the preprocessing fills missing feature values) or ``drop`` (rows missing one
    are dropped); a text column with more than ``max_categories`` distinct values is refused.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"dataset.name: must be one of {', '.join(DATASET_NAMES)}, got {name!r}")
    if name != FILE and (path is not None or target is not None):
        raise ValueError(f"dataset.path: only for name 'file', got path with name {name!r}")
    if missing not in MISSING:
        raise ValueError(f"dataset.missing: must be one of {', '.join(MISSING)}, got {missing!r}")
    if name == FILE:
        if path is None:
            raise ValueError("dataset.path: required for name 'file', got None")
        return _read_file(path, target, columns, drop, missing, max_categories)
    if name in SYNTHETIC:
        maker = SYNTHETIC[name]
        n_samples = maker.n_samples if n_samples is None else n_samples
        noise = maker.noise if noise is None else noise
        if not (isinstance(n_samples, int | np.integer) and n_samples >= 4):
            raise ValueError(f"dataset.n_samples: must be an integer >= 4, got {n_samples!r}")
        if not (np.isfinite(noise) and noise >= 0):
            raise ValueError(f"dataset.noise: must be >= 0, got {noise!r}")
        X, y = maker.make(int(n_samples), float(noise), seed)
        table = _numeric_table(name, X, y, ("x1", "x2"), maker.recipe(n_samples, noise, seed))
    else:
        if n_samples is not None or noise is not None:
            field_name = "n_samples" if n_samples is not None else "noise"
            value = n_samples if n_samples is not None else noise
            raise ValueError(
                f"dataset.{field_name}: only for synthetic datasets, got {value!r} for {name!r}"
            )
        bunch = BUILTIN[name]()
        names = tuple(map(str, bunch.feature_names))
        table = _numeric_table(
            name, bunch.data, bunch.target, names, f"sklearn.datasets.load_{name}()"
        )
    if columns or drop:
        features = select_columns(table.features, None, columns, drop)
        table = Table(
            table.name,
            features,
            table.y,
            Columns.numbers(tuple(features.columns)),
            table.notes,
            table.source,
        )
    return table


def _class_codes(X: Any, y: Array) -> Array:
    """Each label's class as an integer, classes numbered in sorted order (as ``np.unique``
    numbers them, so that splits stratified on the codes are those stratified on the labels);
    one pass, where sorting a million text labels for every split would take seconds."""
    if len(X) != len(y):
        raise ValueError(f"dataset: X and y differ in length, got {len(X)} and {len(y)}")
    codes, classes = pd.factorize(pd.Series(y), sort=True)
    if len(classes) < 2:
        raise ValueError(f"dataset: needs at least 2 classes, got 1 ({plain(classes[0])!r})")
    return codes


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


def fold_position(kfold: int | None, repeat: int | None, fold: int | None) -> int:
    """Where fold ``fold`` of repeat ``repeat`` is among a split's folds (repeat by repeat);
    0 for a single train/dev split (``kfold`` None)."""
    if kfold is None:
        return 0
    return int(repeat) * kfold + int(fold)


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
    preprocessed here: :meth:`fold_data` fits the preprocessing on a fold's training part, as a
    scikit-learn ``Pipeline`` would inside ``cross_validate``.
    """

    table: Table
    rest: Array
    test: Array
    folds: tuple[Fold, ...]
    kfold: int | None = None
    repeats: int = 1

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def y(self) -> Array:
        return self.table.y

    @property
    def columns(self) -> Columns:
        return self.table.columns

    @functools.cached_property
    def n_features(self) -> int:
        """Model inputs once preprocessed (a categorical column gives one per category of the
        non-test rows)."""
        rest = self.table.features.iloc[self.rest]
        return len(self.columns.numeric) + sum(
            int(rest[name].dropna().astype(str).nunique()) for name in self.columns.categorical
        )

    @property
    def classes(self) -> Array:
        return np.unique(self.y[self.rest])

    def preprocessor(self) -> Pipeline:
        """This dataset's preprocessing, unfitted (:func:`regcore.tables.preprocessor`)."""
        return preprocessor(self.columns)

    def fold_data(self, index: int) -> Dataset:
        """Fold ``index``'s train/dev parts (and the test rows), preprocessed as fitted on its
        training part."""
        fold = self.folds[index]
        return self._prepared(fold.train, fold.dev, self.test)

    def fold_index(self, repeat: int | None, fold: int | None) -> int:
        """The position in :attr:`folds` of fold ``fold`` of repeat ``repeat``."""
        return fold_position(self.kfold, repeat, fold)

    def fold_sizes(self) -> dict[tuple[int | None, int | None], tuple[int, int]]:
        """``(n_train, n_dev)`` of every fold by ``(repeat, fold)``."""
        return {(f.repeat, f.fold): (len(f.train), len(f.dev)) for f in self.folds}

    def refit_data(self) -> tuple[pd.DataFrame, Array, pd.DataFrame, Array]:
        """Raw ``(rows, y)`` of all non-test rows, for a final fit, and of the test rows."""
        rows = self.table.features
        return (
            rows.iloc[self.rest].reset_index(drop=True),
            self.y[self.rest],
            rows.iloc[self.test].reset_index(drop=True),
            self.y[self.test],
        )

    def describe(self) -> str:
        n_classes = len(np.unique(self.y))
        head = f"{self.name}: {self.n_features} features, {n_classes} classes, "
        if self.kfold is None:
            fold = self.folds[0]
            text = head + f"{len(fold.train)} train / {len(fold.dev)} dev / {len(self.test)} test"
        else:
            repeats = f" x {self.repeats} repeats" if self.repeats > 1 else ""
            text = (
                head + f"{self.kfold}-fold CV{repeats} of {len(self.rest)} / {len(self.test)} test"
            )
        return text

    def preparation(self) -> str:
        """What reading and preprocessing do to the table (:meth:`TableNotes.describe`)."""
        notes = self.table.notes
        return TableNotes(
            notes.rows, notes.missing_target, notes.missing_rows, notes.imputed, self.n_features
        ).describe(self.columns)

    def _prepared(self, train: Array, dev: Array, test: Array) -> Dataset:
        rows = self.table.features
        fitted = self.preprocessor().fit(rows.iloc[train])

        def take(part: Array) -> tuple[Array, Array]:
            if len(part) == 0:
                return np.zeros((0, len(feature_names(fitted)))), self.y[part]
            return np.ascontiguousarray(fitted.transform(rows.iloc[part])), self.y[part]

        return Dataset(
            self.name, *take(train), *take(dev), *take(test), tuple(feature_names(fitted)), fitted
        )


def resample(
    table: Table,
    *,
    train: float = 0.6,
    dev: float = 0.2,
    test: float = 0.2,
    kfold: int | None = None,
    repeats: int = 1,
    seed: int = 0,
) -> Resampled:
    """Hold out a test share, then split the rest for model selection.

    Without ``kfold``: one train/dev split (``train + dev + test = 1``). With ``kfold = K``: the
    non-test rows, in their original order, are split by scikit-learn's
    ``StratifiedKFold(n_splits=K, shuffle=True, random_state=seed + r)`` for each repeat
    ``r = 0..repeats-1`` (``train`` and ``dev`` are not used).

    Parameters
    ----------
    table : Table
        The rows (:func:`load_raw`).
    train, dev, test : float
        Fractions of all samples.
    kfold : int, optional
        The number of folds (>= 2).
    repeats : int
        Repeats of the K-fold split, each with another shuffle.
    seed : int
        Decides the test share, the dev share and the folds.
    """
    y = _class_codes(table.features, table.y)  # splits stratify on the classes' codes
    fields = (("test", test),) if kfold else (("train", train), ("dev", dev), ("test", test))
    for field_name, value in fields:
        if not (np.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"dataset.split.{field_name}: must be in [0, 1], got {value!r}")
    rows = np.arange(len(y))
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
                f"dataset.split.train: the training part of {table.name!r} has only one class"
            )
        folds = (Fold(None, None, np.sort(remaining), np.sort(dev_rows)),)
        return Resampled(table, rest, np.sort(test_rows), folds)
    if test >= 1.0:
        raise ValueError(f"dataset.split.test: must be < 1 with kfold, got {test!r}")
    remaining, test_rows = _hold_out(y, rows, test, "test", seed)
    rest = np.sort(remaining)
    classes, counts = np.unique(y[rest], return_counts=True)
    if counts.min() < kfold:
        label = table.y[rest][y[rest] == classes[counts.argmin()]][0]
        raise ValueError(
            f"dataset.split.kfold: {kfold} folds need {kfold} samples of every class outside "
            f"the test share, but class {plain(label)!r} has {counts.min()}, got {kfold}"
        )
    folds = []
    for repeat in range(repeats):
        splitter = StratifiedKFold(n_splits=kfold, shuffle=True, random_state=seed + repeat)
        for fold, (train_pos, dev_pos) in enumerate(splitter.split(rest, y[rest])):
            folds.append(Fold(repeat, fold, rest[train_pos], rest[dev_pos]))
    return Resampled(table, rest, np.sort(test_rows), tuple(folds), kfold, repeats)


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
) -> Dataset:
    """Load a dataset by name, split it and preprocess it (fitted on the training part).

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
    return resampled.fold_data(0)


def load_resampled(
    name: str,
    *,
    train: float = 0.6,
    dev: float = 0.2,
    test: float = 0.2,
    kfold: int | None = None,
    repeats: int = 1,
    seed: int = 0,
    **table: Any,
) -> Resampled:
    """Load a dataset by name (``table``: :func:`load_raw`'s keywords) and split it for model
    selection (see :func:`resample`).

    Examples
    --------
    >>> data = load_resampled("breast_cancer", kfold=5, test=0.2, seed=0)
    >>> len(data.folds), len(data.test)
    (5, 114)
    """
    rows = load_raw(name, seed=seed, **table)
    return resample(rows, train=train, dev=dev, test=test, kfold=kfold, repeats=repeats, seed=seed)
