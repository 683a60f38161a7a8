"""Daily profiles: the part of a series that repeats every day, so the forecaster can take it out.

``daily_profile`` estimates, from more than a day of history, a zero-mean shape per series on a grid of
``bins`` phases of the day (default 48, half-hour bins):

1. the history is reduced to the means of absolute half-hour bins;
2. the trend is taken out first, robustly and without being fooled by the cycle itself: its slope is
   the median of the day-over-day differences (a value minus the one a day earlier: the cycle cancels,
   a trend does not), so a leak that runs through the history does not end up in the profile;
3. the profile is the median of the detrended values per phase, less its mean;
4. it is kept only if it stands out of the noise: its range must exceed ``min_range_z`` standard
   errors of a phase median; otherwise the series has no daily cycle and its profile is zero (known,
   flat). Series with too little history get NaN (unknown): the forecaster then works without one and
   says so.

``profile_at`` evaluates profiles at arbitrary times (linear between phase centres, circular), e.g. at
the forecaster's block times: ``forecast(blocks, limits, seasonal=profile_at(profile, blocks.t))``.
A live stage would refresh the profiles rarely (hourly, from stored history or rollups); both
functions are vectorised over series.
"""

from __future__ import annotations

import warnings

import numpy as np

DAY = 86400.0
_MAD = 1.4826


def daily_profile(times: np.ndarray, values: np.ndarray, bins: int = 48, min_days: float = 1.25,
                  min_range_z: float = 6.0) -> np.ndarray:
    """Zero-mean daily profiles (S x ``bins``) of ``values`` (S x W, NaN = missing) sampled at ``times``
    (W, ascending). Rows with less than ``min_days`` of history are NaN."""
    t = np.asarray(times, dtype=np.float64)
    y = np.atleast_2d(np.asarray(values, dtype=np.float64))
    s = y.shape[0]
    out = np.full((s, bins), np.nan)
    if t.size == 0:
        return out
    width = DAY / bins
    absb = np.floor(t / width).astype(np.int64)
    b0 = int(absb[0])
    nb = int(absb[-1]) - b0 + 1
    starts = np.flatnonzero(np.r_[True, absb[1:] != absb[:-1]])
    used = absb[starts] - b0
    fin = np.isfinite(y)
    cnt = np.zeros((s, nb))
    tot = np.zeros((s, nb))
    cnt[:, used] = np.add.reduceat(fin, starts, axis=1)
    tot[:, used] = np.add.reduceat(np.where(fin, y, 0.0), starts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(cnt > 0, tot / cnt, np.nan)  # S x nb bin means
    has = np.isfinite(x)
    first = np.where(has.any(axis=1), np.argmax(has, axis=1), nb)
    last = np.where(has.any(axis=1), nb - 1 - np.argmax(has[:, ::-1], axis=1), -1)
    enough = (last - first + 1) * width >= min_days * DAY
    if nb <= bins or not enough.any():
        return out
    centres = (b0 + np.arange(nb) + 0.5) * width
    dod = x[:, bins:] - x[:, :-bins]  # day-over-day differences
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        slope = np.nanmedian(dod[enough], axis=1) / DAY
    slope = np.where(np.isfinite(slope), slope, 0.0)
    r = x[enough] - slope[:, None] * (centres[None, :] - centres[0])
    phase = (b0 + np.arange(nb)) % bins
    # per phase: the median over days (days as rows of a (series, day, phase) array)
    n_days = -(-(nb + int(phase[0])) // bins)
    grid = np.full((r.shape[0], n_days * bins), np.nan)
    grid[:, int(phase[0]):int(phase[0]) + nb] = r
    grid = grid.reshape(r.shape[0], n_days, bins)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN phases or rows give NaN by design
        prof = np.nanmedian(grid, axis=1)
        days_per_phase = np.isfinite(grid).sum(axis=1)
        prof = prof - np.nanmean(prof, axis=1, keepdims=True)
        resid = grid - prof[:, None, :] - np.nanmedian(grid - prof[:, None, :], axis=(1, 2), keepdims=True)
        sd = _MAD * np.nanmedian(np.abs(resid), axis=(1, 2))
        se = sd / np.sqrt(np.maximum(np.nanmedian(np.where(days_per_phase > 0, days_per_phase, np.nan), axis=1),
                                     1.0))
        rng = np.nanmax(prof, axis=1) - np.nanmin(prof, axis=1)
    prof = np.where(np.isfinite(prof), prof, 0.0)  # phases never seen: no seasonal offset
    prof[~(rng > min_range_z * se)] = 0.0
    out[enough] = prof
    return out


def profile_at(profile: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The profiles (S x bins) at ``times`` (T,): S x T, linear between phase centres (circular)."""
    prof = np.atleast_2d(np.asarray(profile, dtype=np.float64))
    bins = prof.shape[1]
    width = DAY / bins
    pos = (np.asarray(times, dtype=np.float64) % DAY) / width - 0.5
    i0 = np.floor(pos).astype(np.int64)
    frac = pos - i0
    a = prof[:, i0 % bins]
    b = prof[:, (i0 + 1) % bins]
    return a + (b - a) * frac[None, :]
