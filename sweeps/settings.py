"""A training's settings, defined once.

One row per setting: its name, its type and allowed values (taken from regcore's own tables),
where a sweep config holds it, how it reaches the estimator, whether it is a child-run param and
how the report groups by it. Config validation (:mod:`sweeps.config.schema` builds the ``model``
section from this table), the trainable, the MLflow writer, the results table and the report all
read it here, in the spirit of scikit-learn's ``_parameter_constraints``.

The strength of a point (the report's x axis) is ``lam``, or ``1 - keep_prob`` for dropout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Field

from regcore import metrics
from regcore.parameters import PARAMETERS

#: what a sweep may select lambda by (``select:``), each with the training-set metric its rise is
#: decomposed against (:mod:`sweeps.analysis.curves`)
SELECTION = {metrics.DEV_COST: metrics.TRAIN_LOSS, metrics.DEV_ERROR: metrics.TRAIN_ERROR}

#: the penalties, in the order the lecture (and every report) takes them
PENALTY_NAMES = PARAMETERS["penalty"].constraint.choices


def _whole(value: Any) -> Any:
    """``1e3`` is a float in YAML; a whole number written so is still a count."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(_whole)]
NonNegativeInt = Annotated[Integer, Field(ge=0)]
PositiveInt = Annotated[Integer, Field(ge=1)]


@dataclass(frozen=True)
class Setting:
    """One setting of a training.

    Attributes
    ----------
    name : str
        Its name in the config, on the estimator (unless ``estimator`` says otherwise), as a
        child-run param and as a results column.
    kind : type
        ``str``, ``int``, ``float`` or ``bool``: how a child-run param reads back.
    choices : tuple of str, optional
        The allowed values, from regcore's own tables.
    field : (annotation, default), optional
        The ``model`` section's field for settings every point of a sweep shares (or, for
        ``width``, takes as default).
    on_point : bool
        A field of :class:`sweeps.config.points.TrainingPoint` (varies between a sweep's trainings).
    estimator : str, optional
        The ``RegularizedClassifier`` parameter it sets; ``depth`` and ``width`` together set
        ``hidden_layer_sizes`` (see :func:`estimator_params`).
    param : bool
        Logged as a child-run param (docs/mlflow-layout.md's list).
    role : {"curve", "strength", "replicate"}, optional
        In the report: what makes a curve, its x axis, what is averaged over.
    missing : str
        The param's text where the setting has no value (``None``).
    """

    name: str
    kind: type
    choices: tuple[str, ...] | None = None
    field: tuple[Any, Any] | None = None
    on_point: bool = False
    estimator: str | None = None
    param: bool = False
    role: str | None = None
    missing: str = "None"


def _choice(names: tuple[str, ...]) -> Any:
    return Literal[names]  # type: ignore[valid-type]


def _choices(name: str) -> tuple[str, ...]:
    return PARAMETERS[name].constraint.choices


def _field(name: str) -> tuple[Any, Any]:
    """The ``model`` section's field for a regcore parameter: the type and default regcore's
    table declares, as pydantic reads them."""
    parameter = PARAMETERS[name]
    rule = parameter.constraint
    if rule.kind is bool:
        annotation = bool
    elif hasattr(rule, "choices"):
        annotation = _choice(rule.choices)
    else:
        bounds = {("gt" if rule.low_open else "ge"): rule.low, "le": rule.high}
        if rule.kind is int:
            annotation = Annotated[Integer, Field(**bounds)]
        else:
            annotation = Annotated[float, Field(**bounds, allow_inf_nan=False)]
        if rule.allow_none:
            annotation = annotation | None
    return annotation, parameter.default


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "penalty", str, PENALTY_NAMES, on_point=True, estimator="penalty", param=True, role="curve"
    ),
    Setting("lam", float, on_point=True, estimator="lam", param=True, role="strength"),
    Setting("l1_ratio", float, on_point=True, estimator="l1_ratio", param=True, role="curve"),
    Setting("keep_prob", float, on_point=True, estimator="keep_prob", param=True, role="strength"),
    Setting("depth", int, on_point=True, param=True, role="curve"),
    Setting("width", int, field=(PositiveInt, 20), on_point=True, param=True, role="curve"),
    Setting(
        "activation",
        str,
        _choices("activation"),
        field=_field("activation"),
        estimator="activation",
        param=True,
    ),
    Setting(
        "optimizer",
        str,
        _choices("optimizer"),
        field=_field("optimizer"),
        estimator="optimizer",
        param=True,
    ),
    Setting(
        "learning_rate", float, field=_field("learning_rate"), estimator="learning_rate", param=True
    ),
    Setting("epochs", int, field=_field("epochs"), estimator="epochs", param=True),
    Setting("batch_size", int, field=_field("batch_size"), estimator="batch_size", param=True),
    Setting("seed", int, on_point=True, estimator="random_state", param=True, role="replicate"),
    Setting("dataset", str, param=True),
    Setting("fold", int, on_point=True, param=True, role="replicate", missing="none"),
    Setting("repeat", int, on_point=True, param=True, role="replicate", missing="none"),
    Setting("n_train", int, param=True),
    Setting("n_dev", int, param=True),
    Setting("init", str, _choices("init"), field=_field("init"), estimator="init"),
    Setting("log_every", int, field=_field("log_every"), estimator="log_every"),
    Setting("penalize_bias", bool, field=_field("penalize_bias"), estimator="penalize_bias"),
    Setting("dtype", str, _choices("dtype"), field=_field("dtype"), estimator="dtype"),
    Setting("engine", str, _choices("engine"), field=_field("engine"), estimator="engine"),
)
BY_NAME = {s.name: s for s in SETTINGS}

