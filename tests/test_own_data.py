"""A user's own table: text columns, missing values, any labels, paths relative to the config,
bad tables refused in one line, and models that hold data only.

The expectations are built here with scikit-learn and pandas alone: the contract's split and
folds, and a ``ColumnTransformer`` of ``SimpleImputer``, ``StandardScaler`` and
``OneHotEncoder`` fitted on each fold's training part.
"""

import gzip
import json
import re
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from regcore import RegularizedClassifier
from regcore.datasets import load_resampled
from regcore.model_io import ModelFileError, load_pipeline, save_pipeline
from sweeps.cli import main
from sweeps.config.reading import read_config
from tests.helpers import ROOT, SMALL, deep_update

ORCHARD = ROOT / "configs" / "data" / "orchard.csv"
NUMERIC = ["weight_g", "diameter_mm", "sugar_brix", "acidity_pct"]
CATEGORICAL = ["orchard", "harvest", "organic"]
NO_RAY = ["--address", "127.0.0.1:1"]


def contract_folds(frame, target, k, test, seed):
    """Rows with a target; the test share held out as train_test_split holds it out; the rest in
    their original order into StratifiedKFold(k, shuffle=True, random_state=seed)."""
    frame = frame[frame[target].notna()].reset_index(drop=True)
    y = frame[target].to_numpy()
    rows = np.arange(len(y))
    rest, held = train_test_split(
        rows, test_size=round(test * len(y)), random_state=seed, stratify=y
    )
    rest = np.sort(rest)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = [(rest[a], rest[b]) for a, b in splitter.split(rest, y[rest])]
    return frame, y, rest, np.sort(held), folds


def reference_transformer():
    """The documented preprocessing, written out with scikit-learn."""
    return ColumnTransformer(
        [
            ("n", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            (
                "c",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                CATEGORICAL,
            ),
        ]
    )


def as_text(frame):
    """Categories compared as text (the preprocessing reads True and "True" as one)."""
    out = frame.copy()
    for column in CATEGORICAL:
        out[column] = out[column].map(lambda v: v if pd.isna(v) else str(v)).astype(object)
    return out


def test_each_fold_is_preprocessed_as_a_column_transformer_fitted_on_its_training_part():
    raw = pd.read_csv(ORCHARD)
    frame, y, _, held, folds = contract_folds(raw, "variety", 5, 0.2, 3)
    data = load_resampled("file", path=ORCHARD, target="variety", kfold=5, test=0.2, seed=3)
    np.testing.assert_array_equal(data.test, held)
    assert data.table.notes.missing_target == 3
    features = as_text(frame.drop(columns=["variety"]))
    for index in (0, 3):
        train, dev = folds[index]
        mine = data.fold_data(index)
        reference = reference_transformer().fit(features.iloc[train])
        np.testing.assert_allclose(
            mine.X_train, reference.transform(features.iloc[train]), atol=1e-12
        )
        np.testing.assert_allclose(mine.X_dev, reference.transform(features.iloc[dev]), atol=1e-12)
        np.testing.assert_allclose(
            mine.X_test, reference.transform(features.iloc[held]), atol=1e-12
        )
        np.testing.assert_array_equal(mine.y_dev, y[dev])
    # 4 numbers, orchard (3), harvest (2), organic (2) -> 11 model inputs; 41 missing values
    assert data.preparation() == (
        "4 numeric + 3 categorical columns -> 11 features; 41 missing values imputed; "
        "3 rows without a target dropped"
    )


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".csv.gz", ".parquet"])
def test_every_format_reads_the_same_table(tmp_path, suffix):
    raw = pd.read_csv(ORCHARD)
    path = tmp_path / f"orchard{suffix}"
    if suffix == ".parquet":
        raw.to_parquet(path)
    elif suffix == ".tsv":
        raw.to_csv(path, sep="\t", index=False)
    elif suffix == ".csv.gz":
        with gzip.open(path, "wt") as handle:
            raw.to_csv(handle, index=False)
    else:
        shutil.copy(ORCHARD, path)
    data = load_resampled("file", path=path, target="variety", seed=0)
    expected = load_resampled("file", path=ORCHARD, target="variety", seed=0)
    np.testing.assert_allclose(data.fold_data(0).X_train, expected.fold_data(0).X_train)
    np.testing.assert_array_equal(data.y, expected.y)


