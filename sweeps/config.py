"""Sweep configuration: the YAML schema, its validation, and its expansion into training points.

This is the only module that reads YAML. A config has five parts::

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
                pack_size: auto, storage_path: null}

Unknown keys, wrong types and impossible values raise :class:`~sweeps.errors.UsageError` with the
YAML path of the field, e.g. ``search.penalties.l2.lam: must be >= 0, got -1``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
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

from regcore.datasets import DATASET_NAMES, Resampled, load_resampled
from sweeps.bracket import Bracket
from sweeps.errors import UsageError
from sweeps.settings import (
    MODEL_FIELDS,
    PENALTY_NAMES,
    SELECTION,
    Integer,
    NonNegativeInt,
    PositiveInt,
    curve_name,
    strength,
)


def bundled_configs() -> Path:
    """Where the example configs are: inside the installed package, or the source tree's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if candidate.is_dir():
            return candidate
    return here / "configs"


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


class DatasetConfig(_Strict):
    name: Literal[DATASET_NAMES]  # type: ignore[valid-type]
    n_samples: PositiveInt | None = None
    noise: Strength | None = None
    path: str | None = None
    target: str | None = None
    split: SplitConfig = Split()
    seed: NonNegativeInt = 0


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
    of a grid (:mod:`sweeps.bracket`): start with ``start`` strengths from ``low`` to ``high``,
    refine and extend until lambda.min and lambda.1se are bracketed within ``tol`` decades, at
    most ``budget`` strengths per curve."""

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


def _grid_values(grid: Grid) -> list[float]:
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
    #: threads writing child runs: auto = 1 for SQLite (one writer at a time), 8 otherwise
    writers: Literal["auto"] | PositiveInt = "auto"
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
        """The parts that decide the results (execution settings do not)."""
        return self.model_dump(include={"dataset", "model", "search"}, mode="json")

    @cached_property
    def config_hash(self) -> str:
        """A digest of :meth:`result_fields`: equal configs train equal points."""
        return _digest(self.result_fields())

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


@dataclass(frozen=True)
class TrainingPoint:
    """One training of a sweep: the point in the search space, its seed and its fold.

    ``fold`` and ``repeat`` number the cross-validation fold it trains on (both None on a
    single train/dev split).
    """

    penalty: str
    lam: float
    l1_ratio: float
    keep_prob: float
    depth: int
    width: int
    seed: int
    key: str
    fold: int | None = None
    repeat: int | None = None

    @property
    def strength(self) -> float:
        """Regularization strength on the report's x axis (:func:`sweeps.settings.strength`)."""
        return strength(self.penalty, self.lam, self.keep_prob)

    @property
    def run_name(self) -> str:
        if self.penalty == "dropout":
            knob = f"keep_prob={self.keep_prob:g}"
        elif self.penalty == "none":
            knob = "lam=0"
        elif self.penalty == "elasticnet":
            knob = f"lam={self.lam:g},r={self.l1_ratio:g}"
        else:
            knob = f"lam={self.lam:g}"
        name = f"{self.penalty} {knob} depth={self.depth} width={self.width} seed={self.seed}"
        if self.fold is not None:
            name += f" fold={self.fold}" + (f" repeat={self.repeat}" if self.repeat else "")
        return name

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def point_key(config: SweepConfig, fields: dict[str, Any]) -> str:
    """Deterministic key of a training: the same training gets the same key in every run
    (``fold`` and ``repeat`` count only where they are set, so a single split's keys do not
    mention them)."""
    fields = {k: v for k, v in fields.items() if not (k in ("fold", "repeat") and v is None)}
    return _digest(
        {
            "dataset": config.dataset.model_dump(mode="json"),
            "model": config.model.model_dump(mode="json"),
            "point": fields,
        }
    )


