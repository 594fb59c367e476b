"""What a training needs to know, shared by the training loop and its engines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class TrainingPlan:
    """What all models of a pack share."""

    layer_sizes: tuple[int, ...]
    activation: str
    optimizer: str
    learning_rate: float
    epochs: int
    batch_size: int | None
    log_every: int
    dtype: np.dtype
    threads: int = 1  # threads an engine may train models on at once


@dataclass(frozen=True)
class ModelSettings:
    """What may differ between the models of a pack."""

    penalty: str
    lam: float
    l1_ratio: float
    keep_prob: float
    penalize_bias: bool
    init: str
    random_state: int | np.random.RandomState | None

    @property
    def uses_dropout(self) -> bool:
        return self.penalty == "dropout" and self.keep_prob < 1.0


@dataclass(frozen=True, eq=False)
class TrainingData:
    """One model's data, validated and of the plan's dtype: ``x`` (m, n[0]) and class indices
    ``y_index`` (m,); optionally dev data ``x_dev`` (m_dev, n[0]) and ``y_dev_index`` (m_dev,).

    Models given the same object share their data (compared by identity).
    """

    x: Array
    y_index: Array
    x_dev: Array | None = None
    y_dev_index: Array | None = None

    @property
    def has_dev(self) -> bool:
        return self.x_dev is not None
