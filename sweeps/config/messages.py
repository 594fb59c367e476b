"""Pydantic's validation errors rewritten as one line naming the config field and the value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def format_error(error: dict[str, Any]) -> str:
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


def best_error(errors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Of several errors (one per union member), the most telling: the one that went deepest
    into the input, and of those one about the value rather than its type."""
    type_errors = {"literal_error", "missing", "extra_forbidden"}
    type_errors |= {k for k in _MESSAGES if k.endswith("_type")}

    def rank(error: dict[str, Any]) -> tuple[int, int]:
        depth = len([p for p in error["loc"] if not _is_union_tag(p)])
        return depth, int(error["type"] not in type_errors)

    return max(errors, key=rank)
