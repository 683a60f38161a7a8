"""Plain-language text for an incident: its title, category, suggested fix and summary.

Written from the ranked root causes and the incident's signals only, so every sentence points at
evidence shown next to it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from aurora.incidents.model import SignalState

# (metric substring, category, what it means, suggested fix); the first match wins.
CATEGORIES: tuple[tuple[str, str, str, str], ...] = (
    ("memory", "memory", "memory use up", "restart {svc} to release the leaked memory, then find the leak"),
    ("db_connections", "connections", "database connections piling up",
     "restart {svc} to release leaked database connections"),
    ("disk", "disk", "disk filling", "free space on {svc}'s volume or grow it before it is full"),
    ("cache_hit", "cache", "cache hit ratio down", "flush and warm {svc}'s cache; check recent key changes"),
    ("cpu", "cpu", "CPU saturated", "scale {svc} out; look for an expensive code path"),
    ("accuracy", "model", "model accuracy down", "retrain or roll back {svc}'s model"),
    ("drift", "model", "model inputs drifting", "retrain {svc}'s model on recent data"),
    ("queue", "queue", "queue backing up", "scale {svc}'s consumers; check for a stuck consumer"),
    ("error", "errors", "errors up", "fail over or restore {svc}; check its logs"),
    ("5xx", "errors", "errors up", "fail over or restore {svc}; check its logs"),
    ("up", "availability", "down", "restart or fail over {svc}"),
    ("duration", "latency", "slower", "fail over {svc} or relieve it (slow queries, locks, load)"),
    ("latency", "latency", "slower", "relieve {svc} (slow queries, locks, load)"),
    ("requests", "load", "traffic up", "scale out the saturated services behind {svc}; rate-limit if needed"),
)


def categorize(metric: str | None, labels: dict[str, str] | None = None) -> tuple[str, str, str]:
    """(category, phrase, fix template) for a root-cause metric."""
    m = (metric or "").lower()
    code = (labels or {}).get("code", "")
    if "requests" in m and code.startswith("5"):
        m = "5xx"
    for key, cat, phrase, fix in CATEGORIES:
        if key in m:
            return cat, phrase, fix
    return "other", f"{metric} abnormal", "investigate {svc}"


def _clock(t: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(t))


def suggested_fix(root: dict[str, Any] | None) -> str | None:
    if root is None:
        return None
    change = next((e for e in root.get("evidence", []) if e.get("type") == "change"), None)
    if change is not None and change.get("kind") == "deployment":
        version = (change.get("attributes") or {}).get("version")
        return (f"roll back {root['service']} to the version before {version or 'the last deployment'} "
                f"(deployed {_clock(change['at'])}, just before the onset)")
    _, _, fix = categorize(root.get("metric"), root.get("labels"))
    return fix.format(svc=root["service"])


def title(services: Sequence[str], signals: Sequence[SignalState], root: dict[str, Any] | None) -> str:
    if root is not None:
        _, phrase, _ = categorize(root.get("metric"), root.get("labels"))
        others = len([s for s in services if s != root["service"]])
        tail = f", {others} more service{'s' if others != 1 else ''} affected" if others else ""
        return f"{root['service']}: {phrase}{tail}"
    svc = ", ".join(sorted(services)[:3]) + ("..." if len(services) > 3 else "")
    metrics = sorted({s.metric for s in signals if s.metric})
    return f"{len(signals)} signal{'s' if len(signals) != 1 else ''} on {svc or 'unknown services'}" + (
        f" ({', '.join(metrics[:2])})" if metrics else "")


def summarize(services: Sequence[str], signals: Sequence[SignalState], first_time: float, now: float,
              root_causes: Sequence[dict[str, Any]], confidence: str | None, severity_reasons: Sequence[str]) -> str:
    """What is affected, since when, the most likely cause and why, what else was considered, the fix."""
    kinds: dict[str, int] = {}
    for s in signals:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    plural = {"anomaly": "anomalies"}
    what = ", ".join(f"{n} {plural.get(k, k + 's') if n != 1 else k}" for k, n in sorted(kinds.items()))
    mins = max(0.0, now - first_time) / 60
    parts = [f"Affected: {', '.join(sorted(services)) or 'unknown'} ({what}; {'; '.join(severity_reasons)}).",
             f"Since {_clock(first_time)} ({mins:.0f} min)."]
    if root_causes:
        top = root_causes[0]
        reasons = "; ".join(e["text"] for e in top.get("evidence", []) if e.get("text"))
        conf = {"high": "high confidence", "medium": "medium confidence",
                "uncertain": "uncertain: the next candidates are close"}.get(confidence or "", "no confidence stated")
        parts.append(f"Most likely cause: {top['service']} ({top['metric']}), {top['score']:.0%} of the ranking, "
                     f"{conf}. Why: {reasons}.")
        rest = [f"{c['service']} ({c['score']:.0%})" for c in root_causes[1:4]]
        if rest:
            parts.append(f"Also considered: {', '.join(rest)}.")
        fix = suggested_fix(top)
        if fix:
            parts.append(f"Suggested fix: {fix}.")
    else:
        parts.append("No root cause ranked yet: not enough data after the onset.")
    return " ".join(parts)
