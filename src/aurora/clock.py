"""Event time: the engine's "now" is a watermark over ingested sample times, not the wall clock.

``data`` mode moves only with data (replay, bench, tests): replaying a day at full speed yields the same
results as living through it. ``wall`` mode (the default for ``serve``) also advances with real time, so
silence is noticed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

ClockMode = Literal["wall", "data"]


class EventClock:
    def __init__(self, mode: ClockMode = "wall", wall: Callable[[], float] = time.time) -> None:
        self.mode: ClockMode = mode
        self._wall = wall
        self._watermark_ms: int | None = None
        self._lock = threading.Lock()

    def observe_ms(self, max_ts_ms: int) -> None:
        """Advance the watermark to the newest sample time seen (it never moves back)."""
        with self._lock:
            if self._watermark_ms is None or max_ts_ms > self._watermark_ms:
                self._watermark_ms = int(max_ts_ms)

    @property
    def watermark_ms(self) -> int | None:
        return self._watermark_ms

    def wall_ms(self) -> int:
        return int(self._wall() * 1000)

    def now_ms(self) -> int:
        """Event-time now. In data mode before any data, 0."""
        wm = self._watermark_ms
        if self.mode == "wall":
            w = self.wall_ms()
            return w if wm is None else max(w, wm)
        return 0 if wm is None else wm

    def now(self) -> float:
        return self.now_ms() / 1000.0
