"""Cross-validated lambda end to end: K-fold trainings read back from MLflow against scikit-learn
on the same folds, cv.glmnet's SE and lambda.1se recomputed here, the refit models, the Model
Registry, and the parent run's dataset input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from regcore import RegularizedClassifier
from tests.helpers import (
    cli,
    client,
    free_port,
    kill_group,
    predicted_in_a_fresh_process,
    run_options,
    sweep_runs,
    write_config,
)

pytestmark = pytest.mark.integration

LAMS = [4.0, 10.0, 30.0, 100.0]
K, TEST, SEED = 5, 0.2, 0
CV = {
    "name": "cv",
    "dataset": {
        "name": "breast_cancer",
        "n_samples": None,
        "noise": None,
        "split": {"kfold": K, "test": TEST},
        "seed": SEED,
    },
    "model": {"learning_rate": 0.3, "epochs": 6000, "log_every": 1000},
    "search": {
        "depths": [0],
        "seeds": [0],
        "penalties": {"none": None, "l1": None, "l2": {"lam": LAMS}},
    },
}


def contract_folds():
    """The folds as the contract defines them, built here with scikit-learn alone."""
    X, y = load_breast_cancer(return_X_y=True)
    rows = np.arange(len(y))
    rest, test = train_test_split(
        rows, test_size=round(TEST * len(y)), random_state=SEED, stratify=y
    )
    rest, test = np.sort(rest), np.sort(test)
    splitter = StratifiedKFold(n_splits=K, shuffle=True, random_state=SEED)
    folds = [(rest[a], rest[b]) for a, b in splitter.split(X[rest], y[rest])]
    return X, y, rest, test, folds


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, ray_head):
    folder = tmp_path_factory.mktemp("cv")
    config = write_config(folder / "cv.yaml", CV)
    uri, options = run_options(folder, ray_head.address)
    result = cli("run", str(config), *options, "--register", "cancer-cv", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    parents, children = sweep_runs(uri, kind=None)
    points = [c for c in children if c.data.tags["regsweep.kind"] == "point"]
    refits = [c for c in children if c.data.tags["regsweep.kind"] == "refit"]
    return folder, uri, result, parents[0], points, refits


def fold_frame(points):
    rows = []
    for run in points:
        p = run.data.params
        rows.append(
            {
                "lam": float(p["lam"]),
                "fold": int(p["fold"]),
                "repeat": int(p["repeat"]),
                "n_dev": int(p["n_dev"]),
                "dev_cost": run.data.metrics["dev_cost"],
            }
        )
    return pd.DataFrame(rows)


def test_fold_dev_costs_equal_sklearn_pipelines_on_the_same_folds(sweep):
    _, _, _, _, points, _ = sweep
    assert len(points) == len(LAMS) * K
    assert {c.info.status for c in points} == {"FINISHED"}
    frame = fold_frame(points)
    X, y, _, _, folds = contract_folds()
    worst = 0.0
    for (train, dev), fold in zip(folds, range(K), strict=True):
        for lam in LAMS:
            reference = make_pipeline(
                StandardScaler(), LogisticRegression(C=1 / lam, tol=1e-12, max_iter=100_000)
            ).fit(X[train], y[train])
            p = reference.predict_proba(X[dev])[:, 1]
            expected = -np.mean(y[dev] * np.log(p) + (1 - y[dev]) * np.log(1 - p))
            logged = frame[(frame["fold"] == fold) & (frame["lam"] == lam)]
            assert len(logged) == 1 and logged["n_dev"].item() == len(dev)
            assert logged["dev_cost"].item() == pytest.approx(expected, rel=1e-5)
            worst = max(worst, abs(logged["dev_cost"].item() / expected - 1))
    print(f"{K} folds x {len(LAMS)} lambdas: worst relative difference {worst:.1e}")


def test_se_and_lambda_1se_are_cv_glmnets(sweep):
    folder, _, _, _, points, _ = sweep
    frame = fold_frame(points)
    expected = {}
    for lam, rows in frame.groupby("lam"):
        w, x = rows["n_dev"].to_numpy(float), rows["dev_cost"].to_numpy()
        cvm = np.sum(w * x) / np.sum(w)  # cv.glmnet: weighted.mean(cvraw, weights)
        cvsd = np.sqrt(np.sum(w * (x - cvm) ** 2) / np.sum(w) / (len(x) - 1))
        expected[lam] = (cvm, cvsd)
    lam_min = min(expected, key=lambda lam: expected[lam][0])
    limit = expected[lam_min][0] + expected[lam_min][1]
    lam_1se = max(lam for lam, (m, _) in expected.items() if m <= limit)

    summary = json.loads((folder / "reports" / "cv" / "summary.json").read_text())
    (curve,) = [c for c in summary["curves"] if c["penalty"] == "l2"]
    assert curve["best_strength"] == pytest.approx(lam_min)
    assert curve["strength_1se"] == pytest.approx(lam_1se)
    assert len(curve["strengths"]) == len(LAMS)
    for row in curve["strengths"]:
        lam = min(expected, key=lambda value: abs(value - row["strength"]))
        assert row["strength"] == pytest.approx(lam)
        cvm, cvsd = expected[lam]
        assert row["mean"] == pytest.approx(cvm, rel=1e-12)
        assert row["se"] == pytest.approx(cvsd, rel=1e-9)
        assert row["folds"] == K
    curves = pd.read_csv(folder / "reports" / "cv" / "curves.csv")
    l2 = curves[curves["penalty"] == "l2"].set_index("strength")
    for lam, (cvm, cvsd) in expected.items():
        assert l2.loc[lam, "dev_cost_mean"] == pytest.approx(cvm, rel=1e-12)
        assert l2.loc[lam, "dev_cost_se"] == pytest.approx(cvsd, rel=1e-9)
        assert l2.loc[lam, "folds"] == K
    assert summary["selection"]["metric"] == "dev_cost" and "cvsd" in summary["selection"]["rule"]


def test_child_runs_carry_fold_and_repeat(sweep):
    _, _, _, parent, points, _ = sweep
    params = points[0].data.params
    assert {"fold", "repeat", "n_train", "n_dev"} <= set(params)
    assert sorted({int(c.data.params["fold"]) for c in points}) == list(range(K))
    assert {c.data.params["repeat"] for c in points} == {"0"}
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in points)
    assert all("test_cost" not in c.data.metrics for c in points)  # scored once, by the refits


def refit_by_rule(refits):
    """Each rule's refit run (one run serves both where lambda.min and lambda.1se coincide)."""
    return {rule: r for r in refits for rule in r.data.tags["regsweep.rule"].split(",")}