#: the child-run params, in docs/mlflow-layout.md's order
PARAMS = tuple(s.name for s in SETTINGS if s.param)
#: what makes one curve of the report (points that differ only in strength and replicate)
CURVE_KEYS = [s.name for s in SETTINGS if s.role == "curve"]
#: one point of a curve: the replicates (seeds) of one setting
SETTING_KEYS = [*CURVE_KEYS, *(s.name for s in SETTINGS if s.role == "strength")]
#: model-section fields, as pydantic field definitions
MODEL_FIELDS = {s.name: s.field for s in SETTINGS if s.field is not None}


def training_values(model: Any, point: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Every setting's value for one training: from the point, else the model section, else
    ``data`` (``dataset``: its name; ``n_train``, ``n_dev``: the fold's sizes; None if absent)."""
    values = {}
    for setting in SETTINGS:
        if setting.on_point:
            values[setting.name] = getattr(point, setting.name)
        elif setting.field is not None:
            values[setting.name] = getattr(model, setting.name)
        else:
            values[setting.name] = data.get(setting.name)
    return values


def estimator_params(values: dict[str, Any]) -> dict[str, Any]:
    """``RegularizedClassifier`` keyword arguments from :func:`training_values`."""
    params = {s.estimator: values[s.name] for s in SETTINGS if s.estimator is not None}
    params["hidden_layer_sizes"] = (values["width"],) * values["depth"]
    return params


def param_values(values: dict[str, Any]) -> dict[str, str]:
    """The child-run params of docs/mlflow-layout.md from :func:`training_values`, as MLflow
    strings."""
    return {
        name: BY_NAME[name].missing if values[name] is None else str(values[name])
        for name in PARAMS
    }


def read_params(frame: Any) -> Any:
    """Child-run params read back from text (a pandas frame with a column per param): numbers
    as numbers (``Int64`` for integers, so that a missing value stays missing)."""
    import pandas as pd

    for setting in SETTINGS:
        if setting.name not in frame or setting.kind in (str, bool):
            continue
        values = pd.to_numeric(frame[setting.name], errors="coerce")
        frame[setting.name] = values.astype("Int64") if setting.kind is int else values
    return frame


# --- strength -----------------------------------------------------------------------------------


def strength(penalty: Any, lam: Any, keep_prob: Any) -> Any:
    """A point's regularization strength: ``lam``, or ``1 - keep_prob`` for dropout.

    Takes scalars (gives a float) or arrays / pandas columns (gives an array).
    """
    value = np.where(
        np.asarray(penalty) == "dropout",
        1.0 - np.asarray(keep_prob, dtype=float),
        np.asarray(lam, dtype=float),
    )
    return float(value) if value.ndim == 0 else value


def strength_name(penalty: str) -> str:
    """How the strength is written in tables and titles: ``lambda`` or ``1-keep_prob``."""
    return "1-keep_prob" if penalty == "dropout" else "lambda"


def strength_axis(penalty: str) -> str:
    """The strength axis's label."""
    return "drop probability 1 - keep_prob" if penalty == "dropout" else "lambda (lam), log scale"


def curve_name(penalty: str, depth: int, width: int, l1_ratio: float) -> str:
    """A curve's name in reports and run names: ``"l2 depth=2 width=32"`` (the width of a
    network only, the mixing of an elastic net only)."""
    name = f"{penalty} depth={depth}"
    if depth:
        name += f" width={width}"
    if penalty == "elasticnet":
        name += f" l1_ratio={l1_ratio:g}"
    return name
