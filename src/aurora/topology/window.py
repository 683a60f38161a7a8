"""Per-edge call statistics over a sliding window of event time, in fixed memory.

An edge of the topology that traces cross keeps, for the last ``window`` of event time (the spans' end
times, never the wall clock), how many calls it carried, how many failed and how long they took. The
window is a ring of time buckets (default 20 x 15 s); each bucket holds a count, an error count, a sum of
durations and a latency histogram with 10 logarithmic bins per decade from 10 us to 1000 s, so p50/p95
are exact to within one bin (about 26 %, interpolated inside the bin) and memory is bounded per edge
whatever the traffic. Updates are vectorized over a batch of calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Upper bounds of the latency bins: bin 0 is [0, 10 us), bin i is [EDGES[i-1], EDGES[i]), the last is >= 1000 s.
LATENCY_EDGES_S = 10.0 ** (np.arange(-50, 31) / 10)
N_BINS = len(LATENCY_EDGES_S) + 1


class EdgeWindow:
    __slots__ = ("bucket_ms", "count", "dur_sum", "epoch", "errors", "first_ms", "hist", "n_buckets",
                 "newest_epoch")

    def __init__(self, window_s: float = 300.0, bucket_s: float = 15.0) -> None:
        self.bucket_ms = max(1, int(bucket_s * 1000))
        self.n_buckets = max(1, round(window_s * 1000 / self.bucket_ms))
        nb = self.n_buckets
        self.epoch = np.full(nb, -1, np.int64)  # which bucket of time each ring slot holds (-1: none)
        self.count = np.zeros(nb, np.int64)
        self.errors = np.zeros(nb, np.int64)
        self.dur_sum = np.zeros(nb, np.float64)
        self.hist = np.zeros((nb, N_BINS), np.int32)
        self.first_ms: int | None = None  # earliest call end ever added (the rate's denominator starts there)
        self.newest_epoch = -1

    @property
    def window_ms(self) -> int:
        return self.bucket_ms * self.n_buckets

    def add(self, end_ms: np.ndarray, error: np.ndarray, duration_s: np.ndarray) -> int:
        """Add calls (arrays of one length). Calls older than the window behind the newest call seen are
        dropped; returns how many were kept."""
        if len(end_ms) == 0:
            return 0
        end_ms = np.asarray(end_ms, np.int64)
        ep = end_ms // self.bucket_ms
        newest = max(self.newest_epoch, int(ep.max()))
        keep = ep > newest - self.n_buckets
        if not keep.all():
            end_ms, ep = end_ms[keep], ep[keep]
            error, duration_s = np.asarray(error)[keep], np.asarray(duration_s)[keep]
            if len(ep) == 0:
                return 0
        self.newest_epoch = newest
        first = int(end_ms.min())
        self.first_ms = first if self.first_ms is None else min(self.first_ms, first)
        slots = ep % self.n_buckets
        fresh = np.unique(ep)  # within the window: distinct epochs have distinct slots
        fslot = fresh % self.n_buckets
        stale = fslot[self.epoch[fslot] != fresh]
        if len(stale):
            self.count[stale] = 0
            self.errors[stale] = 0
            self.dur_sum[stale] = 0.0
            self.hist[stale] = 0
        self.epoch[fslot] = fresh
        np.add.at(self.count, slots, 1)
        np.add.at(self.errors, slots, np.asarray(error, bool).astype(np.int64))
        dur = np.asarray(duration_s, np.float64)
        np.add.at(self.dur_sum, slots, dur)
        np.add.at(self.hist, (slots, np.searchsorted(LATENCY_EDGES_S, dur, side="right")), 1)
        return len(ep)

    def summary(self, now_ms: int) -> dict[str, Any] | None:
        """Calls in the window ending at ``now_ms`` (event time): rate per second, error ratio, latency
        mean/p50/p95 in seconds. None when the window holds no call."""
        now_ep = now_ms // self.bucket_ms
        live = (self.epoch > now_ep - self.n_buckets) & (self.epoch <= now_ep) & (self.epoch >= 0)
        n = int(self.count[live].sum())
        if n == 0:
            return None
        errors = int(self.errors[live].sum())
        hist = self.hist[live].sum(axis=0)
        start = (now_ep - self.n_buckets + 1) * self.bucket_ms
        if self.first_ms is not None:
            start = max(start, self.first_ms)
        span_s = max(now_ms - start, self.bucket_ms) / 1000.0
        return {
            "requests": n, "errors": errors, "window_s": round(span_s, 3),
            "rate_per_s": n / span_s, "error_ratio": errors / n,
            "latency_mean_s": float(self.dur_sum[live].sum()) / n,
            "latency_p50_s": quantile(hist, 0.5), "latency_p95_s": quantile(hist, 0.95),
        }


def quantile(hist: np.ndarray, q: float) -> float:
    """The q-quantile of a latency histogram (bins as ``LATENCY_EDGES_S``), interpolated geometrically
    inside its bin."""
    cum = np.cumsum(hist)
    total = int(cum[-1])
    if total == 0:
        return float("nan")
    target = q * total
    i = int(np.searchsorted(cum, target, side="left"))
    i = min(i, len(hist) - 1)
    if i >= len(LATENCY_EDGES_S):
        return float(LATENCY_EDGES_S[-1])
    hi = float(LATENCY_EDGES_S[i])
    below = float(cum[i - 1]) if i > 0 else 0.0
    frac = (target - below) / float(hist[i]) if hist[i] else 1.0
    if i == 0:
        return hi * frac
    lo = float(LATENCY_EDGES_S[i - 1])
    return lo * (hi / lo) ** frac
