"""Remediation in the dashboard: an incident's actions panel, Approve / Reject, the Playbooks page, the kill switch,
and the runbooks (read-only: the list and one runbook's Markdown, rendered safely, see ``aurora.web.runbooks``).

Decisions go through ``RemedyEngine.approve`` / ``reject`` and the kill switch through ``ActionStore.set_paused``,
as the API's do, so the guardrails, the audit log and the incident timeline are the same whichever way a
person acts. Every form post checks the session's CSRF token and redirects back (post/redirect/get).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from aurora.api.deps import get_aurora
from aurora.errors import AuroraError
from aurora.web import remedy, runbooks
from aurora.web.auth import WebUser, require_user
from aurora.web.forms import check_csrf, read_form
from aurora.web.queries import data_now
from aurora.web.render import SECURITY_HEADERS, page

router = APIRouter()
reader = Depends(require_user("read"))
operator = Depends(require_user("operate"))
MAX_REASON = 2000


def _back(incident_id: int, done: str, action_id: int) -> str:
    return f"/ui/incidents/{incident_id}?{done}={action_id}#actions"


@router.get("/ui/incidents/{incident_id}/actions")
async def actions_fragment(request: Request, incident_id: int, user: WebUser = reader) -> Response:
    """The incident page's actions panel, re-fetched by htmx when the stream reports an action."""
    aurora = get_aurora(request)
    found = await run_in_threadpool(remedy.incident_actions, aurora, incident_id)
    return page(request, "_actions.html", actions=found, incident_id=incident_id, now=data_now(aurora),
                disabled=remedy.DISABLED)


async def _remedy_form(request: Request, user: WebUser) -> tuple[dict[str, str], Any, Any] | Response:
    """A form post to the remediation engine: its fields (CSRF checked), Aurora and the engine; or the error
    page when remediation is disabled."""
    form = await read_form(request)
    check_csrf(request, user, form)
    aurora = get_aurora(request)
    eng = remedy.engine(aurora)
    if eng is None:
        return page(request, "error.html", status=404, title="Remediation is disabled", message=remedy.DISABLED)
    return form, aurora, eng


async def _decide(request: Request, action_id: int, user: WebUser, verb: str) -> Response:
    got = await _remedy_form(request, user)
    if isinstance(got, Response):
        return got
    form, aurora, eng = got
    try:
        if verb == "approve":
            rec = await run_in_threadpool(eng.approve, action_id, user.principal.name)
        else:
            why = form.get("reason", "").strip()[:MAX_REASON] or None
            rec = await run_in_threadpool(eng.reject, action_id, user.principal.name, why)
    except AuroraError as exc:
        return page(request, "error.html", status=exc.status, title=f"Could not {verb} action #{action_id}",
                    message=f"{exc.message}. Reload the incident page to see where the action stands now: "
                            "someone may have decided it already, or it expired.")
    remedy.forget_pending(aurora)
    done = "approved" if verb == "approve" else "rejected"
    return RedirectResponse(_back(int(rec["incident_id"]), done, action_id), status_code=303,
                            headers=SECURITY_HEADERS)


@router.post("/ui/actions/{action_id}/approve")
async def approve(request: Request, action_id: int, user: WebUser = operator) -> Response:
    return await _decide(request, action_id, user, "approve")


@router.post("/ui/actions/{action_id}/reject")
async def reject(request: Request, action_id: int, user: WebUser = operator) -> Response:
    return await _decide(request, action_id, user, "reject")


@router.get("/ui/fragments/nav-pending")
async def nav_pending(request: Request, user: WebUser = reader) -> Response:
    """The "waiting for approval" badge in the navigation, refreshed by htmx on action events (``page`` puts
    the count in every template's context)."""
    return page(request, "_nav_pending.html")


# --- Playbooks ----------------------------------------------------------------------------------
def _playbooks(aurora: Any) -> dict[str, Any]:
    eng = remedy.engine(aurora)
    waiting = [] if eng is None else eng.store.query(status=remedy.WAITING, limit=50)
    return {"book": remedy.playbooks(aurora), "waiting": waiting, "now": data_now(aurora)}


@router.get("/ui/playbooks")
async def playbooks_page(request: Request, user: WebUser = reader) -> Response:
    ctx = await run_in_threadpool(_playbooks, get_aurora(request))
    return page(request, "playbooks.html", disabled=remedy.DISABLED, **ctx)


async def _switch(request: Request, user: WebUser, paused: bool) -> Response:
    got = await _remedy_form(request, user)
    if isinstance(got, Response):
        return got
    _, aurora, eng = got
    who = user.principal.name
    await run_in_threadpool(eng.store.set_paused, paused, who)
    await run_in_threadpool(aurora.record_audit, who, "remedy.pause" if paused else "remedy.resume", "remediation",
                            {"via": "dashboard"})
    return RedirectResponse("/ui/playbooks?switched=1#kill-switch", status_code=303, headers=SECURITY_HEADERS)


@router.post("/ui/remedy/pause")
async def pause(request: Request, user: WebUser = operator) -> Response:
    return await _switch(request, user, True)


@router.post("/ui/remedy/resume")
async def resume(request: Request, user: WebUser = operator) -> Response:
    return await _switch(request, user, False)


@router.post("/ui/playbooks/{name}/reset-breaker")
async def reset_breaker(request: Request, name: str, user: WebUser = operator) -> Response:
    got = await _remedy_form(request, user)
    if isinstance(got, Response):
        return got
    _, _, eng = got
    try:
        await run_in_threadpool(eng.reset_breaker, name, user.principal.name)
    except AuroraError as exc:
        return page(request, "error.html", status=exc.status, title="Cannot close the breaker", message=str(exc))
    return RedirectResponse(f"/ui/playbooks#pb-{quote(name)}", status_code=303, headers=SECURITY_HEADERS)


# --- Runbooks (read-only) -------------------------------------------------------------------------
@router.get("/ui/runbooks")
async def runbooks_page(request: Request, user: WebUser = reader) -> Response:
    return page(request, "runbooks.html", runbooks=runbooks.runbook_list(get_aurora(request)))


@router.get("/ui/runbooks/{name}")
async def runbook_page(request: Request, name: str, user: WebUser = reader) -> Response:
    rb = await run_in_threadpool(runbooks.runbook_view, get_aurora(request), name)
    if rb is None:
        return page(request, "error.html", status=404, title="Runbook not found",
                    message=f"No runbook named {name!r} is indexed. The runbooks page lists the ones Aurora has.")
    return page(request, "runbook.html", rb=rb)
