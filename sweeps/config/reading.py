"""Config sources: a file, a bundled config by name, a mapping or a config object; ``--set``
overrides; paths in a config meaning what their writer meant.

A relative ``dataset.path`` is relative to the file that names it, as docker compose reads paths
in its file: the config file's folder, or the working folder for a ``--set`` override and for a
config given as a mapping (the Python API).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sweeps.config.schema import SweepConfig, model_name_problem, validate
from sweeps.config.yaml_text import apply_overrides, load_yaml
from sweeps.errors import UsageError

#: what :func:`read_config` takes: a file or bundled config's name, a mapping, or a config
ConfigSource = str | Path | Mapping[str, Any] | SweepConfig


def bundled_configs() -> Path:
    """Where the example configs are: inside the installed package, or the source tree's."""
    package = Path(__file__).resolve().parents[1]  # sweeps/
    for candidate in (package / "bundled", package.parent / "configs"):
        if candidate.is_dir():
            return candidate
    return package / "bundled"


def resolve_config_path(argument: str | Path) -> Path:
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


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"CONFIG: cannot read {path}: {error}") from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise UsageError(f"CONFIG: {path} is not valid YAML{where}: {problem}") from error
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UsageError(f"CONFIG: {path} must hold a mapping, got {type(raw).__name__}")
    return raw


def read_config(
    source: ConfigSource, overrides: Sequence[str] = (), register: str | None = None
) -> tuple[SweepConfig, Path | None]:
    """Read, override and validate a sweep config (``register``: the ``--register`` option).

    Returns
    -------
    config : SweepConfig
        With ``dataset.path`` absolute (see the module note).
    path : Path or None
        The file read (a bundled config when ``source`` names one); None for a mapping or a
        config object.
    """
    path: Path | None = None
    if isinstance(source, SweepConfig):
        raw = source.model_dump(mode="json", by_alias=True)
    elif isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))
    else:
        path = resolve_config_path(source)
        raw = _read_file(path)
    written = _data_path(raw)
    raw = apply_overrides(raw, overrides)
    if path is not None:
        raw.setdefault("name", path.stem)
    if register is not None:
        problem = model_name_problem(register)
        if problem:
            raise UsageError(f"--register: {problem}, got {register!r}")
        raw["register"] = register
    config = validate(raw)
    final = config.dataset.path
    if final is None:
        return config, path
    from_file = path is not None and final == written
    base = path.resolve().parent if from_file else Path.cwd()
    resolved = (base / final).resolve()
    if not resolved.is_file():
        raise UsageError(f"dataset.path: no such file '{final}' (looked for '{resolved}')")
    dataset = config.dataset.model_copy(update={"path": str(resolved)})
    return config.model_copy(update={"dataset": dataset}), path


def _data_path(raw: dict[str, Any]) -> Any:
    dataset = raw.get("dataset")
    return dataset.get("path") if isinstance(dataset, dict) else None


def config_text(config: SweepConfig) -> str:
    """The effective config as YAML (a sweep's ``sweep.yaml`` artifact)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def config_from_text(text: str) -> SweepConfig:
    """A config from YAML text written by :func:`config_text`."""
    return validate(load_yaml(text, source="sweep.yaml"))
