"""Two quick tests of abrupt change: a level shift (fast vs slow mean) and a spike or dip (one-step jump).

* ``LevelShiftAnalyzer``: the distance between a fast EWMA (a few samples) and a slow one, in units of the
  standard error the fast mean would have on ordinary noise. It fires within a few samples of a step and
  stays quiet for a lone outlier, which moves the fast mean only a little.
* ``SpikeAnalyzer``: the jump from the previous sample over the usual size of a jump (a running mean of
  clipped absolute differences). It fires on the first sample of a spike, a dip or a step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurora.detect.analyzer import Surprise, huber, spread_floor
from aurora.detect.seasonal import MAD_TO_SIGMA
from aurora.detect.slots import Field, SlotArrays, SlotState


@dataclass(frozen=True)
class LevelShiftConfig:
    fast_alpha: float = 0.25
    slow_alpha: float = 0.005
    clip: float = 4.0
    warmup: int = 50


class LevelShiftAnalyzer(SlotState):
    name = "level_shift"
    reason = "moved to a new level over the last few samples"

    def __init__(self, config: LevelShiftConfig | None = None) -> None:
        self.config = config or LevelShiftConfig()
        self.s = SlotArrays((Field("n", np.int64), Field("fast"), Field("slow"), Field("var")))
        # Standard deviation of an EWMA of white noise, relative to the noise's own.
        self._se = float(np.sqrt(self.config.fast_alpha / (2.0 - self.config.fast_alpha)))

    def update(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray) -> Surprise:
        c, st = self.config, self.s
        n = st.n[slots]
        first = n == 0
        slow = np.where(first, x, st.slow[slots])
        fast = np.where(first, x, st.fast[slots])
        var = st.var[slots]
        sd = np.sqrt(var) + spread_floor(slow)
        fast = fast + c.fast_alpha * (x - fast)
        ready = n >= c.warmup
        z = np.where(ready, np.abs(fast - slow) / (self._se * sd), 0.0)

        resid = x - slow
        r = np.where(ready, huber(resid, sd, c.clip), resid)
        a = np.maximum(c.slow_alpha, 1.0 / (n + 1))
        st.slow[slots] = slow + a * r
        st.var[slots] = np.where(first, 0.0, (1 - a) * var + a * r * r)
        st.fast[slots] = fast
        st.n[slots] = n + 1
        return Surprise(z, slow, sd, ready)



@dataclass(frozen=True)
class SpikeConfig:
    alpha: float = 0.003  # rate of the usual jump size (memory ~300 samples)
    clip: float = 4.0
    warmup: int = 30


class SpikeAnalyzer(SlotState):
    name = "spike"
    reason = "jumped from the previous sample far more than usual"

    def __init__(self, config: SpikeConfig | None = None) -> None:
        self.config = config or SpikeConfig()
        self.s = SlotArrays((Field("n", np.int64), Field("prev"), Field("jump")))

    def update(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray) -> Surprise:
        c, st = self.config, self.s
        n = st.n[slots]
        first = n == 0
        prev = np.where(first, x, st.prev[slots])
        jump = st.jump[slots]
        spread = MAD_TO_SIGMA * jump + spread_floor(prev)
        d = x - prev
        ready = n >= c.warmup
        z = np.where(ready, np.abs(d) / spread, 0.0)

        dc = np.where(ready, huber(d, spread, c.clip), d)
        a = np.maximum(c.alpha, 1.0 / np.maximum(n, 1))  # the first difference comes with the second sample
        st.jump[slots] = np.where(first, 0.0, jump + a * (np.abs(dc) - jump))
        st.prev[slots] = x
        st.n[slots] = n + 1
        return Surprise(z, prev, spread, ready)
