"""The penalties of the lecture, each with its cost term and its gradient (or proximal) term.

Scaling, stated once (``m`` = training samples, or the batch size on mini-batches):

=================  ==========================================  ===============================
penalty            term added to J                             how training applies it
=================  ==========================================  ===============================
``none``           0                                           --
``l2``             ``lam/(2m) * sum_l ||W[l]||_F^2``           gradient ``+ (lam/m) W``
``l1``             ``lam/m * sum_l ||W[l]||_1``                proximal soft-threshold step
``elasticnet``     ``r lam/m ||W||_1 + (1-r) lam/(2m) ||W||^2``  both of the above
``weight_decay``   ``lam/(2m) * sum_l ||W[l]||_F^2`` (implied)  ``W -= lr (lam/m) W_old``, outside
                                                               the optimizer (decoupled)
``dropout``        0 (inverted dropout on hidden layers)       masks in the forward pass
=================  ==========================================  ===============================

Biases are not penalized unless ``penalize_bias=True``. Under plain gradient descent,
``weight_decay`` and ``l2`` are the same update, ``W := (1 - lr lam/m) W - lr dW_data`` (the
lecture's reason for the name); under momentum or Adam they differ (decoupled decay, as AdamW).

Every penalty reduces to three coefficients per model, so K models with different penalties are
trained together: ``l2`` (in J and in the gradient), ``l1`` (in J, applied by the proximal step)
and ``decay`` (in J as an L2 term, applied by decoupled decay). What one training step applies,
with the batch's ``m`` and the learning rate folded in, is :class:`StepCoefficients`: both
engines read it, so the scaling is written here only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from regcore.network import ParameterStack
    from regcore.training_plan import ModelSettings

Array = np.ndarray


@dataclass(frozen=True)
class PenaltyCoefficients:
    """How much of ``lam`` goes to each mechanism (multiply by ``1/m`` when applying)."""

    l2: float = 0.0
    l1: float = 0.0
    decay: float = 0.0


def _none(lam: float, l1_ratio: float) -> PenaltyCoefficients:
    return PenaltyCoefficients()


def _l2(lam: float, l1_ratio: float) -> PenaltyCoefficients:
    return PenaltyCoefficients(l2=lam)


def _l1(lam: float, l1_ratio: float) -> PenaltyCoefficients:
    return PenaltyCoefficients(l1=lam)


def _elasticnet(lam: float, l1_ratio: float) -> PenaltyCoefficients:
    return PenaltyCoefficients(l2=(1.0 - l1_ratio) * lam, l1=l1_ratio * lam)


def _weight_decay(lam: float, l1_ratio: float) -> PenaltyCoefficients:
    return PenaltyCoefficients(decay=lam)


PENALTIES = {
    "none": _none,
    "l2": _l2,
    "l1": _l1,
    "elasticnet": _elasticnet,
    "weight_decay": _weight_decay,
    "dropout": _none,
}


def coefficients(penalty: str, lam: float, l1_ratio: float) -> PenaltyCoefficients:
    """The coefficients of ``penalty`` at strength ``lam``."""
    return PENALTIES[penalty](lam, l1_ratio)


@dataclass(frozen=True)
class PenaltyVectors:
    """The coefficients of K models side by side, each of shape (K,): ``bias`` is 1 where a model
    penalizes its biases too, 0 elsewhere."""

    l2: Array
    l1: Array
    decay: Array
    bias: Array

    @classmethod
    def of(cls, models: Sequence[ModelSettings]) -> PenaltyVectors:
        coefs = [coefficients(s.penalty, s.lam, s.l1_ratio) for s in models]
        return cls(
            l2=np.array([c.l2 for c in coefs]),
            l1=np.array([c.l1 for c in coefs]),
            decay=np.array([c.decay for c in coefs]),
            bias=np.array([s.penalize_bias for s in models], dtype=float),
        )

    @property
    def has_l2(self) -> bool:
        return bool(self.l2.any())

    @property
    def has_l1(self) -> bool:
        return bool(self.l1.any())

    @property
    def has_decay(self) -> bool:
        return bool(self.decay.any())

    def entries(self, stack: ParameterStack, values: Array) -> Array:
        """A per-model value spread over every penalized entry of that model (0 on unpenalized
        biases), as a flat vector shaped like ``stack.flat``."""
        return stack.per_entry(values, values * self.bias)

    def cost_entries(self, stack: ParameterStack) -> tuple[Array, Array]:
        """Per-entry coefficients of J's penalty part: ``(l2 + decay, l1)``."""
        return self.entries(stack, self.l2 + self.decay), self.entries(stack, self.l1)


