"""Metric names, defined once.

The same names are the columns of ``RegularizedClassifier.history_``, the MLflow metric keys that
``sweeps`` logs and the columns of the report tables. Layer numbers in names are 1-based like the
lecture's ``W[l]`` (``weight_norm/W1`` is ``weights_[0]``).
"""

from __future__ import annotations

EPOCH = "epoch"
TRAIN_COST = "train_cost"  # J on the training set, penalty included
TRAIN_LOSS = "train_loss"  # data term only
PENALTY_TERM = "penalty_term"  # the penalty part of J
DEV_COST = "dev_cost"  # data term on the dev set (no penalty)
TRAIN_ERROR = "train_error"
DEV_ERROR = "dev_error"
SPARSITY = "sparsity"  # share of weights that are exactly zero
TEST_COST = "test_cost"  # final metric only: data term on the held-out test set
TEST_ERROR = "test_error"

#: pre-activations with ``abs(z)`` below this count as being in tanh's nearly linear range
LINEAR_RANGE = 0.5

#: the per-layer families: ``weight_norm/W1``, ``weight_l1/W1``, ``linear_fraction/L1``, ...
WEIGHT_NORM = "weight_norm/"
WEIGHT_L1 = "weight_l1/"
LINEAR_FRACTION = "linear_fraction/"
PER_LAYER = (WEIGHT_NORM, WEIGHT_L1, LINEAR_FRACTION)


def weight_norm(layer: int) -> str:
    """Name of the Frobenius norm of ``W[layer]`` (1-based)."""
    return f"{WEIGHT_NORM}W{layer}"


def weight_l1(layer: int) -> str:
    """Name of the L1 norm of ``W[layer]`` (1-based)."""
    return f"{WEIGHT_L1}W{layer}"


def linear_fraction(layer: int) -> str:
    """Name of the share of hidden layer ``layer``'s pre-activations with ``abs(z) < 0.5``."""
    return f"{LINEAR_FRACTION}L{layer}"


def history_columns(n_layers: int, *, has_dev: bool, tanh: bool) -> list[str]:
    """The columns of a history table, in order.

    Parameters
    ----------
    n_layers : int
        Number of weight matrices L (hidden layers + 1).
    has_dev : bool
        Whether dev metrics are recorded.
    tanh : bool
        Whether ``linear_fraction/L{l}`` columns are recorded (tanh hidden units).
    """
    columns = [EPOCH, TRAIN_COST, TRAIN_LOSS, PENALTY_TERM, TRAIN_ERROR]
    if has_dev:
        columns += [DEV_COST, DEV_ERROR]
    columns += [weight_norm(layer) for layer in range(1, n_layers + 1)]
    columns += [weight_l1(layer) for layer in range(1, n_layers + 1)]
    columns.append(SPARSITY)
    if tanh:
        columns += [linear_fraction(layer) for layer in range(1, n_layers)]
    return columns