@dataclass(frozen=True)
class CurveSpec:
    """One curve of a sweep as its config asks for it: the points that differ only in strength
    (and seed and fold). ``strengths`` are a grid's (``lam``, or ``1 - keep_prob`` for dropout;
    ``(0,)`` for ``none``); a bracketing search has ``search`` instead (its first round is
    :meth:`initial`)."""

    penalty: str
    depth: int
    width: int
    l1_ratio: float
    strengths: tuple[float, ...] = ()
    search: BracketSearch | None = None

    @property
    def name(self) -> str:
        """The curve's name (:func:`sweeps.settings.curve_name`)."""
        return curve_name(self.penalty, self.depth, self.width, self.l1_ratio)

    def bracket(self) -> Bracket:
        """A fresh :class:`sweeps.bracket.Bracket` for this curve's search (strengths, not
        keep_prob, for dropout)."""
        low, high = self.search.bracket
        if self.penalty == "dropout":
            low, high = 1.0 - high, 1.0 - low
        return Bracket(low, high, self.search.tol, self.search.budget, self.search.start)

    def initial(self) -> list[float]:
        """The strengths trained before any result: the grid, or the search's first round."""
        return self.bracket().first_round() if self.search else list(self.strengths)

    def trainings(self, config: SweepConfig, strength: float) -> list[TrainingPoint]:
        """The trainings of one strength: one per seed and cross-validation fold."""
        dropout = self.penalty == "dropout"
        knob = dict(
            penalty=self.penalty,
            lam=0.0 if dropout else strength,
            l1_ratio=self.l1_ratio,
            # 12 significant digits: 1 - (1 - 0.7) is 0.7 again, not 0.7000000000000001
            keep_prob=float(f"{1.0 - strength:.12g}") if dropout else 1.0,
            depth=self.depth,
            width=self.width,
        )
        out = []
        for seed in config.search.seeds:
            for repeat, fold in config.dataset.split.folds:
                fields = dict(knob, seed=seed, fold=fold, repeat=repeat)
                out.append(TrainingPoint(**fields, key=point_key(config, fields)))
        return out


def curve_specs(config: SweepConfig) -> list[CurveSpec]:
    """The curves of a sweep, in a stable order (depth, width, penalty, l1_ratio).

    ``l1_ratio`` is the share of L1 in the penalty (0 for l2, 1 for l1); ``none`` is a curve of
    one strength, 0. Depth 0 (logistic regression) has no hidden layer and takes width 0.
    """
    search = config.search
    widths = search.widths or [config.model.width]
    kinds: list[tuple[str, float, Any]] = []  # penalty, l1_ratio, grid or search
    for penalty in PENALTY_NAMES:
        grid = getattr(search.penalties, penalty)
        if grid is None:
            continue
        if penalty == "none":
            kinds.append(("none", 0.0, (0.0,)))
        elif penalty == "dropout":
            values = grid.keep_prob
            if isinstance(values, BracketSearch):
                kinds.append(("dropout", 0.0, values))
            else:
                kinds.append(
                    ("dropout", 0.0, tuple(1.0 - kp for kp in sorted(set(values), reverse=True)))
                )
        else:
            ratios = (
                sorted(set(grid.l1_ratio))
                if penalty == "elasticnet"
                else [1.0 if penalty == "l1" else 0.0]
            )
            for ratio in ratios:
                if isinstance(grid.lam, BracketSearch):
                    kinds.append((penalty, ratio, grid.lam))
                else:
                    kinds.append((penalty, ratio, tuple(sorted(set(_grid_values(grid.lam))))))
    specs = []
    for depth in sorted(search.depths):
        for width in [0] if depth == 0 else sorted(widths):
            for penalty, ratio, grid in kinds:
                searched = isinstance(grid, BracketSearch)
                specs.append(
                    CurveSpec(
                        penalty,
                        depth,
                        width,
                        ratio,
                        () if searched else grid,
                        grid if searched else None,
                    )
                )
    return specs


def expand(config: SweepConfig) -> list[TrainingPoint]:
    """All trainings a sweep starts with, in a stable order (depth, width, penalty, strength,
    seed, repeat, fold): one per point, seed and cross-validation fold. A grid's curves are all
    here; a bracketing search's curves only with their first round (the search proposes the
    rest as results arrive: :mod:`sweeps.searcher`).

    ``none`` and ``dropout`` points have ``lam = 0``; points without dropout have
    ``keep_prob = 1``; ``l1_ratio`` is the share of L1 in the penalty (0 for l2, 1 for l1).
    """
    return [
        point
        for spec in curve_specs(config)
        for strength in spec.initial()
        for point in spec.trainings(config, strength)
    ]


def searched(config: SweepConfig) -> bool:
    """Whether a sweep has a bracketing search (its trainings are not all known upfront)."""
    return any(spec.search is not None for spec in curve_specs(config))


# --- reading and validating ------------------------------------------------------------------

_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "extra_forbidden": "unknown key",
    "missing": "required",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "tuple_type": "must be a list [lo, hi, n]",
    "too_short": "must not be empty",
    "too_long": "has too many values",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
}


def _format_error(error: dict[str, Any]) -> str:
    # list positions are left out: the value itself says which element is wrong
    parts = [str(p) for p in error["loc"] if not _is_union_tag(p) and not isinstance(p, int)]
    path = ".".join(parts) or "config"
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "literal_error":
        message = f"must be one of {context.get('expected', '')}"
    elif kind == "value_error":
        message = str(context.get("error", error["msg"]))
    elif kind in _MESSAGES:
        message = _MESSAGES[kind].format(**{k: _number(v) for k, v in context.items()})
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
    if kind == "missing":
        return f"{path}: {message}"
    return f"{path}: {message}, got {error.get('input')!r}"


