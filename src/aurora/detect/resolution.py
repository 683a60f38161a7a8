"""The resolution of a series: the smallest step it has ever taken (1 for counts, 1/15 s for scraped rates).

A surprise smaller than one step of the series' own resolution is not news: a quiet service's error rate
going from 0 to one error per scrape interval is the smallest change the series can show at all. The
ensemble measures every analyzer's surprise against at least this resolution.
"""

from __future__ import annotations

import numpy as np

from aurora.detect.slots import Field, SlotArrays, SlotState


class Resolution(SlotState):
    def __init__(self) -> None:
        self.s = SlotArrays((Field("prev", np.float64, (), np.nan), Field("step", np.float64, (), np.inf)))

    def update(self, slots: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The resolution known before each sample (0 while unknown), then learn the sample's step."""
        st = self.s
        step = st.step[slots]
        known = np.where(np.isfinite(step), step, 0.0)
        d = np.abs(x - st.prev[slots])
        st.step[slots] = np.where(d > 0, np.fmin(step, d), step)  # fmin: the first step (NaN d) is skipped
        st.prev[slots] = x
        return known
