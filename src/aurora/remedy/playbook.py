"""Playbooks: what Aurora may do about which incidents, validated before anything runs.

A playbook has a ``match`` (incident category, service, root-cause metric, labels, severity, a recent change
kind), ordered ``steps`` (an action on an executor), an optional ``rollback`` step, a ``mode`` (``auto``: run
on its own; ``approve``: wait for an operator; ``notify-only``: say what it would do) and guardrails. A
playbook is in dry-run unless it says ``dry_run: false``: a new playbook only records what it would have
done until someone decides it is trustworthy.

Playbooks come from ``remediation.playbooks`` in the configuration and from ``*.yaml`` files in
``remediation.playbooks_dir`` (one playbook or a list per file); errors name the file, key and line.
"""

from __future__ import annotations

import fnmatch
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from aurora.config_base import Section, format_errors, read_yaml
from aurora.errors import ConfigError

Mode = Literal["auto", "approve", "notify-only"]
EXECUTORS = ("sim", "webhook", "shell", "kubernetes", "process")
#: The actions each executor can run.
ACTIONS: dict[str, tuple[str, ...]] = {
    "sim": ("restart", "rollback", "scale_out", "cache_flush", "failover"),
    "webhook": ("restart", "rollback", "scale_out", "cache_flush", "failover", "webhook"),
    "shell": ("shell",),
    "kubernetes": ("rollout_restart", "scale", "undo"),
    "process": ("systemd_restart", "process_restart"),
}
SEVERITIES = ("info", "warning", "critical")
#: The fields a step's ``target`` may name, and those its executor fills in its params' templates.
TARGET_FIELDS = ("service", "metric", "incident")
PARAM_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "shell": {"command": ("target", "service", "incident")},
    "process": {"unit": ("target", "service"), "pidfile": ("target", "service")},
    "kubernetes": {"deployment": ("target", "service")},
}


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names a step template fills in (ValueError when it is not a valid template)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def template_error(template: str, fields: tuple[str, ...]) -> str | None:
    """Why ``template`` cannot be filled from ``fields`` (None: it can). Checked when a playbook is loaded, so
    a typo is a configuration error rather than a run that fails when an incident needs it."""
    try:
        names = template_fields(template)
    except ValueError as exc:
        return f"{template!r} is not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
    unknown = [n for n in names if n not in fields]
    if unknown:
        return (f"{template!r} names {{{unknown[0]}}}, which is not known here; use one of "
                f"{', '.join('{' + f + '}' for f in fields)}")
    return None


class Match(Section):
    """Every field given must hold (lists: any of them; ``*`` globs allowed for names)."""

    category: list[str] = Field(default_factory=list, description="incident category: memory, errors, latency, ...")
    service: list[str] = Field(default_factory=list, description="root-cause service (glob)")
    root_cause_metric: list[str] = Field(default_factory=list, description="root-cause metric (glob)")
    labels: dict[str, str] = Field(default_factory=dict, description="labels of the root-cause series (glob values)")
    severity: list[Literal["info", "warning", "critical"]] = Field(default_factory=list)
    change: list[str] = Field(default_factory=list, description=(
        "a change of this kind (deployment, config_change, ...) is evidence for the root cause"))
    source: list[Literal["anomaly", "prediction", "alert"]] = Field(default_factory=list, description=(
        "the kind of signal that named the root cause (prediction: act before the breach)"))