def test_missing_drop_and_column_selection(tmp_path):
    raw = pd.read_csv(ORCHARD)
    data = load_resampled("file", path=ORCHARD, target="variety", missing="drop", seed=0)
    features = raw.drop(columns=["variety"])
    complete = raw["variety"].notna() & features.notna().all(axis=1)
    assert len(data.y) == int(complete.sum())
    assert data.table.notes.missing_rows == int((raw["variety"].notna() & ~complete).sum())
    assert data.table.notes.imputed == 0
    kept = load_resampled(
        "file", path=ORCHARD, target="variety", columns=["weight_g", "orchard"], seed=0
    )
    assert kept.columns.names == ["weight_g", "orchard"]
    assert kept.columns.numeric == ["weight_g"] and kept.columns.categorical == ["orchard"]
    dropped = load_resampled("file", path=ORCHARD, target="variety", drop=["organic"], seed=0)
    assert "organic" not in dropped.columns.names and len(dropped.columns.names) == 6


@pytest.mark.parametrize(
    "labels", [["yes", "no"] * 30, [3, 7] * 30, [True, False] * 30, ["a", "b", "c"] * 20]
)
def test_any_labels(tmp_path, labels):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.randn(60), "c": rng.choice(["p", "q"], 60), "t": labels})
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = load_resampled("file", path=tmp_path / "d.csv", target="t", seed=0)
    part = data.fold_data(0)
    clf = RegularizedClassifier(epochs=5).fit(part.X_train, part.y_train)
    assert set(clf.predict(part.X_dev)) <= set(frame["t"])
    assert len(clf.classes_) == len(set(labels))


def test_relative_paths_mean_what_their_writer_meant(tmp_path, monkeypatch):
    sub = tmp_path / "sub"
    (sub / "data").mkdir(parents=True)
    shutil.copy(ORCHARD, sub / "data" / "x.csv")
    raw = deep_update(
        SMALL,
        {
            "dataset": {
                "name": "file",
                "path": "data/x.csv",
                "target": "variety",
                "n_samples": None,
                "noise": None,
            }
        },
    )
    (sub / "config.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)  # the config's parent folder
    config, _ = read_config("sub/config.yaml")
    assert config.dataset.path == str(sub / "data" / "x.csv")
    # --set: relative to the working folder
    shutil.copy(ORCHARD, tmp_path / "y.csv")
    config, _ = read_config("sub/config.yaml", ["dataset.path=y.csv"])
    assert config.dataset.path == str(tmp_path / "y.csv")
    # a mapping (the Python API): relative to the working folder
    config, _ = read_config({**raw, "dataset": {**raw["dataset"], "path": "y.csv"}})
    assert config.dataset.path == str(tmp_path / "y.csv")


def _run_exits_2(tmp_path, capsys, raw=None, text=None, extra=()):
    config = tmp_path / "c.yaml"
    config.write_text(text if text is not None else yaml.safe_dump(raw))
    before = sorted(p.name for p in tmp_path.iterdir())
    started = time.monotonic()
    code = main(["run", str(config), *NO_RAY, *extra])
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    return err.strip(), seconds


def _file_config(path, **dataset):
    return deep_update(
        SMALL,
        {
            "dataset": {
                "name": "file",
                "path": str(path),
                "target": "t",
                "n_samples": None,
                "noise": None,
                **dataset,
            }
        },
    )


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (
            [f"id-{i}" for i in range(60)],
            r"^error: dataset.path: column 'c' has a different value in every row \(60 distinct, "
            r"e.g. 'id-0'\): an identifier, not a feature; leave it out with dataset.drop: \[c\]$",
        ),
        (
            [f"city-{i % 55}" for i in range(60)],
            r"^error: dataset.path: column 'c' has 55 distinct values, more than "
            r"dataset.max_categories \(50\); leave it out with dataset.drop: \[c\] or raise",
        ),
    ],
)
def test_text_columns_that_cannot_be_features(tmp_path, capsys, column, message):
    frame = pd.DataFrame({"x": np.arange(60.0), "c": column, "t": [0, 1] * 30})
    frame.to_csv(tmp_path / "d.csv", index=False)
    err, _ = _run_exits_2(tmp_path, capsys, _file_config(tmp_path / "d.csv"))
    assert re.search(message, err), err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            np.linspace(2700.0, 6300.0, 60),
            r"^error: dataset.target: column 't' looks continuous: 60 distinct values in 60 "
            r"rows, e.g. 2761.0",
        ),
        (
            np.arange(60) % 20,
            r"^error: dataset.target: column 't' looks continuous: 20 distinct values in 60 rows",
        ),
    ],
)
def test_a_continuous_target_is_refused(tmp_path, capsys, target, message):
    frame = pd.DataFrame({"x": np.arange(60.0), "t": target})
    frame.to_csv(tmp_path / "d.csv", index=False)
    err, _ = _run_exits_2(tmp_path, capsys, _file_config(tmp_path / "d.csv"))
    assert re.search(message, err), err


