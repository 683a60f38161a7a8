"""The likelihood layer's per-element update, fused into one compiled loop (numba).

The NumPy version of this update makes some fifty passes over a (series x analyzers) block per batch, and
at 10,000 series that memory traffic is most of the detector's time. One loop that reads each state cell
once and writes it once does the same arithmetic in a fraction of it. Semantics are those of
``Likelihood.update``: a track scores only when ready and past its warm-up, learns only when ready.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@njit(cache=True, inline="always")
def log_upper_tail(w: float) -> float:
    """log Q(w), the Gaussian upper tail, for w > 0: erfc while it is representable, then its asymptotic series."""
    if w < 25.0:
        return math.log(0.5 * math.erfc(w / math.sqrt(2.0)))
    r = 1.0 / (w * w)
    return -0.5 * w * w - math.log(w) - _HALF_LOG_2PI + math.log1p(-r + 3.0 * r * r - 15.0 * r * r * r)


@njit(cache=True)
def update_tracks(slots: np.ndarray, z: np.ndarray, ready: np.ndarray, n: np.ndarray, short: np.ndarray,
                  mean: np.ndarray, var: np.ndarray, record: np.ndarray, short_alpha: float, long_alpha: float,
                  warmup: int, min_std: float, tail_scale: float, decay: float, max_z: float,
                  log_p: np.ndarray, score: np.ndarray) -> None:
    log_q1 = log_upper_tail(1.0)
    floor_score = -math.expm1(log_q1 / tail_scale)
    for i in range(slots.shape[0]):
        s = slots[i]
        for j in range(z.shape[1]):
            nn = n[s, j]
            zz = float(np.float32(min(z[i, j], max_z)))
            sh = zz if short_alpha == 1.0 or nn == 0 else (1.0 - short_alpha) * short[s, j] + short_alpha * zz
            mu = float(mean[s, j])
            v = float(var[s, j])
            ok = ready[i, j]
            lp = 0.0
            sc = 0.0
            if ok and nn >= warmup:
                w = (sh - mu) / (math.sqrt(v) + min_std)
                if w > 1.0:
                    lp = log_upper_tail(w)
                    sc = -math.expm1(lp / tail_scale)
                else:
                    lp = log_q1
                    sc = floor_score
            if decay > 0.0:
                rec = record[s, j] * decay
                sc *= min(sh / (rec + 1e-12), 1.0)
                if ok:
                    record[s, j] = max(rec, sh)
            if ok:
                a = max(long_alpha, 1.0 / (nn + 1))
                d = sh - mu
                mean[s, j] = mu + a * d
                var[s, j] = 0.0 if nn == 0 else (1.0 - a) * (v + a * d * d)
                short[s, j] = sh
                if nn < 2147483647:
                    n[s, j] = nn + 1
            log_p[i, j] = lp
            score[i, j] = min(max(sc, 0.0), 1.0)
