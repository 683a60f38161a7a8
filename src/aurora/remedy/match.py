"""Which playbooks fit an incident, and why (or why not): the first part of every remediation decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aurora.incidents.summary import categorize
from aurora.remedy.playbook import Playbook, glob_any


@dataclass(frozen=True)
class Target:
    """What an incident says should be fixed: its top root cause."""

    incident_id: int
    category: str | None
    service: str
    metric: str | None
    labels: dict[str, str]
    severity: str
    changes: tuple[str, ...]  # kinds of change events in the root cause's evidence
    source: str  # "prediction" when the cause was named by a prediction, else "anomaly"


def target_of(incident: dict[str, Any]) -> Target | None:
    """The incident's top root cause as a target, or None while it has no ranked cause."""
    roots = incident.get("root_causes") or []
    if not roots:
        return None
    top = roots[0]
    evidence = top.get("evidence") or []
    changes = tuple(sorted({str(e.get("kind")) for e in evidence if e.get("type") == "change"}))
    predicted = any(e.get("type") == "prediction" for e in evidence) or any(
        s.get("kind") == "prediction" and s.get("service") == top["service"] and s.get("metric") == top.get("metric")
        for s in incident.get("signals") or [])
    return Target(int(incident["id"]), incident.get("category"), top["service"], top.get("metric"),
                  dict(top.get("labels") or {}), incident.get("severity") or "warning", changes,
                  "prediction" if predicted else "anomaly")


def targets_of(incident: dict[str, Any]) -> list[Target]:
    """The top root cause, then every breach the incident predicts on another series (still predicted)."""
    top = target_of(incident)
    out = [top] if top is not None else []
    seen = {(top.service, top.metric)} if top is not None else set()
    for s in incident.get("signals") or []:
        key = (s.get("service"), s.get("metric"))
        if s.get("kind") != "prediction" or s.get("resolved") or not key[0] or key in seen:
            continue
        seen.add(key)
        out.append(Target(int(incident["id"]), categorize(key[1], s.get("labels"))[0], str(key[0]), key[1],
                          dict(s.get("labels") or {}), incident.get("severity") or "warning", (), "prediction"))
    return out


def explain_match(pb: Playbook, t: Target) -> str | None:
    """None when ``pb`` matches ``t``; otherwise the first reason it does not."""
    m = pb.match
    if m.category and t.category not in m.category:
        return f"category {t.category} is not one of {', '.join(m.category)}"
    if m.service and not glob_any(t.service, m.service):
        return f"service {t.service} does not match {', '.join(m.service)}"
    if m.root_cause_metric and not glob_any(t.metric, m.root_cause_metric):
        return f"root-cause metric {t.metric} does not match {', '.join(m.root_cause_metric)}"
    for k, pattern in m.labels.items():
        if not glob_any(t.labels.get(k), [pattern]):
            return f"label {k}={t.labels.get(k)!r} does not match {pattern!r}"
    if m.severity and t.severity not in m.severity:
        return f"severity {t.severity} is not one of {', '.join(m.severity)}"
    if m.change and not set(m.change) & set(t.changes):
        return f"no {' or '.join(m.change)} in the root cause's evidence"
    if m.source and t.source not in m.source:
        return f"the cause was named by a{'n' if t.source == 'anomaly' else ''} {t.source}, not {', '.join(m.source)}"
    return None
