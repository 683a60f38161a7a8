"""Causal features of limited series for the learned risk models, columnar over series.

``compute`` turns one evaluation's ``Blocks`` (the 1-min blocks of ``aurora.predict.blocks``, the same
window the trend forecaster reads, ending at ``now``) plus the limits, the series' last change events
and, optionally, the trend model's own P(breach within 4 h) into a ``series x FEATURES`` matrix. It
reads nothing after ``now``: the blocks end at ``now`` and the event times passed in are at or before it.
Every step is NumPy over the series axis; the only Python loop runs over the five slope windows.

Everything is expressed "towards the limit" (``d = direction * value``, as in ``trend``) and relative to
the headroom, so that memory bytes, disk bytes, connection counts and a model's accuracy share one scale:

* ``headroom``: (limit - current level) / |limit|, the level being the median of the newest 5 blocks;
  ``peak_headroom`` the same for the highest block extreme of the newest 15 blocks;
* ``rate_{w}``: least-squares slope of the block means over the last ``w`` minutes (15, 30, 60, 120,
  240), as the share of the headroom covered per hour (clipped to +-10);
* ``tte_{w}``: log10 of the minutes to the limit at that slope (1 min .. 48 h; 48 h when not rising);
* ``tstat_60``: the 60-minute slope over its standard error (clipped to +-20);
* ``volatility``: log10 of the robust sd of the block-to-block changes over the last hour, times
  sqrt(60), over the headroom (how far noise alone moves the series in an hour, relative);
* ``since_drop``: minutes since the last drop (a step down beyond 8 robust sd of the changes and 5 %
  of the headroom: a restart, a cleanup, a GC), over 240 (1 when none in the window);
* ``anomaly_z``: robust z of the newest block mean against the blocks before the newest 15 minutes
  (median and MAD), towards the limit, clipped to +-20;
* ``breakout``: (level - 95th percentile of the block extremes older than an hour) / headroom;
* ``flat_share``: the share of unchanged block-to-block steps (a staircase: connection counts);
* ``coverage``: the share of the 4-hour window with data (a young series has little history);
* ``since_change``, ``since_restart``: log10 of the minutes (1 .. 1440) since the last deployment,
  config change, rollback, scale or feature flag event, and since the last restart, of the series'
  service (1440 when none);
* ``trend_p4h``: the trend forecaster's P(breach within 4 h) (0 where its screen rules a breach out).

NaN (no data) becomes 0 in every feature, so every model sees the same matrix.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aurora.ingest.events import ChangeEvent
from aurora.predict.blocks import Blocks, blocks_from_samples
from aurora.predict.trend import REASONS, TrendConfig, forecast

WINDOWS_MIN = (15, 30, 60, 120, 240)
FEATURES: tuple[str, ...] = (
    "headroom", "peak_headroom",
    *(f"rate_{w}" for w in WINDOWS_MIN), *(f"tte_{w}" for w in WINDOWS_MIN),
    "tstat_60", "volatility", "since_drop", "anomaly_z", "breakout", "flat_share", "coverage",
    "since_change", "since_restart", "trend_p4h",
)
CHANGE_KINDS = ("deployment", "config_change", "rollback", "scale", "feature_flag")
RESTART_KINDS = ("restart",)
_MAD = 1.4826
_DEFERRED = REASONS.index("deferred")


@dataclass(frozen=True)
class FeatureConfig:
    block_s: float = 60.0
    n_blocks: int = 240  # the 4-hour window, as the trend forecaster's
    horizon_s: float = 4 * 3600.0  # the trend probability feature is P(breach within this)
    level_blocks: int = 5
    peak_blocks: int = 15
    recent_blocks: int = 15  # the anomaly feature compares the newest block with the blocks before these
    breakout_blocks: int = 60  # the breakout reference is older than this
    drop_z: float = 8.0
    drop_headroom_share: float = 0.05
    headroom_floor: float = 0.005  # headroom used as a divisor is at least this share of |limit|
    max_minutes: float = 2880.0  # time to the limit is capped at 48 h
    trend_probability: bool = True  # False: trend_p4h is 0 (tests of the other features)


def _nanq(x: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of each row, NaN ignored (NaN for an all-NaN row): one sort, no masked arrays."""
    xs = np.sort(x, axis=1)  # NaN last
    n = np.isfinite(xs).sum(axis=1)
    pos = q * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    a = np.take_along_axis(xs, lo[:, None], axis=1)[:, 0]
    b = np.take_along_axis(xs, hi[:, None], axis=1)[:, 0]
    return np.where(n > 0, a + (b - a) * (pos - lo), np.nan)


