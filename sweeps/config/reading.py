"""Config files: a bundled config by name or a path, ``--set`` overrides, validation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from sweeps.config.schema import SweepConfig, model_name_problem, validate
from sweeps.config.yaml_text import apply_overrides, load_yaml
from sweeps.errors import UsageError


def bundled_configs() -> Path:
    """Where the example configs are: inside the installed package, or the source tree's."""
    package = Path(__file__).resolve().parents[1]  # sweeps/
    for candidate in (package / "bundled", package.parent / "configs"):
        if candidate.is_dir():
            return candidate
    return package / "bundled"


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
