"""Admin endpoints: API tokens. Every change is written to the audit log."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy import insert

from aurora.api.deps import get_aurora, require
from aurora.auth import Principal
from aurora.db.tables import audit_log
from aurora.errors import NotFound

router = APIRouter()


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1)


def audit(request: Request, actor: Principal, action: str, target: str, detail: dict[str, Any]) -> None:
    with get_aurora(request).engine.begin() as conn:
        conn.execute(insert(audit_log).values(time=time.time(), actor=actor.name, action=action, target=target,
                                              detail=json.dumps(detail, sort_keys=True)))


@router.post("/api/v1/tokens", status_code=201)
async def create_token(request: Request, body: TokenRequest,
                       who: Principal = Depends(require("admin"))) -> dict[str, Any]:
    plain, tid = await run_in_threadpool(get_aurora(request).tokens.create, body.name, body.scopes)
    await run_in_threadpool(audit, request, who, "token.create", str(tid), {"name": body.name, "scopes": body.scopes})
    return {"id": tid, "name": body.name, "scopes": body.scopes, "token": plain}


@router.get("/api/v1/tokens", dependencies=[Depends(require("admin"))])
async def list_tokens(request: Request) -> dict[str, Any]:
    return {"tokens": await run_in_threadpool(get_aurora(request).tokens.list)}


@router.delete("/api/v1/tokens/{token_id}")
async def revoke_token(request: Request, token_id: int, who: Principal = Depends(require("admin"))) -> dict[str, Any]:
    if not await run_in_threadpool(get_aurora(request).tokens.revoke, token_id):
        raise NotFound(f"no token with id {token_id}")
    await run_in_threadpool(audit, request, who, "token.revoke", str(token_id), {})
    return {"revoked": token_id}
