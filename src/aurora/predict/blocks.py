"""The forecaster's input: per-series statistics of fixed-length time blocks over a trailing window.

A ``series x window`` matrix of raw samples is reduced to blocks (default 1 min over 4 h, 240 columns):
for every series and block the count of samples, their sum and their extreme on the side of the limit
(the maximum for a series that rises to a ceiling, the minimum for one that falls to a floor). Block
means make the fit cheap and spike-tolerant; the extremes keep what a mean hides: the peaks of a
sawtooth (GC, log rotation) and how far the noise reaches towards the limit.

Two ways to get them, same result:

* ``blocks_from_samples``: from a raw ``series x samples`` matrix (bench, replay, tests); the newest
  block ends at ``now``; only samples with ``now - n_blocks * block_s < t <= now`` are read.
* ``BlockBuffer``: incremental, for a live stage. Samples are added as they arrive (columnar:
  ``add(slots, times, values)``, one NumPy scatter per statistic); blocks are aligned to multiples of
  ``block_s`` in event time, the newest one is partial (it ends at ``now``). The ring is never copied:
  a ``Blocks`` handed to the forecaster indexes it, and the forecaster reads only the few columns its
  screen needs for every series and the whole window only for the series that pass it.

Memory of the buffer: 9 bytes per series and block (float32 sum and extreme, uint8 count), so 240
blocks cost 2.2 kB per limited series (216 MB for 100,000 limited series). It is stored block-major, so
the forecaster's screen (a dozen blocks of every series) reads contiguous rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Blocks:
    """Block statistics of S series over K blocks (logical blocks oldest .. newest).

    Stored block-major (``K' x S``: a block's values for all series are contiguous, so reading a few
    blocks of every series, or clearing one, is a plain row operation). ``total`` and ``ext`` are
    relative to ``offset`` (per series); ``ext`` is signed by ``direction`` (so it is a running maximum
    either way); ``order`` maps logical to physical blocks (``None``: identity). ``take`` reads values in
    the series' units, series x blocks.
    """

    now: float
    block_s: float
    total: np.ndarray  # K' x S: sum of (value - offset) per block
    ext: np.ndarray  # K' x S: max of direction * (value - offset) per block (-inf: empty)
    count: np.ndarray  # K' x S: samples per block
    t: np.ndarray  # K, time of each logical column (its samples' mean time, or the middle of the block)
    offset: np.ndarray  # S
    direction: np.ndarray  # S, +1 or -1
    order: np.ndarray | None = None  # K, physical column of each logical column

    @property
    def n_series(self) -> int:
        return int(self.total.shape[1])

    @property
    def n_blocks(self) -> int:
        return int(self.t.shape[0])

    def take(self, rows: np.ndarray | None = None, cols: np.ndarray | slice | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, ext, count, t)`` for the given rows and logical columns (default: all), in the
        series' units; NaN where a block is empty. ``ext`` is the block's max for a rising series and
        its min for a falling one."""
        lcols = np.arange(self.n_blocks)[cols] if cols is not None else np.arange(self.n_blocks)
        pcols = lcols if self.order is None else self.order[lcols]
        r = np.arange(self.n_series) if rows is None else np.asarray(rows, dtype=np.int64)
        ix = np.ix_(pcols, r)
        cnt = np.ascontiguousarray(self.count[ix].T, dtype=np.float64)
        off = self.offset[r][:, None]
        sign = self.direction[r][:, None].astype(np.float64)
        empty = cnt == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.ascontiguousarray(self.total[ix].T, dtype=np.float64) / cnt + off
            ext = sign * np.ascontiguousarray(self.ext[ix].T, dtype=np.float64) + off
        mean[empty] = np.nan
        ext[empty] = np.nan
        return mean, ext, cnt, self.t[lcols]


def _column_times(now: float, block_s: float, n_blocks: int) -> np.ndarray:
    return now - (n_blocks - np.arange(n_blocks) - 0.5) * block_s


def blocks_from_samples(times: np.ndarray, values: np.ndarray, now: float, direction: np.ndarray | int = 1,
                        block_s: float = 60.0, n_blocks: int = 240) -> Blocks:
    """Blocks of ``values`` (S x W, NaN = missing) sampled at ``times`` (W, ascending); block ``k``
    covers ``(now - (K - k) * block_s, now - (K - k - 1) * block_s]``. Causal: samples after ``now``
    are ignored."""
    t = np.asarray(times, dtype=np.float64)
    y = np.atleast_2d(np.asarray(values, dtype=np.float64))
    s = y.shape[0]
    sign = np.broadcast_to(np.asarray(direction, dtype=np.int64), (s,)).copy()
    total = np.zeros((n_blocks, s))
    ext = np.full((n_blocks, s), -np.inf)
    count = np.zeros((n_blocks, s), dtype=np.int64)
    age = np.floor((now - t) / block_s)
    keep = (t <= now) & (age < n_blocks)
    if keep.any():
        col = (n_blocks - 1 - age[keep]).astype(np.int64)
        yk = y[:, keep] * sign[:, None]
        starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
        used = col[starts]
        fin = np.isfinite(yk)
        count[used] = np.add.reduceat(fin, starts, axis=1).T
        total[used] = (np.add.reduceat(np.where(fin, yk, 0.0), starts, axis=1) * sign[:, None]).T
        mx = np.fmax.reduceat(yk, starts, axis=1)
        ext[used] = np.where(np.isfinite(mx), mx, -np.inf).T
    col_t = _column_times(now, block_s, n_blocks)
    if keep.any():  # the mean time of the samples in each block (the series share their sample times)
        col_t[used] = np.add.reduceat(t[keep], starts) / np.diff(np.r_[starts, keep.sum()])
    return Blocks(float(now), float(block_s), total, ext, count, col_t, np.zeros(s), sign)


