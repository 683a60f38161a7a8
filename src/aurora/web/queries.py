"""Reading the TSDB for the dashboard with the query engine the API uses (``aurora.query.promql``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from aurora.query.params import to_ms
from aurora.query.promql import Series, evaluate_range, parse, step_times

LOOKBACK_MS = 300_000


def data_now(aurora: Any) -> float:
    """The time the dashboard shows "now" at: the newest data (event time), or the clock before any data."""
    wm = aurora.clock.watermark_ms
    return float(aurora.clock.now()) if wm is None else wm / 1000.0


def instant_by(aurora: Any, query: str, at: float, label: str) -> dict[str, float]:
    """``{value of label: value}`` of an instant query (e.g. ``avg by (service) (...)``); NaN dropped."""
    steps = np.array([to_ms(at)], dtype=np.int64)
    val = evaluate_range(aurora.tsdb, parse(query), steps, LOOKBACK_MS)
    out: dict[str, float] = {}
    if isinstance(val, np.ndarray):
        return out
    for s in val:
        key = s.labels.get(label)
        v = float(s.values[0])
        if key is not None and s.present[0] and np.isfinite(v):
            out[key] = v
    return out


def range_series(aurora: Any, query: str, start: float, end: float, step: float) -> tuple[np.ndarray, list[Series]]:
    """Step times (unix ms) and the series of a range query."""
    steps = step_times(to_ms(start), to_ms(end), max(1, to_ms(step)))
    val = evaluate_range(aurora.tsdb, parse(query), steps, LOOKBACK_MS)
    return steps, [] if isinstance(val, np.ndarray) else val


class TTLCache:
    """A few slow-changing figures (uptime over 30 days) are computed at most once per ``ttl_s``."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl = ttl_s
        self._items: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = make()
        with self._lock:
            self._items[key] = (now + self._ttl, value)
        return value

    def drop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)