def _number(value: Any) -> Any:
    return f"{value:g}" if isinstance(value, float) else value


def _is_union_tag(part: Any) -> bool:
    """Pydantic names union members in error paths (``list[...]``, ``LogSpace``); users don't."""
    return isinstance(part, str) and (
        part.startswith(("list[", "tuple[", "function-", "constrained-", "literal["))
        or part
        in (
            "LogSpace",
            "BracketSearch",
            "int",
            "float",
            "str",
            "bool",
            "NoGrid",
            "TrainDevTest",
            "KFold",
        )
    )


def _best_error(errors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Of several errors (one per union member), the most telling: the one that went deepest
    into the input, and of those one about the value rather than its type."""
    type_errors = {"literal_error", "missing", "extra_forbidden"}
    type_errors |= {k for k in _MESSAGES if k.endswith("_type")}

    def rank(error: dict[str, Any]) -> tuple[int, int]:
        depth = len([p for p in error["loc"] if not _is_union_tag(p)])
        return depth, int(error["type"] not in type_errors)

    return max(errors, key=rank)


class NumberLoader(yaml.SafeLoader):
    """YAML as people write numbers: ``1e-3``, ``1E3``, ``+.5``, ``-.5`` and ``1_000.5`` are
    floats (YAML 1.1, which PyYAML follows, reads ``1e-3`` as a string); everything else as
    ``yaml.safe_load`` reads it."""


NumberLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
NumberLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """YAML text as Python values, numbers read as :class:`NumberLoader` reads them."""
    return yaml.load(text, Loader=NumberLoader)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.epochs=500"`` -> ``(["model", "epochs"], 500)``; the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise UsageError(f"--set: expected KEY.PATH=VALUE, got {text!r}")
    try:
        parsed = load_yaml(value) if value.strip() else None
    except yaml.YAMLError as error:
        raise UsageError(f"--set {key}: value is not valid YAML, got {value!r}") from error
    return key.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to the raw mapping (validation comes after)."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(path[: i + 1])
                raise UsageError(f"--set {'.'.join(path)}: {where} is not a mapping, got {child!r}")
            node = child
        node[path[-1]] = value
    return raw


def resolve_config_path(argument: str) -> Path:
    """The config file for ``argument``: the path itself, or a bundled config of that name.

    The bundled configs (``configs/*.yaml`` of the source tree) make
    ``sweeps run configs/quickstart.yaml`` (or ``sweeps run quickstart``) work in any folder.
    """
    path = Path(argument)
    if path.is_file():
        return path
    bundled = bundled_configs() / (path.stem + ".yaml")
    if path.suffix in ("", ".yaml", ".yml") and bundled.is_file():
        return bundled
    names = ", ".join(sorted(p.stem for p in bundled_configs().glob("*.yaml")))
    raise UsageError(f"CONFIG: no such file, got '{argument}' (bundled configs: {names})")


def read_config(
    argument: str, overrides: Sequence[str] = (), register: str | None = None
) -> tuple[SweepConfig, Path, str]:
    """Read, override and validate a sweep config (``register``: the ``--register`` option).

    Returns
    -------
    config : SweepConfig
    path : Path
        The file read (a bundled config when ``argument`` names one).
    text : str
        The effective config as YAML (after overrides), for the parent run's artifact.
    """
    path = resolve_config_path(argument)
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise UsageError(f"CONFIG: {path} is not valid YAML{where}: {problem}") from error
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UsageError(f"CONFIG: {path} must hold a mapping, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    raw.setdefault("name", path.stem)
    if register is not None:
        problem = model_name_problem(register)
        if problem:
            raise UsageError(f"--register: {problem}, got {register!r}")
        raw["register"] = register
    config = validate(raw)
    return config, path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def config_from_text(text: str) -> SweepConfig:
    """A config from YAML text written by this module (a sweep's ``sweep.yaml`` artifact)."""
    return validate(load_yaml(text))


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
        raise UsageError(_format_error(_best_error(error.errors()))) from None
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


def load_data(spec: DatasetConfig) -> Resampled:
    """The sweep's dataset, split as ``dataset.split`` says; a problem with it is a UsageError
    naming the ``dataset`` field."""
    split = spec.split.model_dump()
    try:
        return load_resampled(
            spec.name,
            n_samples=spec.n_samples,
            noise=spec.noise,
            path=spec.path,
            target=spec.target,
            seed=spec.seed,
            **split,
        )
    except ValueError as error:
        message = str(error)
        if not message.startswith("dataset"):
            message = f"dataset: {message}"
        raise UsageError(message) from None
