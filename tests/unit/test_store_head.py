"""Head ring buffers and rollup arithmetic, without a database."""

from __future__ import annotations

import numpy as np

from aurora.store import rollup
from aurora.store.head import NO_TS, Head
from aurora.store.index import SeriesIndex


def test_ring_write_wraps_and_keeps_newest() -> None:
    h = Head(window=16, chunk_samples=16)  # ring = 32
    h.reserve(3)
    h.n = 3
    assert h.last_ts[2] == NO_TS
    sids = np.array([0, 2], np.int64)
    for k in range(5):
        counts = np.array([10, 1], np.int64)
        ts = np.concatenate([np.arange(10) + 10 * k, [k]]).astype(np.int64)
        h.write(sids, counts, ts, ts.astype(float))
    lo, hi = h.present(0)
    assert (lo, hi) == (18, 50)
    t, v = h.gather(0, lo, hi)
    assert list(t) == list(range(18, 50)) and list(v) == list(map(float, range(18, 50)))
    assert h.last_ts[0] == 49 and h.last_ts[2] == 4 and h.pos[1] == 0
    # more than a ring's worth at once keeps the newest
    h.write(np.array([1], np.int64), np.array([100], np.int64), np.arange(100, dtype=np.int64), np.zeros(100))
    t, _ = h.gather(1, *h.present(1))
    assert list(t) == list(range(68, 100))
    # growth keeps contents
    h.reserve(1000)
    t2, _ = h.gather(0, *h.present(0))
    assert np.array_equal(t, t) and list(t2) == list(range(18, 50)) and h.cap >= 1000


def test_gather_many() -> None:
    h = Head(window=16, chunk_samples=8)
    h.reserve(2)
    h.n = 2
    h.write(np.array([0, 1], np.int64), np.array([20, 5], np.int64), np.arange(25, dtype=np.int64), np.zeros(25))
    ts, _ = h.gather_many(np.array([1, 0], np.int64), np.array([1, 15], np.int64), np.array([3, 4], np.int64))
    assert list(ts) == [21, 22, 23, 15, 16, 17, 18]


def test_rollup_compute_and_merge() -> None:
    ts = np.array([0, 30_000, 59_999, 60_000, 61_000, 120_000], np.int64)
    vals = np.array([1.0, np.nan, 3.0, 4.0, -1.0, 7.0])
    agg, _grp = rollup.compute(ts, vals, np.zeros(6, np.int64), 60)
    assert list(agg.ts) == [0, 60_000, 120_000]
    assert list(agg.min) == [1.0, -1.0, 7.0] and list(agg.max) == [3.0, 4.0, 7.0]
    assert list(agg.count) == [2, 2, 1] and list(agg.last) == [3.0, -1.0, 7.0]
    # split the same samples into two partial rows: merge gives the same buckets
    a, _ = rollup.compute(ts[:4], vals[:4], np.zeros(4, np.int64), 60)
    b, _ = rollup.compute(ts[4:], vals[4:], np.zeros(2, np.int64), 60)
    m = rollup.merge([rollup.decode(rollup.encode(a)), rollup.decode(rollup.encode(b))])
    for f in ("ts", "min", "max", "sum", "count", "last"):
        assert list(getattr(m, f)) == list(getattr(agg, f)), f


def test_index_label_order_aliases() -> None:
    idx = SeriesIndex()
    idx.add(0, "m", {"b": "2", "a": "1"})
    assert idx.infos[0] is not None and list(idx.infos[0].labels) == ["a", "b"]
    assert idx.lookup_fast(["m", "m"], [{"a": "1", "b": "2"}, {"b": "2", "a": "1"}]) == [0, -1]
    assert idx.lookup_slow("m", {"b": "2", "a": "1"}) == 0
    assert idx.lookup_fast(["m"], [{"b": "2", "a": "1"}]) == [0]
    assert idx.lookup_slow("m", {"a": "1"}) == -1
    assert idx.key_of(0) == 'm{a="1",b="2"}'
