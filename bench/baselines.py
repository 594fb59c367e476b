"""The benchmark's outside baselines: scikit-learn's ``MLPClassifier`` as plain gradient
descent (:func:`tests.references.gradient_descent_mlp`, the tests' oracle), alone or in a
hand-rolled Ray Tune grid logged to MLflow."""

from __future__ import annotations

from typing import Any

from tests.references import gradient_descent_mlp


def fit_gradient_descent_mlp(X: Any, y: Any, hidden: tuple[int, ...], **settings: Any):
    """A fitted :func:`gradient_descent_mlp` (``settings`` are its keywords), its convergence
    warnings silenced (``max_iter`` is the epoch count, never meant to converge): a function of
    its own so that ``joblib.Parallel`` can send it to worker processes."""
    import warnings

    net = gradient_descent_mlp(hidden, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return net.fit(X, y)


def mlp_trial(config: dict[str, Any]) -> None:
    """One Ray Tune trial of the hand-rolled route: fit one ``MLPClassifier`` (see
    :func:`gradient_descent_mlp`) on the bench sweep's train/dev split and report its train and
    dev log loss.

    ``config`` holds ``alpha``, ``depth``, ``seed``, ``width`` and ``epochs``.
    """
    from ray import tune
    from sklearn.metrics import log_loss

    from regcore.datasets import load_dataset

    data = load_dataset("moons", n_samples=300, noise=0.3, seed=0)
    net = fit_gradient_descent_mlp(
        data.X_train,
        data.y_train,
        (config["width"],) * config["depth"],
        alpha=config["alpha"],
        learning_rate=0.3,
        epochs=config["epochs"],
        n_samples=len(data.y_train),
        seed=config["seed"],
    )
    tune.report(
        {
            "train_loss": log_loss(data.y_train, net.predict_proba(data.X_train)),
            "dev_loss": log_loss(data.y_dev, net.predict_proba(data.X_dev)),
        }
    )


def tune_mlp_grid(
    folder: str,
    *,
    alphas: list[float],
    depths: list[int],
    seeds: list[int],
    epochs: int,
    width: int = 20,
) -> int:
    """The route people hand-roll today: a Ray Tune grid of :func:`mlp_trial` trials (one
    ``MLPClassifier`` each, one CPU each), logged to MLflow by Ray's ``MLflowLoggerCallback``
    (params at the start, final metrics, run end) in a new SQLite store in ``folder``.

    A local Ray is started and stopped here. Returns the number of trials that finished.
    """
    import logging

    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune import RunConfig

    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        tuner = tune.Tuner(
            mlp_trial,
            param_space={
                "alpha": tune.grid_search(list(alphas)),
                "depth": tune.grid_search(list(depths)),
                "seed": tune.grid_search(list(seeds)),
                "width": width,
                "epochs": epochs,
            },
            run_config=RunConfig(
                name="tune-mlp",
                storage_path=f"{folder}/ray",
                callbacks=[
                    MLflowLoggerCallback(
                        tracking_uri=f"sqlite:///{folder}/mlflow.db", experiment_name="tune-mlp"
                    )
                ],
                verbose=0,
            ),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    return sum(result.error is None for result in results)
