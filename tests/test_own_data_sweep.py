"""A user's own CSV end to end: a config in a subfolder names its file by a relative path, the
sweep runs from the parent folder with 5-fold cross-validation and ``--register``; each fold's
dev cost equals scikit-learn's ``Pipeline(ColumnTransformer, LogisticRegression)`` on the same
folds; the registered model, loaded by alias in a fresh process that refuses to unpickle,
predicts raw rows with a missing value and an unseen category as the pipeline built here does;
a changed file stops ``--resume``."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from regcore import RegularizedClassifier
from tests.helpers import cli, client, predicted_in_a_fresh_process, run_options, sweep_runs
from tests.test_own_data import ORCHARD, as_text, contract_folds, odd_rows, reference_transformer

pytestmark = pytest.mark.integration

LAMS = [3.0, 10.0, 30.0]
K, TEST, SEED = 5, 0.2, 0
MODEL = {"learning_rate": 0.5, "epochs": 6000, "log_every": 1000}
CONFIG = {
    "name": "orchard-cv",
    "experiment": "tests",
    "dataset": {
        "name": "file",
        "path": "data/orchard.csv",  # relative to sub/, the config's folder
        "target": "variety",
        "split": {"kfold": K, "test": TEST},
        "seed": SEED,
    },
    "model": MODEL,
    "search": {"depths": [0], "seeds": [0], "penalties": {"l2": {"lam": LAMS}}},
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, ray_head):
    folder = tmp_path_factory.mktemp("own")
    sub = folder / "sub"
    (sub / "data").mkdir(parents=True)
    shutil.copy(ORCHARD, sub / "data" / "orchard.csv")
    (sub / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    uri, options = run_options(folder, ray_head.address)
    result = cli("run", "sub/config.yaml", *options, "--register", "orchard", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder, uri, options, result


def test_every_point_finishes_and_each_fold_matches_a_sklearn_pipeline(sweep):
    folder, uri, _, result = sweep
    assert "4 numeric + 3 categorical columns -> 11 features; 41 missing values imputed; " in (
        result.stdout
    )
    parents, points = sweep_runs(uri)
    assert len(points) == len(LAMS) * K
    assert {p.info.status for p in points} == {"FINISHED"}
    frame, y, _, _, folds = contract_folds(pd.read_csv(ORCHARD), "variety", K, TEST, SEED)
    features = as_text(frame.drop(columns=["variety"]))
    worst = 0.0
    for fold, (train, dev) in enumerate(folds):
        for lam in LAMS:
            reference = make_pipeline(
                reference_transformer(),
                LogisticRegression(C=1 / lam, tol=1e-12, max_iter=100_000),
            ).fit(features.iloc[train], y[train])
            p = reference.predict_proba(features.iloc[dev])
            picked = p[np.arange(len(dev)), np.searchsorted(reference.classes_, y[dev])]
            expected = -np.mean(np.log(picked))
            (run,) = [
                r
                for r in points
                if int(r.data.params["fold"]) == fold and float(r.data.params["lam"]) == lam
            ]
            assert int(run.data.params["n_dev"]) == len(dev)
            assert run.data.metrics["dev_cost"] == pytest.approx(expected, rel=1e-5)
            worst = max(worst, abs(run.data.metrics["dev_cost"] / expected - 1))
    print(f"{K} folds x {len(LAMS)} lambdas: worst relative difference {worst:.1e}")
    (parent,) = parents
    assert parent.data.tags["regsweep.data_sha256"] == _sha256(ORCHARD)
    (entry,) = client(uri).get_run(parent.info.run_id).inputs.dataset_inputs
    assert entry.dataset.source and str(folder / "sub" / "data" / "orchard.csv") in (
        entry.dataset.source
    )
    assert entry.dataset.digest == _sha256(ORCHARD)[:32]


def _sha256(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_registered_model_takes_raw_rows_in_a_process_that_refuses_pickles(sweep):
    folder, uri, _, _ = sweep
    summary = json.loads((folder / "reports" / "orchard-cv" / "summary.json").read_text())
    (curve,) = summary["curves"]
    frame, y, rest, held, _ = contract_folds(pd.read_csv(ORCHARD), "variety", K, TEST, SEED)
    features = as_text(frame.drop(columns=["variety"]))
    expected = make_pipeline(
        reference_transformer(),
        RegularizedClassifier(penalty="l2", lam=curve["strength_1se"], random_state=0, **MODEL),
    ).fit(features.iloc[rest], y[rest])
    rows = odd_rows(frame.drop(columns=["variety"]).iloc[held].reset_index(drop=True))
    rows.to_csv(folder / "new-rows.csv", index=False)  # as a user's file holds them
    rows = pd.read_csv(folder / "new-rows.csv")
    loaded = predicted_in_a_fresh_process("models:/orchard@lambda-1se", uri, rows, folder)
    reference = expected.predict_proba(as_text(rows))
    np.testing.assert_allclose(loaded, reference, rtol=0, atol=1e-12)


def test_resume_refuses_a_file_that_changed(sweep):
    folder, uri, options, _ = sweep
    data = folder / "sub" / "data" / "orchard.csv"
    original = data.read_text()
    before = _sha256(data)
    _, runs_before = sweep_runs(uri, kind=None)
    try:
        data.write_text(original + "150.0,70.0,13.0,0.4,north,late,False,Gala\n")
        changed = _sha256(data)
        result = cli("run", "sub/config.yaml", *options, "--resume", cwd=folder)
    finally:
        data.write_text(original)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"error: dataset.path: '{data}' changed since sweep 'orchard-cv' started (sha256 "
        f"{before[:16]}... then, {changed[:16]}... now); restore the file, or run without "
        "--resume for a new sweep"
    )
    _, runs_after = sweep_runs(uri, kind=None)
    assert len(runs_after) == len(runs_before)  # nothing written
