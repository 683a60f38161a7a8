"""The head: the recent samples of every series in dense NumPy ring buffers indexed by series id.

Row ``i`` of ``ts``/``val`` is the ring of series ``i``. ``pos[i]`` counts every sample ever written to
that ring (the next one goes to column ``pos % ring``); samples at positions ``[max(0, pos - ring), pos)``
are present. Positions below ``flushed[i]`` are in chunks on disk; the rest are unflushed and live only
here and in the WAL. ``ring = max(window, 2 * chunk_samples)`` so a full chunk never has to be cut from
samples the ring already overwrote (see :meth:`TSDB._apply`).
"""

from __future__ import annotations

import numpy as np

from aurora.model import Float64Array, Int64Array

NO_TS = np.iinfo(np.int64).min


class Head:
    def __init__(self, window: int, chunk_samples: int, initial_capacity: int = 1024) -> None:
        self.window = window
        self.chunk = chunk_samples
        self.ring = max(window, 2 * chunk_samples)
        self.n = 0
        self.cap = 0
        self.ts = np.empty((0, self.ring), np.int64)
        self.val = np.empty((0, self.ring), np.float64)
        self.pos = np.zeros(0, np.int64)
        self.flushed = np.zeros(0, np.int64)
        self.last_ts = np.zeros(0, np.int64)
        self.last_bits = np.zeros(0, np.uint64)
        # False after a restart until the window was back-filled from chunks (see TSDB.window)
        self.loaded = np.zeros(0, bool)
        # unflushed samples at which the next chunk is cut: chunk_samples, except that the first chunk of
        # a series after it was created or the store opened is cut early by a per-series amount, so that
        # series scraped together do not all cut (and encode) their chunks in the same append
        self.cut_at = np.zeros(0, np.int64)
        self.reserve(initial_capacity)

    def reserve(self, n: int) -> None:
        """Make room for ``n`` series (capacity grows by doubling; new slots are empty)."""
        if n <= self.cap:
            return
        cap = max(self.cap, 16)
        while cap < n:
            cap *= 2
        old = self.cap

        def grow2(a: np.ndarray) -> np.ndarray:
            b = np.empty((cap, self.ring), a.dtype)
            b[:old] = a[:old]
            return b

        def grow1(a: np.ndarray, fill: int | bool) -> np.ndarray:
            b = np.full(cap, fill, a.dtype)
            b[:old] = a[:old]
            return b

        self.ts = grow2(self.ts)
        self.val = grow2(self.val)
        self.pos = grow1(self.pos, 0)
        self.flushed = grow1(self.flushed, 0)
        self.last_ts = grow1(self.last_ts, NO_TS)
        self.last_bits = grow1(self.last_bits, 0)
        self.loaded = grow1(self.loaded, True)
        cut_at = np.empty(cap, np.int64)
        cut_at[:old] = self.cut_at[:old]
        cut_at[old:] = self.first_cut(np.arange(old, cap, dtype=np.int64))
        self.cut_at = cut_at
        self.cap = cap

    def first_cut(self, sids: Int64Array) -> Int64Array:
        spread = max(1, self.chunk // 2)
        return self.chunk - (sids * 2654435761 % spread)

    def window_bytes(self) -> int:
        return int(self.ts.nbytes + self.val.nbytes)

    def write(self, sids: Int64Array, counts: Int64Array, ts: Int64Array, vals: Float64Array) -> None:
        """Append samples grouped by series (``counts[i]`` samples of ``sids[i]``, ids unique, each group
        strictly increasing and newer than the series' newest). Only the last ``ring`` of a group are kept."""
        if len(ts) == 0:
            return
        ring = self.ring
        keep = counts > 0
        if not keep.all():
            sids, counts = sids[keep], counts[keep]
        starts = np.zeros(len(counts), np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        rep = np.repeat(np.arange(len(sids)), counts)
        rank = np.arange(len(ts), dtype=np.int64) - starts[rep]
        sid_rep = sids[rep]
        col = (self.pos[sid_rep] + rank) % ring
        if int(counts.max()) > ring:
            m = rank >= (counts - ring)[rep]
            sid_rep, col, ts, vals = sid_rep[m], col[m], ts[m], vals[m]
        self.ts[sid_rep, col] = ts
        self.val[sid_rep, col] = vals
        self.pos[sids] += counts
        last = (self.pos[sids] - 1) % ring
        self.last_ts[sids] = self.ts[sids, last]
        self.last_bits[sids] = self.val[sids, last].view(np.uint64)

    def gather(self, sid: int, start_pos: int, end_pos: int) -> tuple[Int64Array, Float64Array]:
        """Samples of one series at ring positions ``[start_pos, end_pos)`` (must still be present)."""
        cols = np.arange(start_pos, end_pos, dtype=np.int64) % self.ring
        return self.ts[sid, cols], self.val[sid, cols]

    def gather_many(
        self, sids: Int64Array, start_pos: Int64Array, n: Int64Array
    ) -> tuple[Int64Array, Float64Array]:
        """Concatenated samples of several series, ``n[i]`` from position ``start_pos[i]`` of ``sids[i]``."""
        total = int(n.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        starts = np.zeros(len(n), np.int64)
        np.cumsum(n[:-1], out=starts[1:])
        rep = np.repeat(np.arange(len(sids)), n)
        col = (start_pos[rep] + np.arange(total, dtype=np.int64) - starts[rep]) % self.ring
        row = sids[rep]
        return self.ts[row, col], self.val[row, col]

    def present(self, sid: int) -> tuple[int, int]:
        """Ring positions ``[lo, hi)`` present for a series."""
        hi = int(self.pos[sid])
        return max(0, hi - self.ring), hi

    def replace(self, sid: int, ts: Int64Array, vals: Float64Array, unflushed: int) -> None:
        """Rewrite a series' ring with ``ts``/``vals`` (last ``ring`` kept), the last ``unflushed`` of them
        not yet in chunks."""
        ts, vals = ts[-self.ring :], vals[-self.ring :]
        k = len(ts)
        self.ts[sid, :k] = ts
        self.val[sid, :k] = vals
        self.pos[sid] = k
        self.flushed[sid] = k - unflushed
        if k:
            self.last_ts[sid] = ts[-1]
            self.last_bits[sid] = vals[-1:].view(np.uint64)[0]