class Step(Section):
    action: str
    executor: Literal["sim", "webhook", "shell", "kubernetes", "process"] = "sim"
    target: str = Field("{service}", description="what to act on; {service} is the root-cause service")
    params: dict[str, Any] = Field(default_factory=dict, description=(
        "webhook: url, secret_env; shell: command (must be allowed); kubernetes: namespace, deployment, and for "
        "scale replicas or by (default 1), max_replicas (default 100); process: unit, or pidfile + start (a "
        "command, or false to only stop) + expect (text of the process's command line), start_grace_s"))
    timeout_s: float = Field(30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _action_fits_executor(self) -> Step:
        problem = template_error(self.target, TARGET_FIELDS)
        if problem:
            raise ValueError(f"target {problem}")
        for key, fields in PARAM_TEMPLATES.get(self.executor, {}).items():
            if isinstance(self.params.get(key), str) and (problem := template_error(self.params[key], fields)):
                raise ValueError(f"params.{key} {problem}")
        known = ACTIONS[self.executor]
        if self.action not in known:
            raise ValueError(f"action {self.action!r} cannot run on the {self.executor} executor; "
                             f"it runs: {', '.join(known)}")
        need = {"webhook": ("url",), "shell": ("command",)}.get(self.executor, ())
        if self.executor == "kubernetes":
            need = ("deployment",)
        missing = [k for k in need if k not in self.params]
        if missing:
            raise ValueError(f"the {self.executor} executor needs params: {', '.join(missing)}")
        keys = set(self.params)
        if self.executor == "process" and not ("unit" in keys or {"pidfile", "start"} <= keys):
            raise ValueError("the process executor needs params.unit (systemd) or params.pidfile and params.start")
        return self


class Verify(Section):
    settle_s: float = Field(30.0, ge=0, description="wait this long (event time) before judging the fix")
    timeout_s: float = Field(300.0, gt=0, description="the fix failed if the incident has not recovered by then")

    @model_validator(mode="after")
    def _order(self) -> Verify:
        if self.timeout_s <= self.settle_s:
            raise ValueError("verify.timeout_s must be longer than verify.settle_s")
        return self


class PlaybookGuardrails(Section):
    cooldown_s: float = Field(900.0, ge=0, description="no new run on the same target for this long")
    max_per_hour: int = Field(3, ge=1, description="runs per target per hour")
    max_targets: int = Field(1, ge=1, description="blast radius: targets one run may touch")


class Playbook(Section):
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    match: Match = Field(default_factory=Match)
    mode: Mode = "approve"
    dry_run: bool = Field(True, description="record what would be done without doing it (the default)")
    steps: list[Step] = Field(min_length=1)
    rollback: Step | None = None
    verify: Verify = Field(default_factory=Verify)
    guardrails: PlaybookGuardrails = Field(default_factory=PlaybookGuardrails)
    runbook: str | None = Field(None, description="a Markdown runbook file name shown with the incident")

    def summary(self) -> str:
        steps = ", then ".join(f"{s.action} {s.target} ({s.executor})" for s in self.steps)
        return f"{self.name}: {steps}; {self.mode}{', dry-run' if self.dry_run else ''}"


def glob_any(value: str | None, patterns: list[str]) -> bool:
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


def load_playbook_dir(folder: Path) -> list[Playbook]:
    """Every playbook in ``folder/*.yaml`` and ``*.yml`` (a file holds one playbook or a list)."""
    out: list[Playbook] = []
    if not folder.is_dir():
        raise ConfigError(f"remediation.playbooks_dir {folder} is not a directory")
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        out += load_playbook_file(path)
    return out


def load_playbook_file(path: Path) -> list[Playbook]:
    data, lines = read_yaml(path)
    if data is None:
        raise ConfigError(f"{path} is empty: write a playbook (name, match, steps) or a list of them, or remove it")
    items = data if isinstance(data, list) else [data]
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: playbook #{i + 1} must be a mapping (name, match, steps, ...)")
        try:
            out.append(Playbook.model_validate(item))
        except ValidationError as exc:
            prefix = (i,) if isinstance(data, list) else ()
            shifted = {k[len(prefix):]: v for k, v in lines.items() if k[: len(prefix)] == prefix}
            which = repr(item["name"]) if isinstance(item.get("name"), str) else f"#{i + 1}"
            raise ConfigError(f"{path}: invalid playbook {which}\n"
                              f"{format_errors(exc, shifted, str(path), {}, Playbook)}") from exc
    return out


def check_unique(playbooks: list[Playbook]) -> list[Playbook]:
    names = [p.name for p in playbooks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"playbook names must be unique; repeated: {', '.join(dup)}")
    return playbooks
