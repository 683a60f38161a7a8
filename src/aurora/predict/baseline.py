"""Aurora's baseline failure predictor: time to breach from a robust linear trend.

For series that creep towards a known limit (memory working set vs the memory limit, disk used vs
capacity, open DB connections vs the pool size, a model's accuracy vs its floor) it fits a Theil-Sen
line to a trailing window (default 1 h) and projects when the line crosses the limit. A prediction is
issued when that crossing lies within the horizon (default 6 h) *and* the slope's confidence interval
excludes zero (a trend, not noise). The interval of the ETA comes from the slope's bounds (Sen's
distribution-free interval, as ``scipy.stats.theilslopes`` computes it): the fastest plausible slope
gives ``eta_low``, the slowest ``eta_high``.

It is deliberately simple; it is the bar the real forecaster has to clear. It shares the stage's
rules: pure (arrays in, arrays and records out), causal (a fit at ``now`` reads only samples at or
before ``now``), deterministic, and vectorised over series (a ``series x window`` matrix at once).

Known limits of the baseline: a straight line only (no seasonality, no curvature); Sen's interval
assumes independent residuals, so autocorrelated noise makes it too narrow; right after a trend
begins, the window still holds the flat part and the slope is underestimated (ETA too late).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtri

from aurora.predict.limits import LIMITS, LimitedSeries, limit_columns

__all__ = ["LIMITS", "LimitedSeries", "PredictConfig", "TrendFit", "limit_columns", "predict_breaches", "theil_sen",
           "thin"]


@dataclass(frozen=True)
class PredictConfig:
    window_s: float = 3600.0  # trailing window the trend is fitted on
    horizon_s: float = 6 * 3600.0  # predict only breaches this close
    max_points: int = 61  # the window is thinned (anchored at now) to at most this many samples
    min_points: int = 20  # fewer valid samples in the window: no fit
    min_span_ratio: float = 0.5  # the valid samples must span at least this share of the window
    confidence: float = 0.95  # of the slope's interval (and so of the ETA's)


@dataclass
class TrendFit:
    """Per-series arrays (length S) of one fit at ``now``; NaN where there was no fit."""

    now: float
    slope: np.ndarray  # units per second
    slope_low: np.ndarray
    slope_high: np.ndarray
    level: np.ndarray  # the fitted line's value at ``now``
    n_points: np.ndarray
    since: np.ndarray  # time of the oldest sample used


def thin(times: np.ndarray, values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep every k-th column counted back from the newest, so at most ``max_points`` remain (causal:
    which samples are kept depends only on the window's length, anchored at its newest sample)."""
    w = times.shape[-1]
    if w <= max_points:
        return times, values
    stride = -(-w // max_points)
    idx = np.arange(w - 1, -1, -stride)[::-1]
    return times[idx], values[..., idx]


def theil_sen(times: np.ndarray, values: np.ndarray, now: float, confidence: float = 0.95) -> TrendFit:
    """Theil-Sen slope, Sen's confidence bounds and the robust level at ``now`` for each row of
    ``values`` (S x W, NaN = missing) sampled at ``times`` (W,). Rows with fewer than 3 valid samples
    get NaN."""
    t = np.asarray(times, dtype=np.float64) - now
    y = np.atleast_2d(np.asarray(values, dtype=np.float64))
    s, w = y.shape
    i, j = np.triu_indices(w, k=1)
    dt = t[j] - t[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        slopes = (y[:, j] - y[:, i]) / dt  # S x P; NaN where either sample is missing
    slopes[:, dt <= 0] = np.nan
    slopes.sort(axis=1)  # NaN last
    n_pairs = np.isfinite(slopes).sum(axis=1)
    valid = np.isfinite(y)
    m = valid.sum(axis=1).astype(np.float64)
    ok = (m >= 3) & (n_pairs > 0)
    last = np.maximum(n_pairs - 1, 0)
    lo_mid = np.minimum((n_pairs - 1) // 2, last)
    hi_mid = np.minimum(n_pairs // 2, last)

    def at(k: np.ndarray) -> np.ndarray:
        return np.take_along_axis(slopes, k[:, None].astype(np.int64), axis=1)[:, 0]

    slope = 0.5 * (at(lo_mid) + at(hi_mid))
    # Sen (1968): the interval's ends are order statistics of the pairwise slopes, C = z * sd(Kendall's S).
    z = float(ndtri(0.5 + confidence / 2))
    c = z * np.sqrt(m * (m - 1) * (2 * m + 5) / 18.0)
    k_lo = np.clip(np.round((n_pairs - c) / 2.0) - 1, 0, last).astype(np.int64)  # as scipy's theilslopes
    k_hi = np.clip(np.round((n_pairs + c) / 2.0), 0, last).astype(np.int64)
    slope_low, slope_high = at(k_lo), at(k_hi)
    with np.errstate(invalid="ignore"):
        resid = np.where(valid, y - np.where(np.isfinite(slope), slope, 0.0)[:, None] * t[None, :], np.nan)
    level = np.full(s, np.nan)
    if ok.any():
        level[ok] = np.nanmedian(resid[ok], axis=1)
    since = np.where(valid.any(axis=1), np.asarray(times, dtype=np.float64)[np.argmax(valid, axis=1)], np.nan)
    nan = np.full(s, np.nan)
    return TrendFit(
        now=float(now),
        slope=np.where(ok, slope, nan),
        slope_low=np.where(ok, slope_low, nan),
        slope_high=np.where(ok, slope_high, nan),
        level=level,
        n_points=m.astype(np.int64),
        since=since,
    )


def predict_breaches(
    times: np.ndarray,
    values: np.ndarray,
    limits: np.ndarray | float,
    now: float,
    direction: np.ndarray | int = 1,
    config: PredictConfig | None = None,
) -> list[dict[str, Any]]:
    """Predictions for the series (rows of ``values``, S x W at ``times``) whose trend reaches its limit
    within the horizon. Only samples with ``now - window_s < time <= now`` are read.

    Each record: ``{series, eta, eta_low, eta_high, slope, slope_low, slope_high, current, observed,
    limit, since, n_points, direction}`` (times in the unit of ``times``, rates per that unit). ``series``
    is the row index. A series already past its limit gets ``eta = now``.
    """
    cfg = config or PredictConfig()
    times = np.asarray(times, dtype=np.float64)
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    s = values.shape[0]
    lim = np.broadcast_to(np.asarray(limits, dtype=np.float64), (s,))
    sign = np.broadcast_to(np.asarray(direction, dtype=np.float64), (s,))
    keep = (times <= now) & (times > now - cfg.window_s)
    t_w, y_w = thin(times[keep], values[:, keep], cfg.max_points)
    if t_w.size < 3:
        return []
    fit = theil_sen(t_w, y_w, now, cfg.confidence)
    # Work in "distance to the limit shrinks" coordinates: g = sign * slope > 0 means approaching.
    g, g_lo, g_hi = sign * fit.slope, sign * fit.slope_low, sign * fit.slope_high
    g_slow = np.minimum(g_lo, g_hi)  # the bounds swap when the sign flips
    g_fast = np.maximum(g_lo, g_hi)
    gap = sign * (lim - fit.level)  # > 0: not yet breached
    valid = np.isfinite(y_w)
    span = np.where(valid.any(axis=1), t_w[-1] - fit.since, 0.0)
    enough = (fit.n_points >= cfg.min_points) & (span >= cfg.min_span_ratio * cfg.window_s) & np.isfinite(lim)
    with np.errstate(invalid="ignore", divide="ignore"):
        eta = np.where(gap <= 0, now, now + gap / g)
        eta_low = np.where(gap <= 0, now, now + gap / g_fast)
        eta_high = np.where(gap <= 0, now, np.where(g_slow > 0, now + gap / g_slow, np.inf))
        issue = enough & (g_slow > 0) & (eta - now <= cfg.horizon_s)
    last_obs = np.full(s, np.nan)
    has = valid.any(axis=1)
    w_last = valid.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)
    last_obs[has] = y_w[has, w_last[has]]
    out: list[dict[str, Any]] = []
    for r in np.flatnonzero(issue):
        out.append({
            "series": int(r),
            "eta": float(eta[r]),
            "eta_low": float(eta_low[r]),
            "eta_high": float(eta_high[r]),
            "slope": float(fit.slope[r]),
            "slope_low": float(fit.slope_low[r]),
            "slope_high": float(fit.slope_high[r]),
            "current": float(fit.level[r]),
            "observed": float(last_obs[r]),
            "limit": float(lim[r]),
            "since": float(fit.since[r]),
            "n_points": int(fit.n_points[r]),
            "direction": int(sign[r]),
        })
    return out
