"""What every configuration section shares: strict models and line-precise error messages.

Feature packages define their own sections (``aurora.remedy``, ``aurora.notify``) on ``Section`` and
``aurora.config`` assembles them; this module imports none of them, so there is no import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from aurora.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def key_lines(node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]) -> None:
    """Record the 1-based line of every key path in a composed YAML tree."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = (*path, str(key_node.value))
            out[sub] = key_node.start_mark.line + 1
            key_lines(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key_lines(item, (*path, i), out)


def format_errors(exc: ValidationError, lines: dict[tuple[str | int, ...], int], source: str,
                   env_paths: dict[tuple[str, ...], str]) -> str:
    msgs = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        where = ""
        env_name = next((v for p, v in env_paths.items() if loc[: len(p)] == p), None)
        if env_name:
            where = f" (from environment variable {env_name})"
        else:
            probe = loc
            while probe and probe not in lines:
                probe = probe[:-1]
            if probe in lines:
                where = f" ({source}, line {lines[probe]})"
        msgs.append(f"{key}: {err['msg']}{where}")
    return "\n".join(msgs)


def read_yaml(path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """A YAML file's data and the line of every key path in it; unreadable or invalid YAML is a ConfigError
    that names the file, line and column."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{at}: {getattr(exc, 'problem', exc)}") from exc
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        key_lines(node, (), lines)
    return data, lines
