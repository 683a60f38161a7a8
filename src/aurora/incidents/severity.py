"""An incident's severity from its impact: who is affected (user-facing services, SLOs) and how widely.

``critical``: a user-facing service or an SLO is hit, or a critical alert fires, or the failure spread
to five services or more, or a breach is predicted within the hour. ``warning``: anything else that
passed the evidence bar. How sure a detector is (a signal's own severity) is not impact and does not
count.
"""

from __future__ import annotations

from collections.abc import Iterable

from aurora.incidents.model import SignalState

USER_FACING_TIERS = {"frontend", "edge", "gateway", "user-facing", "public"}
SYMPTOM_WORDS = ("error", "duration", "latency", "up", "5xx", "availability")


def is_symptom(s: SignalState) -> bool:
    """A signal users feel: errors, latency, availability, SLO burn (not resource usage)."""
    text = f"{s.metric or ''} {s.summary}".lower()
    return s.kind == "alert" or any(w in text for w in SYMPTOM_WORDS) or "slo" in text


def incident_severity(signals: Iterable[SignalState], services: set[str],
                      user_facing: set[str]) -> tuple[str, list[str]]:
    """(severity, reasons)."""
    sigs = list(signals)
    reasons: list[str] = []
    hit = sorted(s.service for s in sigs if s.service in user_facing and is_symptom(s) and s.service)
    if hit:
        reasons.append(f"user-facing {', '.join(sorted(set(hit)))} affected")
    slo = [s for s in sigs if "slo" in f"{s.metric} {s.summary}".lower() or "burn" in (s.metric or "").lower()]
    if slo:
        reasons.append("an SLO is burning")
    crit_alert = [s for s in sigs if s.kind == "alert" and s.severity == "critical" and not s.resolved]
    if crit_alert:
        reasons.append("a critical alert fires")
    if len(services) >= 5:
        reasons.append(f"spread to {len(services)} services")
    near = [s for s in sigs if s.kind == "prediction" and s.severity == "critical" and not s.resolved]
    if near:
        reasons.append("a breach is predicted within the hour")
    if reasons:
        return "critical", reasons
    return "warning", [f"{len(services)} service(s) affected"]
