"""Two analyzers of a series' distribution rather than its next value: variance change and range.

* ``VarianceAnalyzer``: a fast and a slow running mean of squared deviations from the slow level; the
  surprise is how much the recent variance exceeds the usual one (log ratio, in units of its standard
  error), so a series that becomes erratic without moving its level is noticed.
* ``RangeAnalyzer``: running estimates of the low and high quantiles of the series (stochastic
  approximation: each sample nudges a quantile up or down); the surprise is how far a sample falls outside
  them, in units of the range, so a value the series has not reached in a long time stands out even when it
  came gradually.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurora.detect.analyzer import Surprise, huber, spread_floor
from aurora.detect.slots import Field, SlotArrays, SlotState


@dataclass(frozen=True)
class VarianceConfig:
    fast_alpha: float = 0.1
    slow_alpha: float = 0.005
    clip: float = 6.0
    warmup: int = 50


class VarianceAnalyzer(SlotState):
    name = "variance"
    reason = "became more erratic than usual"

    def __init__(self, config: VarianceConfig | None = None) -> None:
        self.config = config or VarianceConfig()
        self.s = SlotArrays((Field("n", np.int64), Field("level"), Field("fast"), Field("slow")))
        # An EWMA of squared Gaussian noise at rate a has relative sd sqrt(2a / (2 - a)).
        a = self.config.fast_alpha
        self._rel_se = float(np.sqrt(2 * a / (2 - a)))

    def update(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray) -> Surprise:
        c, st = self.config, self.s
        n = st.n[slots]
        first = n == 0
        level = np.where(first, x, st.level[slots])
        slow = st.slow[slots]
        sd = np.sqrt(slow) + spread_floor(level)
        r = huber(x - level, sd, c.clip)
        fast = np.where(first, 0.0, (1 - c.fast_alpha) * st.fast[slots] + c.fast_alpha * r * r)
        ready = n >= c.warmup
        ratio = (fast + sd * sd * 1e-6) / (sd * sd)
        z = np.where(ready, np.maximum(ratio - 1.0, 0.0) / self._rel_se, 0.0)

        a = np.maximum(c.slow_alpha, 1.0 / (n + 1))
        st.level[slots] = level + a * r
        st.slow[slots] = np.where(first, 0.0, (1 - a) * slow + a * r * r)
        st.fast[slots] = fast
        st.n[slots] = n + 1
        return Surprise(z, level, sd, ready)



@dataclass(frozen=True)
class RangeConfig:
    q: float = 0.01  # the low quantile tracked (the high one is 1 - q)
    rate: float = 0.003  # step of the quantile updates, as a share of the current range
    warmup: int = 100


class RangeAnalyzer(SlotState):
    name = "range"
    reason = "went outside the range it has kept for a long time"

    def __init__(self, config: RangeConfig | None = None) -> None:
        self.config = config or RangeConfig()
        self.s = SlotArrays((Field("n", np.int64), Field("lo"), Field("hi"), Field("mid")))

    def update(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray) -> Surprise:
        c, st = self.config, self.s
        n = st.n[slots]
        first = n == 0
        lo = np.where(first, x, st.lo[slots])
        hi = np.where(first, x, st.hi[slots])
        mid = np.where(first, x, st.mid[slots])
        width = (hi - lo) + spread_floor(mid)
        ready = n >= c.warmup
        outside = np.maximum(lo - x, 0.0) + np.maximum(x - hi, 0.0)
        z = np.where(ready, outside / width, 0.0)

        # Warm-up: the quantiles start at the running min and max, then move by stochastic approximation.
        step = c.rate * width
        warm = n < c.warmup
        lo_new = np.where(warm, np.minimum(lo, x), lo + step * ((x < lo) * -(1 - c.q) / c.q + (x >= lo)) * c.q)
        hi_new = np.where(warm, np.maximum(hi, x), hi + step * ((x > hi) * (1 - c.q) / c.q - (x <= hi)) * c.q)
        st.lo[slots] = lo_new
        st.hi[slots] = np.maximum(hi_new, lo_new)
        st.mid[slots] = mid + np.maximum(c.rate, 1.0 / (n + 1)) * (x - mid)
        st.n[slots] = n + 1
        return Surprise(z, mid, width, ready)
