"""Tables as they come: a user's file read once, its columns planned, its preprocessing built.

A table's feature columns are of two kinds:

- **numeric** (numbers): missing values imputed with the column's median, then standardized
  (zero mean, unit variance; a constant column is left unscaled);
- **categorical** (text, categories, booleans): missing values imputed with the most frequent
  value, then one-hot encoded; a category never seen in training encodes as all zeros
  (``handle_unknown="ignore"``), so it predicts without error.

Both steps are scikit-learn's (``SimpleImputer``, ``StandardScaler``, ``OneHotEncoder`` inside a
``ColumnTransformer``): :func:`preprocessor` builds it unfitted, and a split or fold fits it on its
training part only, so nothing leaks from dev, fold or test rows. A fitted preprocessor is saved
as plain arrays and JSON (:func:`preprocessor_state`) and rebuilt from them
(:func:`rebuild_preprocessor`), so a model file holds data only.

Checks, each a ValueError naming the ``dataset`` field: a text column with more than
``max_categories`` distinct values or a different value in every row (an identifier); a column
without any value; a target that looks continuous (non-integer numbers, or more distinct values
than a classification problem has: more than 50, or more than a fifth of the rows).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from regcore.messages import first_line

Array = np.ndarray

#: file suffixes (lower case) and how each is read
TABLE_FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: a text column with more distinct values than this is refused (``dataset.max_categories``)
MAX_CATEGORIES = 50
#: a target with more distinct values than this is not a classification target
MAX_CLASSES = 50
#: kinds of feature columns, as an MLflow signature types them
NUMBER, TEXT, BOOLEAN = "number", "text", "boolean"


def table_format(path: str | Path) -> str:
    """``csv``, ``tsv`` or ``parquet`` by the file's suffix; ValueError naming the suffix."""
    name = Path(path).name.lower()
    for suffix in sorted(TABLE_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return TABLE_FORMATS[suffix]
    suffix = "".join(Path(path).suffixes) or "(none)"
    raise ValueError(
        f"dataset.path: cannot read a {suffix} file, got '{path}' "
        f"(known: {', '.join(TABLE_FORMATS)})"
    )


def file_digest(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_table(path: str | Path) -> pd.DataFrame:
    """A table file as a DataFrame; empty cells, ``NA`` and ``NaN`` are missing values."""
    kind = table_format(path)
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if kind == "tsv" else ",", low_memory=False)
    except Exception as error:  # parser errors come in many types
        raise ValueError(f"dataset.path: cannot read '{path}': {first_line(error)}") from error


@dataclass(frozen=True)
class Columns:
    """A table's feature columns, in the table's order, by kind.

    ``kinds`` pairs every feature column with ``number``, ``text`` or ``boolean`` (its type in
    a model's signature); ``numeric`` and ``categorical`` (text and boolean) name them by how
    they are preprocessed.
    """

    kinds: tuple[tuple[str, str], ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.kinds]

    @property
    def numeric(self) -> list[str]:
        return [name for name, kind in self.kinds if kind == NUMBER]

    @property
    def categorical(self) -> list[str]:
        return [name for name, kind in self.kinds if kind != NUMBER]

    @classmethod
    def numbers(cls, names: tuple[str, ...] | list[str]) -> Columns:
        """All-numeric columns (the built-in datasets)."""
        return cls(tuple((str(name), NUMBER) for name in names))


def column_kind(values: pd.Series) -> str:
    """How a column is treated: booleans and text (object, string, category) are categorical."""
    if pd.api.types.is_bool_dtype(values):
        return BOOLEAN
    if pd.api.types.is_numeric_dtype(values):
        return NUMBER
    if pd.api.types.infer_dtype(values, skipna=True) == "boolean":
        return BOOLEAN  # booleans with missing values read as objects
    return TEXT


@dataclass(frozen=True)
class TableNotes:
    """What reading a table did, for the start line and the parent run."""

    rows: int = 0  # rows in the file
    missing_target: int = 0  # rows dropped: no target
    missing_rows: int = 0  # rows dropped for a missing feature (``missing: drop``)
    imputed: int = 0  # missing feature values left for the imputers
    features: int = 0  # model inputs after one-hot encoding (on all non-test rows)
    dropped_columns: tuple[str, ...] = field(default_factory=tuple)

    def describe(self, columns: Columns) -> str:
        """``4 numeric + 2 categorical columns -> 9 features; 11 missing values imputed; 2 rows
        without a target dropped``."""
        numeric, categorical = len(columns.numeric), len(columns.categorical)
        text = f"{numeric} numeric + {categorical} categorical columns -> {self.features} features"
        if self.imputed:
            text += f"; {_count(self.imputed, 'missing value')} imputed"
        if self.missing_rows:
            text += f"; {_count(self.missing_rows, 'row')} with missing values dropped"
        if self.missing_target:
            text += f"; {_count(self.missing_target, 'row')} without a target dropped"
        return text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def select_columns(
    frame: pd.DataFrame,
    target: str | None,
    keep: list[str] | None = None,
    drop: list[str] | None = None,
) -> pd.DataFrame:
    """The feature columns: all but ``target``, only ``keep`` if given, without ``drop``."""
    known = [str(c) for c in frame.columns]
    for field_name, names in (("columns", keep), ("drop", drop)):
        for name in names or ():
            if name not in known:
                raise ValueError(
                    f"dataset.{field_name}: no column {name!r} (columns: {', '.join(known)})"
                )
            if name == target:
                raise ValueError(f"dataset.{field_name}: {name!r} is the target, not a feature")
    frame = frame.rename(columns=str)
    features = frame.drop(columns=[target]) if target is not None else frame
    if keep:
        features = features[list(dict.fromkeys(keep))]
    if drop:
        features = features.drop(columns=list(drop))
    if features.shape[1] == 0:
        raise ValueError("dataset.columns: no feature column left to train on")
    return features


def plan_columns(features: pd.DataFrame, max_categories: int = MAX_CATEGORIES) -> Columns:
    """Each column's kind (:func:`column_kind`), refusing columns that cannot be features: no
    value at all, a text column with more than ``max_categories`` categories, or one with a
    different value in every row (an identifier)."""
    kinds = []
    for name in features.columns:
        values = features[name]
        present = values.dropna()
        if present.empty:
            raise ValueError(
                f"dataset.path: column {name!r} has no values; leave it out with "
                f"dataset.drop: [{name}]"
            )
        kind = column_kind(values)
        if kind == TEXT:
            distinct = present.astype(str).nunique()
            if distinct == len(present) and len(present) >= 10:
                raise ValueError(
                    f"dataset.path: column {name!r} has a different value in every row "
                    f"({distinct} distinct, e.g. {present.iloc[0]!r}): an identifier, not a "
                    f"feature; leave it out with dataset.drop: [{name}]"
                )
            if distinct > max_categories:
                raise ValueError(
                    f"dataset.path: column {name!r} has {distinct} distinct values, more than "
                    f"dataset.max_categories ({max_categories}); leave it out with "
                    f"dataset.drop: [{name}] or raise dataset.max_categories"
                )
        kinds.append((str(name), kind))
    return Columns(tuple(kinds))


def check_target(labels: pd.Series, target: str) -> None:
    """Refuse a target that looks continuous (see the module's note)."""
    present = labels.dropna()
    distinct = present.nunique()
    example = present.iloc[0] if len(present) else None
    numeric = pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present)
    fractional = numeric and not np.all(np.mod(present.to_numpy(dtype=float), 1.0) == 0.0)
    if fractional:
        example = present[np.mod(present.to_numpy(dtype=float), 1.0) != 0.0].iloc[0]
    if fractional or distinct > MAX_CLASSES or (distinct > 2 and distinct > len(present) / 5):
        raise ValueError(
            f"dataset.target: column {target!r} looks continuous: {distinct} distinct values "
            f"in {len(present)} rows, e.g. {_plain(example)!r} (a classifier needs class labels)"
        )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def coerce_columns(frame: Any, *, columns: Columns) -> pd.DataFrame:
    """Raw rows as the preprocessor takes them: the feature columns in order, numbers as float
    (missing: NaN), categories as text (missing: NaN), so that ``True`` and ``"True"``, or ``1``
    and ``"1"``, are one category. Columns the model does not know are ignored; a missing
    column is a ValueError naming it."""
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame, columns=columns.names)
    missing = [name for name in columns.names if name not in frame.columns]
    if missing:
        raise ValueError(f"input: missing columns {missing} (the model takes {columns.names})")
    out = {}
    for name, kind in columns.kinds:
        values = frame[name]
        if kind == NUMBER:
            try:
                out[name] = pd.to_numeric(values, errors="raise").astype(float)
            except (ValueError, TypeError) as error:
                raise ValueError(f"input: column {name!r} takes numbers: {error}") from None
        else:
            text = values.astype(object).map(lambda v: v if isinstance(v, str) else str(v))
            out[name] = text.where(values.notna(), np.nan).astype(object)
    return pd.DataFrame(out, index=frame.index)