def test_an_unknown_suffix_is_refused(tmp_path, capsys):
    (tmp_path / "d.xlsx").write_text("x,t\n1,0\n")
    err, _ = _run_exits_2(tmp_path, capsys, _file_config(tmp_path / "d.xlsx"))
    assert err.startswith("error: dataset.path: cannot read a .xlsx file"), err


def test_a_missing_file_names_the_path_as_written_and_the_one_tried(tmp_path, capsys):
    raw = _file_config("data/none.csv")
    err, _ = _run_exits_2(tmp_path, capsys, raw)
    assert err == (
        f"error: dataset.path: no such file 'data/none.csv' "
        f"(looked for '{tmp_path / 'data' / 'none.csv'}')"
    )


def test_a_duplicate_key_names_both_lines(tmp_path, capsys):
    text = yaml.safe_dump(SMALL, sort_keys=False).replace(
        "  epochs: 300\n", "  epochs: 300\n  learning_rate: 0.1\n"
    )
    line = {i + 1 for i, row in enumerate(text.splitlines()) if "learning_rate" in row}
    err, _ = _run_exits_2(tmp_path, capsys, text=text)
    first, second = sorted(line)
    assert err == (
        f"error: CONFIG: model.learning_rate: the key is written twice, at lines {first} and "
        f"{second}; keep one"
    )


def test_an_alias_bomb_is_refused_at_once_and_briefly(tmp_path, capsys):
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    text = "\n".join(levels) + "\n"
    assert len(text) < 500  # expands to 9**9 = 387,420,489 strings
    err, seconds = _run_exits_2(tmp_path, capsys, text=text)
    assert seconds < 1.0 and len(err) < 300, (seconds, err)
    assert "expands to more than 100,000 values through anchors and aliases" in err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": {"learning_rate": ".nan"}}, "error: model.learning_rate: must be a finite"),
        ({"search": {"penalties": {"l2": {"lam": [".inf"]}}}}, "error: search.penalties.l2.lam:"),
        ({"model": {"epochs": ".nan"}}, "error: model.epochs: must be an integer, got nan"),
    ],
)
def test_nan_and_inf_where_a_number_is_expected(tmp_path, capsys, changes, message):
    text = yaml.safe_dump(deep_update(SMALL, changes)).replace("'.nan'", ".nan")
    text = text.replace("'.inf'", ".inf")
    err, _ = _run_exits_2(tmp_path, capsys, text=text)
    assert err.startswith(message), err


# --- models that hold data only ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted():
    data = load_resampled("file", path=ORCHARD, target="variety", test=0.2, seed=0)
    rows, y, test_rows, _ = data.refit_data()
    prepare = data.preprocessor().fit(rows)
    clf = RegularizedClassifier(hidden_layer_sizes=(6,), lam=0.3, epochs=300, random_state=0)
    clf.fit(prepare.transform(rows), y)
    return Pipeline([("preprocess", prepare), ("classifier", clf)]), test_rows, rows


def odd_rows(test_rows):
    rows = test_rows.head(4).copy()
    rows.loc[0, "weight_g"] = np.nan  # a missing number
    rows.loc[1, "orchard"] = "west"  # a category never seen in training
    rows.loc[2, "organic"] = None  # a missing category
    return rows


