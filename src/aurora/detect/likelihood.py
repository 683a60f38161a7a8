"""Anomaly likelihood: turns each analyzer's raw surprise into a calibrated "unusual for this series".

As in Numenta's anomaly likelihood, a short average of the surprise is compared with the long-run
distribution of that average *in the same slot and analyzer*: a series that is always noisy earns no
score for ordinary noise, a quiet one scores for a small wobble. The result is the log of the Gaussian
upper-tail probability ``log p`` and the score ``1 - p ** (1 / tail_scale)``, which is monotone in
``-log p`` and still resolves far into the tail (so strong and weaker anomalies stay distinct).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from aurora.detect.slots import Field, SlotArrays


@dataclass(frozen=True)
class LikelihoodConfig:
    short_alpha: float = 1.0  # EWMA rate of the recent surprise (1.0: the current sample alone)
    long_alpha: float = 0.0005  # rate of the long-run mean and spread of the surprise (~2000 samples)
    warmup: int = 30  # ready samples an analyzer must have produced before its likelihood counts
    min_std: float = 0.05  # floor of the surprise's spread, so a perfectly regular series is not brittle
    tail_scale: float = 20.0
    # A surprise is scaled down by how far it falls short of the slot's record surprise, which decays with
    # this half-life (samples; 0 turns it off): a daily jump as large as yesterday's is not news.
    novelty_halflife: float = 5000.0


class Likelihood:
    """One likelihood track per (slot, analyzer)."""

    def __init__(self, n_analyzers: int, config: LikelihoodConfig | None = None) -> None:
        self.config = config or LikelihoodConfig()
        self.s = SlotArrays((
            Field("n", np.int32, (n_analyzers,)),
            Field("short", np.float64, (n_analyzers,)),
            Field("mean", np.float64, (n_analyzers,)),
            Field("var", np.float64, (n_analyzers,)),
            Field("record", np.float64, (n_analyzers,)),
        ))
        h = self.config.novelty_halflife
        self._decay = 0.5 ** (1.0 / h) if h > 0 else 0.0

    def ensure_slots(self, n: int) -> None:
        self.s.ensure(n)

    def nbytes_per_slot(self) -> int:
        return self.s.nbytes_per_slot()

    def update(self, slots: np.ndarray, z: np.ndarray, ready: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``z``, ``ready``: (samples, analyzers). Returns (log tail probability, score in [0, 1])."""
        c, st = self.config, self.s
        n = st.n[slots].astype(np.int64)
        first = n == 0
        short = np.where(first, z, (1 - c.short_alpha) * st.short[slots] + c.short_alpha * z)
        mean = st.mean[slots]
        var = st.var[slots]
        std = np.sqrt(var) + c.min_std
        log_p = log_ndtr(-(short - mean) / std)
        counts = ready & (n >= c.warmup)
        log_p = np.where(counts, log_p, 0.0)
        score = np.where(counts, -np.expm1(log_p / c.tail_scale), 0.0)
        if c.novelty_halflife > 0:
            record = st.record[slots] * self._decay
            novel = np.clip(short / (record + 1e-12), 0.0, 1.0)
            score = score * novel
            st.record[slots] = np.where(ready, np.maximum(record, short), st.record[slots])

        a = np.maximum(c.long_alpha, 1.0 / (n + 1))
        d = short - mean
        learn = ready  # surprises of a warming-up analyzer are meaningless zeros: do not learn them
        st.mean[slots] = np.where(learn, mean + a * d, mean)
        st.var[slots] = np.where(learn, np.where(first, 0.0, (1 - a) * (var + a * d * d)), var)
        st.short[slots] = np.where(learn, short, st.short[slots])
        st.n[slots] = np.where(learn, np.minimum(n + 1, np.iinfo(np.int32).max), n)
        return log_p, np.clip(score, 0.0, 1.0)

    def state(self) -> dict[str, np.ndarray]:
        return self.s.state()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.s.load(state)
