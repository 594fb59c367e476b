"""The sweep config's schema and its validation. A config has these parts (an example; the
defaults are in the models below and in docs/config.md)::

    name: quickstart              # the sweep's name (MLflow parent run); default: the file name
    experiment: regsweep          # MLflow experiment
    dataset: {name: moons, n_samples: 300, noise: 0.3, split: {train: 0.6, dev: 0.2, test: 0.2},
              seed: 0}            # any regcore dataset; `file` takes `path` and `target`
    model: {activation: relu, width: 20, optimizer: gd, learning_rate: 0.3, epochs: 2000,
            batch_size: null, init: he, log_every: 100, penalize_bias: false, dtype: float64}
    search:
      depths: [1, 2, 3]           # hidden layers; 0 = logistic regression
      widths: null                # units per hidden layer; default [model.width]
      seeds: [0, 1, 2]            # initialization (and dropout / shuffling) seeds
      penalties:                  # one grid per penalty
        none: {}                  # once per depth and seed: no strength to sweep
        l2: {lam: {logspace: [-3, 1, 16]}}   # or an explicit list: lam: [0.01, 0.1, 1]
        l1: {lam: [0.01, 0.1, 1]}
        elasticnet: {lam: [0.1, 1], l1_ratio: [0.5]}
        weight_decay: {lam: [0.1, 1]}
        dropout: {keep_prob: [0.5, 0.8]}
    execution: {cpus_per_trial: 1, max_concurrent_trials: null, max_failures: 2,
                pack_size: auto, order: coarse_to_fine, writers: auto,
                trial_memory_mb: null, storage_path: null}

Unknown keys, wrong types and impossible values raise :class:`~sweeps.errors.UsageError` with the
YAML path of the field, e.g. ``search.penalties.l2.lam: must be >= 0, got -1``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    create_model,
    field_validator,
)

from regcore.datasets import DATASET_NAMES, MISSING
from regcore.tables import MAX_CATEGORIES
from sweeps.config.messages import best_error, format_error
from sweeps.errors import UsageError
from sweeps.settings import (
    MODEL_FIELDS,
    PENALTY_NAMES,
    SELECTION,
    Integer,
    NonNegativeInt,
    PositiveInt,
)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def model_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a model in MLflow's Model Registry, or None (MLflow's own rules:
    not blank, no '/' or ':', no path tricks; at most 256 characters, the SQL stores' column)."""
    if not name.strip():
        return "a registered model name must not be blank"
    if "/" in name or ":" in name:
        return "a registered model name cannot contain '/' or ':'"
    if name in (".", "..") or name.startswith(".."):
        return "a registered model name cannot be '.', '..' or start with '..'"
    if len(name) > 256:
        return "a registered model name has at most 256 characters"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Strength = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
KeepProb = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]


class Split(_Strict):
    """``{train, dev, test}``: the test share held out, then one train/dev split."""

    train: Fraction = 0.6
    dev: Fraction = 0.2
    test: Fraction = 0.2

    @property
    def folds(self) -> list[tuple[int | None, int | None]]:
        """``(repeat, fold)`` of each training per point: one, numbered neither."""
        return [(None, None)]


class KFoldSplit(_Strict):
    """``{kfold: K, repeats: R, test: T}``: the test share held out, then K stratified folds of
    the rest, R times (see :func:`regcore.datasets.resample`)."""

    kfold: Annotated[Integer, Field(ge=2)]
    repeats: PositiveInt = 1
    test: Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)] = 0.2

    @property
    def folds(self) -> list[tuple[int | None, int | None]]:
        """``(repeat, fold)`` of each training per point."""
        return [(r, f) for r in range(self.repeats) for f in range(self.kfold)]


def _split_kind(value: Any) -> str:
    if isinstance(value, KFoldSplit) or (isinstance(value, dict) and "kfold" in value):
        return "KFold"
    return "TrainDevTest"


#: ``dataset.split``: a train/dev/test split, or K-fold cross-validation
SplitConfig = Annotated[
    Annotated[Split, Tag("TrainDevTest")] | Annotated[KFoldSplit, Tag("KFold")],
    Discriminator(_split_kind),
]


