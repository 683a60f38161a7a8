"""What every configuration section shares: strict models and line-precise error messages.

Feature packages define their own sections (``aurora.remedy``, ``aurora.notify``) on ``Section`` and
``aurora.config`` assembles them; this module imports none of them, so there is no import cycle.
"""

from __future__ import annotations

import difflib
import types
import typing
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


def _model_in(annotation: Any) -> Any:
    """The model (or container of one) inside ``X | None`` and other unions."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), args[0] if args else None)
    return annotation


def keys_at(model: Any, path: tuple[str | int, ...]) -> list[str]:
    """The keys a configuration model accepts at ``path`` (list indexes and mapping keys step inside)."""
    current = model
    for part in path:
        current = _model_in(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            current = None if field is None else field.annotation
        elif origin in (list, tuple) and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        else:
            return []
    current = _model_in(current)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _message(err: Any, loc: tuple[str | int, ...], model: Any) -> str:
    """Pydantic's message, with what to do for the two mistakes people make most: a misspelt or missing key."""
    if err["type"] == "extra_forbidden" and loc and model is not None:
        known = keys_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key {loc[-1]!r}{hint} (this section takes: {', '.join(known)})" if known else err["msg"]
    if err["type"] == "missing" and loc:
        return f"required key {loc[-1]!r} is missing: add it"
    return str(err["msg"])


def format_errors(exc: ValidationError, lines: dict[tuple[str | int, ...], int], source: str,
                  env_paths: dict[tuple[str, ...], str], model: Any = None) -> str:
    """One line per error: the key path, what is wrong (with a did-you-mean for an unknown key when ``model``,
    the validated model class, is given), and the file and line or environment variable it came from."""
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
        msgs.append(f"{key}: {_message(err, loc, model)}{where}")
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
        raise ConfigError(f"{path}: invalid YAML{at}: {getattr(exc, 'problem', exc)} (check that line's "
                          "indentation against the lines above it, and that list items start with '- ')") from exc
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        key_lines(node, (), lines)
    return data, lines
