"""``RegularizedClassifier``'s parameters, declared once (as scikit-learn's
``_parameter_constraints``): name, allowed values, default, what it means, and whether the
models of one ``fit_many`` call may differ in it.

Everything else reads this table: the checks run at ``fit`` (:mod:`regcore._validation`), the
estimator's docstring, ``fit_many``'s list of shared parameters, and the ``model`` section of a
sweep's config (:mod:`sweeps.settings`). The estimator's ``__init__`` keeps an explicit keyword
signature (scikit-learn reads its parameters from it); a test holds its defaults to this table.

Each constraint answers ``problem(value)``: None when the value is allowed, else the end of the
sentence ``"<name> must ..."``. Constraints also say what they allow in plain fields (``kind``,
``choices``, ``low``, ``high``, ...), so that other layers can restate them in their own terms
(pydantic types, for sweeps) without restating the numbers.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from regcore.activations import ACTIVATIONS
from regcore.engines import ENGINE_NAMES
from regcore.network import INIT_SCALES
from regcore.optimizers import OPTIMIZERS
from regcore.penalties import PENALTIES

#: the working precisions, by name
DTYPES = {"float64": np.float64, "float32": np.float32}


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class Options:
    """One of a few names (listed in the table's order; messages list them sorted)."""

    choices: tuple[str, ...]
    kind = str

    def problem(self, value: Any) -> str | None:
        if isinstance(value, str) and value in self.choices:
            return None
        return f"must be one of {', '.join(map(repr, sorted(self.choices)))}"

    @property
    def type_text(self) -> str:
        return "{" + ", ".join(map(repr, self.choices)) + "}"


@dataclass(frozen=True)
class DtypeName(Options):
    """A precision named in :data:`DTYPES`, as a name or anything ``np.dtype`` reads as one."""

    choices: tuple[str, ...] = tuple(DTYPES)

    def problem(self, value: Any) -> str | None:
        try:
            name = np.dtype(value).name
        except TypeError:
            name = None
        return None if name in self.choices else f"must be {' or '.join(map(repr, self.choices))}"


@dataclass(frozen=True)
class Interval:
    """A finite number of ``kind`` (int or float) in ``[low, high]`` (``(low, high]`` with
    ``low_open``; no upper bound where ``high`` is None), or None where ``allow_none``."""

    kind: type
    low: float
    high: float | None = None
    low_open: bool = False
    allow_none: bool = False

    def problem(self, value: Any) -> str | None:
        if value is None and self.allow_none:
            return None
        if self.kind is int and not _is_int(value):
            return "must be an integer" + (" or None" if self.allow_none else "")
        if self.kind is float and not _is_real(value):
            return "must be a finite real number"
        if value < self.low or (self.low_open and value == self.low):
            return f"must be {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None and value > self.high:
            return f"must be <= {self.high:g}"
        return None

    @property
    def type_text(self) -> str:
        name = self.kind.__name__
        return f"{name} or None" if self.allow_none else name


@dataclass(frozen=True)
class Flag:
    """True or False."""

    kind = bool
    type_text = "bool"

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, bool | np.bool_) else "must be True or False"


@dataclass(frozen=True)
class LayerSizes:
    """A sequence of positive integers (empty: no hidden layer)."""

    kind = tuple
    type_text = "tuple of int"

    def problem(self, value: Any) -> str | None:
        try:
            sizes = list(value)
        except TypeError:
            sizes = [None]
        if all(_is_int(n) and n >= 1 for n in sizes):
            return None
        return "must be a tuple of positive integers (empty for logistic regression)"


@dataclass(frozen=True)
class Seed:
    """What ``np.random.RandomState`` takes as a seed, or a generator."""

    kind = int
    type_text = "int, RandomState or None"

    def problem(self, value: Any) -> str | None:
        if value is None or isinstance(value, np.random.RandomState):
            return None
        if _is_int(value) and 0 <= value < 2**32:
            return None
        return "must be None, an integer in [0, 2**32) or a numpy RandomState"


@dataclass(frozen=True)
class Jobs:
    """scikit-learn's ``n_jobs``: None, a count, or -1 for every core (-2 all but one, ...)."""

    kind = int
    type_text = "int or None"

    def problem(self, value: Any) -> str | None:
        if value is None or (_is_int(value) and value != 0):
            return None
        return "must be None or a nonzero integer (-1: every core)"


Constraint = Options | Interval | Flag | LayerSizes | Seed | Jobs


@dataclass(frozen=True)
class Parameter:
    """One row of the table.

    Attributes
    ----------
    name : str
    constraint : Constraint
        What values are allowed.
    default : object
        The estimator's default.
    description : str
        Its docstring entry.
    per_model : bool
        The models of one ``fit_many`` call may differ in it (otherwise they must share it).
    """

    name: str
    constraint: Constraint
    default: Any
    description: str
    per_model: bool = False

    def problem(self, value: Any) -> str | None:
        """None where ``value`` is allowed, else what is wrong (``"must be >= 0"``)."""
        return self.constraint.problem(value)


