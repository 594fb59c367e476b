"""Outside references the tests compare regcore with, shared with the benchmark (which times
regcore against the same estimator)."""

from __future__ import annotations

from typing import Any


def gradient_descent_mlp(
    hidden: tuple[int, ...],
    *,
    activation: str = "relu",
    alpha: float,
    learning_rate: float,
    epochs: int,
    n_samples: int,
    seed: int = 0,
    **extra: Any,
):
    """scikit-learn's ``MLPClassifier`` as the lecture's plain gradient descent.

    Full batches (``batch_size = n_samples``, no shuffling), constant learning rate, no momentum,
    no early stopping and no tolerance: ``epochs`` updates of ``W -= lr (dW + alpha/m W)``, the
    source's L2 objective with ``lam = alpha``. ``extra`` goes to ``MLPClassifier`` as is
    (``warm_start=True``, ...).
    """
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=hidden,
        activation=activation,
        solver="sgd",
        alpha=alpha,
        learning_rate="constant",
        learning_rate_init=learning_rate,
        momentum=0.0,
        nesterovs_momentum=False,
        batch_size=n_samples,
        shuffle=False,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=10**9,
        early_stopping=False,
        random_state=seed,
        **extra,
    )
