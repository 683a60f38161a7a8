"""Aurora's trend forecaster: time to breach of a known limit, with a calibrated ETA interval.

Pure and columnar: arrays in (``Blocks``, a ``series x window`` matrix of 1-min block statistics over
4 h; the limits; which series have an active prediction; optionally daily profiles), arrays and records
out. Causal (a forecast at ``now`` reads only blocks that end at or before ``now``) and deterministic
(no randomness, no wall clock). Every step is NumPy over the series axis; the only Python loops run
over the five fit windows.

Method, per series:

1. **Towards the limit.** Values become "distance covered towards the limit" (``d = direction * value``),
   so rising to a ceiling and falling to a floor are one case.
2. **Screen** (every series, every evaluation; 12 blocks, on the stored float32 ring): could the
   fastest rise seen over any fit window (the higher of the two newest block means less the lower of
   the window's two oldest), extrapolated as far as the issue rules allow, take the newest extreme to the
   limit? Only series that pass, or have an active prediction, get the full fit; a candidate without an
   active prediction is fitted at one evaluation in ``refit_every`` (staggered by row and event time),
   which bounds the cost when many series hover near their limit, for at most ``refit_every - 1``
   evaluations of delay before a first prediction.
3. **De-seasonalise.** With a daily profile (``season.daily_profile``, more than a day of history) the
   profile is subtracted before fitting and added back to the forecast: the breach is when trend + cycle
   reach the limit (found on a one-block grid ahead). Without one a daily rise cannot be told from a
   trend inside the window: the forecaster then predicts no further than ``horizon_no_profile_s``, widens
   the interval (the curvature term of step 7 counts double) and says so (``seasonality: "unknown"``).
4. **Resets and sawtooth.** A drop is an outlier among the block-to-block changes (beyond ``drop_z``
   robust sd of them, and at least ``drop_headroom_share`` of the headroom) that lasts: the median of the
   next three blocks stays below that of the previous three, so a spike is no drop. Two or more drops at
   a period of at most the largest group (16 min: GC) are a **sawtooth**: only fit windows whose points
   average at least one period are used (the trend across cycles), and the ETA is when the *peaks* (the
   line plus the envelope) reach the limit. A single drop, or drops further apart (log rotation, a
   cleanup, a restart), are **resets**: only the data after the last one is fitted; if the drop was not
   itself a breach (the series never came near the limit), the new rise must go beyond the old peak;
   with a period known, the breach must come before the next expected drop.
5. **Robust trend over nested windows.** Five windows ending now (15, 30, 60, 120, 240 min), each reduced
   to 15 points (count-weighted means of groups of 1, 2, 4, 8, 16 blocks), each fitted with Theil-Sen (a
   spike moves one point of 15). The fit starts at the shortest usable window and extends to the next
   longer one while its slope *and* its level now lie within ``consistency_z`` standard errors of both
   the current and the first window's (a longer window that straddles a change fits badly, so only the
   shorter windows' errors count, and the chain cannot drift). The first disagreement marks a change:
   the trend is "since" the hinge where the line meets the earlier level (or the start of the window).
6. **Quantised data** (most blocks unchanged: connection counts, queue depths) get half a quantum of
   level uncertainty and one quantum over the window of slope uncertainty (a line through a staircase is
   not known better), and breach when the tread, half a quantum above the line, reaches the limit.
7. **Uncertainty.** Residual scale (MAD, floored by the whole buffer's block noise, inflated by the
   residuals' lag-1 autocorrelation) gives the slope and level errors; the line's value ``h`` ahead has
   variance ``c (1/n + (h - t_mean)^2 / Stt) + M h^2`` where ``M`` is the model term: the squared
   difference between the chosen window's slope and its newest half's (a bending trend; weight
   ``model_z``, or ``model_z_no_profile``), at least ``(slope_sd_floor * slope)^2`` (no trend stays
   exactly linear for hours; the one constant calibrated on development seeds < 1000). The ETA interval
   is where the ``interval`` band of the line crosses the limit (closed form, a quadratic in ``h``):
   ``eta_low`` when the band's upper edge, raised by the envelope (how far the block extremes reach above
   the line over the newest 30 blocks: noise, a sawtooth's peaks, the treads of a staircase), first
   touches it; ``eta_high`` when the lower edge does (infinite when the slope is not significant at that
   level); never narrower than one block either way. ``P(breach within h)`` is the probability that the
   line at ``h`` is beyond the limit, for 30 min, 1 h, 2 h and 4 h (and the horizon: ``probability``).

Decision rules (``Forecast.state``; ``Forecast.reason`` says why not):

* **issue** (no active prediction): the window has enough points; the slope points at the limit with
  ``slope / se >= z_issue``; the point ETA is within the horizon (``horizon_s``, or
  ``horizon_no_profile_s`` without a daily profile) and no further ahead than ``extrapolate_ratio``
  times the span the trend has been seen over (a 15-minute rise does not predict a breach in 5 h); when
  there is earlier data after the last reset, the level has broken out of it (``breakout_z`` standard
  errors above its ``breakout_quantile`` of block extremes: a stationary sawtooth or a cycle back to old
  peaks is no trend; without that context, a window of at least an hour); with a known reset period,
  the breach comes before the next drop. A series whose robust level is already at or beyond its limit
  is issued with ``eta = now``.
* **keep** (active): the same with ``z_keep``, ``keep_horizon_ratio * horizon_s``, and no breakout or
  extrapolation test (hysteresis: a prediction does not flicker).
* **withdraw** (active, not kept): the trend stopped, turned, or its ETA moved beyond the horizon.
* **none** otherwise.

Known limits: without a daily profile a daily rise that would reach the limit within
``horizon_no_profile_s`` at its current pace is predicted (flagged ``seasonality: "unknown"``); a
sawtooth is recognised after its second drop, so the first cycles after a start look like resets;
across-cycle trends of sawtooth with periods above 16 min are not extrapolated (each cycle is judged on
its own, capped by the next expected drop).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from scipy.special import ndtr, ndtri

from aurora.predict.blocks import Blocks, blocks_from_samples
from aurora.predict.season import profile_at

STATES = ("none", "issue", "keep", "withdraw")
NONE, ISSUE, KEEP, WITHDRAW = range(4)
#: Why a fitted series got no prediction (``Forecast.reason``).
REASONS = ("predicted", "screened_out", "no_fit", "no_trend", "beyond_horizon", "too_short_to_extrapolate",
           "no_breakout", "before_next_drop", "deferred")
_MAD = 1.4826


@dataclass(frozen=True)
class TrendConfig:
    block_s: float = 60.0  # block length
    n_blocks: int = 240  # blocks in the window (4 h)
    fit_points: int = 15  # points per fit window (its blocks averaged in groups of 1, 2, 4, ...)
    horizon_s: float = 6 * 3600.0  # predict only breaches this close
    horizon_no_profile_s: float = 4 * 3600.0  # ... this close when no daily profile is known (a rise seen
    # without a day of context may be the rising half of a daily cycle, whose steep part lasts ~6 h)
    z_issue: float = 4.0  # slope / se needed to issue
    z_keep: float = 2.0  # ... to keep an active prediction
    keep_horizon_ratio: float = 1.5  # an active prediction is kept while its ETA is within this x horizon
    extrapolate_ratio: float = 4.0  # ETA at most this many times the span the trend was seen over
    interval: float = 0.9  # nominal coverage of [eta_low, eta_high]
    model_z: float = 1.0  # sd of the future slope = this x |window slope - its newest half's slope|
    model_z_no_profile: float = 2.0  # ... when no daily profile is known (the bend may be a daily cycle)
    slope_sd_floor: float = 0.02  # the future slope is uncertain by at least this share of it (calibrated)
    consistency_z: float = 3.0  # a longer window extends the fit while its slope and level agree this well
    min_group_share: float = 0.7  # a fit window needs this share of its points non-empty
    autocorr_max: float = 0.8  # cap of the lag-1 autocorrelation used to inflate the variance
    breakout_quantile: float = 0.95  # the level must exceed this quantile of the earlier extremes
    breakout_z: float = 2.0  # ... by this many standard errors of the level
    min_reference_s: float = 1800.0  # earlier data needed for the breakout test (else: window >= 1 h)
    drop_z: float = 8.0  # a drop is this many robust sd of the block-to-block changes below their median
    drop_headroom_share: float = 0.05  # ... and at least this share of the headroom to the limit
    envelope_quantile: float = 0.9  # of (block extreme - fitted line): how far the data reach up
    envelope_blocks: int = 30  # ... over the newest blocks of the fit window
    quantised_zero_share: float = 0.5  # this share of unchanged blocks or more: a staircase
    hinge_refits: int = 2  # refits of a trend that began inside its window, on the points after the hinge
    hinge_min_points: int = 6  # ... if that leaves at least this many
    probability_horizons_s: tuple[float, ...] = (1800.0, 3600.0, 7200.0, 14400.0)
    screen: bool = True  # False: fit every series (for tests of the screen)
    refit_every: int = 3  # a candidate without an active prediction is fitted at one evaluation in this many

    @property
    def window_s(self) -> float:
        return self.block_s * self.n_blocks

    @property
    def n_windows(self) -> int:
        return math.floor(math.log2(self.n_blocks / self.fit_points) + 1e-9) + 1

    def window_blocks(self) -> np.ndarray:
        return self.fit_points * 2 ** np.arange(self.n_windows)


@dataclass
class Forecast:
    """Per-series arrays (length S) of one evaluation at ``now``; NaN where not fitted."""

    now: float
    state: np.ndarray  # int: NONE, ISSUE, KEEP, WITHDRAW
    reason: np.ndarray  # int index into REASONS
    fitted: np.ndarray  # bool: passed the screen and got a full fit
    eta: np.ndarray
    eta_low: np.ndarray
    eta_high: np.ndarray
    probabilities: np.ndarray  # S x len(probability_horizons_s)
    probability: np.ndarray  # P(breach within the horizon)
    slope: np.ndarray  # value units per second (signed: the series' own direction)
    slope_low: np.ndarray
    slope_high: np.ndarray
    slope_t: np.ndarray  # slope / its se, towards the limit
    current: np.ndarray  # fitted level at now
    observed: np.ndarray  # newest block's mean
    limit: np.ndarray
    since: np.ndarray  # when the trend started (hinge or start of the fit window)
    window_s: np.ndarray  # length of the fit window
    n_points: np.ndarray
    envelope: np.ndarray  # how far the block extremes reach beyond the line (towards the limit)
    sawtooth: np.ndarray  # bool
    period_s: np.ndarray  # sawtooth / reset period (NaN: none)
    reset_at: np.ndarray  # time of the last drop (NaN: none)
    seasonal: np.ndarray  # bool: a daily profile was subtracted
    direction: np.ndarray
    horizons_s: tuple[float, ...] = field(default_factory=tuple)

    @property
    def active(self) -> np.ndarray:
        """Series with a prediction after this evaluation (issued or kept)."""
        return (self.state == ISSUE) | (self.state == KEEP)


# --- small vectorised helpers (last axis, NaN ignored) --------------------------------------------
def _sorted_quantile(xs: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of rows already sorted with NaN last, ``n`` finite values per row."""
    pos = q * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    frac = pos - lo
    a = np.take_along_axis(xs, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(xs, hi[..., None], axis=-1)[..., 0]
    out = a + (b - a) * frac
    return np.where(n > 0, out, np.nan)


def _nanquantiles(x: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Several quantiles of each row from one sort (NaN ignored; a sort beats ``np.partition`` on rows
    this short)."""
    xs = np.sort(x, axis=-1)
    n = np.isfinite(xs).sum(axis=-1)
    return [_sorted_quantile(xs, n, q) for q in qs]


def _nanquantile(x: np.ndarray, q: float) -> np.ndarray:
    return _nanquantiles(x, (q,))[0]


def _nanmedian(x: np.ndarray) -> np.ndarray:
    return _nanquantile(x, 0.5)


def _ffill(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    idx = np.where(ok, np.arange(x.shape[-1]), 0)
    np.maximum.accumulate(idx, axis=-1, out=idx)
    return np.take_along_axis(x, idx, axis=-1)


def _med3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _theil_sen(t: np.ndarray, y: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    i, j = pairs
    with np.errstate(invalid="ignore", divide="ignore"):
        sl = (y[..., j] - y[..., i]) / (t[..., j] - t[..., i])
    return _nanmedian(sl)


class _Line(NamedTuple):
    b: np.ndarray  # slope (towards the limit, per second)
    a: np.ndarray  # level at now
    n: np.ndarray  # points used
    tbar: np.ndarray  # their mean time (relative to now)
    stt: np.ndarray  # their sum of squared time deviations
    se_b: np.ndarray  # slope se
    c_n: np.ndarray  # variance terms of the line ``h`` ahead: c_n + c_tt (h - tbar)^2
    c_tt: np.ndarray
    se_level: np.ndarray  # se of the level at now


def _line_fit(gt: np.ndarray, gy: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], noise_floor: np.ndarray,
              quantum: np.ndarray, scale_ref: np.ndarray, autocorr_max: float, min_span: float) -> _Line:
    """Theil-Sen line through the points (rows of ``gt``, ``gy``; NaN = missing) with its uncertainty:
    a MAD residual scale (floored by ``noise_floor``), inflated by the residuals' lag-1 autocorrelation,
    plus half a ``quantum`` in level and one quantum over the span in slope."""
    b = _theil_sen(gt, gy, pairs)
    a = _nanmedian(gy - b[:, None] * gt)
    r = gy - a[:, None] - b[:, None] * gt
    scale = np.fmax(_MAD * _nanmedian(np.abs(r)), noise_floor)
    rr = np.where(np.isfinite(r), r, 0.0)
    rho = np.clip((rr[:, 1:] * rr[:, :-1]).sum(axis=1) / np.maximum((rr * rr).sum(axis=1), 1e-300), 0.0,
                  autocorr_max)
    n = np.isfinite(gy).sum(axis=1)
    tb = np.nanmean(gt, axis=1)
    stt = np.nansum((gt - tb[:, None]) ** 2, axis=1)
    c2 = np.maximum(scale, 1e-12 * scale_ref) ** 2 * (1 + rho) / (1 - rho)
    span = np.nanmax(gt, axis=1) - np.nanmin(gt, axis=1)
    q_sl = (quantum / np.maximum(span, min_span)) ** 2
    c_tt = c2 / stt + q_sl
    c_n = c2 / np.maximum(n, 1) + (quantum / 2) ** 2
    return _Line(b, a, n, tb, stt, np.sqrt(c_tt), c_n, c_tt, np.sqrt(c_n + c_tt * tb**2))


def _roots(b: np.ndarray, g: np.ndarray, z: float, c_n: np.ndarray, c_tt: np.ndarray, tbar: np.ndarray,
           m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times ahead (>= 0) where the band ``b h - g +- z sqrt(V(h))`` of the line's distance beyond the
    limit (``g``: the gap now) reaches 0: (its upper edge first touches, its lower edge reaches; inf
    when it never does). ``V(h) = c_n + c_tt (h - tbar)^2 + m h^2``; the crossings are the roots of
    ``(b h - g)^2 = z^2 V(h)``: with a significant slope (``q2 > 0``) the smaller is the upper edge's and
    the larger the lower edge's; otherwise only the upper edge crosses (the positive root)."""
    z2 = z * z
    q2 = b * b - z2 * (c_tt + m)
    q1 = -2.0 * b * g + 2.0 * z2 * c_tt * tbar
    q0 = g * g - z2 * (c_n + c_tt * tbar * tbar)
    disc = np.maximum(q1 * q1 - 4.0 * q2 * q0, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sq = np.sqrt(disc)
        r_a = (-q1 - sq) / (2.0 * q2)
        r_b = (-q1 + sq) / (2.0 * q2)
        lin = -q0 / q1
    lo_r, hi_r = np.minimum(r_a, r_b), np.maximum(r_a, r_b)
    sig = q2 > 0
    pos_root = np.where(sig, lo_r, np.where(q2 < 0, hi_r, lin))
    first = np.where((g <= 0) | (q0 <= 0), 0.0, np.where(b > 0, pos_root, np.inf))
    last = np.where(g <= 0, 0.0, np.where((b > 0) & sig, hi_r, np.inf))
    first = np.where(np.isfinite(first), np.maximum(first, 0.0), np.inf)
    last = np.where(np.isfinite(last), np.maximum(last, 0.0), np.inf)
    return first, last


# --- the forecaster ---------------------------------------------------------------------------------
def screen(blocks: Blocks, limits: np.ndarray, config: TrendConfig, profile: np.ndarray | None = None
           ) -> np.ndarray:
    """Rows that may reach their limit within the horizon: a conservative test on 12 blocks (the
    highest extreme of the two newest blocks plus the fastest rise over any fit window, from the lower of
    its two oldest block means to the higher of the two newest, extrapolated as far as the issue rules
    allow; with a daily profile, against the limit less the most the cycle can add). Works on rows of the
    stored float32 ring in limit-relative units, without copies: this part runs for every series at every
    evaluation."""
    k = blocks.n_blocks
    wb = config.window_blocks()
    wb = wb[wb <= k]
    if wb.size == 0 or k < 2:
        return np.arange(blocks.n_series)
    order = np.arange(k) if blocks.order is None else blocks.order
    sign = blocks.direction.astype(np.float32)
    lim = (sign * (np.asarray(limits, dtype=np.float64) - blocks.offset)).astype(np.float32)
    if profile is not None:  # the most the cycle can add towards the limit
        lim = lim - np.nan_to_num(np.max(sign[:, None] * profile, axis=1)).astype(np.float32)

    def towards(col: int) -> np.ndarray:  # block mean, towards the limit, relative (NaN: empty)
        r = order[col]
        with np.errstate(invalid="ignore", divide="ignore"):
            m = blocks.total[r] / blocks.count[r]
        if profile is not None:
            m = m - np.nan_to_num(profile_at(profile, blocks.t[col:col + 1])[:, 0]).astype(np.float32)
        return m * sign

    top = np.maximum(blocks.ext[order[k - 1]], blocks.ext[order[k - 2]])  # row views: no copies
    if profile is not None:  # the extremes less the cycle (at most what it adds, conservatively)
        top = top - sign * np.nan_to_num(profile_at(profile, blocks.t[k - 1:k])[:, 0]).astype(np.float32)
    new = np.fmax(towards(k - 1), towards(k - 2))
    reach = top.copy()
    for w in wb.tolist():
        old = np.fmin(towards(k - w), towards(k - w + 1))
        span = w * config.block_s
        ahead = np.float32(min(config.horizon_s, config.extrapolate_ratio * span) / span)
        reach = np.fmax(reach, top + np.maximum(new - old, np.float32(0.0)) * ahead)
    return np.flatnonzero(reach >= lim)


def forecast(blocks: Blocks, limits: np.ndarray | float, config: TrendConfig | None = None,
             active: np.ndarray | None = None, profile: np.ndarray | None = None) -> Forecast:
    """Forecast every series of ``blocks`` against ``limits`` (S,) at ``blocks.now``.

    ``active`` (S, bool): series that had a prediction after the previous evaluation (keep/withdraw
    rules). ``profile`` (S x bins, value units, NaN rows = unknown): daily profiles from
    ``season.daily_profile``; subtracted before fitting and added back to the forecast (the breach is
    when trend + cycle reach the limit).
    """
    cfg = config or TrendConfig()
    s, k, now = blocks.n_series, blocks.n_blocks, blocks.now
    lim = np.broadcast_to(np.asarray(limits, dtype=np.float64), (s,)).astype(np.float64)
    act = np.zeros(s, bool) if active is None else np.asarray(active, dtype=bool)
    sign_all = blocks.direction.astype(np.float64)
    hz = tuple(cfg.probability_horizons_s)
    nan = np.full(s, np.nan)
    out = Forecast(now=now, state=np.zeros(s, np.int64), reason=np.ones(s, np.int64), fitted=np.zeros(s, bool),
                   eta=nan.copy(), eta_low=nan.copy(), eta_high=nan.copy(), probabilities=np.full((s, len(hz)), np.nan),
                   probability=nan.copy(), slope=nan.copy(), slope_low=nan.copy(), slope_high=nan.copy(),
                   slope_t=nan.copy(), current=nan.copy(), observed=nan.copy(), limit=lim.copy(), since=nan.copy(),
                   window_s=nan.copy(), n_points=np.zeros(s, np.int64), envelope=nan.copy(),
                   sawtooth=np.zeros(s, bool), period_s=nan.copy(), reset_at=nan.copy(),
                   seasonal=np.zeros(s, bool) if profile is None else np.isfinite(profile).all(axis=1),
                   direction=blocks.direction.copy(), horizons_s=hz)
    if cfg.screen:
        cand = np.union1d(screen(blocks, lim, cfg, profile), np.flatnonzero(act)).astype(np.int64)
        if cfg.refit_every > 1:  # staggered by row and event time: deterministic, and every candidate
            turn = math.floor(now / blocks.block_s) % cfg.refit_every  # gets its turn
            now_due = act[cand] | ((cand + turn) % cfg.refit_every == 0)
            out.reason[cand[~now_due]] = REASONS.index("deferred")
            cand = cand[now_due]
    else:
        cand = np.arange(s)
    if cand.size == 0:
        return out
    c = cand.size
    mean, ext, cnt, t = blocks.take(cand)
    mean_raw = mean
    seas_known = out.seasonal[cand]
    sign = sign_all[cand][:, None]
    bs = blocks.block_s
    h_grid = np.arange(0.0, cfg.keep_horizon_ratio * cfg.horizon_s + bs / 2, bs)  # future, one block apart
    hs = np.asarray((*hz, cfg.horizon_s), dtype=np.float64)
    if profile is not None:
        pc = np.asarray(profile, dtype=np.float64)[cand]
        mean = mean - np.nan_to_num(profile_at(pc, t))
        ext = ext - np.nan_to_num(profile_at(pc, t))
        s_fut = sign * np.nan_to_num(profile_at(pc, now + h_grid))  # the cycle ahead, towards the limit
        s_hs = sign * np.nan_to_num(profile_at(pc, now + hs))
        cyclic = seas_known & (np.nan_to_num(np.abs(pc)).max(axis=1) > 0)
    else:
        s_fut = np.zeros((c, h_grid.size))
        s_hs = np.zeros((c, hs.size))
        cyclic = np.zeros(c, bool)
    dm, de = sign * mean, sign * ext
    L = sign[:, 0] * lim[cand]
    tr = t - now  # times relative to now (<= 0)
    cols = np.arange(k)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows and windows give NaN
        has = cnt > 0
        first_col = np.where(has.any(axis=1), np.argmax(has, axis=1), k)

        # --- resets and sawtooth: a drop is an outlier among the block-to-block changes that lasts (the
        # median of the next 3 blocks stays below that of the previous 3: a spike is no drop) ----------
        f = _ffill(dm)
        fp = np.concatenate([f, np.repeat(f[:, -1:], 2, axis=1)], axis=1)  # edge-pad the newest blocks
        step = f[:, 1:] - f[:, :-1]  # change into column 1 + index
        centre = _nanmedian(step)
        # MAD, not the IQR: in a short sawtooth more than a quarter of the steps are (parts of) drops
        spread = _MAD * _nanmedian(np.abs(step - centre[:, None]))
        low, level_med = _nanquantiles(dm, (0.05, 0.5))
        thr = np.fmax(cfg.drop_z * spread, cfg.drop_headroom_share * np.abs(L - level_med))
        thr = np.where(thr > 0, thr, np.inf)
        med_before = np.full_like(step, np.nan)
        med_before[:, 2:] = _med3(f[:, 0:k - 3], f[:, 1:k - 2], f[:, 2:k - 1])  # columns q-3..q-1
        med_after = _med3(fp[:, 1:k], fp[:, 2:k + 1], fp[:, 3:k + 2])  # columns q..q+2
        is_drop = ((step - centre[:, None]) < -thr[:, None]) & ((med_after - med_before) < -0.5 * thr[:, None])
        run_start = is_drop & ~np.concatenate([np.zeros((c, 1), bool), is_drop[:, :-1]], axis=1)
        n_drops = run_start.sum(axis=1)
        nst = step.shape[1]
        first_drop = np.where(n_drops > 0, np.argmax(run_start, axis=1), -1) + 1  # as a column
        last_drop = np.where(n_drops > 0, nst - 1 - np.argmax(run_start[:, ::-1], axis=1), -1) + 1
        last_end = np.where(n_drops > 0, nst - 1 - np.argmax(is_drop[:, ::-1], axis=1), -1) + 1
        after_col = np.where(n_drops > 0, last_end, 0)  # the first column after the last drop
        period_b = np.where(n_drops >= 2, (last_drop - first_drop) / np.maximum(n_drops - 1, 1), np.nan)
        max_group = 2 ** (cfg.n_windows - 1)
        saw = (n_drops >= 2) & (period_b <= max_group)
        reset = (n_drops >= 1) & ~saw
        # was the last drop a breach and its restart (an OOM kill)? Then the next rise is judged on its own;
        # otherwise (a cleanup, a rotation) it has to go beyond the peaks seen before the drop
        pre_peak = np.full(c, -np.inf)
        pre_peak2 = np.full(c, -np.inf)  # the second highest: one spike is no peak
        n_pre = np.zeros(c, np.int64)
        dr = np.flatnonzero(n_drops > 0)
        if dr.size:
            pre = np.sort(np.where(cols[None, :] < after_col[dr, None], de[dr], np.nan), axis=1)
            n_pre[dr] = np.isfinite(pre).sum(axis=1)
            top1 = np.take_along_axis(pre, np.maximum(n_pre[dr] - 1, 0)[:, None], axis=1)[:, 0]
            top2 = np.take_along_axis(pre, np.maximum(n_pre[dr] - 2, 0)[:, None], axis=1)[:, 0]
            pre_peak[dr] = np.where(n_pre[dr] > 0, top1, -np.inf)
            pre_peak2[dr] = np.where(n_pre[dr] > 1, top2, pre_peak[dr])
        was_breach = pre_peak >= L - cfg.drop_headroom_share * np.abs(L - low)

        # block-level noise from the whole buffer (first differences; robust, and stable where the 15
        # residuals of a short window are not): a floor under each window's residual scale
        sigma_blk = np.where(np.isfinite(spread), spread, 0.0) / math.sqrt(2.0)
        diffs = np.diff(dm, axis=1)
        # quantised data (a staircase: connection counts, queue depths): most block-to-block changes are
        # exactly zero; the quantum is the typical non-zero change. A line through a staircase is not
        # known better than half a quantum in level and one quantum over the window in slope.
        n_diff = np.isfinite(diffs).sum(axis=1)
        zero_share = (diffs == 0).sum(axis=1) / np.maximum(n_diff, 1)
        stair = np.flatnonzero(zero_share >= cfg.quantised_zero_share)
        quantum = np.zeros(c)
        if stair.size:
            ds = diffs[stair]
            quantum[stair] = np.nan_to_num(_nanmedian(np.where(np.isfinite(ds) & (ds != 0), np.abs(ds), np.nan)))

        # --- groups and Theil-Sen for every window --------------------------------------------------
        p = cfg.fit_points
        pairs = np.triu_indices(p, k=1)
        wblocks = cfg.window_blocks()
        nw = int((wblocks <= k).sum())
        b_w = np.full((c, nw), np.nan)
        a_w = np.full((c, nw), np.nan)
        se_w = np.full((c, nw), np.nan)
        c_n_w = np.full((c, nw), np.nan)
        c_tt_w = np.full((c, nw), np.nan)
        tbar_w = np.full((c, nw), np.nan)
        sel_w = np.full((c, nw), np.nan)
        n_w = np.zeros((c, nw), np.int64)
        ok_w = np.zeros((c, nw), bool)
        gy_w = np.full((c, nw, p), np.nan)  # each window's points, for the refit after a hinge
        gt_w = np.full((c, nw, p), np.nan)
        dmz = np.where(has, dm, 0.0)
        scale_ref = np.abs(L) + np.abs(level_med)
        for j in range(nw):
            g = 2**j
            w = p * g
            sl = slice(k - w, k)
            gc = cnt[:, sl].reshape(c, p, g).sum(axis=2)
            gy = (dmz[:, sl] * cnt[:, sl]).reshape(c, p, g).sum(axis=2) / gc
            gt = (tr[sl][None, :] * cnt[:, sl]).reshape(c, p, g).sum(axis=2) / gc
            gy = np.where(gc > 0, gy, np.nan)
            gt = np.where(gc > 0, gt, np.nan)
            gy_w[:, j], gt_w[:, j] = gy, gt
            ln = _line_fit(gt, gy, pairs, sigma_blk / math.sqrt(g), quantum, scale_ref, cfg.autocorr_max, bs)
            b, n, stt = ln.b, ln.n, ln.stt
            b_w[:, j], a_w[:, j], tbar_w[:, j], n_w[:, j] = ln.b, ln.a, ln.tbar, ln.n
            se_w[:, j], c_n_w[:, j], c_tt_w[:, j], sel_w[:, j] = ln.se_b, ln.c_n, ln.c_tt, ln.se_level
            start_col = k - w
            allowed = n >= cfg.min_group_share * p
            allowed &= np.isfinite(b) & (stt > 0)
            # a sawtooth: only windows whose points average at least one period; a reset: after it only
            allowed &= ~saw | (g >= period_b)
            allowed &= ~reset | (start_col >= after_col)
            ok_w[:, j] = allowed

        # --- choose the window: shortest usable, extended while slopes agree ------------------------
        cur = np.full(c, -1)
        prev = np.full(c, -1)
        first_w = np.full(c, -1)
        stopped = np.zeros(c, bool)
        rows = np.arange(c)
        for j in range(nw):
            okj = ok_w[:, j]
            start = (cur < 0) & okj
            cj = np.maximum(cur, 0)
            # the longer window's (more precise) slope must fall inside the current one's interval: a
            # window that straddles a change fits badly, so its own se would make it agree with anything
            # ... and its level now must agree with the current one's (a trend that stopped or turned in
            # the newest window is not the longer window's line extrapolated past the newest data); both
            # against the current and the first (newest) window, so that the chain cannot drift
            agree = np.ones(c, bool)
            for ref in (cj, np.maximum(first_w, 0)):
                agree &= np.abs(b_w[:, j] - b_w[rows, ref]) <= cfg.consistency_z * se_w[rows, ref]
                agree &= np.abs(a_w[:, j] - a_w[rows, ref]) <= cfg.consistency_z * sel_w[rows, ref]
            extend = (cur >= 0) & ~stopped & okj & agree
            stopped |= (cur >= 0) & ~extend & okj
            prev = np.where(extend, cur, prev)
            first_w = np.where(start, j, first_w)
            cur = np.where(start | extend, j, cur)
        fit = cur >= 0
        cj = np.maximum(cur, 0)
        b = b_w[rows, cj].copy()
        a = a_w[rows, cj].copy()
        se_b = se_w[rows, cj].copy()
        c_n = c_n_w[rows, cj].copy()
        c_tt = c_tt_w[rows, cj].copy()
        tbar = tbar_w[rows, cj].copy()
        npts = n_w[rows, cj].copy()
        win_blocks = wblocks[cj]
        b_prev = np.where(prev >= 0, b_w[rows, np.maximum(prev, 0)], b)

        # --- the earlier range (after the last reset): level before the trend, breakout reference --------
        ref_lo = np.where(reset & was_breach, after_col, 0)  # otherwise the earlier peaks are the reference
        ref_hi = k - win_blocks
        in_ref = (cols[None, :] >= ref_lo[:, None]) & (cols[None, :] < ref_hi[:, None]) & has
        n_ref = in_ref.sum(axis=1)
        tstat = np.where(se_b > 0, b / se_b, np.where(b > 0, np.inf, 0.0))
        # only rows with a trend that may be issued or kept need it (two sorts of the window)
        maybe = np.flatnonzero(fit & (b > 0) & (tstat >= min(cfg.z_issue, cfg.z_keep)))
        q_ref = np.full(c, np.nan)
        ref_level = np.full(c, np.nan)
        if maybe.size:
            q_ref[maybe] = _nanquantile(np.where(in_ref[maybe], de[maybe], np.nan), cfg.breakout_quantile)
            ref_level[maybe] = _nanmedian(np.where(in_ref[maybe], dm[maybe], np.nan))
        ref_ok = (n_ref * bs >= cfg.min_reference_s) & np.isfinite(q_ref)
        win_start = now - win_blocks * bs

        # --- a trend that began inside the window: refit the points after the hinge ------------------------
        # (the line meets the earlier level there; the flat part before it would pull the slope down, and
        # the first predictions late). Twice: a steeper slope moves the hinge.
        for _ in range(cfg.hinge_refits):
            hinge = now - (a - ref_level) / b
            redo = np.flatnonzero(ref_ok & (b > 0) & np.isfinite(hinge) & (hinge > win_start + bs) & ~saw)
            if not redo.size:
                break
            gt_c = gt_w[redo, cj[redo]]
            gy_c = np.where(gt_c >= (hinge[redo] - now)[:, None], gy_w[redo, cj[redo]], np.nan)
            enough = np.isfinite(gy_c).sum(axis=1) >= cfg.hinge_min_points
            if not enough.any():
                break
            redo, gt_c, gy_c = redo[enough], gt_c[enough], gy_c[enough]
            g_c = (win_blocks[redo] // p).astype(np.float64)
            ln = _line_fit(gt_c, gy_c, pairs, sigma_blk[redo] / np.sqrt(g_c), quantum[redo], scale_ref[redo],
                           cfg.autocorr_max, bs)
            good = np.isfinite(ln.b) & (ln.b > 0)
            r_ = redo[good]
            b[r_], a[r_], se_b[r_], c_n[r_], c_tt[r_], tbar[r_], npts[r_] = (
                ln.b[good], ln.a[good], ln.se_b[good], ln.c_n[good], ln.c_tt[good], ln.tbar[good], ln.n[good])
        tstat = np.where(se_b > 0, b / se_b, np.where(b > 0, np.inf, 0.0))
        m_var = (np.where(seas_known, cfg.model_z, cfg.model_z_no_profile) * (b - b_prev)) ** 2
        m_var = np.maximum(m_var, (cfg.slope_sd_floor * b) ** 2)

        # --- envelope: how far the block extremes reach beyond the line -------------------------------
        # over the newest ``envelope_blocks`` of the fit window (noise, a sawtooth's peaks, the treads of
        # a staircase), less the trend's own move inside half a block
        ne = min(cfg.envelope_blocks, k)
        in_win = cols[None, -ne:] >= (k - np.minimum(win_blocks, ne))[:, None]
        line = a[:, None] + b[:, None] * tr[None, -ne:]
        r_ext = np.where(in_win & has[:, -ne:], de[:, -ne:] - line - np.maximum(b, 0.0)[:, None] * (bs / 2),
                         np.nan)
        env = np.maximum(_nanquantile(r_ext, cfg.envelope_quantile), 0.0)
        env = np.where(np.isfinite(env), env, 0.0)

        # --- breakout against the earlier range ---------------------------------------------------------
        long_win = win_blocks * bs >= 3600.0
        level_env = a + np.where(saw, env, 0.0)
        # after a drop that was no breach (a cleanup, a rotation), the rise must go beyond the old peak
        q_ref = np.where(reset & ~was_breach, np.fmax(q_ref, pre_peak2), q_ref)
        ref_ok |= reset & ~was_breach & (n_pre > 1)
        se_level = np.sqrt(c_n + c_tt * tbar**2)
        breakout = np.where(ref_ok, level_env - cfg.breakout_z * se_level > q_ref, reset | long_win | saw)

        # --- since when, span, ETA --------------------------------------------------------------------
        hinge = now - (a - ref_level) / b
        since = np.where(ref_ok & (b > 0) & np.isfinite(hinge), np.clip(hinge, now - k * bs, win_start), win_start)
        data_start = now - (k - first_col) * bs
        since = np.maximum(since, data_start)
        span = np.maximum(now - since, win_blocks * bs)
        # a sawtooth breaches with its peaks, a staircase with its treads (half a quantum above the line
        # through it), anything else with its level
        env_pt = np.where(saw, env, quantum / 2)
        gap = L - a - s_fut[:, 0]
        gap_pt = gap - env_pt
        with np.errstate(divide="ignore"):
            h_pt = np.where(gap_pt <= 0, 0.0, np.where(b > 0, gap_pt / b, np.inf))
        z = float(ndtri(0.5 + cfg.interval / 2))
        h_lo, _ = _roots(b, gap - env, z, c_n, c_tt, tbar, m_var)
        _, h_hi = _roots(b, gap, z, c_n, c_tt, tbar, m_var)
        if cyclic.any():  # trend + cycle against the limit: first crossings on the grid ahead
            cy = np.flatnonzero(cyclic)
            f = b[cy, None] * h_grid[None, :] - (L[cy, None] - a[cy, None] - s_fut[cy])
            sd = z * np.sqrt(c_n[cy, None] + c_tt[cy, None] * (h_grid[None, :] - tbar[cy, None]) ** 2
                             + m_var[cy, None] * h_grid[None, :] ** 2)

            def first(hit: np.ndarray) -> np.ndarray:
                return np.where(hit.any(axis=1), h_grid[np.argmax(hit, axis=1)], np.inf)

            h_pt[cy] = first(f + env_pt[cy, None] >= 0)
            h_lo[cy] = first(f + env[cy, None] + sd >= 0)
            h_hi[cy] = first(f - sd >= 0)
        # the ETA is not known better than one block either way
        h_lo = np.maximum(np.minimum(h_lo, h_pt - cfg.block_s), 0.0)
        h_hi = np.maximum(h_hi, h_pt + cfg.block_s)
        var_h = c_n[:, None] + c_tt[:, None] * (hs[None, :] - tbar[:, None]) ** 2 + m_var[:, None] * hs[None, :] ** 2
        mu_h = b[:, None] * hs[None, :] - (L - a - env_pt)[:, None] + s_hs
        probs = ndtr(mu_h / np.sqrt(np.maximum(var_h, 1e-300)))
        probs = np.where(gap_pt[:, None] <= 0, 1.0, probs)

        # --- decide ---------------------------------------------------------------------------------------
        next_drop = np.where(n_drops >= 2, last_drop + period_b, np.inf)  # column of the next drop
        next_drop_h = (next_drop - k) * bs + bs / 2
        cap_ok = ~(reset & (n_drops >= 2)) | (h_pt <= next_drop_h)
        breached = fit & (gap_pt <= 0)
        trend = fit & (b > 0)
        horizon = np.where(seas_known, cfg.horizon_s, min(cfg.horizon_s, cfg.horizon_no_profile_s))
        new_ok = (trend & (tstat >= cfg.z_issue) & (h_pt <= horizon)
                  & (h_pt <= cfg.extrapolate_ratio * span) & breakout & cap_ok) | breached
        keep_ok = (trend & (tstat >= cfg.z_keep) & (h_pt <= cfg.keep_horizon_ratio * cfg.horizon_s) & cap_ok) | breached
        was = act[cand]
        state = np.where(was, np.where(keep_ok, KEEP, WITHDRAW), np.where(new_ok, ISSUE, NONE))
        reason = np.select(
            [(state == ISSUE) | (state == KEEP), ~fit, ~trend | (tstat < cfg.z_issue), h_pt > horizon,
             h_pt > cfg.extrapolate_ratio * span, ~breakout, ~cap_ok],
            [0, 2, 3, 4, 5, 6, 7], default=3)
        # a withdrawal failed the keep rules: say which
        reason = np.where(state == WITHDRAW, np.select(
            [~fit, ~trend | (tstat < cfg.z_keep), h_pt > cfg.keep_horizon_ratio * cfg.horizon_s, ~cap_ok],
            [2, 3, 4, 7], default=3), reason)

    # --- back to the series' units ---------------------------------------------------------------------
    sg = sign[:, 0]
    zsl = z * np.sqrt(se_b**2 + m_var)
    out.state[cand] = state
    out.reason[cand] = reason
    out.fitted[cand] = fit
    out.eta[cand] = np.where(fit, now + h_pt, np.nan)
    out.eta_low[cand] = np.where(fit, now + h_lo, np.nan)
    out.eta_high[cand] = np.where(fit, now + h_hi, np.nan)
    out.probabilities[cand] = np.where(fit[:, None], probs[:, :-1], np.nan)
    out.probability[cand] = np.where(fit, probs[:, -1], np.nan)
    out.slope[cand] = np.where(fit, sg * b, np.nan)
    out.slope_low[cand] = np.where(fit, np.minimum(sg * (b - zsl), sg * (b + zsl)), np.nan)
    out.slope_high[cand] = np.where(fit, np.maximum(sg * (b - zsl), sg * (b + zsl)), np.nan)
    out.slope_t[cand] = np.where(fit, tstat, np.nan)
    out.current[cand] = np.where(fit, sg * (a + s_fut[:, 0]), np.nan)
    last_col = k - 1 - np.argmax(has[:, ::-1], axis=1)
    out.observed[cand] = np.where(has.any(axis=1), mean_raw[rows, last_col], np.nan)
    out.since[cand] = np.where(fit, since, np.nan)
    out.window_s[cand] = np.where(fit, win_blocks * bs, np.nan)
    out.n_points[cand] = np.where(fit, npts, 0)
    out.envelope[cand] = np.where(fit, env, np.nan)
    out.sawtooth[cand] = saw
    out.period_s[cand] = np.where(n_drops >= 2, period_b * bs, np.nan)
    out.reset_at[cand] = np.where(n_drops >= 1, t[np.clip(after_col, 0, k - 1)] - bs / 2, np.nan)
    return out


def _fmt_rate(per_s: float) -> str:
    for unit, mult in (("s", 1.0), ("min", 60.0), ("h", 3600.0)):
        v = per_s * mult
        if abs(v) >= 1 or unit == "h":
            return f"{v:+.4g}/{unit}"
    return f"{per_s:+.4g}/s"


def fmt_duration(sec: float) -> str:
    """'2 h 05 min', '7 min', 'never'."""
    if not math.isfinite(sec):
        return "never"
    sec = max(sec, 0.0)
    h, m = int(sec // 3600), round((sec % 3600) / 60)
    if m == 60:
        h, m = h + 1, 0
    return f"{h} h {m:02d} min" if h else f"{m} min"


def records(fc: Forecast, states: tuple[int, ...] = (ISSUE, KEEP)) -> list[dict[str, Any]]:
    """One record per series whose state is in ``states`` (default: has a prediction)."""
    out: list[dict[str, Any]] = []
    hz = fc.horizons_s
    names = [(f"{int(h // 3600)}h" if h >= 3600 and h % 3600 == 0 else f"{int(h // 60)}m") for h in hz]
    for r in np.flatnonzero(np.isin(fc.state, states)).tolist():
        now = fc.now
        eta, lo, hi = float(fc.eta[r]), float(fc.eta_low[r]), float(fc.eta_high[r])
        rec: dict[str, Any] = {
            "series": int(r),
            "state": STATES[int(fc.state[r])],
            "eta": eta,
            "eta_low": lo,
            "eta_high": hi,
            "probability": float(fc.probability[r]),
            "probabilities": {n: float(fc.probabilities[r, i]) for i, n in enumerate(names)},
            "slope": float(fc.slope[r]),
            "slope_low": float(fc.slope_low[r]),
            "slope_high": float(fc.slope_high[r]),
            "current": float(fc.current[r]),
            "observed": float(fc.observed[r]),
            "limit": float(fc.limit[r]),
            "since": float(fc.since[r]),
            "window_s": float(fc.window_s[r]),
            "n_points": int(fc.n_points[r]),
            "envelope": float(fc.envelope[r]),
            "sawtooth": bool(fc.sawtooth[r]),
            "period_s": None if not np.isfinite(fc.period_s[r]) else float(fc.period_s[r]),
            "reset_at": None if not np.isfinite(fc.reset_at[r]) else float(fc.reset_at[r]),
            "seasonality": "profile" if fc.seasonal[r] else "unknown",
            "direction": int(fc.direction[r]),
            "model": "trend",
        }
        toward = "rising" if rec["direction"] > 0 else "falling"
        rec["explanation"] = (
            f"{toward} {_fmt_rate(rec['slope'])} since t={rec['since']:.0f} (fitted over "
            f"{rec['window_s'] / 60:.0f} min{', sawtooth peaks' if rec['sawtooth'] else ''}); now "
            f"{rec['current']:.6g} against the limit {rec['limit']:.6g}; breach in {fmt_duration(eta - now)} "
            f"(between {fmt_duration(lo - now)} and {fmt_duration(hi - now)}), "
            f"P(within 1 h) {rec['probabilities'].get('1h', float('nan')):.0%}"
            + ("" if rec["seasonality"] == "profile" else "; no daily profile yet (interval widened)"))
        out.append(rec)
    return out


def predict_breaches(times: np.ndarray, values: np.ndarray, limits: np.ndarray | float, now: float,
                     direction: np.ndarray | int = 1, config: TrendConfig | None = None,
                     active: np.ndarray | None = None, profile: np.ndarray | None = None
                     ) -> list[dict[str, Any]]:
    """Convenience as ``baseline.predict_breaches``: raw samples (S x W at ``times``) to records."""
    cfg = config or TrendConfig()
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    blk = blocks_from_samples(times, values, now, direction, cfg.block_s, cfg.n_blocks)
    return records(forecast(blk, limits, cfg, active=active, profile=profile))
