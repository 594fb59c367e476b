"""Report, compare, ls, show and ui on real sweeps, checked against pandas computations made here
from the runs as MlflowClient returns them."""

import json
import time

import numpy as np
import pandas as pd
import pytest
import requests

from sweeps.store.layout import BEST_TAG
from tests.helpers import (
    SMALL,
    cli,
    cli_background,
    client,
    deep_update,
    free_port,
    kill_group,
    run_options,
    sweep_runs,
    write_config,
)

pytestmark = pytest.mark.integration

CURVE = ["penalty", "depth", "width", "l1_ratio", "strength"]
METRICS = ["train_cost", "train_loss", "dev_cost", "train_error", "dev_error", "weight_norm/W1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory, ray_head):
    """Three sweeps in one SQLite store: the same points packed and one per trial, and another
    lambda grid."""
    folder = tmp_path_factory.mktemp("report")
    uri, common = run_options(folder, ray_head.address)
    changes = {
        "search": {
            "seeds": [0, 1, 2],
            "penalties": {"l2": {"lam": [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]}},
        }
    }
    runs = {}
    for name, pack in (("packed", "auto"), ("unpacked", 1)):
        config = write_config(
            folder / f"{name}.yaml", {**changes, "name": name, "execution": {"pack_size": pack}}
        )
        runs[name] = cli("run", str(config), *common, cwd=folder)
        assert runs[name].returncode == 0, runs[name].stdout + runs[name].stderr
    raw = deep_update(SMALL, changes)
    other = write_config(
        folder / "other.yaml",
        {
            "name": "other",
            "search": {
                "depths": [1],
                "seeds": [0],
                "penalties": {"none": None, "l1": None, "l2": {"lam": [0.003, 0.03, 0.3]}},
            },
        },
    )
    runs["other"] = cli("run", str(other), *common, "--no-report", cwd=folder)
    assert runs["other"].returncode == 0, runs["other"].stderr
    return folder, uri, runs, raw


def expected_runs(raw: dict) -> int:
    """Trainings of a config, counted by hand: per depth and seed, one ``none`` run and one per
    strength of every other penalty."""
    search = raw["search"]
    per_grid = sum(
        1 if penalty == "none" else len(grid["lam"])
        for penalty, grid in search["penalties"].items()
        if grid is not None
    )
    return len(search["depths"]) * len(search["seeds"]) * per_grid


def _children(uri, sweep):
    parents, children = sweep_runs(uri)
    parent = next(p for p in parents if p.data.tags["regsweep.sweep"] == sweep)
    return parent, [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]


def _frame(children):
    rows = []
    for run in children:
        if run.info.status != "FINISHED":
            continue
        p = run.data.params
        row = {
            "penalty": p["penalty"],
            "depth": int(p["depth"]),
            "width": int(p["width"]),
            "l1_ratio": float(p["l1_ratio"]),
            "seed": int(p["seed"]),
            "run_id": run.info.run_id,
            "strength": 1 - float(p["keep_prob"]) if p["penalty"] == "dropout" else float(p["lam"]),
        }
        row.update({m: run.data.metrics[m] for m in METRICS})
        rows.append(row)
    return pd.DataFrame(rows)


def test_packed_and_unpacked_sweeps_log_the_same_metrics(store):
    _folder, uri, _, raw = store
    mlflow_client = client(uri)
    _, packed = _children(uri, "packed")
    _, unpacked = _children(uri, "unpacked")
    assert len(packed) == len(unpacked) == expected_runs(raw)
    by_key = {c.data.tags["regsweep.key"]: c for c in unpacked}
    for run in packed:
        twin = by_key[run.data.tags["regsweep.key"]]
        assert run.data.params == twin.data.params
        assert run.data.metrics.keys() == twin.data.metrics.keys()
        for name, value in run.data.metrics.items():
            assert value == pytest.approx(twin.data.metrics[name], rel=1e-9, abs=1e-12)
        for name in ("dev_cost", "weight_norm/W1"):
            a = sorted(
                (m.step, m.value) for m in mlflow_client.get_metric_history(run.info.run_id, name)
            )
            b = sorted(
                (m.step, m.value) for m in mlflow_client.get_metric_history(twin.info.run_id, name)
            )
            assert [s for s, _ in a] == [s for s, _ in b]
            np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=1e-9)


def test_curves_csv_equals_an_aggregation_of_the_runs(store):
    folder, uri, _, raw = store
    _, children = _children(uri, "packed")
    frame = _frame(children)
    grouped = frame.groupby(CURVE)
    expected = grouped[METRICS].mean()
    se = grouped[METRICS].std(ddof=1) / np.sqrt(grouped.size().to_numpy()[:, None])
    curves = pd.read_csv(folder / "reports" / "packed" / "curves.csv").set_index(CURVE)
    assert len(curves) == len(expected)
    for metric in METRICS:
        np.testing.assert_allclose(
            curves.loc[expected.index, f"{metric}_mean"], expected[metric], rtol=1e-12
        )
        np.testing.assert_allclose(
            curves.loc[expected.index, f"{metric}_se"], se[metric], rtol=1e-9
        )
    assert (curves["seeds"] == len(raw["search"]["seeds"])).all()