def _nanmedian(x: np.ndarray) -> np.ndarray:
    return _nanq(x, 0.5)


def _log_minutes(seconds: np.ndarray, hi: float) -> np.ndarray:
    return np.log10(np.clip(np.nan_to_num(seconds / 60.0, nan=hi, posinf=hi), 1.0, hi))


def compute(blocks: Blocks, limits: np.ndarray | float, last_change: np.ndarray | None = None,
            last_restart: np.ndarray | None = None, trend_p: np.ndarray | None = None,
            config: FeatureConfig | None = None) -> np.ndarray:
    """``series x len(FEATURES)`` features at ``blocks.now`` (see the module docstring).

    ``last_change`` / ``last_restart`` (S,): event time of the series' service's newest change / restart
    at or before now (NaN: none); ``trend_p`` (S,): the trend model's P(breach within 4 h) (NaN or None: 0).
    """
    cfg = config or FeatureConfig()
    s, k, now = blocks.n_series, blocks.n_blocks, blocks.now
    mean, ext, _cnt, t = blocks.take()
    sign = blocks.direction.astype(np.float64)[:, None]
    d, de = sign * mean, sign * ext
    lim = np.broadcast_to(np.asarray(limits, dtype=np.float64), (s,))
    L = sign[:, 0] * lim
    scale = np.maximum(np.abs(L), 1e-12)
    has = np.isfinite(d)
    out = np.zeros((s, len(FEATURES)))
    col = {n: i for i, n in enumerate(FEATURES)}
    with np.errstate(invalid="ignore", divide="ignore"):
        level = _nanmedian(d[:, -cfg.level_blocks:])
        level = np.where(np.isfinite(level), level, _nanmedian(d))
        head = L - level
        head_abs = np.maximum(head, cfg.headroom_floor * scale)
        out[:, col["headroom"]] = head / scale
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            peak = np.nanmax(de[:, -cfg.peak_blocks:], axis=1)
        out[:, col["peak_headroom"]] = (L - peak) / scale

        tr = (t - now)[None, :]
        y0 = np.where(has, d, 0.0)
        for w in WINDOWS_MIN:
            wb = min(round(w * 60.0 / cfg.block_s), k)
            m = has[:, -wb:].astype(np.float64)
            x, y = np.broadcast_to(tr[:, -wb:], m.shape), y0[:, -wb:]
            n = m.sum(axis=1)
            xm = (m * x).sum(axis=1) / n
            ym = (m * y).sum(axis=1) / n
            dx = (x - xm[:, None]) * m
            sxx = (dx * dx).sum(axis=1)
            slope = (dx * (y - ym[:, None])).sum(axis=1) / sxx
            slope = np.where((n >= 3) & (sxx > 0), slope, 0.0)
            out[:, col[f"rate_{w}"]] = np.clip(slope * 3600.0 / head_abs, -10.0, 10.0)
            tte = np.where(slope > 0, np.maximum(head, 0.0) / slope, np.inf)
            out[:, col[f"tte_{w}"]] = _log_minutes(tte, cfg.max_minutes)
            if w == 60:
                resid = (y - ym[:, None] - slope[:, None] * (x - xm[:, None])) * m
                se = np.sqrt((resid * resid).sum(axis=1) / np.maximum(n - 2, 1) / sxx)
                tstat = np.where(se > 0, slope / se, np.where(slope > 0, 20.0, 0.0))
                out[:, col["tstat_60"]] = np.clip(np.nan_to_num(tstat), -20.0, 20.0)

        # block-to-block changes, forward-filled over empty blocks
        idx = np.where(has, np.arange(k), 0)
        np.maximum.accumulate(idx, axis=1, out=idx)
        f = np.take_along_axis(d, idx, axis=1)
        step = f[:, 1:] - f[:, :-1]
        hour = min(round(3600.0 / cfg.block_s), k - 1)
        st_h = step[:, -hour:]
        centre = _nanmedian(st_h)
        spread = _MAD * _nanmedian(np.abs(st_h - centre[:, None]))
        out[:, col["volatility"]] = np.log10(np.clip(spread * math.sqrt(hour) / head_abs, 1e-4, 10.0))
        c_all = _nanmedian(step)
        sp_all = _MAD * _nanmedian(np.abs(step - c_all[:, None]))
        thr = np.fmax(cfg.drop_z * sp_all, cfg.drop_headroom_share * np.abs(head))
        drop = (step - c_all[:, None]) < -np.where(thr > 0, thr, np.inf)[:, None]
        any_drop = drop.any(axis=1)
        last = k - 1 - np.argmax(drop[:, ::-1], axis=1)  # column after the newest drop
        age_min = (k - last) * cfg.block_s / 60.0
        out[:, col["since_drop"]] = np.where(any_drop, np.minimum(age_min / (k * cfg.block_s / 60.0), 1.0), 1.0)
        fin = np.isfinite(step)
        out[:, col["flat_share"]] = np.where(fin.any(axis=1), ((step == 0) & fin).sum(axis=1)
                                             / np.maximum(fin.sum(axis=1), 1), 0.0)

        ref = d[:, :-cfg.recent_blocks]
        ref_med = _nanmedian(ref)
        ref_mad = _MAD * _nanmedian(np.abs(ref - ref_med[:, None]))
        last_col = k - 1 - np.argmax(has[:, ::-1], axis=1)
        newest = d[np.arange(s), last_col]
        z = (newest - ref_med) / np.maximum(ref_mad, 1e-9 * scale)
        out[:, col["anomaly_z"]] = np.clip(np.nan_to_num(z), -20.0, 20.0)
        q_old = _nanq(de[:, :-cfg.breakout_blocks], 0.95)
        out[:, col["breakout"]] = np.clip(np.nan_to_num((level - q_old) / head_abs), -10.0, 10.0)
        out[:, col["coverage"]] = has.mean(axis=1)

    lc = np.full(s, np.nan) if last_change is None else np.asarray(last_change, dtype=np.float64)
    lr = np.full(s, np.nan) if last_restart is None else np.asarray(last_restart, dtype=np.float64)
    out[:, col["since_change"]] = _log_minutes(now - lc, 1440.0)
    out[:, col["since_restart"]] = _log_minutes(now - lr, 1440.0)
    if trend_p is not None:
        out[:, col["trend_p4h"]] = np.nan_to_num(np.asarray(trend_p, dtype=np.float64), nan=0.0)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def last_event_times(events: Sequence[ChangeEvent], services: Sequence[str | None], evals: np.ndarray,
                     kinds: Sequence[str]) -> np.ndarray:
    """``evals x series``: time of the newest event of ``kinds`` on each series' service at or before
    each evaluation time (NaN: none yet)."""
    evals = np.asarray(evals, dtype=np.float64)
    out = np.full((evals.size, len(services)), np.nan)
    by_service: dict[str, list[float]] = {}
    for ev in events:
        if ev.kind in kinds:
            by_service.setdefault(ev.service, []).append(float(ev.time))
    for svc, times in by_service.items():
        ts = np.sort(np.asarray(times))
        i = np.searchsorted(ts, evals, side="right") - 1
        at = np.where(i >= 0, ts[np.maximum(i, 0)], np.nan)
        for j, name in enumerate(services):
            if name == svc:
                out[:, j] = at
    return out


