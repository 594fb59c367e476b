"""The report's rules on curves built by hand (pandas frames with known train loss, dev cost and dev
error), and on the digits sweep's dropout curve trained here."""

import numpy as np
import pandas as pd
import pytest

from regcore import RegularizedClassifier, fit_many
from regcore.datasets import load_dataset
from sweeps.analysis import curves


def curve(strengths, dev_cost, train_loss, dev_error=None, train_error=None, se=0.0):
    """An aggregated curve as :func:`sweeps.analysis.curves.aggregate` gives it, one seed per
    strength."""
    n = len(strengths)
    frame = pd.DataFrame(
        {
            "penalty": "l2",
            "depth": 1,
            "width": 8,
            "l1_ratio": 0.0,
            "strength": strengths,
            "lam": strengths,
            "keep_prob": 1.0,
            "seeds": 1,
            "folds": 5,
            "n": 5,
        }
    )
    columns = {
        "dev_cost": dev_cost,
        "train_loss": train_loss,
        "train_cost": train_loss,
        "dev_error": dev_error if dev_error is not None else [0.1] * n,
        "train_error": train_error if train_error is not None else [0.0] * n,
    }
    for name, values in columns.items():
        frame[f"{name}_mean"] = values
        frame[f"{name}_se"] = se
    return frame


def test_underfitting_and_overfitting_are_named_by_their_own_parts():
    # at 0.01 the dev cost rises by 0.2 while the training loss falls: the gap explains it;
    # at 1 and 10 the training loss rises more than the dev cost does: the model underfits
    s = curves.summarize(
        curve([0.01, 0.1, 1.0, 10.0], [0.5, 0.3, 0.4, 0.7], [0.05, 0.2, 0.38, 0.68])
    )
    assert s.best_strength == 0.1
    assert s.high_variance == [0.01]
    assert s.high_bias == [1.0, 10.0]
    assert s.unexplained == []
    assert s.verdict.startswith("U-shaped")


def test_a_rise_explained_by_neither():
    # above the best, the dev cost rises by 0.06 of which the training loss explains 0.01:
    # the gap grows on the strongly regularized side, which is not underfitting
    s = curves.summarize(curve([0.1, 0.3, 0.5], [0.10, 0.13, 0.16], [0.002, 0.006, 0.012]))
    assert s.best_strength == 0.1
    assert s.high_bias == [] and s.high_variance == []
    assert s.unexplained == [0.3, 0.5]


def test_noise_names_nothing():
    # rises of 0.004 and 0.006 are within one SE (0.01 each: floor sqrt(2) * 0.01)
    frame = curve([0.1, 1.0, 10.0], [0.304, 0.300, 0.306], [0.1, 0.2, 0.3], se=0.01)
    s = curves.summarize(frame)
    assert s.best_strength == 1.0
    assert s.high_bias == s.high_variance == s.unexplained == []
    # lambda.1se: the largest strength within one SE of the minimum (0.300 + 0.01)
    assert s.strength_1se == 10.0


def test_cost_and_error_disagree():
    s = curves.summarize(
        curve(
            [0.1, 0.3, 0.5],
            dev_cost=[0.10, 0.12, 0.15],
            train_loss=[0.0, 0.0, 0.0],
            dev_error=[0.033, 0.028, 0.024],
        )
    )
    assert s.best_strength == 0.1
    assert s.disagreement is not None and "dev_error at 0.5" in s.disagreement
    by_error = curves.summarize(
        curve([0.1, 0.3, 0.5], [0.10, 0.12, 0.15], [0.0] * 3, [0.033, 0.028, 0.024]),
        metric="dev_error",
    )
    assert by_error.best_strength == 0.5
    agree = curves.summarize(curve([0.1, 0.3], [0.10, 0.12], [0.0, 0.0], [0.02, 0.03]))
    assert agree.disagreement is None


def test_cvsd_is_cv_glmnets():
    """Two strengths, three folds of unequal sizes: the weighted mean and cvsd by hand."""
    rows = []
    for strength, values in ((0.1, [0.3, 0.5, 0.4]), (1.0, [0.2, 0.3, 0.1])):
        for fold, (value, size) in enumerate(zip(values, [10, 20, 30], strict=True)):
            rows.append(
                {
                    "penalty": "l2",
                    "depth": 1,
                    "width": 8,
                    "l1_ratio": 0.0,
                    "lam": strength,
                    "keep_prob": 1.0,
                    "strength": strength,
                    "seed": 0,
                    "fold": fold,
                    "repeat": 0,
                    "n_dev": size,
                    "status": "FINISHED",
                    "dev_cost": value,
                }
            )
    out = curves.aggregate(pd.DataFrame(rows)).set_index("strength")
    x, w = np.array([0.3, 0.5, 0.4]), np.array([10, 20, 30])
    mean = (w * x).sum() / w.sum()
    cvsd = np.sqrt((w * (x - mean) ** 2).sum() / w.sum() / (3 - 1))
    assert out.loc[0.1, "dev_cost_mean"] == pytest.approx(mean, rel=1e-15)
    assert out.loc[0.1, "dev_cost_se"] == pytest.approx(cvsd, rel=1e-14)
    assert out.loc[0.1, "folds"] == 3 and out.loc[0.1, "n"] == 3


