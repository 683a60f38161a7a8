"""In-process publish/subscribe for live updates (the SSE stream and the dashboard read from it)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class EventBus:
    """Thread-safe fan-out to asyncio subscribers; a slow subscriber loses old messages, never blocks."""

    def __init__(self, max_queue: int = 1000) -> None:
        self._subs: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = set()
        self._lock = threading.Lock()
        self._max_queue = max_queue

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._max_queue)
        with self._lock:
            self._subs.add((asyncio.get_running_loop(), q))
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        with self._lock:
            self._subs = {s for s in self._subs if s[1] is not q}

    @staticmethod
    def _offer(q: asyncio.Queue[dict[str, Any]], msg: dict[str, Any]) -> None:
        if q.full():
            q.get_nowait()
        q.put_nowait(msg)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        msg = {"event": kind, "data": data}
        with self._lock:
            subs = list(self._subs)
        for loop, q in subs:
            if loop.is_closed():
                continue
            loop.call_soon_threadsafe(self._offer, q, msg)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
