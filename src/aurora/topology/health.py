"""Health of each service on the topology: ok, degraded, critical or unknown, with the reasons why.

Three kinds of evidence, each giving a level and a sentence; the service's health is the worst level:

* its anomalies in the last ``ANOMALY_WINDOW_S`` of event time: any critical one -> ``critical``,
  warnings only -> ``degraded``;
* the traced calls into it (edges ending at it, over the edge window): a failed share of at least
  ``ERROR_CRITICAL`` -> ``critical``, of ``ERROR_DEGRADED`` -> ``degraded``, once at least
  ``MIN_REQUESTS`` calls were seen (fewer say little);
* an open incident touching it (the incident engine's ``service_incidents`` hook): severity
  ``critical`` -> ``critical``, ``info`` -> no change (a reason only), any other -> ``degraded``.

Without any of these a service with data (series, spans, traced calls) is ``ok``; one with no data at
all (only declared, or only named as a peer) is ``unknown``. Pure: inputs in, a dict out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ANOMALY_WINDOW_S", "LEVELS", "assess"]

LEVELS = ("unknown", "ok", "degraded", "critical")  # worst last
ANOMALY_WINDOW_S = 900.0
ERROR_DEGRADED = 0.01
ERROR_CRITICAL = 0.05
MIN_REQUESTS = 20
_MAX_METRICS_LISTED = 3


def _worse(a: str, b: str) -> str:
    return a if LEVELS.index(a) >= LEVELS.index(b) else b


def assess(services: Iterable[str], *, has_data: Mapping[str, bool], anomalies: Iterable[Mapping[str, Any]],
           edges: Iterable[Mapping[str, Any]], incidents: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """``{service: {"health": level, "reasons": [...]}}``. ``anomalies``: records of the anomaly window
    (``service``, ``severity``, ``metric``); ``edges``: the graph's edges with their ``stats``;
    ``incidents``: open incidents' severity per service."""
    names = list(services)
    out: dict[str, dict[str, Any]] = {s: {"health": "ok" if has_data.get(s) else "unknown", "reasons": []}
                                      for s in names}

    def flag(service: str, level: str, reason: str) -> None:
        node = out.get(service)
        if node is None:
            return
        if node["health"] == "unknown":
            node["health"] = "ok"  # evidence is data
        node["health"] = _worse(node["health"], level)
        node["reasons"].append(reason)

    per: dict[str, list[Mapping[str, Any]]] = {}
    for a in anomalies:
        if a.get("service"):
            per.setdefault(str(a["service"]), []).append(a)
    minutes = f"{ANOMALY_WINDOW_S / 60:g} min"
    for service, recs in per.items():
        crit = sum(r.get("severity") == "critical" for r in recs)
        metrics = sorted({str(r.get("metric")) for r in recs})
        shown = ", ".join(metrics[:_MAX_METRICS_LISTED]) + (", ..." if len(metrics) > _MAX_METRICS_LISTED else "")
        sev = f" ({crit} critical)" if crit else ""
        flag(service, "critical" if crit else "degraded",
             f"{len(recs)} anomal{'y' if len(recs) == 1 else 'ies'}{sev} in the last {minutes}: {shown}")

    for e in edges:
        st = e.get("stats")
        if not st or st["requests"] < MIN_REQUESTS:
            continue
        ratio = float(st["error_ratio"])
        level = "critical" if ratio >= ERROR_CRITICAL else "degraded" if ratio >= ERROR_DEGRADED else None
        if level:
            flag(str(e["to"]), level, f"{ratio:.1%} of {st['requests']} traced calls from {e['from']} failed "
                                      f"in the last {float(st['window_s']):.0f} s")

    for service, severity in (incidents or {}).items():
        sev = str(severity).lower()
        flag(service, "critical" if sev == "critical" else "ok" if sev == "info" else "degraded",
             f"open incident (severity {severity})")

    for node in out.values():
        if node["health"] == "unknown":
            node["reasons"].append("no data seen for this service (no series, spans or anomalies)")
        elif not node["reasons"]:
            node["reasons"].append(f"no anomaly in the last {minutes}, no failing traced calls into it, "
                                   "no open incident")
    return out