def preprocessor(columns: Columns) -> Pipeline:
    """The unfitted preprocessing of a table with these columns (module note): raw rows in,
    model inputs out (numeric columns first, then each categorical column's one-hot block)."""
    transformers = []
    if columns.numeric:
        numeric = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        )
        transformers.append(("numeric", numeric, columns.numeric))
    if columns.categorical:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
                ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical, columns.categorical))
    return Pipeline(
        [
            ("coerce", FunctionTransformer(coerce_columns, kw_args={"columns": columns})),
            ("encode", ColumnTransformer(transformers, remainder="drop")),
        ]
    )


def feature_names(fitted: Pipeline) -> list[str]:
    """The model inputs' names of a fitted :func:`preprocessor`: ``age``, ``island=Dream``."""
    encode: ColumnTransformer = fitted.named_steps["encode"]
    names: list[str] = []
    for name, step, cols in encode.transformers_:
        if name == "numeric":
            names += list(cols)
        elif name == "categorical":
            for column, values in zip(cols, step.named_steps["one_hot"].categories_, strict=True):
                names += [f"{column}={value}" for value in values]
    return names


# --- as plain arrays and JSON, and back --------------------------------------------------------


def preprocessor_state(fitted: Pipeline) -> tuple[dict[str, Array], dict[str, Any]]:
    """A fitted :func:`preprocessor` as plain arrays (numbers and text only: they load with
    ``allow_pickle=False``) and JSON.

    Arrays: ``numeric_fill``, ``numeric_mean``, ``numeric_scale`` (one entry per numeric
    column) and ``categorical_fill`` (one string per categorical column). JSON: ``columns``
    (``[name, kind]`` pairs) and ``categories`` (each categorical column's categories).
    """
    columns: Columns = fitted.named_steps["coerce"].kw_args["columns"]
    encode: ColumnTransformer = fitted.named_steps["encode"]
    steps = {name: step for name, step, _ in encode.transformers_ if name != "remainder"}
    arrays: dict[str, Array] = {
        "numeric_fill": np.zeros(0),
        "numeric_mean": np.zeros(0),
        "numeric_scale": np.ones(0),
        "categorical_fill": np.zeros(0, dtype=str),
    }
    categories: list[list[str]] = []
    if "numeric" in steps:
        numeric = steps["numeric"].named_steps
        arrays["numeric_fill"] = np.asarray(numeric["impute"].statistics_, dtype=float)
        arrays["numeric_mean"] = np.asarray(numeric["scale"].mean_, dtype=float)
        arrays["numeric_scale"] = np.asarray(numeric["scale"].scale_, dtype=float)
    if "categorical" in steps:
        categorical = steps["categorical"].named_steps
        arrays["categorical_fill"] = np.asarray(categorical["impute"].statistics_, dtype=str)
        categories = [[str(v) for v in c] for c in categorical["one_hot"].categories_]
    state = {"columns": [list(pair) for pair in columns.kinds], "categories": categories}
    return arrays, state


