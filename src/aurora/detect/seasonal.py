"""Seasonal robust baseline: what this series usually does at this hour of a weekday or weekend day.

Per slot, 48 buckets (24 hours x weekday/weekend, by the sample's event time in UTC) each keep a robust
running centre and mean absolute deviation, learnt from clipped residuals. A sample is judged against its
own bucket's profile, so the daily rush is not an anomaly but the same load at 3 a.m. is. A bucket is used
only after it has seen ``min_bucket`` samples; until then the analyzer says nothing for that hour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurora.detect.analyzer import Surprise, huber, spread_floor
from aurora.detect.slots import Field, SlotArrays, SlotState

BUCKETS = 48
MAD_TO_SIGMA = 1.2533  # mean absolute deviation of a Gaussian is sigma * sqrt(2 / pi)


@dataclass(frozen=True)
class SeasonalConfig:
    alpha: float = 0.1  # per-bucket learning rate (each bucket sees a sample per interval in its hour)
    clip: float = 3.0
    min_bucket: int = 12  # samples in a bucket before it speaks (an hour at 5 min: one day)
    min_days: float = 1.0  # days of the series' history before any bucket speaks (a profile needs repeats)


def bucket_of(t: np.ndarray) -> np.ndarray:
    """Hour of the day, plus 24 on Saturdays and Sundays (UTC). ``t`` in unix seconds."""
    days = np.floor(t / 86400.0)
    hour = np.floor((t - days * 86400.0) / 3600.0).astype(np.int64)
    weekend = ((days.astype(np.int64) + 3) % 7) >= 5  # 1970-01-01 was a Thursday: +3 makes Monday 0
    return hour + 24 * weekend


class SeasonalAnalyzer(SlotState):
    name = "seasonal"
    reason = "is unusual for this time of day and week"

    def __init__(self, config: SeasonalConfig | None = None) -> None:
        self.config = config or SeasonalConfig()
        self.s = SlotArrays((
            Field("n", np.int32, (BUCKETS,)),
            Field("centre", np.float32, (BUCKETS,)),
            Field("mad", np.float32, (BUCKETS,)),
            Field("first_t", np.float64, (), np.nan),
        ))

    def update(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray) -> Surprise:
        c, st = self.config, self.s
        b = bucket_of(t)
        if isinstance(slots, slice):  # paired (slot, bucket) indexing needs the slot indices themselves
            slots = np.arange(slots.start, slots.stop)
        n = st.n[slots, b].astype(np.int64)
        first = n == 0
        centre = np.where(first, x, st.centre[slots, b].astype(np.float64))
        mad = st.mad[slots, b].astype(np.float64)
        spread = MAD_TO_SIGMA * mad + spread_floor(centre)
        resid = x - centre
        first_t = np.where(np.isnan(st.first_t[slots]), t, st.first_t[slots])
        st.first_t[slots] = first_t
        ready = (n >= c.min_bucket) & (t - first_t >= c.min_days * 86400.0)
        z = np.where(ready, np.abs(resid) / spread, 0.0)

        r = np.where(ready, huber(resid, spread, c.clip), resid)
        a = np.maximum(c.alpha, 1.0 / (n + 1))
        st.centre[slots, b] = centre + a * r
        st.mad[slots, b] = np.where(first, 0.0, mad + a * (np.abs(r) - mad))
        st.n[slots, b] = np.minimum(n + 1, np.iinfo(np.int32).max)
        return Surprise(z, centre, spread, ready)
