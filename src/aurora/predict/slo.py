"""Error budgets of SLOs, as series the forecaster can predict: when will the budget run out?

An SLO (``slos:`` in the configuration) names a service, the metric of its error ratio (0-1, e.g.
``http_request_error_ratio``), an objective (0.999: 0.1 % of the time may be errors) and a window (30 days).
The budget used is the window's mean error ratio over the time it covers, against what the objective allows
for the whole window: ``mean_error * covered_s / ((1 - objective) * window_s)``; 1.0 is an exhausted budget.
Hourly buckets (error-seconds and seconds, per SLO) make the window roll without keeping samples.

The prediction stage feeds each SLO's budget used into its block ring as one more limited series (limit 1.0,
rising), so a fast burn gets a prediction with an ETA like any leak: "error budget exhausted in 3 h 40 min".
A series of the SLO first seen is warmed up from the store (its last ``window``), so a restart does not
forget the budget already spent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BUCKET_S = 3600.0
METRIC = "slo_error_budget_used_ratio"  # the virtual series' name in predictions and the API
KIND = "error_budget_exhausted"


@dataclass(frozen=True)
class SloSpec:
    name: str
    service: str
    metric: str
    objective: float
    window_s: float


class SloBudget:
    """One SLO's rolling error-time integral in hourly buckets."""

    def __init__(self, spec: SloSpec) -> None:
        self.spec = spec
        n = int(np.ceil(spec.window_s / BUCKET_S))
        self.err = np.zeros(n)  # error-seconds per bucket
        self.dur = np.zeros(n)  # covered seconds per bucket
        self.bucket = np.full(n, -1, np.int64)  # which hour each slot holds
        self.last_t: dict[int, float] = {}  # series id -> time of its last sample (a sample covers until the next)

    def add(self, sid: int, t: np.ndarray, v: np.ndarray) -> None:
        """Samples of one series (sorted by time). Each covers the time since the series' previous sample,
        capped at 5 minutes (a gap is not time at that ratio)."""
        if not len(t):
            return
        prev = self.last_t.get(sid)
        before = np.r_[prev if prev is not None else t[0], t[:-1]]
        dt = np.clip(t - before, 0.0, 300.0)
        ok = np.isfinite(v) & (dt > 0)
        self.last_t[sid] = float(t[-1])
        if not ok.any():
            return
        t, v, dt = t[ok], np.clip(v[ok], 0.0, 1.0), dt[ok]
        b = np.floor(t / BUCKET_S).astype(np.int64)
        n = len(self.bucket)
        keep = b > max(int(b.max()), int(self.bucket.max())) - n  # within one window of the newest hour
        if not keep.all():
            t, v, dt, b = t[keep], v[keep], dt[keep], b[keep]
        if not len(b):
            return
        slot = b % n
        stale = self.bucket[slot] != b
        if stale.any():  # a slot that held an hour a window ago now holds this one: start it afresh
            self.err[slot[stale]] = 0.0
            self.dur[slot[stale]] = 0.0
            self.bucket[slot[stale]] = b[stale]
        np.add.at(self.err, slot, v * dt)
        np.add.at(self.dur, slot, dt)

    def used(self, now: float) -> float:
        """Budget used as of ``now`` (NaN before any data); the window is the buckets within ``window_s``."""
        hour = int(np.floor(now / BUCKET_S))
        live = (self.bucket >= 0) & (self.bucket > hour - len(self.bucket)) & (self.bucket <= hour)
        dur = float(self.dur[live].sum())
        if dur <= 0:
            return float("nan")
        n_series = max(len(self.last_t), 1)
        covered = min(dur / n_series, self.spec.window_s)
        mean_err = float(self.err[live].sum()) / dur
        return mean_err * covered / ((1.0 - self.spec.objective) * self.spec.window_s)


class SloTracker:
    """Every configured SLO: which series feed it, and their budgets."""

    def __init__(self, specs: list[SloSpec], read: Callable[[int, int, int], tuple[np.ndarray, np.ndarray]] | None
                 = None) -> None:
        self.budgets = [SloBudget(s) for s in specs]
        self.read = read
        self._feeds: dict[int, list[int]] = {}  # series id -> indexes of the SLOs it feeds

    def classify(self, sid: int, metric: str, labels: dict[str, str], before_ms: int) -> bool:
        """A new series: does it feed an SLO? (Warmed up from the store when it does.)"""
        hits = [k for k, b in enumerate(self.budgets)
                if b.spec.metric == metric and labels.get("service") == b.spec.service]
        if not hits:
            return False
        self._feeds[sid] = hits
        if self.read is not None:
            window_ms = int(max(self.budgets[k].spec.window_s for k in hits) * 1000)
            try:
                ts, vs = self.read(sid, before_ms - window_ms, before_ms - 1)
            except Exception:
                ts, vs = np.zeros(0, np.int64), np.zeros(0)
            if len(ts):
                for k in hits:
                    self.budgets[k].add(sid, ts / 1000.0, np.asarray(vs, np.float64))
        return True

    def feeds(self, sid: int) -> bool:
        return sid in self._feeds

    def add(self, sid: int, t: np.ndarray, v: np.ndarray) -> None:
        for k in self._feeds.get(sid, ()):
            self.budgets[k].add(sid, t, v)

    def used(self, now: float) -> np.ndarray:
        return np.array([b.used(now) for b in self.budgets])
