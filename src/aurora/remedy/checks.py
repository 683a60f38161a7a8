"""Loading the playbooks a server will run, and the checks that need more than one playbook on its own.

``Playbook`` validates each playbook by itself (modes, actions, templates). What only fails when an
incident needs the fix is checked here, against the rest of the ``remediation:`` section and the
environment: a shell command or systemd unit that the allowlist would refuse, a webhook URL or signing
secret that is not there, a replica count Kubernetes would refuse, a runbook that does not exist. The server
and ``aurora check-config`` load playbooks through ``load_playbooks``, so both refuse the same mistakes.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aurora.errors import ConfigError
from aurora.remedy.config import RemediationConfig
from aurora.remedy.executors.kubernetes import MAX_REPLICAS
from aurora.remedy.playbook import Playbook, Step, check_unique, load_playbook_dir, template_fields


def load_playbooks(r: RemediationConfig, environ: Mapping[str, str] | None = None) -> list[Playbook]:
    """The configuration's playbooks and those in ``playbooks_dir``; raises ConfigError listing every problem."""
    playbooks = list(r.playbooks)
    if r.playbooks_dir is not None:
        try:
            playbooks = check_unique(playbooks + load_playbook_dir(r.playbooks_dir))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    found = problems(r, playbooks, os.environ if environ is None else environ)
    if found:
        raise ConfigError("remediation: " + "\n  ".join(found) if len(found) == 1
                          else "\n  ".join([f"remediation: {len(found)} problems:", *found]))
    return playbooks


def problems(r: RemediationConfig, playbooks: list[Playbook], environ: Mapping[str, str]) -> list[str]:
    out = []
    if r.runbooks_dir is not None and not r.runbooks_dir.is_dir():
        out.append(f"runbooks_dir {r.runbooks_dir} is not a directory: create it or remove the key")
    runbooks = {p.name for p in r.runbooks_dir.glob("*.md")} if r.runbooks_dir and r.runbooks_dir.is_dir() else set()
    for pb in playbooks:
        if pb.runbook and pb.runbook not in runbooks:
            where = f"in {r.runbooks_dir}" if r.runbooks_dir else "(no remediation.runbooks_dir is set)"
            out.append(f"playbook {pb.name}: runbook {pb.runbook!r} is not a Markdown file {where}")
        for label, step in [*((f"step {i + 1}", s) for i, s in enumerate(pb.steps)),
                            *((("rollback", pb.rollback),) if pb.rollback else ())]:
            why = step_problem(step, r, environ)
            if why:
                out.append(f"playbook {pb.name}, {label} ({step.action} on {step.executor}): {why}")
    return out


def _literal(template: str) -> bool:
    return not template_fields(template)


def _allowed(value: str, allow: list[str], key: str, what: str) -> str | None:
    """A template without fields must match the allowlist now; one with fields is checked when it is filled."""
    if not allow:
        return f"remediation.{key} is empty, so no {what} may run: add a glob that allows it"
    if _literal(value) and not any(fnmatch.fnmatchcase(value, p) for p in allow):
        return f"{what} {value!r} matches none of remediation.{key} ({', '.join(allow)})"
    return None


def step_problem(step: Step, r: RemediationConfig, environ: Mapping[str, str]) -> str | None:
    p: dict[str, Any] = step.params
    if step.executor == "shell":
        return _allowed(str(p["command"]), r.shell_allow, "shell_allow", "command")
    if step.executor == "process" and "unit" in p:
        return _allowed(str(p["unit"]), r.systemd_allow, "systemd_allow", "unit")
    if step.executor == "process":
        if p["start"] is False and not p.get("expect"):
            return ("params.start is false (stop only): set params.expect, text the process's command line "
                    "contains, so that only that program is signalled")
        if p["start"] is not False and (why := _allowed(str(p["start"]), r.shell_allow, "shell_allow",
                                                        "start command")):
            return why
        grace = p.get("start_grace_s", 1.0)
        if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
            return f"params.start_grace_s must be a number of seconds of 0 or more, not {grace!r}"
    if step.executor == "webhook":
        parts = urlsplit(str(p["url"]))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return f"params.url {p['url']!r} must be an absolute http:// or https:// URL"
        env = p.get("secret_env")
        if env and not environ.get(str(env)):
            return f"params.secret_env names {env}, which is not set in the environment: export it or remove the key"
    if step.executor == "kubernetes":
        for key in ("replicas", "max_replicas", "by"):
            n = p.get(key)
            if key in p and (not isinstance(n, int) or isinstance(n, bool) or (n < 0 and key != "by")):
                return f"params.{key} must be a whole number{' of 0 or more' if key != 'by' else ''}, not {n!r}"
        cap = p.get("max_replicas", MAX_REPLICAS)
        if p.get("replicas", 0) > cap:
            return (f"params.replicas {p['replicas']} is above params.max_replicas ({cap}): raise max_replicas "
                    "if that many is meant")
    return None
