"""A 0-100 risk score per service: how likely it is to fail soon, and why (``GET /api/v1/risk``).

Each factor scores points out of 100 on its own:

* a prediction of a breach: 70 within 30 min, 60 within 1 h, 50 within 2 h, 40 within 4 h, 25 later
  (the nearest one counts; the others are listed);
* anomalies: 20 when a series of the service alarmed within the detector's cooldown, up to 40 as the
  share of its alarmed series grows;
* an open incident that involves it: 30 critical, 20 warning, 10 info (mitigated: half);
* a recent change (deployment, config change, rollback, scale): 15 right after it, fading to 0 over 2 h
  (changes are the most common cause of failures).

They combine as independent chances, ``100 * (1 - prod(1 - points / 100))``: one strong factor dominates,
several weak ones add up, and the score never exceeds 100.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aurora.predict.lifecycle import CHANGE_KINDS
from aurora.predict.trend import fmt_duration

ETA_POINTS = ((1800.0, 70.0), (3600.0, 60.0), (7200.0, 50.0), (14400.0, 40.0))
LATER_POINTS = 25.0
INCIDENT_POINTS = {"critical": 30.0, "warning": 20.0, "info": 10.0}
CHANGE_POINTS = 15.0
CHANGE_FADE_S = 7200.0


def _eta_points(seconds: float) -> float:
    for limit, pts in ETA_POINTS:
        if seconds <= limit:
            return pts
    return LATER_POINTS


def combine(points: Iterable[float]) -> float:
    keep = 1.0
    for p in points:
        keep *= 1.0 - min(max(p, 0.0), 100.0) / 100.0
    return 100.0 * (1.0 - keep)


def risk_scores(now: float, services: Iterable[str], predictions: list[dict[str, Any]],
                anomaly_rate: dict[str, float], incidents: list[dict[str, Any]],
                changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per service ``{service, risk, factors: [{kind, detail, points}]}``, riskiest first.

    ``predictions``: active API records; ``anomaly_rate``: service -> share of its series that alarmed
    recently; ``incidents``: open or mitigated ones (``services``, ``severity``, ``status``, ``id``,
    ``title``); ``changes``: events with ``kind``, ``service``, ``time``, ``attributes``."""
    factors: dict[str, list[dict[str, Any]]] = {s: [] for s in services}
    nearest: dict[str, dict[str, Any]] = {}
    for p in predictions:
        svc = p.get("service")
        if not svc:
            continue
        if svc not in nearest or p["eta"] < nearest[svc]["eta"]:
            nearest[svc] = p
        factors.setdefault(svc, [])
    for svc, p in nearest.items():
        others = sum(1 for q in predictions if q.get("service") == svc) - 1
        more = f" (+{others} more prediction{'s' if others > 1 else ''})" if others else ""
        factors[svc].append({"kind": "prediction", "points": _eta_points(p["eta"] - now), "prediction_id": p["id"],
                             "detail": f"{p['metric']} predicted to reach its limit in "
                                       f"{fmt_duration(p['eta'] - now)}{more}"})
    for svc, rate in anomaly_rate.items():
        if rate > 0:
            factors.setdefault(svc, []).append({
                "kind": "anomaly", "points": min(40.0, 20.0 + 100.0 * rate),
                "detail": f"{100 * rate:.0f}% of its series alarmed recently"})
    for inc in incidents:
        pts = INCIDENT_POINTS.get(inc.get("severity", ""), 10.0) * (0.5 if inc.get("status") == "mitigated" else 1.0)
        for svc in inc.get("services") or []:
            factors.setdefault(svc, []).append({
                "kind": "incident", "points": pts, "incident_id": inc.get("id"),
                "detail": f"{inc.get('status', 'open')} {inc.get('severity', '')} incident #{inc.get('id')}: "
                          f"{inc.get('title', '')}"})
    latest: dict[str, dict[str, Any]] = {}
    for ev in changes:
        svc, age = ev.get("service"), now - float(ev["time"])
        if svc and ev.get("kind") in CHANGE_KINDS and 0 <= age < CHANGE_FADE_S and (
                svc not in latest or ev["time"] > latest[svc]["time"]):
            latest[svc] = ev
    for svc, ev in latest.items():
        age = now - float(ev["time"])
        version = (ev.get("attributes") or {}).get("version")
        factors.setdefault(svc, []).append({
            "kind": "change", "points": CHANGE_POINTS * (1.0 - age / CHANGE_FADE_S),
            "detail": f"{ev['kind'].replace('_', ' ')}{f' {version}' if version else ''} {fmt_duration(age)} ago"})
    out: list[dict[str, Any]] = []
    for svc, fs in factors.items():
        fs.sort(key=lambda f: -f["points"])
        for f in fs:
            f["points"] = round(f["points"], 1)
        out.append({"service": svc, "risk": round(combine(f["points"] for f in fs)), "factors": fs})
    out.sort(key=lambda r: (-int(r["risk"]), str(r["service"])))
    return out