def rebuild_preprocessor(arrays: dict[str, Array], state: dict[str, Any]) -> Pipeline:
    """The fitted :func:`preprocessor` that :func:`preprocessor_state` saved.

    Raises
    ------
    ValueError
        Naming what does not match: a missing array, or one whose length is not the number of
        columns of its kind.
    """
    columns = Columns(tuple((str(name), str(kind)) for name, kind in state["columns"]))
    expected = {
        "numeric_fill": len(columns.numeric),
        "numeric_mean": len(columns.numeric),
        "numeric_scale": len(columns.numeric),
        "categorical_fill": len(columns.categorical),
    }
    for name, size in expected.items():
        if name not in arrays:
            raise ValueError(f"preprocessing: missing array {name!r}")
        if arrays[name].shape != (size,):
            raise ValueError(
                f"preprocessing: {name} has shape {arrays[name].shape}, expected ({size},)"
            )
    categories = state.get("categories", [])
    if len(categories) != len(columns.categorical):
        raise ValueError(
            f"preprocessing: {len(categories)} category lists for "
            f"{len(columns.categorical)} categorical columns"
        )
    # fit the same structure on rows that hold every category, then set what was learned
    rows = max([1, *(len(c) for c in categories)])
    sample = pd.DataFrame(
        {name: np.zeros(rows) for name in columns.numeric}
        | {
            name: [values[i % len(values)] for i in range(rows)]
            for name, values in zip(columns.categorical, categories, strict=True)
        }
    )[columns.names]
    fitted = preprocessor(columns)
    encode = fitted.named_steps["encode"]
    for _, step, _ in encode.transformers:
        if isinstance(step, Pipeline) and "one_hot" in step.named_steps:
            step.named_steps["one_hot"].set_params(categories=[list(c) for c in categories])
    fitted.fit(sample)
    steps = {name: step for name, step, _ in encode.transformers_ if name != "remainder"}
    if "numeric" in steps:
        numeric = steps["numeric"].named_steps
        numeric["impute"].statistics_ = np.asarray(arrays["numeric_fill"], dtype=float)
        scale = np.asarray(arrays["numeric_scale"], dtype=float)
        numeric["scale"].mean_ = np.asarray(arrays["numeric_mean"], dtype=float)
        numeric["scale"].scale_ = scale
        numeric["scale"].var_ = scale**2
    if "categorical" in steps:
        fill = np.asarray(arrays["categorical_fill"], dtype=str).astype(object)
        steps["categorical"].named_steps["impute"].statistics_ = fill
    return fitted