#: fields added to ``dataset`` after keys were first written, with their defaults: left out of
#: a sweep's identity where they hold them, so that older sweeps keep their keys
LATER_DATASET_FIELDS = {
    "columns": None,
    "drop": None,
    "missing": "impute",
    "max_categories": MAX_CATEGORIES,
    "sha256": None,
}
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DatasetConfig(_Strict):
    """``dataset``: a built-in dataset by name, or ``name: file`` with a table's ``path`` and
    ``target`` column (see :mod:`regcore.datasets` and :mod:`regcore.tables`)."""

    name: Literal[DATASET_NAMES]  # type: ignore[valid-type]
    n_samples: PositiveInt | None = None
    noise: Strength | None = None
    #: a table file; relative to the config file's folder (the working folder for ``--set``)
    path: str | None = None
    target: str | None = None
    #: feature columns to keep (default: all but the target), and to leave out
    columns: Annotated[list[str], Field(min_length=1)] | None = None
    drop: Annotated[list[str], Field(min_length=1)] | None = None
    #: rows missing a feature value: ``impute`` them (median / most frequent) or ``drop`` them
    missing: Literal[MISSING] = "impute"  # type: ignore[valid-type]
    #: a text column with more distinct values than this is refused (an identifier, a free text)
    max_categories: PositiveInt = MAX_CATEGORIES
    #: the file's sha256: set by the sweep when it reads the file; a config may pin it
    sha256: str | None = None
    split: SplitConfig = Split()
    seed: NonNegativeInt = 0

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not SHA256.match(value):
            raise ValueError("must be 64 lower-case hex digits (a sha256)")
        return value

    def identity(self) -> dict[str, Any]:
        """What identifies the data: every field but a file's path (its ``sha256`` says which
        bytes it held: a moved file is the same data, a changed one is not)."""
        dump = self.model_dump(mode="json")
        if dump["path"] is not None:
            del dump["path"]
        return {
            key: value
            for key, value in dump.items()
            if not (key in LATER_DATASET_FIELDS and value == LATER_DATASET_FIELDS[key])
        }


#: the ``model`` section: every setting the points of a sweep share (fields from
#: :data:`sweeps.settings.SETTINGS`)
ModelConfig = create_model("ModelConfig", __base__=_Strict, **MODEL_FIELDS)


class LogSpace(_Strict):
    """``logspace: [lo, hi, n]``: n values from 10**lo to 10**hi."""

    logspace: list[Annotated[float, Field(allow_inf_nan=False)]]

    @field_validator("logspace")
    @classmethod
    def _three(cls, value: list[float]) -> list[float]:
        if len(value) != 3 or value[2] != int(value[2]) or value[2] < 1:
            raise ValueError("must be [lo, hi, n] with n a positive integer")
        return value

    def values(self) -> list[float]:
        lo, hi, n = self.logspace[0], self.logspace[1], int(self.logspace[2])
        if n == 1:
            return [10.0**lo]
        return [10.0 ** (lo + (hi - lo) * i / (n - 1)) for i in range(n)]


