"""Incident endpoints: list, read and search (scope ``read``); acknowledge, resolve and annotate (``operate``).

Validation and the rules live in ``IncidentService``; these handlers only parse the request, pass the
token's name as the actor and run the database work in the threadpool.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from aurora.api.deps import get_aurora, require
from aurora.auth import Principal
from aurora.incidents.service import IncidentService

router = APIRouter()
read_scope = [Depends(require("read"))]


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = None


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def _incidents(request: Request) -> IncidentService:
    return get_aurora(request).incidents


@router.get("/api/v1/incidents", dependencies=read_scope)
async def list_incidents(request: Request, status: str | None = None, service: str | None = None,
                         limit: int = 100, compact: bool = False) -> dict[str, Any]:
    """Newest first; ``compact=true`` leaves out each incident's signals and timeline."""
    found = await run_in_threadpool(_incidents(request).list, status, service, limit, not compact)
    return {"incidents": found}


@router.get("/api/v1/incidents/search", dependencies=read_scope)
async def search_incidents(request: Request, q: str = "", limit: int = 20) -> dict[str, Any]:
    """Incidents whose title, summary, root causes or notes hold every word of ``q``."""
    return {"query": q, "incidents": await run_in_threadpool(_incidents(request).search, q, limit)}


@router.get("/api/v1/incidents/{incident_id}", dependencies=read_scope)
async def get_incident(request: Request, incident_id: int) -> dict[str, Any]:
    return await run_in_threadpool(_incidents(request).get, incident_id)


@router.post("/api/v1/incidents/{incident_id}/ack")
async def ack_incident(request: Request, incident_id: int,
                       who: Principal = Depends(require("operate"))) -> dict[str, Any]:
    return await run_in_threadpool(_incidents(request).ack, incident_id, who.name)


@router.post("/api/v1/incidents/{incident_id}/resolve")
async def resolve_incident(request: Request, incident_id: int, body: ResolveRequest | None = None,
                           who: Principal = Depends(require("operate"))) -> dict[str, Any]:
    reason = body.reason if body is not None else None
    return await run_in_threadpool(_incidents(request).resolve, incident_id, who.name, reason)


@router.post("/api/v1/incidents/{incident_id}/notes", status_code=201)
async def add_note(request: Request, incident_id: int, body: NoteRequest,
                   who: Principal = Depends(require("operate"))) -> dict[str, Any]:
    return await run_in_threadpool(_incidents(request).add_note, incident_id, who.name, body.text)