@dataclass(frozen=True)
class StepCoefficients:
    """What one training step on a batch of ``m`` samples applies to each of K models, in the
    order the step applies them (each of shape (K,); on a model's biases only where ``bias``):

    1. ``grad += l2_over_m * W``: the L2 gradient ``(lam/m) W`` (l2, elastic net's L2 part);
    2. ``W *= decay_factor``, from the weights before the step: ``1 - lr lam/m`` (weight decay);
    3. the optimizer's step;
    4. ``W := sign(W) max(|W| - threshold, 0)``: L1's proximal step, ``threshold = lr lam/m``.

    ``m`` is the batch's size: the training set's on the full batch (docs/engines.md).
    """

    l2_over_m: Array
    decay_factor: Array
    threshold: Array
    bias: Array

    @classmethod
    def of(
        cls, penalties: PenaltyVectors, learning_rate: float, m: int | Array
    ) -> StepCoefficients:
        """The coefficients for batches of ``m`` samples (one size for all, or one per model)."""
        return cls(
            l2_over_m=penalties.l2 / m,
            decay_factor=1.0 - learning_rate * penalties.decay / m,
            threshold=learning_rate * penalties.l1 / m,
            bias=penalties.bias.astype(bool),
        )

    def entries(self, stack: ParameterStack) -> tuple[Array, Array, Array]:
        """``(l2_over_m, decay_factor, threshold)`` spread over every entry of ``stack``: flat
        vectors shaped like ``stack.flat``, holding each model's value (or the value that
        leaves an entry alone: 0, 1, 0, on the biases of models that do not penalize them)."""
        return (
            stack.per_entry(self.l2_over_m, np.where(self.bias, self.l2_over_m, 0.0)),
            stack.per_entry(self.decay_factor, np.where(self.bias, self.decay_factor, 1.0)),
            stack.per_entry(self.threshold, np.where(self.bias, self.threshold, 0.0)),
        )


# --- cost and gradient terms, side by side -------------------------------------------------
# Arguments are flat parameter vectors and per-entry coefficient vectors of the same shape
# (zero on unpenalized entries), so one call serves K models with different penalties.


def penalty_cost_terms(
    theta: Array, sq_coef: Array, abs_coef: Array, m: int
) -> tuple[Array, Array]:
    """Entry-wise penalty cost: ``sq_coef/(2m) * theta**2`` and ``abs_coef/m * |theta|``.

    ``sq_coef`` is ``l2 + decay`` on penalized entries; ``abs_coef`` is ``l1``. Sum each block
    per model to get J's penalty part.
    """
    return sq_coef * np.square(theta) / (2.0 * m), abs_coef * np.abs(theta) / m


def add_l2_gradient(grad: Array, theta: Array, l2_over_m: Array, scratch: Array) -> None:
    """``grad += (lam/m) * theta`` in place (entries with zero coefficient unchanged)."""
    np.multiply(l2_over_m, theta, out=scratch)
    grad += scratch


def soft_threshold(theta: Array, threshold: Array, scratch: Array) -> None:
    """Proximal step of ``threshold * |theta|`` in place: ``sign(t) * max(|t| - threshold, 0)``.

    Weights whose magnitude falls below the threshold become exactly zero; entries with a zero
    threshold are unchanged bit for bit.
    """
    np.abs(theta, out=scratch)
    scratch -= threshold
    np.maximum(scratch, 0.0, out=scratch)
    np.copysign(scratch, theta, out=theta)
