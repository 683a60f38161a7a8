"""Incident pages: the list with filters, one incident, its reports, and the operate-scope actions.

Actions go through ``IncidentService`` (as the API's do), so the rules, the timeline and the audit log are
the same whichever way a person acts; each is a plain form post (works without JavaScript) that checks
the session's CSRF token and redirects back (post/redirect/get).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from aurora.api.deps import get_aurora
from aurora.errors import AuroraError
from aurora.incidents.model import SEVERITIES, STATUSES
from aurora.web import remedy, report
from aurora.web.auth import WebUser, require_user
from aurora.web.charts import incident_charts
from aurora.web.forms import check_csrf, read_form
from aurora.web.queries import data_now
from aurora.web.render import SECURITY_HEADERS, page

router = APIRouter()
reader = Depends(require_user("read"))
operator = Depends(require_user("operate"))
LIST_LIMIT = 200


def _filters(request: Request) -> dict[str, str]:
    p = request.query_params
    return {"status": p.get("status", "") if p.get("status", "") in STATUSES else "",
            "severity": p.get("severity", "") if p.get("severity", "") in SEVERITIES else "",
            "service": p.get("service", "").strip()[:255], "q": p.get("q", "").strip()[:200]}


def _list(aurora: Any, f: dict[str, str]) -> list[dict[str, Any]]:
    if f["q"]:
        found = aurora.incidents.search(f["q"], LIST_LIMIT)
        found = [i for i in found if (not f["status"] or i["status"] == f["status"])
                 and (not f["service"] or f["service"] in (i.get("services") or []))]
    else:
        found = aurora.incidents.list(f["status"] or None, f["service"] or None, LIST_LIMIT, False)
    return [i for i in found if not f["severity"] or i["severity"] == f["severity"]]


@router.get("/ui/incidents")
async def incidents_page(request: Request, user: WebUser = reader) -> Response:
    aurora = get_aurora(request)
    f = _filters(request)
    rows = await run_in_threadpool(_list, aurora, f)
    return page(request, "incidents.html", incidents=rows, filters=f, statuses=STATUSES, severities=SEVERITIES,
                services=sorted(aurora.topology.services()), now=data_now(aurora))


async def _get(request: Request, incident_id: int) -> dict[str, Any] | Response:
    try:
        inc: dict[str, Any] = await run_in_threadpool(get_aurora(request).incidents.get, incident_id)
    except AuroraError as exc:
        return page(request, "error.html", status=exc.status, title="Incident not found",
                    message=f"{exc.message}. The incidents list shows the ones Aurora has.")
    return inc


def _decided(request: Request, actions: list[dict[str, Any]] | None) -> str | None:
    """After Approve / Reject redirects here (``?approved=ID``): say what became of that action."""
    for verb in ("approved", "rejected"):
        raw = request.query_params.get(verb, "")
        if raw.isdigit():
            rec = next((a for a in actions or [] if a["id"] == int(raw)), None)
            if rec is not None:
                return (f"You {verb} action #{rec['id']} ({rec['playbook']}); when this page loaded it was "
                        f"{remedy.label(rec['status'])}. The panel below follows it live.")
    return None


def _incident_ctx(request: Request, inc: dict[str, Any]) -> dict[str, Any]:
    aurora = get_aurora(request)
    actions = inc.get("actions") if remedy.engine(aurora) is not None else None
    return {"inc": inc, "now": data_now(aurora), "actions": actions, "incident_id": inc["id"],
            "disabled": remedy.DISABLED, "decided": _decided(request, actions)}


@router.get("/ui/incidents/{incident_id}")
async def incident_page(request: Request, incident_id: int, user: WebUser = reader) -> Response:
    inc = await _get(request, incident_id)
    if isinstance(inc, Response):
        return inc
    return page(request, "incident.html", error=None, **_incident_ctx(request, inc))


@router.get("/ui/incidents/{incident_id}/meta")
async def incident_meta(request: Request, incident_id: int, user: WebUser = reader) -> Response:
    """The incident's severity, status and times, re-fetched by htmx when the stream reports a change."""
    inc = await _get(request, incident_id)
    if isinstance(inc, Response):
        return inc
    return page(request, "_incident_meta.html", inc=inc)


@router.get("/ui/incidents/{incident_id}/charts.json")
async def incident_chart_data(request: Request, incident_id: int, user: WebUser = reader) -> Response:
    """The evidence charts of the incident's top ranked causes."""
    inc = await _get(request, incident_id)
    if isinstance(inc, Response):
        return inc
    data = await run_in_threadpool(incident_charts, get_aurora(request), inc)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@router.get("/ui/incidents/{incident_id}/report.md")
async def incident_markdown(request: Request, incident_id: int, user: WebUser = reader) -> Response:
    inc = await _get(request, incident_id)
    if isinstance(inc, Response):
        return inc
    return PlainTextResponse(report.markdown(inc), media_type="text/markdown; charset=utf-8",
                             headers={**SECURITY_HEADERS,
                                      "Content-Disposition": f'attachment; filename="incident-{incident_id}.md"'})


@router.get("/ui/incidents/{incident_id}/report.html")
async def incident_html(request: Request, incident_id: int, user: WebUser = reader) -> Response:
    inc = await _get(request, incident_id)
    if isinstance(inc, Response):
        return inc
    return HTMLResponse(report.html(inc), headers=SECURITY_HEADERS)


async def _act(request: Request, incident_id: int, user: WebUser, action: str) -> Response:
    form = await read_form(request)
    check_csrf(request, user, form)
    svc = get_aurora(request).incidents
    who = user.principal.name
    back = f"/ui/incidents/{incident_id}"
    try:
        if action == "ack":
            await run_in_threadpool(svc.ack, incident_id, who)
        elif action == "resolve":
            await run_in_threadpool(svc.resolve, incident_id, who, form.get("reason") or None)
        else:
            await run_in_threadpool(svc.add_note, incident_id, who, form.get("text", ""))
    except AuroraError as exc:
        inc = await _get(request, incident_id)  # show the incident again with what was wrong
        if isinstance(inc, Response):
            return inc
        return page(request, "incident.html", status=exc.status, error=exc.message, note_text=form.get("text", ""),
                    **_incident_ctx(request, inc))
    anchor = "#notes" if action == "note" else ""
    return RedirectResponse(back + anchor, status_code=303, headers=SECURITY_HEADERS)


@router.post("/ui/incidents/{incident_id}/ack")
async def ack(request: Request, incident_id: int, user: WebUser = operator) -> Response:
    return await _act(request, incident_id, user, "ack")


@router.post("/ui/incidents/{incident_id}/resolve")
async def resolve(request: Request, incident_id: int, user: WebUser = operator) -> Response:
    return await _act(request, incident_id, user, "resolve")


@router.post("/ui/incidents/{incident_id}/notes")
async def note(request: Request, incident_id: int, user: WebUser = operator) -> Response:
    return await _act(request, incident_id, user, "note")
