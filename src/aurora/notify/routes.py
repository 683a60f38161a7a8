"""Notification endpoints: the delivery log and the notifier's state (scope ``read``); a test message and
the retry of a failed delivery (``operate``, audited). Include with ``app.include_router(router)``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from aurora.api.deps import get_aurora, require
from aurora.auth import Principal
from aurora.errors import NotFound
from aurora.notify.dispatcher import Notifier

router = APIRouter()
read_scope = [Depends(require("read"))]


class TestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str


def _notifier(request: Request) -> Notifier:
    notifier: Notifier | None = getattr(get_aurora(request), "notifier", None)
    if notifier is None:
        raise NotFound("notifications are not configured: add channels under 'notifications:' in aurora.yaml")
    return notifier


@router.get("/api/v1/notifications/deliveries", dependencies=read_scope)
async def list_deliveries(request: Request, limit: int = 100, channel: str | None = None,
                          status: str | None = None) -> dict[str, Any]:
    """The delivery log, newest first: status (pending, sent, failed), attempts and each attempt's outcome."""
    found = await run_in_threadpool(_notifier(request).deliveries, limit, channel, status)
    return {"deliveries": found}


@router.get("/api/v1/notifications/status", dependencies=read_scope)
async def notifier_status(request: Request) -> dict[str, Any]:
    return _notifier(request).stats()


@router.post("/api/v1/notifications/test")
async def test_channel(request: Request, body: TestRequest,
                       who: Principal = Depends(require("operate"))) -> dict[str, Any]:
    """Send a test message to one channel now; answers with its delivery record (sent, or failed and why)."""
    notifier = _notifier(request)
    rec = await run_in_threadpool(notifier.test_channel, body.channel)
    await run_in_threadpool(get_aurora(request).record_audit, who.name, "notification.test", body.channel,
                            {"delivery_id": rec["id"], "status": rec["status"]})
    return rec


@router.post("/api/v1/notifications/deliveries/{delivery_id}/retry")
async def retry_delivery(request: Request, delivery_id: int,
                         who: Principal = Depends(require("operate"))) -> dict[str, Any]:
    notifier = _notifier(request)
    rec = await run_in_threadpool(notifier.retry, delivery_id)
    await run_in_threadpool(get_aurora(request).record_audit, who.name, "notification.retry", str(delivery_id), {})
    return rec
