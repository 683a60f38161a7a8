"""Change-point analyzer: a two-sided CUSUM of standardized residuals against a slow reference level.

CUSUM accumulates small, persistent deviations that no single sample shows: ``S+ = max(0, S+ + u - k)``
and ``S- = max(0, S- - u - k)`` with ``u`` the residual in reference spreads. The surprise is
``max(S+, S-)`` in units of ``k`` so it is comparable across series. When it crosses ``h`` the series has
changed: the reference jumps to the recent (fast) level and the sums restart, so a new regime is learnt
quickly instead of alarming for ever.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurora.detect.analyzer import Surprise, huber, spread_floor
from aurora.detect.slots import Field, SlotArrays, SlotState


@dataclass(frozen=True)
class ChangePointConfig:
    alpha: float = 0.002  # reference level's rate (memory ~500 samples)
    fast_alpha: float = 0.1  # the recent level the reference jumps to after a change
    k: float = 0.5  # allowance: shifts under k spreads are ignored
    h: float = 30.0  # decision interval: a change point when a sum exceeds h
    clip: float = 4.0
    warmup: int = 50


class ChangePointAnalyzer(SlotState):
    name = "changepoint"
    reason = "has shifted and stayed shifted (CUSUM change point)"

    def __init__(self, config: ChangePointConfig | None = None) -> None:
        self.config = config or ChangePointConfig()
        self.s = SlotArrays((Field("n", np.int64), Field("ref"), Field("var"), Field("fast"),
                             Field("pos"), Field("neg")))

    def update(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray) -> Surprise:
        c, st = self.config, self.s
        n = st.n[slots]
        first = n == 0
        ref = np.where(first, x, st.ref[slots])
        fast = np.where(first, x, st.fast[slots])
        var = st.var[slots]
        spread = np.sqrt(var) + spread_floor(ref)
        resid = x - ref
        u = np.clip(resid / spread, -c.clip, c.clip)
        ready = n >= c.warmup
        pos = np.where(ready, np.maximum(0.0, st.pos[slots] + u - c.k), 0.0)
        neg = np.where(ready, np.maximum(0.0, st.neg[slots] - u - c.k), 0.0)
        z = np.maximum(pos, neg) / c.k

        fast = fast + c.fast_alpha * (x - fast)
        changed = np.maximum(pos, neg) > c.h
        r = np.where(ready, huber(resid, spread, c.clip), resid)
        a = np.maximum(c.alpha, 1.0 / (n + 1))
        st.ref[slots] = np.where(changed, fast, ref + a * r)
        st.var[slots] = np.where(first, 0.0, (1 - a) * var + a * r * r)
        st.pos[slots] = np.where(changed, 0.0, pos)
        st.neg[slots] = np.where(changed, 0.0, neg)
        st.fast[slots] = fast
        st.n[slots] = n + 1
        return Surprise(z, ref, spread, ready)