def test_digits_dropout_is_not_called_high_bias():
    """configs/digits.yaml's dropout curve (depth 1): training loss near 0 and at most one
    training sample misclassified at every keep_prob, the dev error falling as the dev cost
    rises. Nothing there underfits."""
    data = load_dataset("digits", seed=0)
    keep = [0.9, 0.7, 0.5]
    estimators = [
        RegularizedClassifier(
            hidden_layer_sizes=(64,),
            penalty="dropout",
            keep_prob=k,
            optimizer="adam",
            learning_rate=0.003,
            epochs=300,
            log_every=300,
            random_state=seed,
        )
        for k in keep
        for seed in (0, 1)
    ]
    fit_many(estimators, data.X_train, data.y_train, data.X_dev, data.y_dev)
    rows = []
    for est in estimators:
        row = est.history_.iloc[-1].to_dict()
        strength = 1 - est.keep_prob
        row.update(penalty="dropout", depth=1, width=64, l1_ratio=0.0, lam=0.0)
        row.update(keep_prob=est.keep_prob, strength=strength, seed=est.random_state)
        row.update(status="FINISHED")
        rows.append(row)
    aggregated = curves.aggregate(pd.DataFrame(rows)).sort_values("strength")
    assert (aggregated["train_error_mean"] <= 1 / len(data.y_train)).all()
    assert (aggregated["train_loss_mean"] < 0.02).all()
    dev_error = aggregated["dev_error_mean"].to_numpy()
    assert dev_error[-1] < dev_error[0]  # more dropout, fewer dev errors
    s = curves.summarize(aggregated)
    assert s.best_strength == pytest.approx(0.1)  # lowest dev cost at the mildest dropout
    # the training loss does rise with dropout: the old rule ("dev cost above the best and
    # train loss higher") called these strengths high bias
    higher = aggregated[aggregated["strength"] > 0.15]
    assert (higher["train_loss_mean"] > aggregated["train_loss_mean"].iloc[0]).all()
    assert (higher["dev_cost_mean"] > aggregated["dev_cost_mean"].iloc[0]).all()
    assert s.high_bias == []


def _seeds(strength, values, diverged=()):
    """One curve's trainings at ``strength``: a run per seed, FAILED with ``diverged`` where
    listed (its metrics are those of the last finite row, as a diverged run logs them)."""
    return [
        {
            "penalty": "l2",
            "depth": 1,
            "width": 8,
            "l1_ratio": 0.0,
            "lam": strength,
            "keep_prob": 1.0,
            "strength": strength,
            "seed": seed,
            "n_dev": 10,
            "status": "FAILED" if seed in diverged else "FINISHED",
            "diverged": seed in diverged,
            "dev_cost": value,
            "train_loss": value / 2,
            "dev_error": 0.1,
            "train_error": 0.05,
        }
        for seed, value in enumerate(values)
    ]


def test_a_strength_where_a_training_diverged_is_never_chosen():
    """At 0.01 two of three seeds diverged; the survivor's cost is the lowest of the curve, yet
    lambda.min is 0.1 (the mean of the trainings that survived would flatter that strength)."""
    rows = (
        _seeds(0.001, [0.50, 0.52, 0.51])
        + _seeds(0.01, [0.10, 9.0, 9.0], diverged={1, 2})
        + _seeds(0.1, [0.30, 0.31, 0.32])
        + _seeds(1.0, [0.40, 0.42, 0.41])
    )
    aggregated = curves.aggregate(pd.DataFrame(rows))
    at = aggregated.set_index("strength")
    assert at.loc[0.01, "diverged"] == 2 and at.loc[0.01, "trainings"] == 3
    assert at.loc[0.01, "n"] == 1 and at.loc[0.01, "dev_cost_mean"] == pytest.approx(0.10)
    (curve,) = curves.curves_of(aggregated).values()
    summary = curves.summarize(curve)
    assert summary.best_strength == 0.1 and summary.strength_1se != 0.01
    assert summary.diverged == [{"strength": 0.01, "diverged": 2, "trainings": 3}]
    entry = next(s for s in summary.strengths if s["strength"] == 0.01)
    assert (entry["diverged"], entry["trainings"]) == (2, 3)
    best = curves.best_per_curve(aggregated)
    assert best["strength"].tolist() == [0.1]


def test_a_curve_whose_every_strength_diverged_has_no_lambda_min():
    rows = _seeds(0.1, [1.0, 2.0], diverged={0}) + _seeds(1.0, [1.0, 2.0], diverged={0, 1})
    (curve,) = curves.curves_of(curves.aggregate(pd.DataFrame(rows))).values()
    summary = curves.summarize(curve)
    assert not summary.chosen and np.isnan(summary.best_strength)
    assert summary.verdict.startswith("every strength diverged: no lambda.min")


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("moons-overfit", "reports/moons-overfit"),
        ("../../etc/passwd", "reports/etc_passwd"),
        ("/tmp/evil", "reports/tmp_evil"),
        ("..", "reports/sweep"),
        ("a b/c", "reports/a_b_c"),
    ],
)
def test_a_sweep_name_from_the_store_never_leaves_reports(name, folder):
    """A name read back from the store is data: the report's folder stays under reports/."""
    from pathlib import Path

    from sweeps.analysis.report import report_folder

    made = report_folder(name)
    assert made == Path(folder)
    assert made.resolve().is_relative_to(Path("reports").resolve())