class BracketSearch(_Strict):
    """``{bracket: [low, high], tol: 0.1, budget: 20, start: 5}``: search the strength instead
    of a grid (:mod:`sweeps.analysis.bracket`): start with ``start`` strengths from ``low`` to
    ``high``, refine and extend until lambda.min and lambda.1se are bracketed within ``tol``
    decades, at most ``budget`` strengths per curve."""

    bracket: list[Annotated[float, Field(gt=0.0, allow_inf_nan=False)]]
    tol: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 0.1
    budget: Annotated[Integer, Field(ge=2)] = 20
    start: Annotated[Integer, Field(ge=2)] = 5

    @field_validator("bracket")
    @classmethod
    def _two(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or not value[0] < value[1]:
            raise ValueError("must be [low, high] with 0 < low < high")
        return value


Grid = Annotated[list[Strength], Field(min_length=1)] | LogSpace | BracketSearch


def grid_values(grid: Grid) -> list[float]:
    return grid.values() if isinstance(grid, LogSpace) else list(grid)


class NoGrid(_Strict):
    """``none: {}``: trained once per depth, width and seed."""


class LamGrid(_Strict):
    lam: Grid


class ElasticNetGrid(_Strict):
    lam: Grid
    l1_ratio: Annotated[list[Fraction], Field(min_length=1)] = [0.5]


class DropoutGrid(_Strict):
    keep_prob: Annotated[list[KeepProb], Field(min_length=1)] | BracketSearch

    @field_validator("keep_prob")
    @classmethod
    def _below_one(cls, value: Any) -> Any:
        if isinstance(value, BracketSearch) and value.bracket[1] >= 1.0:
            raise ValueError("must be [low, high] with high < 1 (the strength is 1 - keep_prob)")
        return value


#: what each penalty sweeps: ``lam`` (the default), ``lam`` and ``l1_ratio``, ``keep_prob``, or
#: nothing
GRIDS: dict[str, type[_Strict]] = {
    "none": NoGrid,
    "elasticnet": ElasticNetGrid,
    "dropout": DropoutGrid,
}
#: ``search.penalties``: an optional grid per regcore penalty
Penalties = create_model(
    "Penalties",
    __base__=_Strict,
    **{name: (GRIDS.get(name, LamGrid) | None, None) for name in PENALTY_NAMES},
)


class SearchConfig(_Strict):
    depths: Annotated[list[NonNegativeInt], Field(min_length=1)]
    widths: Annotated[list[PositiveInt], Field(min_length=1)] | None = None
    seeds: Annotated[list[NonNegativeInt], Field(min_length=1)] = [0]
    penalties: Penalties

    @field_validator("depths", "widths", "seeds")
    @classmethod
    def _unique(cls, values: list[int] | None) -> list[int] | None:
        if values is not None and len(set(values)) != len(values):
            raise ValueError("values must be unique")
        return values


class ExecutionConfig(_Strict):
    cpus_per_trial: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 1.0
    max_concurrent_trials: PositiveInt | None = None
    max_failures: NonNegativeInt = 2
    pack_size: Literal["auto"] | PositiveInt = "auto"
    #: how an architecture's strengths go into its packs: coarse to fine (the curve's shape
    #: early), or in the grid's order (neighbouring strengths together)
    order: Literal["coarse_to_fine", "grid"] = "coarse_to_fine"
    #: threads writing child runs: auto = 1 for SQLite (one writer at a time), 8 otherwise
    writers: Literal["auto"] | PositiveInt = "auto"
    #: the memory (MB) a trial's models may hold while they train, as the pack planner
    #: estimates it: a pack that would hold more (or that runs out of memory) trains in halves
    trial_memory_mb: PositiveInt | None = None
    storage_path: str | None = None


class SweepConfig(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    name: str
    experiment: str = "regsweep"
    dataset: DatasetConfig
    model: ModelConfig = ModelConfig()
    search: SearchConfig
    execution: ExecutionConfig = ExecutionConfig()
    #: the metric lambda.min minimizes (as scikit-learn's ``scoring``)
    select: Literal[tuple(SELECTION)] = "dev_cost"  # type: ignore[valid-type]
    #: a Model Registry name: register the sweep's choice (the refits of its best curve);
    #: ``register`` in YAML (pydantic models have a ``register`` method of their own)
    register_as: str | None = Field(None, alias="register")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("must be letters, digits, '.', '_' or '-' (at most 100)")
        return value

    @field_validator("register_as")
    @classmethod
    def _register(cls, value: str | None) -> str | None:
        problem = model_name_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def result_fields(self) -> dict[str, Any]:
        """The parts that decide the results (execution settings do not; of the dataset, its
        :meth:`DatasetConfig.identity`)."""
        fields = self.model_dump(include={"model", "search"}, mode="json")
        return {"dataset": self.dataset.identity(), **fields}

    @property
    def config_hash(self) -> str:
        """A digest of :meth:`result_fields`: equal configs train equal points."""
        return digest(self.result_fields())

    def flat_params(self) -> dict[str, str]:
        """The config as ``{"dataset.name": "moons", ...}`` (the parent run's params)."""
        flat: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and value:
                for key, item in value.items():
                    walk(f"{prefix}.{key}" if prefix else key, item)
            else:
                flat[prefix] = json.dumps(value) if not isinstance(value, str) else value

        walk("", self.model_dump(mode="json"))
        return flat


def validate(raw: dict[str, Any]) -> SweepConfig:
    """A validated :class:`SweepConfig` from a raw mapping, or a one-line UsageError."""
    split = (
        (raw.get("dataset") or {}).get("split") if isinstance(raw.get("dataset"), dict) else None
    )
    if isinstance(split, dict) and "kfold" in split:
        for key in ("train", "dev"):
            if key in split:
                raise UsageError(
                    f"dataset.split.{key}: does not go with kfold (each fold's held-out part "
                    f"is its dev set, the rest its training set), got {split[key]!r}"
                )
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as error:
        raise UsageError(format_error(best_error(error.errors()))) from None
    _check_semantics(config)
    return config


def _check_semantics(config: SweepConfig) -> None:
    penalties = config.search.penalties
    if not any(getattr(penalties, name) is not None for name in PENALTY_NAMES):
        raise UsageError(
            f"search.penalties: must name at least one of {', '.join(PENALTY_NAMES)}, got {{}}"
        )
    split = config.dataset.split
    if isinstance(split, KFoldSplit):
        return
    if split.dev == 0.0:
        raise UsageError(
            "dataset.split.dev: must be > 0 for a sweep (the dev cost picks lambda), got 0.0"
        )
    if not math.isclose(split.train + split.dev + split.test, 1.0, abs_tol=1e-9):
        raise UsageError(
            "dataset.split: train + dev + test must be 1, "
            f"got {split.train} + {split.dev} + {split.test}"
        )


def digest(value: Any) -> str:
    """A short sha256 of ``value``'s canonical JSON (config hashes and point keys)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
