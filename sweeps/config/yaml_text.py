"""YAML as people write it, and as nobody should: the only place that turns YAML text into
Python values.

A config comes from a user or from a colleague's folder, so it is read defensively: a key
written twice in one mapping is an error naming both lines (YAML's last-one-wins would hide a
typo), and anchors and aliases that expand past :data:`MAX_VALUES` values are refused before
anything walks them (a "billion laughs" file of a few hundred bytes expands to 10**9 values).
"""

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


#: the most values a config may hold once its aliases are expanded (a big sweep has hundreds)
MAX_VALUES = 100_000


def load_yaml(text: str, source: str = "CONFIG") -> Any:
    """YAML text as Python values, numbers read as :class:`NumberLoader` reads them.

    Raises
    ------
    UsageError
        Naming ``source`` for a duplicate key (with both lines), a recursive alias, or aliases
        that expand past :data:`MAX_VALUES` values.
    yaml.YAMLError
        For text that is not YAML.
    """
    loader = NumberLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_tree(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_tree(root: yaml.Node, source: str) -> None:
    """Duplicate keys and the expanded size of the node graph (each node once: linear in the
    text, however far its aliases would expand)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str, bool]] = [(root, "", False)]
    while stack:
        node, path, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child, _ in _children(node))
            if sizes[key] > MAX_VALUES:
                where = ".".join(part for part in path.split(".") if not part.isdigit())
                raise UsageError(
                    f"{source}: {where or 'the document'} expands to more than {MAX_VALUES:,} "
                    "values through anchors and aliases; write the values out"
                )
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise UsageError(f"{source}: {path or 'the document'} holds an alias to itself")
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            _check_duplicates(node, path, source)
        stack.append((node, path, True))
        for child, name in _children(node):
            stack.append((child, f"{path}.{name}" if path else name, False))


def _children(node: yaml.Node) -> list[tuple[yaml.Node, str]]:
    if isinstance(node, yaml.MappingNode):
        out = []
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            out += [(key, name), (value, name)]
        return out
    if isinstance(node, yaml.SequenceNode):
        return [(item, str(i)) for i, item in enumerate(node.value)]
    return []


def _check_duplicates(node: yaml.MappingNode, path: str, source: str) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        ident, line = (key.tag, key.value), key.start_mark.line + 1
        if ident in seen:
            where = f"{path}.{key.value}" if path else key.value
            raise UsageError(
                f"{source}: {where}: the key is written twice, at lines {seen[ident]} and "
                f"{line}; keep one"
            )
        seen[ident] = line


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
