"""Live updates for open pages: server-sent events over the session cookie (EventSource sends no headers).

Forwards what the engine publishes on the bus (incidents, anomalies, change events, alerts) and adds a
``data`` event when the data time moves (checked every ``TICK_S``), so charts follow new samples within
about a second without the bus carrying every sample.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from aurora.api.deps import get_aurora
from aurora.web.auth import WebUser, require_user

router = APIRouter()
TICK_S = 0.25
KEEPALIVE_S = 15.0


def _event(kind: str, data: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


@router.get("/ui/stream")
async def stream(request: Request, user: WebUser = Depends(require_user("read"))) -> StreamingResponse:
    aurora = get_aurora(request)
    q = aurora.bus.subscribe()

    async def gen() -> AsyncIterator[bytes]:
        last_wm = aurora.clock.watermark_ms
        idle = 0.0
        try:
            yield b"retry: 2000\n: connected\n\n"
            while True:
                try:
                    msg = await asyncio.wait_for(q.get(), timeout=TICK_S)
                    yield _event(str(msg["event"]), msg["data"])
                    idle = 0.0
                except TimeoutError:
                    idle += TICK_S
                if await request.is_disconnected():
                    return
                wm = aurora.clock.watermark_ms
                if wm is not None and wm != last_wm:
                    last_wm = wm
                    yield _event("data", {"data_time": wm / 1000})
                    idle = 0.0
                elif idle >= KEEPALIVE_S:
                    yield b": keepalive\n\n"
                    idle = 0.0
        finally:
            aurora.bus.unsubscribe(q)

    return StreamingResponse(gen(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