class BlockBuffer:
    """A ring of ``n_blocks`` blocks per series, filled incrementally; ``blocks(now)`` hands the
    forecaster the window ending at ``now`` without copying it.

    Blocks are aligned to multiples of ``block_s`` in event time. Samples older than the ring are
    dropped; a block is cleared when the event time first moves into it (so data may arrive late within
    the window). Values are stored as float32 relative to each series' first value.
    """

    def __init__(self, direction: np.ndarray, block_s: float = 60.0, n_blocks: int = 240) -> None:
        self.direction = np.asarray(direction, dtype=np.int64).copy()
        s = self.direction.shape[0]
        self.block_s = float(block_s)
        self.n_blocks = int(n_blocks)
        self.total = np.zeros((n_blocks, s), dtype=np.float32)
        self.ext = np.full((n_blocks, s), -np.inf, dtype=np.float32)
        self.count = np.zeros((n_blocks, s), dtype=np.uint8)
        self.offset = np.full(s, np.nan)
        self.head = -(2**62)  # newest block number seen
        self._mark = np.full(s, -1, dtype=np.int64)  # scratch for the duplicate test in add()

    @property
    def n_series(self) -> int:
        return int(self.direction.shape[0])

    def grow(self, direction: np.ndarray) -> None:
        """Append series (their directions) after the existing ones; a live stage meets series as they come."""
        extra = np.asarray(direction, dtype=np.int64)
        if not extra.size:
            return
        k = self.n_blocks
        self.direction = np.concatenate([self.direction, extra])
        self.total = np.hstack([self.total, np.zeros((k, extra.size), np.float32)])
        self.ext = np.hstack([self.ext, np.full((k, extra.size), -np.inf, np.float32)])
        self.count = np.hstack([self.count, np.zeros((k, extra.size), np.uint8)])
        self.offset = np.concatenate([self.offset, np.full(extra.size, np.nan)])
        self._mark = np.concatenate([self._mark, np.full(extra.size, -1, np.int64)])

    def _advance(self, new_head: int) -> None:
        if new_head <= self.head:
            return
        k = self.n_blocks
        first = max(self.head + 1, new_head - k + 1)
        cols = np.arange(first, new_head + 1) % k
        self.total[cols] = 0.0
        self.ext[cols] = -np.inf
        self.count[cols] = 0
        self.head = new_head

    def add(self, slots: np.ndarray, times: np.ndarray, values: np.ndarray) -> None:
        """Add samples (flat arrays: series slot, unix seconds, value); NaN values are skipped."""
        slots = np.asarray(slots, dtype=np.int64)
        times = np.asarray(times, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(values) & np.isfinite(times)
        if not ok.all():
            slots, times, values = slots[ok], times[ok], values[ok]
        if not slots.size:
            return
        n = np.floor(times / self.block_s).astype(np.int64)
        self._advance(int(n.max()))
        keep = n > self.head - self.n_blocks
        if not keep.all():
            slots, n, values = slots[keep], n[keep], values[keep]
        new = np.isnan(self.offset[slots])
        if new.any():
            self.offset[slots[new][::-1]] = values[new][::-1]  # the first value of each new series
        rel = (values - self.offset[slots]).astype(np.float32)
        towards = rel * self.direction[slots].astype(np.float32)
        lin = (n % self.n_blocks) * self.direction.size + slots
        # usually a batch has one sample per series: plain gathers and scatters; otherwise np.*.at
        idx = np.arange(slots.size)
        self._mark[slots] = idx
        unique = bool((self._mark[slots] == idx).all())
        tot, ext, cnt = self.total.reshape(-1), self.ext.reshape(-1), self.count.reshape(-1)
        if unique:
            tot[lin] += rel
            ext[lin] = np.maximum(ext[lin], towards)
            cnt[lin] += 1  # wraps past 255 samples per block: keep block_s small
        else:
            np.add.at(tot, lin, rel)
            np.maximum.at(ext, lin, towards)
            np.add.at(cnt, lin, 1)

    def blocks(self, now: float) -> Blocks:
        """The window ending at ``now`` (the newest block is the one ``now`` falls in)."""
        last = int(np.floor(now / self.block_s))
        self._advance(last)
        k = self.n_blocks
        nums = np.arange(last - k + 1, last + 1)
        starts = nums * self.block_s
        ends = np.minimum(starts + self.block_s, now)
        return Blocks(float(now), self.block_s, self.total, self.ext, self.count, (starts + ends) / 2,
                      np.where(np.isnan(self.offset), 0.0, self.offset), self.direction, nums % k)
