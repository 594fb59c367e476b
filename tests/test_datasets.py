"""Datasets: deterministic splits, standardization fitted on train only, files, bad input."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine, make_moons
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.preprocessing import StandardScaler

from regcore.datasets import (
    DATASET_NAMES,
    FILE,
    SYNTHETIC,
    load_dataset,
    load_raw,
    load_resampled,
    make_spirals,
)


@pytest.mark.parametrize("name", [n for n in DATASET_NAMES if n != FILE])
def test_every_dataset_loads_split_and_standardized(name):
    data = load_dataset(name, seed=3)
    n_total = len(data.y_train) + len(data.y_dev) + len(data.y_test)
    assert len(data.y_train) == pytest.approx(0.6 * n_total, abs=1)
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0.0, atol=1e-12)
    std = data.X_train.std(axis=0)
    np.testing.assert_allclose(std[std > 0], 1.0, rtol=1e-12)
    assert len(np.unique(data.y_train)) >= 2
    # stratified: each class's share in dev is within one sample of its share in train
    for label in np.unique(data.y_train):
        share_train = np.mean(data.y_train == label)
        assert abs(np.sum(data.y_dev == label) - share_train * len(data.y_dev)) <= 1.0


def test_split_is_deterministic_and_seeded():
    a, b = load_dataset("wine", seed=1), load_dataset("wine", seed=1)
    c = load_dataset("wine", seed=2)
    np.testing.assert_array_equal(a.X_dev, b.X_dev)
    np.testing.assert_array_equal(a.y_dev, b.y_dev)

    def raw_rows(data):  # the dev part's raw samples, whatever the scaling
        return {tuple(np.round(row, 6)) for row in data.X_dev * data.scale + data.mean}

    assert raw_rows(a) == raw_rows(b)
    assert len(raw_rows(a) & raw_rows(c)) < 0.8 * len(raw_rows(a))  # another seed, other samples


def test_parts_partition_the_raw_data_and_scaling_uses_train_only():
    raw = load_wine().data
    data = load_dataset("wine", train=0.5, dev=0.3, test=0.2, seed=0)
    parts = [data.X_train, data.X_dev, data.X_test]
    restored = np.vstack([p * data.scale + data.mean for p in parts])

    # every raw row appears exactly once across the parts
    def key(rows):
        return sorted(map(tuple, np.round(rows, 8)))

    assert key(restored) == key(raw)
    train_raw = data.X_train * data.scale + data.mean
    np.testing.assert_allclose(data.mean, train_raw.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(data.scale, train_raw.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(data.standardize(raw[:3]), (raw[:3] - data.mean) / data.scale)


def test_synthetic_data_match_their_generators():
    table = load_raw("moons", n_samples=150, noise=0.25, seed=4)
    X_ref, y_ref = make_moons(150, noise=0.25, random_state=4)
    np.testing.assert_array_equal(table.X, X_ref)
    np.testing.assert_array_equal(table.y, y_ref)
    X, y = make_spirals(200, noise=0.0, random_state=0)
    radius = np.hypot(X[:, 0], X[:, 1])
    assert X.shape == (200, 2) and set(y) == {0, 1} and radius.max() <= 1.0 + 1e-12


def test_no_test_part():
    data = load_dataset("iris", train=0.7, dev=0.3, test=0.0)
    assert len(data.y_test) == 0 and len(data.y_train) == 105


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_datasets(tmp_path, suffix):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"a": rng.randn(50), "b": rng.randn(50), "label": ["x", "y"] * 25})
    path = tmp_path / f"data{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    data = load_dataset(FILE, path=path, target="label", seed=0)
    assert data.feature_names == ("a", "b")
    assert set(data.y_train) == {"x", "y"}
    restored = data.X_train * data.scale + data.mean
    assert key_rows(restored) <= key_rows(frame[["a", "b"]].to_numpy())


def key_rows(rows):
    return set(map(tuple, np.round(rows, 10)))


def _write(tmp_path, frame, name="d.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("frame", "target", "message"),
    [
        (
            pd.DataFrame({"a": [1, np.inf, 3, 4], "t": [0, 1, 0, 1]}),
            "t",
            r"dataset.path: column 'a' has 1 infinite values",
        ),
        (
            pd.DataFrame({"a": [1, 2, 3, 4], "e": [None] * 4, "t": [0, 1, 0, 1]}),
            "t",
            r"dataset.path: column 'e' has no values; leave it out with dataset.drop: \[e\]",
        ),
        (
            pd.DataFrame({"a": [1, 2, 3, 4], "t": [0, 1, 0, 1]}),
            "label",
            r"dataset.target: no column 'label'.*columns: a, t",
        ),
        (
            pd.DataFrame({"a": [1, 2, 3, 4], "t": [1, 1, 1, 1]}),
            "t",
            r"needs at least 2 classes, got 1 \(1\)",
        ),
        (pd.DataFrame({"t": [0, 1, 0, 1]}), "t", "dataset.columns: no feature column left"),
    ],
)
def test_bad_files(tmp_path, frame, target, message):
    path = _write(tmp_path, frame)
    with pytest.raises(ValueError, match=message):
        load_dataset(FILE, path=path, target=target, train=0.5, dev=0.5, test=0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(name="mnist"), r"dataset.name: must be one of .*got 'mnist'"),
        (
            dict(name=FILE, path="nowhere.csv", target="t"),
            r"dataset.path: no such file, got 'nowhere.csv'",
        ),
        (
            dict(name=FILE, path="data.xlsx", target="t"),
            r"dataset.path: cannot read a .xlsx file, got 'data.xlsx' \(known: .csv, .csv.gz",
        ),
        (dict(name=FILE), r"dataset.path: required"),
        (dict(name="moons", n_samples=2), r"dataset.n_samples: must be an integer >= 4, got 2"),
        (dict(name="moons", noise=-0.1), r"dataset.noise: must be >= 0, got -0.1"),
        (
            dict(name="iris", n_samples=50),
            r"dataset.n_samples: only for synthetic datasets, got 50",
        ),
        (
            dict(name="iris", train=0.5, dev=0.2, test=0.2),
            r"dataset.split: train \+ dev \+ test must be 1",
        ),
        (
            dict(name="iris", train=0.0, dev=0.5, test=0.5),
            r"dataset.split.train: must be > 0, got 0.0",
        ),
        (
            dict(name="iris", train=1.2, dev=-0.2, test=0.0),
            r"dataset.split.train: must be in \[0, 1\], got 1.2",
        ),
        (
            dict(name="moons", n_samples=10, train=0.98, dev=0.02, test=0.0),
            r"dataset.split.dev: 0.02 of 10 samples is no sample",
        ),
    ],
)
def test_bad_dataset_arguments(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=message):
        load_dataset(name, **kwargs)


@pytest.mark.parametrize(("test", "repeats"), [(0.2, 2), (0.0, 1)])
def test_kfold_follows_the_contract(test, repeats):
    """The test share is held out as train_test_split holds it out; the other rows, in their
    original order, go to StratifiedKFold(K, shuffle=True, random_state=seed + r); each fold is
    standardized on its training part alone."""
    X, y = load_breast_cancer(return_X_y=True)
    seed, k = 3, 5
    data = load_resampled("breast_cancer", kfold=k, repeats=repeats, test=test, seed=seed)
    rows = np.arange(len(y))
    if test:
        rest, test_rows = train_test_split(
            rows, test_size=round(test * len(y)), random_state=seed, stratify=y
        )
        np.testing.assert_array_equal(data.test, np.sort(test_rows))
        rest = np.sort(rest)
    else:
        rest = rows
        assert len(data.test) == 0
    np.testing.assert_array_equal(data.rest, rest)
    assert len(data.folds) == k * repeats
    for repeat in range(repeats):
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed + repeat)
        for fold, (train, dev) in enumerate(splitter.split(X[rest], y[rest])):
            mine = data.folds[data.fold_index(repeat, fold)]
            assert (mine.repeat, mine.fold) == (repeat, fold)
            np.testing.assert_array_equal(mine.train, rest[train])
            np.testing.assert_array_equal(mine.dev, rest[dev])
    part = data.fold_data(1)
    scaler = StandardScaler().fit(X[data.folds[1].train])
    np.testing.assert_allclose(part.X_train, scaler.transform(X[data.folds[1].train]), atol=1e-12)
    np.testing.assert_allclose(part.X_dev, scaler.transform(X[data.folds[1].dev]), atol=1e-12)


def test_more_folds_than_a_class_has_samples():
    message = r"dataset.split.kfold: 300 folds .* class 0 has 170, got 300"
    with pytest.raises(ValueError, match=message):
        load_resampled("breast_cancer", kfold=300, test=0.2)


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_the_logged_recipe_replays_to_the_same_arrays(name):
    """A sweep logs ``source`` as its dataset's origin: run as Python, it makes the same data
    (``circles`` with its factor, ``blobs`` with its centers and spread)."""
    import sklearn.datasets

    import regcore.datasets

    table = load_raw(name, n_samples=120, noise=0.2, seed=5)
    X, y = eval(table.source, {"sklearn": sklearn, "regcore": regcore})
    np.testing.assert_array_equal(X, table.X)
    np.testing.assert_array_equal(y, table.y)
    assert "noise" in table.source or "cluster_std=0.2" in table.source
