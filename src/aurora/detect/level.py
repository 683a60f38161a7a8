"""Smoothed-residual analyzer: a damped Holt (level + trend) forecast and the surprise of its error.

The forecast for the next sample is ``level + phi * trend``; the surprise is the forecast error over a
running (clipped, so robust) estimate of its spread. Damping keeps a short-lived slope from being
extrapolated for ever, and clipping keeps a spike from dragging the level after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurora.detect.analyzer import Surprise, huber, spread_floor
from aurora.detect.slots import Field, SlotArrays, SlotState


@dataclass(frozen=True)
class LevelConfig:
    alpha: float = 0.05  # level smoothing
    beta: float = 0.05  # trend smoothing (as a share of alpha's correction)
    phi: float = 0.9  # trend damping per step
    var_alpha: float = 0.01  # rate of the error-spread estimate (~100 samples of memory)
    clip: float = 4.0  # errors beyond this many spreads are clipped before learning
    warmup: int = 30


class LevelAnalyzer(SlotState):
    name = "level"
    reason = "left the level its recent trend predicted"

    def __init__(self, config: LevelConfig | None = None) -> None:
        self.config = config or LevelConfig()
        self.s = SlotArrays((Field("n", np.int64), Field("level"), Field("trend"), Field("var")))

    def update(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray) -> Surprise:
        c, st = self.config, self.s
        n = st.n[slots]
        first = n == 0
        level = np.where(first, x, st.level[slots])
        trend = np.where(first, 0.0, st.trend[slots])
        var = st.var[slots]
        forecast = level + c.phi * trend
        spread = np.sqrt(var) + spread_floor(forecast)
        err = x - forecast
        ready = n >= c.warmup
        z = np.where(ready, np.abs(err) / spread, 0.0)

        e = np.where(ready, huber(err, spread, c.clip), err)
        a = np.maximum(c.alpha, 1.0 / (n + 1))
        st.level[slots] = forecast + a * e
        st.trend[slots] = np.where(first, 0.0, c.phi * trend + a * c.beta * e)
        va = np.maximum(c.var_alpha, 1.0 / (n + 1))
        st.var[slots] = np.where(first, 0.0, (1 - va) * var + va * e * e)
        st.n[slots] = n + 1
        return Surprise(z, forecast, spread, ready)