def test_a_model_saved_as_data_predicts_raw_rows_as_before(tmp_path, fitted):
    pipeline, test_rows, train_rows = fitted
    save_pipeline(pipeline, tmp_path)
    for path in tmp_path.iterdir():  # no pickle anywhere: numpy archives and JSON
        assert not path.read_bytes().startswith(b"\x80"), path
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                assert all(archive[name].dtype != object for name in archive.files)
    loaded = load_pipeline(tmp_path)
    rows = odd_rows(test_rows)
    np.testing.assert_array_equal(loaded.predict_proba(rows), pipeline.predict_proba(rows))
    np.testing.assert_array_equal(loaded.predict(rows), pipeline.predict(rows))
    # the rebuilt preprocessing is the documented one, fitted on the same rows (an unseen
    # category encodes as all zeros, a missing value as the training median or mode)
    reference = reference_transformer().fit(as_text(train_rows))
    expected = reference.transform(as_text(rows))
    np.testing.assert_allclose(loaded[0].transform(rows), expected, rtol=1e-12, atol=1e-12)


def _break(folder, name, change):
    path = folder / name
    if name.endswith(".json"):
        description = json.loads(path.read_text())
        change(description)
        path.write_text(json.dumps(description))
    else:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        change(arrays)
        np.savez(path, **arrays)


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("model.json", lambda d: d.update(version=7), "model: format version 7 is not one"),
        ("model.json", lambda d: d.update(format="other"), "is not a regsweep-model description"),
        (
            "preprocessing.npz",
            lambda a: a.pop("numeric_mean"),
            "preprocessing: missing array 'numeric_mean'",
        ),
        (
            "preprocessing.npz",
            lambda a: a.update(numeric_scale=np.ones(3)),
            r"preprocessing: numeric_scale has shape \(3,\), expected \(4,\)",
        ),
        ("weights.npz", lambda a: a.pop("b2"), "weights: missing array 'b2'"),
        (
            "weights.npz",
            lambda a: a.update(W2=np.ones((3, 5))),
            r"weights: W2 \(3, 5\) and b2 \(3, 1\) do not chain",
        ),
        (
            "weights.npz",
            lambda a: a.update(params=np.array([{"x": 1}], dtype=object)),
            "weights: not a numpy archive of plain arrays",
        ),
    ],
)
def test_a_model_file_that_does_not_match_is_a_clear_error(tmp_path, fitted, name, change, message):
    save_pipeline(fitted[0], tmp_path)
    _break(tmp_path, name, change)
    with pytest.raises(ModelFileError, match=message):
        load_pipeline(tmp_path)


def test_a_whole_number_column_takes_whole_numbers_and_missing_values_through_mlflow(tmp_path):
    """MLflow takes a JSON column of whole numbers only as ``long`` and one with a missing value
    only as ``double``: the logged model takes both, as the pipeline does, and refuses text in
    it naming the column; a request without a column is refused."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from sweeps.store import model_format
    from sweeps.store.tracking import tracking_uri

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"trees": rng.integers(1, 40, 60), "rain": rng.normal(size=60)})
    table["label"] = np.where(table["trees"] + 10 * table["rain"] > 20, "yes", "no")
    table.to_csv(tmp_path / "farms.csv", index=False)
    data = load_resampled("file", path=tmp_path / "farms.csv", target="label", test=0.2, seed=0)
    rows, y, test_rows, _ = data.refit_data()
    assert pd.api.types.is_integer_dtype(rows["trees"])
    prepare = data.preprocessor().fit(rows)
    clf = RegularizedClassifier(lam=0.1, epochs=200, random_state=0)
    pipeline = Pipeline(
        [("preprocess", prepare), ("classifier", clf.fit(prepare.transform(rows), y))]
    )

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("farms")
    run = client.create_run(experiment)
    info = model_format.log_model(
        client, run.info.run_id, experiment, "model", pipeline, data.columns, rows
    )
    with tracking_uri(client.tracking_uri):
        model = mlflow.pyfunc.load_model(info.model_uri)
    whole = test_rows.head(3).reset_index(drop=True)
    holed = whole.astype({"trees": float})
    holed.loc[1, "trees"] = np.nan
    for batch in (whole, holed):
        np.testing.assert_array_equal(model.predict(batch), pipeline.predict_proba(batch))
    with pytest.raises(Exception, match="column 'trees' takes numbers"):
        model.predict(whole.astype({"trees": object}).assign(trees=["3", "many", "4"]))
    with pytest.raises(MlflowException, match="missing inputs"):
        model.predict(whole.drop(columns="trees"))
