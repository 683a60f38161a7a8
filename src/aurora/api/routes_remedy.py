"""Remediation endpoints: playbooks and runs (scope ``read``); approve, reject, pause and resume (``operate``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from aurora.api.deps import get_aurora, require
from aurora.auth import Principal
from aurora.errors import BadInput, NotFound
from aurora.remedy.engine import RemedyEngine, success_rate
from aurora.remedy.store import STATUSES

router = APIRouter()
read_scope = [Depends(require("read"))]


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = None


def _engine(request: Request) -> RemedyEngine:
    engine = get_aurora(request).remedy
    if engine is None:
        raise NotFound("remediation is disabled (remediation.enabled: false)")
    return engine


@router.get("/api/v1/playbooks", dependencies=read_scope)
async def list_playbooks(request: Request) -> dict[str, Any]:
    """Every playbook with its mode, dry-run flag, match and steps, and how its real runs ended by incident kind."""
    engine = _engine(request)
    outcomes = await run_in_threadpool(engine.store.outcomes)
    out = []
    for pb in engine.playbooks:
        kinds = {kind: {**o, "success_rate": (o["verified"] / (o["verified"] + o["failed"]))
                        if o["verified"] + o["failed"] else None, "smoothed": success_rate(o)}
                 for (name, kind), o in outcomes.items() if name == pb.name}
        out.append({**pb.model_dump(mode="json"), "summary": pb.summary(), "outcomes": kinds,
                    "breaker": engine.breaker(pb.name).as_dict()})
    return {"playbooks": out, "paused": engine.store.paused()}


@router.post("/api/v1/playbooks/{name}/reset-breaker")
async def reset_breaker(request: Request, name: str, who: Principal = Depends(require("operate"))) -> dict[str, Any]:
    """Close a playbook's circuit breaker: its failed fixes so far no longer count (audited)."""
    b = await run_in_threadpool(_engine(request).reset_breaker, name, who.name)
    return {"playbook": name, "breaker": b.as_dict()}


@router.get("/api/v1/actions", dependencies=read_scope)
async def list_actions(request: Request, incident: int | None = None, status: str | None = None,
                       limit: int = 200) -> dict[str, Any]:
    """Runs newest first, every decision included (``skipped`` ones carry the reason)."""
    if status is not None and status not in STATUSES:
        raise BadInput(f"status must be one of {', '.join(STATUSES)}")
    if limit < 1:
        raise BadInput("limit must be at least 1")
    found = await run_in_threadpool(_engine(request).store.query, incident, status, None, None, min(limit, 1000))
    return {"actions": found}


@router.get("/api/v1/actions/{action_id}", dependencies=read_scope)
async def get_action(request: Request, action_id: int) -> dict[str, Any]:
    found = await run_in_threadpool(_engine(request).store.get, action_id)
    if found is None:
        raise NotFound(f"no action with id {action_id}")
    return found


@router.post("/api/v1/actions/{action_id}/approve")
async def approve(request: Request, action_id: int, who: Principal = Depends(require("operate"))) -> dict[str, Any]:
    """Run a waiting action now (the guardrails are checked again); 409 when it is not waiting."""
    return await run_in_threadpool(_engine(request).approve, action_id, who.name)


@router.post("/api/v1/actions/{action_id}/reject")
async def reject(request: Request, action_id: int, body: DecisionRequest | None = None,
                 who: Principal = Depends(require("operate"))) -> dict[str, Any]:
    return await run_in_threadpool(_engine(request).reject, action_id, who.name, body.reason if body else None)


@router.get("/api/v1/remedy", dependencies=read_scope)
async def remedy_state(request: Request) -> dict[str, Any]:
    engine = _engine(request)
    return {"paused": engine.store.paused(), "state": engine.store.state(), "playbooks": len(engine.playbooks),
            "decisions": engine.decisions}


@router.post("/api/v1/remedy/pause")
async def pause(request: Request, body: DecisionRequest | None = None,
                who: Principal = Depends(require("operate"))) -> dict[str, Any]:
    """The kill switch: no run starts until resumed (also `aurora remedy pause`). ``{"reason": ...}`` optional,
    kept in the audit log and shown by `aurora remedy status`."""
    engine = _engine(request)
    await run_in_threadpool(engine.store.set_paused, True, who.name)
    reason = (body.reason or "").strip() if body else ""
    get_aurora(request).record_audit(who.name, "remedy.pause", "remediation", {"reason": reason, "via": "api"})
    return {"paused": True}


@router.post("/api/v1/remedy/resume")
async def resume(request: Request, who: Principal = Depends(require("operate"))) -> dict[str, Any]:
    engine = _engine(request)
    await run_in_threadpool(engine.store.set_paused, False, who.name)
    get_aurora(request).record_audit(who.name, "remedy.resume", "remediation", {})
    return {"paused": False}


@router.get("/api/v1/runbooks", dependencies=read_scope)
async def list_runbooks(request: Request, q: str | None = None) -> dict[str, Any]:
    """The indexed runbooks; ``q`` ranks them by how well they match the words."""
    index = get_aurora(request).runbooks
    if q:
        return {"runbooks": [{"name": rb.name, "title": rb.title, "tags": list(rb.tags), "score": round(s, 3)}
                             for rb, s in index.search(q, limit=20)]}
    return {"runbooks": [{"name": rb.name, "title": rb.title, "tags": list(rb.tags)} for rb in index.runbooks]}


@router.get("/api/v1/runbooks/{name}", dependencies=read_scope)
async def get_runbook(request: Request, name: str) -> dict[str, Any]:
    rb = get_aurora(request).runbooks.get(name)
    if rb is None:
        raise NotFound(f"no runbook {name!r}")
    return {"name": rb.name, "title": rb.title, "tags": list(rb.tags), "markdown": rb.text}