_TABLE = (
    Parameter(
        "hidden_layer_sizes",
        LayerSizes(),
        (),
        "Units per hidden layer; empty for logistic regression.",
    ),
    Parameter("activation", Options(tuple(ACTIVATIONS)), "relu", "Hidden-unit activation."),
    Parameter(
        "penalty",
        Options(tuple(PENALTIES)),
        "l2",
        "The penalty of :mod:`regcore.penalties` (its table states each one's cost term, "
        "scaling and update). ``weight_decay`` is decoupled decay, applied outside the "
        "optimizer (equal to ``l2`` under ``gd``). ``dropout`` is inverted dropout on hidden "
        "layers with ``keep_prob``; it adds no weight penalty (``lam`` unused).",
        per_model=True,
    ),
    Parameter(
        "lam",
        Interval(float, 0.0),
        1.0,
        "Regularization strength lambda. Unused by ``none`` and ``dropout``.",
        per_model=True,
    ),
    Parameter(
        "l1_ratio",
        Interval(float, 0.0, 1.0),
        0.5,
        "Elastic net mix: ``l1_ratio`` of ``lam`` goes to L1, the rest to L2.",
        per_model=True,
    ),
    Parameter(
        "keep_prob",
        Interval(float, 0.0, 1.0, low_open=True),
        0.8,
        "Dropout keep probability; used only by ``penalty='dropout'``.",
        per_model=True,
    ),
    Parameter(
        "penalize_bias", Flag(), False, "Penalize (or decay) the biases too.", per_model=True
    ),
    Parameter("optimizer", Options(tuple(OPTIMIZERS)), "gd", "See :mod:`regcore.optimizers`."),
    Parameter("learning_rate", Interval(float, 0.0, low_open=True), 0.1, "Step size."),
    Parameter(
        "batch_size",
        Interval(int, 1, allow_none=True),
        None,
        "Mini-batch size; None (or a size >= n_samples) trains on the full batch. On "
        "mini-batches the samples are reshuffled every epoch and each step minimizes the "
        "batch's J, whose penalty has ``m`` = the batch size (docs/engines.md): the penalty "
        "weighs ``n_samples / batch_size`` times more than on the full batch. ``history_``'s "
        "``train_cost`` and ``cost()`` are J on the whole set given (``m`` = its size).",
    ),
    Parameter(
        "epochs",
        Interval(int, 1),
        1000,
        "Passes over the training set (one update per epoch on the full batch).",
    ),
    Parameter(
        "init",
        Options(tuple(INIT_SCALES)),
        "he",
        "``W = randn(n[l], n[l-1]) * sqrt(2 / n[l-1])`` (he) or ``sqrt(1 / n[l-1])`` (xavier).",
        per_model=True,
    ),
    Parameter(
        "log_every",
        Interval(int, 1),
        100,
        "History rows at epoch 0, every ``log_every`` epochs and at the end.",
    ),
    Parameter(
        "random_state",
        Seed(),
        None,
        "Seed of ``np.random.RandomState`` for initialization, shuffling and dropout masks.",
        per_model=True,
    ),
    Parameter(
        "dtype",
        DtypeName(),
        "float64",
        "Working precision; float32 is faster, float64 is exact to the last digits.",
    ),
    Parameter(
        "engine",
        Options(ENGINE_NAMES),
        "auto",
        "What runs the training epochs: ``numpy`` (the reference) or ``compiled`` (numba "
        "kernels, the same arithmetic fused); ``auto`` picks the compiled engine where it is "
        "available (see :mod:`regcore.engines`). Both end within rounding of each other.",
    ),
    Parameter(
        "n_jobs",
        Jobs(),
        None,
        "Threads ``fit_many`` trains models on at once with the compiled engine "
        "(scikit-learn's convention: None is 1, -1 all cores).",
    ),
)

#: the parameters by name, in the estimator's order
PARAMETERS: dict[str, Parameter] = {p.name: p for p in _TABLE}
#: what the estimators of one ``fit_many`` call must share
SHARED = tuple(p.name for p in _TABLE if not p.per_model)


def numpydoc(indent: str = "    ") -> str:
    """The table as a numpydoc ``Parameters`` section's entries."""
    import textwrap

    entries = []
    for p in _TABLE:
        entries.append(f"{indent}{p.name} : {p.constraint.type_text}, default={p.default!r}")
        entries.append(
            textwrap.fill(
                p.description, 96, initial_indent=indent * 2, subsequent_indent=indent * 2
            )
        )
    return "\n".join(entries)
