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

_LOG_Q1 = float(log_ndtr(-1.0))
_MAX_Z = 1e30  # keeps a surprise finite in float32  # log of the Gaussian upper tail at one standard deviation


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
            # float32: a (slots x analyzers) block is the largest state the detector has and the most
            # traffic per batch; seven significant digits are plenty for a running mean of surprises.
            Field("short", np.float32, (n_analyzers,)),
            Field("mean", np.float32, (n_analyzers,)),
            Field("var", np.float32, (n_analyzers,)),
            Field("record", np.float32, (n_analyzers,)),
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
        z = np.minimum(z, _MAX_Z).astype(np.float32)
        n = st.n[slots]
        if c.short_alpha == 1.0:
            short = z
        else:
            short = np.where(n == 0, z, (1 - c.short_alpha) * st.short[slots] + c.short_alpha * z)
        mean = st.mean[slots]
        var = st.var[slots]
        counts = ready & (n >= c.warmup)
        # After warm-up every track counts and learns: skip the masks (the common case, and the hot path).
        # An analyzer that is not ready for any sample of the batch (the seasonal one in its first day) does
        # not spoil that: its column is computed like the others, then its outputs and state are put back.
        dead: np.ndarray = np.logical_not(ready.any(axis=0))
        live: np.ndarray = np.logical_not(dead)
        steady = bool(live.any()) and bool(counts[:, live].all())
        saved = self._save_columns(slots, dead) if steady and dead.any() else None

        # The tail probability only matters beyond one spread above the usual surprise: below that every
        # sample gets the same floor (p = Q(1)), so log_ndtr and expm1, the costliest steps, run on the tail.
        w = (short - mean) / (np.sqrt(var) + np.float32(c.min_std))
        tail = w > 1.0 if steady else counts & (w > 1.0)
        log_p = np.full(w.shape, _LOG_Q1)
        log_p[tail] = log_ndtr(-w[tail])
        score = np.full(w.shape, -np.expm1(_LOG_Q1 / c.tail_scale))
        score[tail] = -np.expm1(log_p[tail] / c.tail_scale)
        if not steady:
            log_p[~counts] = 0.0
            score[~counts] = 0.0
        elif saved is not None:
            log_p[:, dead] = 0.0
            score[:, dead] = 0.0
        if c.novelty_halflife > 0:
            record = st.record[slots] * np.float32(self._decay)
            score *= np.minimum(short / (record + np.float32(1e-12)), 1.0)
            new_record = np.maximum(record, short)
            st.record[slots] = new_record if steady else np.where(ready, new_record, st.record[slots])

        # Warm-up learns at 1/(n+1) (a plain average); once every track is past 1/long_alpha samples the
        # rate is the constant long_alpha.
        settled = steady and int(n[:, live].min()) + 1 >= 1.0 / c.long_alpha
        a = np.float32(c.long_alpha) if settled else np.maximum(c.long_alpha, 1.0 / (n + 1)).astype(np.float32)
        d = short - mean
        new_mean = mean + a * d
        new_var = (1 - a) * (var + a * d * d)
        if steady:
            st.mean[slots], st.var[slots] = new_mean, new_var
            if c.short_alpha != 1.0:
                st.short[slots] = short
            st.n[slots] = n + 1
        else:
            learn = ready  # surprises of a warming-up analyzer are meaningless zeros: do not learn them
            st.mean[slots] = np.where(learn, new_mean, mean)
            st.var[slots] = np.where(learn, np.where(n == 0, 0.0, new_var), var)
            if c.short_alpha != 1.0:
                st.short[slots] = np.where(learn, short, st.short[slots])
            st.n[slots] = np.where(learn, n + 1, n)
        if saved is not None:
            self._restore_columns(slots, dead, saved)
        return log_p, np.clip(score, 0.0, 1.0)

    def _save_columns(self, slots: np.ndarray, cols: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[slots][:, cols] for k, v in self.s.arrays.items()}  # boolean column index: copies

    def _restore_columns(self, slots: np.ndarray, cols: np.ndarray, saved: dict[str, np.ndarray]) -> None:
        idx = np.flatnonzero(cols)
        rows = slots if isinstance(slots, slice) else slots[:, None]
        for k, v in saved.items():
            self.s.arrays[k][rows, idx] = v

    def state(self) -> dict[str, np.ndarray]:
        return self.s.state()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.s.load(state)