def trend_probability(blocks: Blocks, limits: np.ndarray, horizon_s: float = 4 * 3600.0,
                      config: TrendConfig | None = None) -> np.ndarray:
    """The trend forecaster's P(breach within ``horizon_s``) per series, with every screened
    candidate fitted (``refit_every=1``, no active set: a pure function of the blocks); 0 where the
    screen rules a breach within the horizon out."""
    cfg = config or TrendConfig(refit_every=1)
    fc = forecast(blocks, limits, cfg)
    hz = list(cfg.probability_horizons_s)
    p = fc.probabilities[:, hz.index(horizon_s)] if horizon_s in hz else fc.probability
    return np.where(fc.reason == _DEFERRED, np.nan, np.nan_to_num(p, nan=0.0))


def stream(ts: np.ndarray, values: np.ndarray, direction: np.ndarray, limits: np.ndarray, evals: np.ndarray,
           last_change: np.ndarray | None = None, last_restart: np.ndarray | None = None,
           config: FeatureConfig | None = None) -> np.ndarray:
    """``evals x series x features`` for raw samples ``values`` (series x samples at ``ts``) evaluated
    at each time of ``evals`` (one block apart) against ``limits`` (evals x series). The blocks of the
    whole run are computed once on the evaluation grid; evaluation ``e`` sees the ``n_blocks`` ending at
    ``evals[e]`` only (causal)."""
    cfg = config or FeatureConfig()
    evals = np.asarray(evals, dtype=np.float64)
    if evals.size == 0:
        return np.zeros((0, values.shape[0], len(FEATURES)))
    if evals.size > 1 and np.any(np.abs(np.diff(evals) - cfg.block_s) > 1e-6):
        raise ValueError("feature streams evaluate once per block: evals must be block_s apart")
    k = cfg.n_blocks
    n = len(evals) + max(round((evals[0] - ts[0]) / cfg.block_s), 0) + 1
    full = blocks_from_samples(ts, values, float(evals[-1]), direction, cfg.block_s, n + k)
    end0 = full.n_blocks - len(evals) + 1
    tcfg = TrendConfig(block_s=cfg.block_s, n_blocks=k, refit_every=1)
    out = np.zeros((len(evals), values.shape[0], len(FEATURES)))
    for e, now in enumerate(evals.tolist()):
        a, b = end0 + e - k, end0 + e
        blk = Blocks(now, full.block_s, full.total[a:b], full.ext[a:b], full.count[a:b], full.t[a:b],
                     full.offset, full.direction)
        lim = limits[e]
        tp = trend_probability(blk, lim, cfg.horizon_s, tcfg) if cfg.trend_probability else None
        out[e] = compute(blk, lim, None if last_change is None else last_change[e],
                         None if last_restart is None else last_restart[e], tp, cfg)
    return out


def sequences(feats: np.ndarray, length: int, stride: int, at: np.ndarray | None = None) -> np.ndarray:
    """``(len(at) * series) x length x features``: for each evaluation index of ``at`` (default: all)
    and series, the feature vectors of evaluations ``e - (length - 1) * stride, ..., e - stride, e``
    (before the first evaluation: the first one's, repeated). Causal: evaluation ``e`` reads no later
    evaluation. Rows are evaluation-major (``row = i * series + s``)."""
    e_all = feats.shape[0]
    at = np.arange(e_all) if at is None else np.asarray(at, dtype=np.int64)
    offs = (np.arange(length) - (length - 1)) * stride
    idx = np.maximum(at[:, None] + offs[None, :], 0)  # len(at) x length
    seq = feats[idx]  # len(at) x length x S x F
    return np.ascontiguousarray(seq.transpose(0, 2, 1, 3)).reshape(-1, length, feats.shape[2])
