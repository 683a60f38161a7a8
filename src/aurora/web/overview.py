"""The Overview page's data: health per service and host, open incidents, predictions, the last day."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from aurora.api.routes_topology import topology_view
from aurora.db.tables import anomalies, audit_log, events
from aurora.web import adapter
from aurora.web.queries import TTLCache, data_now, instant_by

DAY = 86_400.0
SERVICE_QUERIES = {
    "cpu": "avg by (service) (cpu_utilization_ratio)",
    "memory": "sum by (service) (container_memory_working_set_bytes) / "
              "sum by (service) (container_spec_memory_limit_bytes)",
    "latency": 'max by (service) (http_request_duration_seconds{quantile="0.99"})',
    "errors": "avg by (service) (http_request_error_ratio)",
}
HOST_QUERIES = {
    "cpu": "avg by (host) (node_cpu_utilization_ratio)",
    "memory": "sum by (host) (node_memory_used_bytes) / sum by (host) (node_memory_total_bytes)",
}
UPTIME_WINDOWS = {"24h": "24h", "7d": "7d", "30d": "30d"}
_uptime_cache = TTLCache(60.0)


def _uptime(aurora: Any, at: float) -> dict[str, dict[str, float]]:
    """Share of ``up`` samples that were 1, per service, over each window (of the data there is)."""
    def compute() -> dict[str, dict[str, float]]:
        return {name: instant_by(aurora, f"avg by (service) (avg_over_time(up[{w}]))", at, "service")
                for name, w in UPTIME_WINDOWS.items()}
    return dict(_uptime_cache.get(f"{id(aurora)}:{int(at // 60)}", compute))


def service_rows(aurora: Any) -> list[dict[str, Any]]:
    at = data_now(aurora)
    topo = topology_view(aurora)
    figures = {k: instant_by(aurora, q, at, "service") for k, q in SERVICE_QUERIES.items()}
    uptime = _uptime(aurora, at)
    risk = adapter.risk_by_service(aurora)
    rows = []
    for node in topo["nodes"]:
        s = node["service"]
        r = (risk or {}).get(s)
        rows.append({"service": s, "health": node["health"], "reasons": node["reasons"],
                     **{k: figures[k].get(s) for k in SERVICE_QUERIES},
                     "uptime": {w: uptime[w].get(s) for w in UPTIME_WINDOWS},
                     "risk": None if r is None else r.get("risk"), "risk_factors": [] if r is None else r["factors"]})
    return rows


def host_rows(aurora: Any) -> list[dict[str, Any]]:
    at = data_now(aurora)
    figures = {k: instant_by(aurora, q, at, "host") for k, q in HOST_QUERIES.items()}
    services: dict[str, list[str]] = {}
    for info in aurora.tsdb.all_series():
        if info.metric == "up" and "host" in info.labels and "service" in info.labels:
            services.setdefault(info.labels["host"], []).append(info.labels["service"])
    hosts = sorted(set(figures["cpu"]) | set(figures["memory"]) | set(services))
    return [{"host": h, "health": "ok" if h in figures["cpu"] or h in figures["memory"] else "unknown",
             "cpu": figures["cpu"].get(h), "memory": figures["memory"].get(h),
             "services": sorted(set(services.get(h, [])))} for h in hosts]


def last_day(aurora: Any) -> dict[str, Any]:
    """What Aurora saw and did in the last 24 h of data time (people's actions: of wall time)."""
    import time

    at = data_now(aurora)
    since = at - DAY
    with aurora.engine.connect() as conn:
        sev = dict(conn.execute(select(anomalies.c.severity, func.count()).where(anomalies.c.time >= since)
                                .group_by(anomalies.c.severity)).all())
        changes = conn.execute(select(func.count()).select_from(events).where(events.c.time >= since)).scalar_one()
        people = conn.execute(select(audit_log).where(audit_log.c.time >= time.time() - DAY)
                              .order_by(audit_log.c.time.desc()).limit(10)).mappings().all()
    incs = aurora.incidents.list(None, None, 200, False)
    recent = [i for i in incs if i["opened_at"] >= since or (i.get("resolved_at") or 0) >= since]
    feed: list[dict[str, Any]] = []
    for i in recent:
        feed.append({"time": i["opened_at"], "text": f"opened incident #{i['id']}: {i['title']}",
                     "href": f"/ui/incidents/{i['id']}", "severity": i["severity"]})
        if i.get("resolved_at") and i["resolved_at"] >= since:
            feed.append({"time": i["resolved_at"], "text": f"incident #{i['id']} resolved",
                         "href": f"/ui/incidents/{i['id']}", "severity": "ok"})
    feed.sort(key=lambda e: e["time"], reverse=True)
    return {"anomalies": int(sum(sev.values())), "critical": int(sev.get("critical", 0)),
            "opened": sum(1 for i in recent if i["opened_at"] >= since),
            "resolved": sum(1 for i in recent if (i.get("resolved_at") or 0) >= since),
            "changes": int(changes), "feed": feed[:10],
            "people": [{"time": p["time"], "actor": p["actor"], "action": p["action"], "target": p["target"]}
                       for p in people]}


def open_incidents(aurora: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for status in ("open", "mitigated"):
        out.extend(aurora.incidents.list(status, None, 50, False))
    out.sort(key=lambda i: i["opened_at"], reverse=True)
    return out


def predictions(aurora: Any) -> list[dict[str, Any]] | None:
    found = adapter.predictions(aurora, None, True)
    if found is None:
        return None
    return sorted(found, key=lambda p: p.get("eta") or float("inf"))
