"""YAML as people write it: the only place that turns YAML text into Python values."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

from sweeps.errors import UsageError


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