def test_best_lambda_and_one_standard_error_rule(store):
    folder, uri, _, _ = store
    _, children = _children(uri, "packed")
    frame = _frame(children)
    summary = json.loads((folder / "reports" / "packed" / "summary.json").read_text())
    reported = {(c["penalty"], c["depth"]): c for c in summary["curves"]}
    assert set(reported) == {("l2", 1), ("l2", 2), ("l1", 1), ("l1", 2)}
    for (penalty, depth), curve in frame[frame["penalty"] != "none"].groupby(["penalty", "depth"]):
        by_strength = curve.groupby("strength")["dev_cost"]
        mean, std, n = by_strength.mean(), by_strength.std(ddof=1), by_strength.count()
        best = mean.idxmin()
        se = 0.0 if np.isnan(std[best]) else std[best] / np.sqrt(n[best])
        one_se = max(s for s, m in mean.items() if m <= mean[best] + se)
        assert reported[(penalty, depth)]["best_strength"] == pytest.approx(best)
        assert reported[(penalty, depth)]["strength_1se"] == pytest.approx(one_se)
        assert reported[(penalty, depth)]["dev_cost"] == pytest.approx(mean[best])
    # the l2 grid spans 1e-3..1e2: the dev cost is high at the top end (all weights ~0)
    assert reported[("l2", 2)]["best_strength"] < 100.0
    best_runs = {c.info.run_id for c in children if c.data.tags.get(BEST_TAG) == "true"}
    expected_best = {
        r
        for (penalty, depth), c in reported.items()
        for r in frame[
            (frame.penalty == penalty)
            & (frame.depth == depth)
            & np.isclose(frame.strength, c["best_strength"])
        ]["run_id"]
    }
    assert best_runs == expected_best


def test_report_html_is_self_contained_and_logged_on_the_parent(store):
    folder, uri, runs, _ = store
    out = folder / "reports" / "packed"
    page = (out / "report.html").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [
        "boundaries_l1.png",
        "boundaries_l2.png",
        "mechanisms_l1.png",
        "mechanisms_l2.png",
        "tradeoff_l1.png",
        "tradeoff_l2.png",
    ]
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert "<table" in page and "How to read this report" in page
    assert 'src="http' not in page and "<link" not in page  # nothing fetched from elsewhere
    parent, _ = _children(uri, "packed")
    logged = {a.path for a in client(uri).list_artifacts(parent.info.run_id, "report")}
    assert logged == {
        f"report/{name}" for name in [*pngs, "report.html", "curves.csv", "summary.json"]
    }
    assert "report: reports/packed/report.html" in runs["packed"].stdout


def test_report_command_regenerates_into_another_folder(store):
    folder, uri, _, _ = store
    result = cli(
        "report", "other", "--tracking-uri", uri, "--out", str(folder / "again"), cwd=folder
    )
    assert result.returncode == 0, result.stderr
    assert (folder / "again" / "report.html").exists()
    summary = json.loads((folder / "again" / "summary.json").read_text())
    assert [c["name"] for c in summary["curves"]] == ["l2 depth=1 width=8"]


def test_compare_two_sweeps_and_two_groups(store):
    folder, uri, _, _ = store
    result = cli(
        "compare",
        "packed:penalty=l2,depth=1",
        "other",
        "--tracking-uri",
        uri,
        "--out",
        str(folder / "cmp"),
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    wide = pd.read_csv(folder / "cmp" / "compare.csv", index_col="strength")
    assert list(wide.columns) == ["other · l2 depth=1 width=8", "packed · l2 depth=1 width=8"]
    # union of the two grids; each curve only where it was trained (no interpolation)
    assert wide.index.tolist() == pytest.approx([0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 10, 100])
    assert wide["other · l2 depth=1 width=8"].notna().sum() == 3
    assert wide["packed · l2 depth=1 width=8"].notna().sum() == 6
    best = pd.read_csv(folder / "cmp" / "best.csv")
    assert len(best) == 2
    page = (folder / "cmp" / "compare.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and "<table" in page

    result = cli(
        "compare",
        "packed:penalty=l2,depth=1",
        "packed:penalty=l2,depth=2",
        "--metric",
        "train_loss",
        "--tracking-uri",
        uri,
        "--out",
        str(folder / "groups"),
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    wide = pd.read_csv(folder / "groups" / "compare.csv", index_col="strength")
    assert wide.shape == (6, 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "SWEEP: no sweep named or with run id 'nosuch'"),
        (["packed:penalty=dropout"], "selects no finished runs"),
        (["packed:colour=red"], "expected key=value with key in penalty, depth, width, l1_ratio"),
        (["packed:depth=deep"], "depth must be int, got 'deep'"),
        (["packed", "--metric", "accuracy"], "--metric: the runs have no metric 'accuracy'"),
    ],
)
def test_compare_errors(store, args, message):
    folder, uri, _, _ = store
    result = cli("compare", *args, "--tracking-uri", uri, "--out", str(folder / "bad"), cwd=folder)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (folder / "bad").exists()


def test_ls_and_show(store):
    folder, uri, _, raw = store
    result = cli("ls", "--tracking-uri", uri, cwd=folder)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(lines) == {"packed", "unpacked", "other"}
    total = expected_runs(raw)
    assert f"{total}/{total}" in lines["packed"] and "FINISHED" in lines["packed"]
    result = cli("show", "unpacked", "--tracking-uri", uri, cwd=folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("sweep unpacked (")
    assert len(result.stdout.splitlines()) == 2 + total
    missing = cli("show", "nosuch", "--tracking-uri", uri, cwd=folder)
    assert missing.returncode == 2 and "no sweep named" in missing.stderr


def test_ui_serves_the_store(store):
    folder, uri, _, _ = store
    port = free_port()
    ui = cli_background(
        "ui", "--tracking-uri", uri, "--port", str(port), cwd=folder, log=folder / "ui.log"
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = requests.get(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                    params={"max_results": 10},
                    timeout=2,
                )
                if response.status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        names = {e["name"] for e in response.json()["experiments"]}
        assert "tests" in names
        assert f"http://127.0.0.1:{port}" in (folder / "ui.log").read_text()
    finally:
        kill_group(ui)
