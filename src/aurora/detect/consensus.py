"""Consensus of analyzers and the alarm gate: quorum, per-series adaptive threshold, flap suppression.

* Quorum: the ensemble's score of a sample is the k-th highest of its analyzers' calibrated scores, so the
  score is at or above a threshold exactly when at least k analyzers are. One broken or noisy analyzer can
  neither raise an alarm alone (k >= 2) nor block one (k < n).
* Adaptive threshold: a series that keeps alarming has its threshold raised in proportion to how far its
  recent alarm rate exceeds the target rate, so a chronically noisy series quiets down by itself.
* Flap suppression: after an alarm the series stays quiet for ``hold`` samples, so one anomaly raises one
  alarm and not a burst.
* Reported score: the score per sample shown to NAB-style scorers reads one anomaly as one event too: once
  it reaches ``report_level`` the scores of the next ``hold`` samples are damped. This hold is separate
  from the alarm's, so a weak early sign never blocks the alarm that follows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurora.detect.slots import Field, SlotArrays, SlotState


def quorum(scores: np.ndarray, k: int, support: float = 1.0) -> np.ndarray:
    """Consensus of ``scores`` (samples x analyzers): the strongest score, capped by the k-th strongest.

    The k-th score is first eased by ``support`` (``1 - (1 - s) * support``): with support < 1 the other
    k - 1 analyzers need only *back* the strongest one at a lower level, not match it. support = 1 gives
    the plain k-th highest score.
    """
    n = scores.shape[1]
    k = min(max(k, 1), n)
    ranked = np.sort(scores, axis=1)  # cheaper than np.partition for a handful of columns
    return np.minimum(ranked[:, n - 1], 1.0 - (1.0 - ranked[:, n - k]) * support)


@dataclass(frozen=True)
class GateConfig:
    threshold: float = 0.999  # base alarm threshold on the consensus score
    hold: int = 100  # samples of silence after an alarm
    damping: float = 0.5  # reported score = score * damping while its hold lasts
    report_level: float = 0.9  # a reported score this high starts the reported score's hold
    target_rate: float = 1e-3  # alarms per sample a series may raise before its threshold rises
    rate_alpha: float = 1e-3  # memory of the alarm rate (~1000 samples)


class AlarmGate(SlotState):
    def __init__(self, config: GateConfig | None = None) -> None:
        self.config = config or GateConfig()
        self.s = SlotArrays((Field("quiet", np.int32), Field("echo", np.int32), Field("rate")))

    def threshold(self, slots: np.ndarray) -> np.ndarray:
        c = self.config
        excess = np.maximum(self.s.rate[slots] / c.target_rate, 1.0)
        return 1.0 - (1.0 - c.threshold) / excess

    def update(self, slots: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (alarm, reported score, threshold used) per sample."""
        c, st = self.config, self.s
        thr = self.threshold(slots)
        quiet = st.quiet[slots]
        held = quiet > 0
        alarm = (score >= thr) & ~held
        echo = st.echo[slots]
        echoing = echo > 0
        reported = np.where(echoing, score * c.damping, score)
        st.echo[slots] = np.where(~echoing & (score >= c.report_level), c.hold, np.maximum(echo - 1, 0))
        st.quiet[slots] = np.where(alarm, c.hold, np.maximum(quiet - 1, 0))
        st.rate[slots] = (1 - c.rate_alpha) * st.rate[slots] + c.rate_alpha * alarm
        return alarm, reported, thr