def test_refits_are_scored_once_and_registered_models_load_in_a_fresh_process(sweep):
    folder, uri, result, _, _, refits = sweep
    summary = json.loads((folder / "reports" / "cv" / "summary.json").read_text())
    (curve,) = summary["curves"]
    rules = refit_by_rule(refits)
    assert set(rules) == {"lambda.min", "lambda.1se"}
    distinct = {curve["best_strength"], curve["strength_1se"]}
    assert len(refits) == len(distinct)  # one refit per distinct strength
    assert float(rules["lambda.1se"].data.params["lam"]) == pytest.approx(curve["strength_1se"])
    assert "registered l2 depth=0 as 'cancer-cv'" in result.stdout

    # the refit built here: the YAML's settings at lambda.1se, all non-test rows, raw features
    X, y, rest, test, _ = contract_folds()
    names = list(load_breast_cancer().feature_names)
    model = CV["model"]
    expected = make_pipeline(
        StandardScaler(),
        RegularizedClassifier(
            penalty="l2",
            lam=curve["strength_1se"],
            learning_rate=model["learning_rate"],
            epochs=model["epochs"],
            log_every=model["log_every"],
            random_state=0,
        ),
    ).fit(pd.DataFrame(X[rest], columns=names), y[rest])
    raw_test = pd.DataFrame(X[test], columns=names)
    reference = expected.predict_proba(raw_test)
    assert rules["lambda.1se"].data.metrics["test_error"] == pytest.approx(
        1 - expected.score(raw_test, y[test])
    )
    # loaded by alias in a fresh process that refuses to unpickle anything
    loaded = predicted_in_a_fresh_process("models:/cancer-cv@lambda-1se", uri, raw_test, folder)
    np.testing.assert_allclose(loaded, reference, rtol=0, atol=1e-12)
    versions = client(uri).search_model_versions("name = 'cancer-cv'")
    assert {v.run_id for v in versions} == {r.info.run_id for r in refits}
    for refit in refits:  # the models live in the sweep's experiment, beside their runs
        model_id = refit.data.tags["regsweep.model_uri"].removeprefix("models:/")
        logged = client(uri).get_logged_model(model_id)
        assert logged.experiment_id == refit.info.experiment_id
        assert logged.source_run_id == refit.info.run_id
        files = [p for p in Path(logged.artifact_location.removeprefix("file://")).rglob("*")]
        files = [p for p in files if p.is_file()]
        assert {p.name for p in files} >= {"MLmodel", "model.json", "weights.npz"}
        for path in files:  # data only: no pickle by content, whatever the name
            content = path.read_bytes()
            assert not content.startswith(b"\x80"), path
            assert b"cloudpickle" not in content and b"python_model" not in content, path


def test_the_registered_model_answers_over_http(sweep):
    """``mlflow models serve --env-manager local``: raw rows posted, the same probabilities."""
    folder, uri, _, _, _, _ = sweep
    X, _, _, test, _ = contract_folds()
    names = list(load_breast_cancer().feature_names)
    rows = pd.DataFrame(X[test[:5]], columns=names)
    expected = predicted_in_a_fresh_process("models:/cancer-cv@lambda-min", uri, rows, folder)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/cancer-cv@lambda-min",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=folder,
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_split": json.loads(rows.to_json(orient="split", double_precision=15))},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=0, atol=1e-12)
    finally:
        kill_group(server, signal.SIGTERM)


def test_parent_records_its_dataset_and_the_experiment_its_kind(sweep):
    _, uri, _, parent, _, _ = sweep
    (entry,) = client(uri).get_run(parent.info.run_id).inputs.dataset_inputs
    assert entry.dataset.name == "breast_cancer" and entry.dataset.digest
    assert entry.dataset.source and "load_breast_cancer" in entry.dataset.source
    tags = {t.key: t.value for t in entry.tags}
    assert json.loads(tags["regsweep.split"]) == {
        "kfold": K,
        "repeats": 1,
        "test": TEST,
        "seed": SEED,
    }
    experiment = client(uri).get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
