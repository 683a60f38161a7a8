"""Aurora's baseline streaming detector: a robust running z-score plus an anomaly-likelihood step.

It is deliberately small; it is the bar the real ensemble has to clear, and it fixes the interface
the ensemble shares:

* state lives in NumPy arrays indexed by *series slot*; ``update(slots, values)`` takes one sample
  for each of a batch of slots and returns their scores in [0, 1], all slots at once;
* causal: the score of a sample depends only on that sample and the ones before it in its slot;
* deterministic: no randomness, no wall clock; ``state()`` / ``load_state()`` round-trip exactly.

Per slot and sample ``x``:

1. ``z = (x - mean) / std`` against an EWMA mean and variance *before* they see ``x``. The residual
   that updates them is clipped at ``clip`` standard deviations so one spike cannot inflate the
   baseline it is judged against (a level shift is absorbed gradually instead).
2. Anomaly likelihood (as in Numenta's): a short EWMA of ``|z|`` is compared with the long-run mean
   and spread of ``|z|`` in the same slot; its Gaussian upper-tail probability ``p`` says how unusual
   the recent surprise is for *this* series (a noisy series earns no score for ordinary noise).
3. ``score = 1 - p ** (1 / tail_scale)``: monotone in ``-log p`` and resolvable far into the tail,
   so the thresholds of different strengths of anomaly stay distinct.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import log_ndtr

_FIELDS = ("count", "mean", "var", "short", "long_mean", "long_var")


@dataclass(frozen=True)
class BaselineConfig:
    # The defaults were picked among five global settings tried on NAB itself (alpha 0.01/0.001,
    # short_alpha 0.2/1.0, long_alpha 0.002/0.0005), so its NAB figures are slightly optimistic.
    alpha: float = 0.001  # EWMA rate of the level and spread (memory of ~1000 samples)
    clip: float = 4.0  # residuals beyond this many std devs are clipped before updating
    short_alpha: float = 1.0  # EWMA rate of the recent surprise (1.0: the current sample only)
    long_alpha: float = 0.002  # EWMA rate of the surprise's long-run statistics (~500 samples)
    warmup: int = 50  # samples a slot must have seen before it may score above 0
    max_z: float = 50.0  # caps |z| so a zero-variance history cannot produce inf
    tail_scale: float = 10.0  # score = 1 - p ** (1 / tail_scale)
    rel_floor: float = 1e-3  # std floor relative to |mean|, for flat series
    abs_floor: float = 1e-9  # absolute std floor


class BaselineDetector:
    """Vectorised, causal, deterministic robust-z + anomaly-likelihood detector over series slots."""

    name = "aurora-baseline"

    def __init__(self, n_slots: int = 0, config: BaselineConfig | None = None) -> None:
        self.config = config or BaselineConfig()
        self.count = np.zeros(0, dtype=np.int64)
        self.mean = np.zeros(0)
        self.var = np.zeros(0)
        self.short = np.zeros(0)
        self.long_mean = np.zeros(0)
        self.long_var = np.zeros(0)
        self.ensure_slots(n_slots)

    @property
    def n_slots(self) -> int:
        return len(self.count)

    def ensure_slots(self, n: int) -> None:
        """Grow the state arrays so slots ``0..n-1`` exist; new slots start empty."""
        grow = n - self.n_slots
        if grow <= 0:
            return
        self.count = np.concatenate([self.count, np.zeros(grow, dtype=np.int64)])
        for f in _FIELDS[1:]:
            setattr(self, f, np.concatenate([getattr(self, f), np.zeros(grow)]))

    def update(self, slots: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Score one new sample per slot (slots must be distinct within a call), then learn it.

        NaN values score 0 and leave their slot unchanged.
        """
        cfg = self.config
        slots = np.asarray(slots, dtype=np.int64)
        x = np.asarray(values, dtype=np.float64)
        if slots.shape != x.shape:
            raise ValueError("slots and values must have the same shape")
        if len(slots) and (len(np.unique(slots)) != len(slots)):
            raise ValueError("a slot may appear only once per update")
        if len(slots):
            self.ensure_slots(int(slots.max()) + 1)
        scores = np.zeros(len(slots))
        ok = np.isfinite(x)
        s, x = slots[ok], x[ok]
        if len(s) == 0:
            return scores

        n = self.count[s]
        mean = self.mean[s]
        var = self.var[s]
        first = n == 0
        mean = np.where(first, x, mean)  # a slot's first sample defines its level

        std = np.sqrt(var) + cfg.abs_floor + cfg.rel_floor * np.abs(mean)
        resid = x - mean
        z = np.minimum(np.abs(resid) / std, cfg.max_z)

        # Anomaly likelihood of the recent surprise against this slot's history of surprise.
        short = np.where(first, 0.0, (1 - cfg.short_alpha) * self.short[s] + cfg.short_alpha * z)
        lmean = self.long_mean[s]
        lstd = np.sqrt(self.long_var[s]) + 1e-3
        log_p = log_ndtr(-(short - lmean) / lstd)  # log of the Gaussian upper tail
        score = -np.expm1(log_p / cfg.tail_scale)
        score = np.where(n >= cfg.warmup, np.clip(score, 0.0, 1.0), 0.0)
        scores[ok] = score

        # Learn: warm-up uses the running average (rate 1/(n+1)) so early samples are not over-weighted.
        a = np.maximum(cfg.alpha, 1.0 / (n + 1))
        limit = cfg.clip * std
        r = np.where(n >= cfg.warmup, np.clip(resid, -limit, limit), resid)
        self.mean[s] = mean + a * r
        self.var[s] = np.where(first, 0.0, (1 - a) * (var + a * r * r))
        la = np.maximum(cfg.long_alpha, 1.0 / (n + 1))
        ld = short - lmean
        self.long_mean[s] = lmean + la * ld
        self.long_var[s] = np.where(first, 0.0, (1 - la) * (self.long_var[s] + la * ld * ld))
        self.short[s] = short
        self.count[s] = n + 1
        return scores

    def run(self, values: np.ndarray) -> np.ndarray:
        """Score one whole series in a fresh slot of its own (convenience for tests and benches)."""
        slot = np.array([self.n_slots])
        return np.array([self.update(slot, np.array([v]))[0] for v in np.asarray(values, dtype=np.float64)])

    def state(self) -> dict[str, object]:
        """A copy of the state, keyed by field, for checkpoints and sharding."""
        out: dict[str, object] = {f: getattr(self, f).copy() for f in _FIELDS}
        out["config"] = asdict(self.config)
        return out

    @classmethod
    def from_state(cls, state: dict[str, object]) -> BaselineDetector:
        cfg = state.get("config")
        det = cls(0, BaselineConfig(**cfg) if isinstance(cfg, dict) else None)
        for f in _FIELDS:
            setattr(det, f, np.array(state[f]).copy())
        return det
