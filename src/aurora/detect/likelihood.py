"""Anomaly likelihood: turns each analyzer's raw surprise into a calibrated "unusual for this series".

As in Numenta's anomaly likelihood, a short average of the surprise is compared with the long-run
distribution of that average *in the same slot and analyzer*: a series that is always noisy earns no
score for ordinary noise, a quiet one scores for a small wobble. The result is the log of the Gaussian
upper-tail probability ``log p`` and the score ``1 - p ** (1 / tail_scale)``, which is monotone in
``-log p`` and still resolves far into the tail (so strong and weaker anomalies stay distinct). Below one
spread above the usual surprise every sample gets the same floor, p = Q(1): only the tail matters.

The arithmetic runs in one compiled loop per batch (``likelihood_kernel.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurora.detect.likelihood_kernel import update_tracks
from aurora.detect.slots import Field, SlotArrays, SlotState

_MAX_Z = 1e30  # keeps a surprise finite in float32


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


class Likelihood(SlotState):
    """One likelihood track per (slot, analyzer)."""

    def __init__(self, n_analyzers: int, config: LikelihoodConfig | None = None) -> None:
        self.config = config or LikelihoodConfig()
        self.s = SlotArrays((
            Field("n", np.int32, (n_analyzers,)),
            # float32: a (slots x analyzers) block is the largest state the detector has and the most
            # traffic per batch; seven significant digits are plenty for a running mean of surprises.
            Field("short", np.float32, (n_analyzers,)),
            Field("mean", np.float32, (n_analyzers,)),
            Field("var", np.float32, (n_analyzers,)),
            Field("record", np.float32, (n_analyzers,)),
        ))
        h = self.config.novelty_halflife
        self._decay = 0.5 ** (1.0 / h) if h > 0 else 0.0

    def update(self, slots: np.ndarray, z: np.ndarray, ready: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``z``, ``ready``: (samples, analyzers). Returns (log tail probability, score in [0, 1])."""
        c, a = self.config, self.s.arrays
        rows = np.arange(slots.start, slots.stop) if isinstance(slots, slice) else np.asarray(slots, np.int64)
        log_p = np.empty(z.shape)
        score = np.empty(z.shape)
        update_tracks(rows, np.ascontiguousarray(z, np.float64), np.ascontiguousarray(ready, np.bool_),
                      a["n"], a["short"], a["mean"], a["var"], a["record"], c.short_alpha, c.long_alpha,
                      c.warmup, c.min_std, c.tail_scale, self._decay, _MAX_Z, log_p, score)
        return log_p, score
