"""Pages that read: Overview (with its live fragments), Services, Topology, Audit log, Tokens."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from aurora.api.deps import get_aurora
from aurora.api.routes_topology import topology_view
from aurora.db.tables import audit_log
from aurora.web import overview, remedy
from aurora.web.auth import WebUser, require_user
from aurora.web.charts import RANGES, metrics_of, service_charts
from aurora.web.queries import data_now
from aurora.web.render import page

router = APIRouter()
reader = Depends(require_user("read"))
AUDIT_PAGE = 100


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
async def ui_root() -> Response:
    return RedirectResponse("/ui/", status_code=307)


# --- Overview -----------------------------------------------------------------------------------
def _overview(aurora: Any) -> dict[str, Any]:
    now = data_now(aurora)
    return {"now": now, "services": overview.service_rows(aurora), "hosts": overview.host_rows(aurora),
            "incidents": overview.open_incidents(aurora), "predictions": overview.predictions(aurora),
            "day": overview.last_day(aurora), "did": remedy.last_day(aurora, now), "disabled": remedy.DISABLED}


@router.get("/ui/")
async def overview_page(request: Request, user: WebUser = reader) -> Response:
    ctx = await run_in_threadpool(_overview, get_aurora(request))
    return page(request, "overview.html", **ctx)


@router.get("/ui/fragments/overview")
async def overview_fragment(request: Request, user: WebUser = reader) -> Response:
    """The live part of the Overview, re-fetched by htmx when the stream says something changed."""
    ctx = await run_in_threadpool(_overview, get_aurora(request))
    return page(request, "_overview_body.html", **ctx)


# --- Services -----------------------------------------------------------------------------------
@router.get("/ui/services")
async def services_page(request: Request, user: WebUser = reader) -> Response:
    rows = await run_in_threadpool(overview.service_rows, get_aurora(request))
    return page(request, "services.html", services=rows, now=data_now(get_aurora(request)))


def _service(aurora: Any, name: str) -> dict[str, Any] | None:
    graph = aurora.topology
    if name not in graph.services() and not metrics_of(aurora, name):
        return None
    health = {n["service"]: n for n in topology_view(aurora)["nodes"]}
    return {"service": name, "info": graph.service(name) or {}, "node": health.get(name),
            "health_of": {s: health.get(s, {}).get("health", "unknown") for s in graph.services()},
            "downstream": sorted(graph.downstream(name).items(), key=lambda kv: (kv[1], kv[0])),
            "upstream": sorted(graph.upstream(name).items(), key=lambda kv: (kv[1], kv[0])),
            "incidents": aurora.incidents.list(None, name, 10, False),
            "anomalies": aurora.anomalies.query(service=name, limit=15), "now": data_now(aurora)}


def _range(request: Request) -> str:
    r = request.query_params.get("range", "1h")
    return r if r in RANGES else "1h"


@router.get("/ui/services/{name}")
async def service_page(request: Request, name: str, user: WebUser = reader) -> Response:
    aurora = get_aurora(request)
    ctx = await run_in_threadpool(_service, aurora, name)
    if ctx is None:
        return page(request, "error.html", status=404, title="Unknown service",
                    message=f"Aurora knows no service named '{name}': it is neither declared in the configuration "
                            "nor seen in any series or trace. Pick one from the Services page.")
    rng = _range(request)
    return page(request, "service.html", range=rng, ranges=list(RANGES), **ctx)


@router.get("/ui/services/{name}/charts.json")
async def service_chart_data(request: Request, name: str, user: WebUser = reader) -> Response:
    data = await run_in_threadpool(service_charts, get_aurora(request), name, RANGES[_range(request)])
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


# --- Topology -----------------------------------------------------------------------------------
@router.get("/ui/topology")
async def topology_page(request: Request, user: WebUser = reader) -> Response:
    view = await run_in_threadpool(topology_view, get_aurora(request))
    return page(request, "topology.html", nodes=view["nodes"], edges=view["edges"])


@router.get("/ui/topology.json")
async def topology_data(request: Request, user: WebUser = reader) -> Response:
    aurora = get_aurora(request)

    def build() -> dict[str, Any]:
        from aurora.web import adapter

        view = topology_view(aurora)
        risk = adapter.risk_by_service(aurora) or {}
        for n in view["nodes"]:
            n["risk"] = risk.get(n["service"], {}).get("risk")
        return view

    return JSONResponse(await run_in_threadpool(build), headers={"Cache-Control": "no-store"})


# --- Audit log (admin) ------------------------------------------------------------------------
def _audit(aurora: Any, before: int | None, actor: str | None, action: str | None) -> list[dict[str, Any]]:
    q = select(audit_log).order_by(audit_log.c.id.desc()).limit(AUDIT_PAGE)
    if before is not None:
        q = q.where(audit_log.c.id < before)
    if actor:
        q = q.where(audit_log.c.actor == actor)
    if action:
        q = q.where(audit_log.c.action == action)
    with aurora.engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    out = []
    for r in rows:
        try:
            detail = json.loads(r["detail"])
        except ValueError:
            detail = r["detail"]
        out.append({**dict(r), "detail": detail})
    return out


@router.get("/ui/audit")
async def audit_page(request: Request, user: WebUser = Depends(require_user("admin"))) -> Response:
    p = request.query_params
    before = p.get("before") or ""
    rows = await run_in_threadpool(_audit, get_aurora(request), int(before) if before.isdigit() else None,
                                   p.get("actor") or None, p.get("action") or None)
    return page(request, "audit.html", rows=rows, actor=p.get("actor", ""), action=p.get("action", ""),
                more=rows[-1]["id"] if len(rows) == AUDIT_PAGE else None)
