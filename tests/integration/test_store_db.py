"""TSDB against a real database (SQLite and PostgreSQL via the ``db_url`` fixture)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from aurora.clock import EventClock
from aurora.config import LimitsConfig, StorageConfig
from aurora.db.database import create_db_engine, migrate
from aurora.db.tables import chunks, rollups, series
from aurora.errors import BadInput, LimitExceeded
from aurora.model import SeriesBatch
from aurora.store.tsdb import TSDB

STALE = np.array([0x7FF0000000000002], np.uint64).view(np.float64)[0]
T0 = 1_700_000_000_000
STEP = 15_000


def bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float64).view(np.uint64)


def batch(items: list[tuple[str, dict[str, str], list[int], list[float]]]) -> SeriesBatch:
    counts = [len(t) for _, _, t, _ in items]
    offsets = np.zeros(len(items) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    ts = np.array([x for _, _, t, _ in items for x in t], np.int64)
    vals = np.array([x for _, _, _, v in items for x in v], np.float64)
    return SeriesBatch([m for m, *_ in items], [lab for _, lab, *_ in items], offsets, ts, vals)


class Store:
    """Builds TSDBs on one database and data dir, so tests can reopen."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.engine = create_db_engine(url)
        migrate(self.engine)
        self.data_dir = data_dir

    def make(self, **storage: object) -> TSDB:
        limits = {k: storage.pop(k) for k in list(storage) if k in LimitsConfig.model_fields}
        st = StorageConfig(data_dir=self.data_dir, **{"chunk_samples": 16, "head_window": 32, **storage})
        db = TSDB(self.engine, self.data_dir, st, LimitsConfig(**limits), EventClock("data"))
        db.open()
        return db


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(db_url, tmp_path / "data")
    yield s
    s.engine.dispose()


def test_round_trip_across_chunks_and_head(store: Store) -> None:
    db = store.make()
    n = 16 * 5 + 7  # 5 full chunks and 7 samples in the head
    ts = T0 + STEP * np.arange(n)
    rng = np.random.default_rng(1)
    vals = rng.normal(size=n)
    vals[3] = np.nan
    vals[20] = STALE
    vals[40] = -0.0
    vals[50] = np.inf
    # several batches of uneven size
    for a, b in [(0, 1), (1, 30), (30, 31), (31, 85), (85, n)]:
        r = db.append(batch([("m", {"a": "1"}, list(ts[a:b]), list(vals[a:b]))]))
        assert r.accepted == b - a
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(chunks)).scalar_one() == 5
    sid = int(db.resolve(["m"], [{"a": "1"}])[0])
    got_t, got_v = db.read(sid, int(ts[0]), int(ts[-1]))
    assert np.array_equal(got_t, ts)
    assert np.array_equal(bits(got_v), bits(vals))
    # sub-ranges, inclusive bounds, ranges that straddle chunk and head
    for a, b in [(0, 0), (5, 17), (15, 16), (70, 86), (79, 82), (86, n - 1)]:
        t2, v2 = db.read(sid, int(ts[a]), int(ts[b]))
        assert np.array_equal(t2, ts[a : b + 1])
        assert np.array_equal(bits(v2), bits(vals[a : b + 1]))
    wt, wv = db.window(sid)
    assert np.array_equal(wt, ts[-32:])
    db.close()
    db2 = store.make()
    t3, v3 = db2.read(sid, int(ts[0]), int(ts[-1]))
    assert np.array_equal(t3, ts) and np.array_equal(bits(v3), bits(vals))
    wt, wv = db2.window(sid)
    assert np.array_equal(wt, ts[-32:]) and np.array_equal(bits(wv), bits(vals[-32:]))
    db2.close()


def test_duplicates_and_out_of_order(store: Store) -> None:
    db = store.make()
    b1 = batch([("m", {"a": "1"}, [T0, T0 + 1000], [1.0, 2.0])])
    assert db.append(b1).accepted == 2
    # exact retry of the newest sample: a duplicate, skipped
    r = db.append(batch([("m", {"a": "1"}, [T0 + 1000], [2.0])]))
    assert (r.accepted, r.duplicates, r.dropped) == (0, 1, 0)
    # equal timestamp, different value: out of order
    with pytest.raises(BadInput, match=r'm\{a="1"\}.*1700000001000'):
        db.append(batch([("m", {"a": "1"}, [T0 + 1000], [3.0])]))
    # older: out of order, message names the sample and the newest stored
    with pytest.raises(BadInput) as ei:
        db.append(batch([("m", {"a": "1"}, [T0 + 500], [3.0])]))
    assert 'm{a="1"}' in ei.value.message and str(T0 + 500) in ei.value.message
    assert str(T0 + 1000) in ei.value.message
    # NaN bits matter for duplicates: stale marker vs NaN differ
    db.append(batch([("m", {"a": "1"}, [T0 + 2000], [STALE])]))
    r = db.append(batch([("m", {"a": "1"}, [T0 + 2000], [STALE])]))
    assert r.duplicates == 1
    with pytest.raises(BadInput):
        db.append(batch([("m", {"a": "1"}, [T0 + 2000], [np.nan])]))
    db.close()
    drop = store.make(out_of_order="drop")
    r = drop.append(batch([("m", {"a": "1"}, [T0 + 500, T0 + 2000, T0 + 3000], [1.0, 5.0, 6.0])]))
    assert (r.accepted, r.duplicates, r.dropped) == (1, 0, 2)
    sid = int(r.series_ids[0])
    t, _v = drop.read(sid, 0, T0 * 2)
    assert list(t) == [T0, T0 + 1000, T0 + 2000, T0 + 3000]
    drop.close()


def test_not_increasing_within_batch_rejected(store: Store) -> None:
    db = store.make()
    with pytest.raises(BadInput, match=r'm\{a="x"\}.*1700000000000'):
        db.append(batch([("m", {"a": "x"}, [T0 + 1, T0], [1.0, 2.0])]))
    with pytest.raises(BadInput):
        db.append(batch([("m", {"a": "x"}, [T0, T0], [1.0, 1.0])]))
    assert db.all_series() == []
    db.close()


def test_failed_batch_stores_nothing(store: Store) -> None:
    db = store.make()
    db.append(batch([("m", {"a": "1"}, [T0 + 1000], [1.0])]))
    wal_before = db.wal.bytes_written
    bad = batch(
        [
            ("m", {"a": "2"}, [T0, T0 + 1000], [1.0, 2.0]),  # new series, fine
            ("m", {"a": "1"}, [T0 + 2000], [2.0]),  # fine
            ("m", {"a": "1"}, [T0 + 500], [2.0]),  # same series again: not increasing after merge
        ]
    )
    with pytest.raises(BadInput):
        db.append(bad)
    bad2 = batch([("m", {"a": "3"}, [T0], [1.0]), ("m", {"a": "1"}, [T0], [1.0])])  # 2nd is out of order
    with pytest.raises(BadInput):
        db.append(bad2)
    assert db.wal.bytes_written == wal_before
    assert [s.labels for s in db.all_series()] == [{"a": "1"}]
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(series)).scalar_one() == 1
    t, _ = db.read(0, 0, T0 * 2)
    assert list(t) == [T0 + 1000]
    # the provisional ids were not burnt: next new series gets id 1
    r = db.append(batch([("m", {"a": "9"}, [T0], [1.0])]))
    assert list(r.series_ids) == [1] and r.new_series == 1
    db.close()


def test_cardinality_limit(store: Store) -> None:
    db = store.make(max_series_per_metric=3)
    db.append(batch([("m", {"i": str(i)}, [T0], [1.0]) for i in range(2)]))
    with pytest.raises(LimitExceeded, match=r"'m'.*3"):
        db.append(batch([("m", {"i": str(i)}, [T0 + 1], [1.0]) for i in range(5)]))
    assert len(db.all_series()) == 2
    # other metrics are not affected; existing series still accept samples
    db.append(batch([("other", {"i": str(i)}, [T0], [1.0]) for i in range(3)]))
    db.append(batch([("m", {"i": "0"}, [T0 + 5], [1.0])]))
    with pytest.raises(LimitExceeded):
        db.resolve(["m", "m"], [{"i": "7"}, {"i": "8"}])
    assert len(db.resolve(["m"], [{"i": "7"}])) == 1
    db.close()


def test_label_order_and_reopen_restores_ids(store: Store) -> None:
    db = store.make()
    r = db.append(batch([("m", {"a": "1", "b": "2"}, [T0], [1.0]), ("n", {}, [T0], [2.0])]))
    ids = list(r.series_ids)
    r2 = db.append(batch([("m", {"b": "2", "a": "1"}, [T0 + 1], [1.0])]))
    assert list(r2.series_ids) == [ids[0]] and r2.new_series == 0
    db.close()
    db2 = store.make()
    assert list(db2.known_ids(["n", "m", "m"], [{}, {"b": "2", "a": "1"}, {"a": "9"}])) == [ids[1], ids[0], -1]
    assert len(db2.all_series()) == 2
    assert list(db2.resolve(["n", "m"], [{}, {"b": "2", "a": "1"}])) == [ids[1], ids[0]]
    info = db2.get_series(ids[0])
    assert (info.metric, info.labels) == ("m", {"a": "1", "b": "2"})
    # the newest sample survived the restart: a retry is a duplicate, so is a retry of an older one (found
    # in the chunks); an older sample with another value is rejected
    assert db2.append(batch([("m", {"a": "1", "b": "2"}, [T0 + 1], [1.0])])).duplicates == 1
    assert db2.append(batch([("m", {"a": "1", "b": "2"}, [T0, T0 + 1], [1.0, 1.0])])).duplicates == 2
    with pytest.raises(BadInput):
        db2.append(batch([("m", {"a": "1", "b": "2"}, [T0], [5.0])]))
    db2.close()


def test_append_ids_fast_path(store: Store) -> None:
    db = store.make()
    ids = db.resolve([f"m{i}" for i in range(50)], [{"x": "y"}] * 50)
    assert list(ids) == list(range(50))
    for k in range(40):
        offsets = np.arange(51, dtype=np.int64)
        r = db.append_ids(ids, offsets, np.full(50, T0 + k * STEP, np.int64), np.full(50, float(k)))
        assert r.accepted == 50
    t, v = db.read(7, 0, T0 * 2)
    assert np.array_equal(t, T0 + STEP * np.arange(40)) and np.array_equal(v, np.arange(40.0))
    with pytest.raises(BadInput):
        db.append_ids(np.array([999]), np.array([0, 1]), np.array([T0]), np.array([1.0]))
    db.close()


def _agg(ts: np.ndarray, vals: np.ndarray, res_s: int) -> dict[int, tuple[float, float, float, int, float]]:
    out: dict[int, tuple[float, float, float, int, float]] = {}
    w = res_s * 1000
    for b in sorted(set((ts - ts % w).tolist())):
        m = (ts - ts % w == b) & ~np.isnan(vals)
        if m.any():
            v = vals[m]
            out[b] = (v.min(), v.max(), float(v.sum()), int(m.sum()), v[-1])
    return out


def test_rollups_equal_direct_aggregates(store: Store) -> None:
    db = store.make(max_chunk_age_s=10**9)
    rng = np.random.default_rng(7)
    n = 16 * 20 + 5
    ts = T0 + 7_000 + np.cumsum(rng.integers(1_000, 40_000, size=n))
    vals = rng.normal(100, 10, size=n)
    vals[rng.integers(0, n, 10)] = np.nan
    vals[11] = STALE
    for a in range(0, n, 23):
        db.append(batch([("m", {}, list(ts[a : a + 23]), list(vals[a : a + 23]))]))
    for res in (60, 3600):
        want = _agg(ts, vals, res)
        got = db.read_rollup(0, res, int(ts[0]), int(ts[-1]))
        assert list(got.ts) == list(want)
        for i, b in enumerate(got.ts.tolist()):
            mn, mx, sm, cnt, last = want[b]
            assert (got.min[i], got.max[i], got.count[i], got.last[i]) == (mn, mx, cnt, last)
            assert got.sum[i] == pytest.approx(sm, rel=1e-12)
        # a sub-range: buckets whose start lies in [floor(start), end]
        mid = int(ts[n // 2])
        sub = db.read_rollup(0, res, mid, int(ts[-1]))
        assert list(sub.ts) == [b for b in want if b >= mid - mid % (res * 1000)]
    db.close()
    db2 = store.make()
    assert list(db2.read_rollup(0, 60, int(ts[0]), int(ts[-1])).ts) == list(_agg(ts, vals, 60))
    with pytest.raises(BadInput):
        db2.read_rollup(0, 300, 0, 1)
    db2.close()


DAY = 86_400_000


def _assert_buckets(got: Any, want: dict[int, tuple[float, float, float, int, float]]) -> None:
    """Exact equality (the test values are multiples of 1/4, so every sum is exact too)."""
    assert list(got.ts) == list(want)
    for i, b in enumerate(got.ts.tolist()):
        assert (got.min[i], got.max[i], got.sum[i], got.count[i], got.last[i]) == want[b], b


def _fleet_days(db: TSDB, days: float, n_series: int = 2, seed: int = 11) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``days`` of 15 s samples for ``n_series`` series (values multiples of 1/4, some NaN and stale)."""
    rng = np.random.default_rng(seed)
    n = int(days * DAY / STEP)
    ts = T0 + STEP * np.arange(n)
    out = {}
    for i in range(n_series):
        vals = rng.integers(-400, 400, size=n) / 4.0
        vals[rng.integers(0, n, 40)] = np.nan
        vals[rng.integers(0, n, 40)] = STALE
        sid = int(db.resolve(["m"], [{"i": str(i)}])[0])
        out[sid] = (ts, vals)
    for a in range(0, n, 997):
        items = [("m", {"i": str(i)}, list(ts[a : a + 997]), list(v[a : a + 997]))
                 for i, (_, (_, v)) in enumerate(out.items())]
        db.append(batch(items))
    return out


def _rows(db: TSDB, res: int) -> list[tuple[int, int, int]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(rollups.c.series_id, rollups.c.start_ms, rollups.c.end_ms).where(rollups.c.resolution_s == res)
        )]


def _chunk_ends(db: TSDB) -> list[int]:
    with db.engine.connect() as conn:
        return list(conn.execute(sa.select(chunks.c.end_ms)).scalars())


def test_downsampling_on_age(store: Store) -> None:
    db = store.make(retention_raw_days=1, retention_1m_days=3, retention_1h_days=30, chunk_samples=64,
                    head_window=128, max_chunk_age_s=10**9)
    data = _fleet_days(db, 3)
    assert not _rows(db, 60) and not _rows(db, 3600)  # nothing is rolled up when chunks are cut
    now = int(T0 + 3 * DAY)
    cut_raw = now - DAY
    deleted = db.enforce_retention(now)
    ends = _chunk_ends(db)
    assert deleted > 0 and min(ends) >= cut_raw  # raw older than a day is gone
    r60 = _rows(db, 60)
    assert r60 and not _rows(db, 3600)
    assert all(st % DAY == 0 for _, st, _ in r60) and len(r60) <= 2 * 4  # one row per series and UTC day
    for sid, (ts, vals) in data.items():
        for res in (60, 3600):
            _assert_buckets(db.read_rollup(sid, res, int(ts[0]), int(ts[-1])), _agg(ts, vals, res))
            # a range that straddles the boundary between stored rollups and raw data: no gap
            mid = cut_raw - 7 * 60_000 - 30_000
            m = ts >= mid - mid % (res * 1000)
            _assert_buckets(db.read_rollup(sid, res, mid, int(ts[-1])), _agg(ts[m], vals[m], res))
        # ``read`` serves raw samples only: what was downsampled is not returned
        t, v = db.read(sid, int(ts[0]), int(ts[-1]))
        assert len(t) and t[0] >= cut_raw - 64 * STEP
        assert np.array_equal(t, ts[ts >= t[0]]) and np.array_equal(bits(v), bits(vals[ts >= t[0]]))
        old_t, _ = db.read(sid, int(ts[0]), int(t[0]) - 1)
        assert len(old_t) == 0
    assert db.enforce_retention(now) == 0  # nothing left to do
    # the store reopens with the same answers (the WAL replay does not re-add downsampled samples)
    db.close()
    db = store.make(retention_raw_days=1, retention_1m_days=3, retention_1h_days=30, chunk_samples=64,
                    head_window=128, max_chunk_age_s=10**9)
    for sid, (ts, vals) in data.items():
        _assert_buckets(db.read_rollup(sid, 60, int(ts[0]), int(ts[-1])), _agg(ts, vals, 60))
    # 1.5 days later: all raw data is past retention, the oldest 60 s rows are past theirs
    later = now + DAY + DAY // 2
    db.enforce_retention(later)
    assert not _chunk_ends(db)
    r60, r1h = _rows(db, 60), _rows(db, 3600)
    assert r1h and all(st % (30 * DAY) == 0 for _, st, _ in r1h)
    assert r60 and min(e for *_, e in r60) >= later - 3 * DAY
    for sid, (ts, vals) in data.items():
        _assert_buckets(db.read_rollup(sid, 3600, int(ts[0]), int(ts[-1])), _agg(ts, vals, 3600))
        kept = min(st for s, st, _ in r60 if s == sid)  # 60 s buckets exist from the oldest 60 s row on
        want = {b: x for b, x in _agg(ts, vals, 60).items() if b >= kept}
        _assert_buckets(db.read_rollup(sid, 60, int(ts[0]), int(ts[-1])), want)
        assert len(db.read(sid, 0, T0 * 2)[0]) == 0
    # past 1 h retention everything is gone
    db.enforce_retention(later + 40 * DAY)
    assert not _rows(db, 60) and not _rows(db, 3600)
    assert all(len(db.read_rollup(sid, 3600, 0, T0 * 2)) == 0 for sid in data)
    db.close()


def test_downsampling_failure_loses_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    db = store.make(retention_raw_days=1, retention_1m_days=1.5, chunk_samples=64, head_window=128,
                    max_chunk_age_s=10**9)
    data = _fleet_days(db, 2.5)
    flaky = FlakyEngine(db.engine, rollups, fail=1)
    monkeypatch.setattr(db, "engine", flaky)
    before = sorted(_chunk_ends(db))
    now = int(T0 + 2.5 * DAY)
    with pytest.raises(sa.exc.OperationalError):
        db.enforce_retention(now)
    assert flaky.failures == 1
    assert sorted(_chunk_ends(db)) == before and not _rows(db, 60)  # rolled back: nothing deleted
    for sid, (ts, vals) in data.items():
        _assert_buckets(db.read_rollup(sid, 60, int(ts[0]), int(ts[-1])), _agg(ts, vals, 60))
        t, _ = db.read(sid, 0, T0 * 2)
        assert np.array_equal(t, ts)
    assert db.enforce_retention(now) > 0  # the retry does the work
    assert min(_chunk_ends(db)) >= now - DAY and _rows(db, 60)
    # the same for 60 s -> 3600 s (raw has nothing left to do at this time)
    r60, r1h = sorted(_rows(db, 60)), sorted(_rows(db, 3600))
    later = now + DAY // 2
    db.storage.retention_raw_days = 1.5
    flaky.fail = 1
    with pytest.raises(sa.exc.OperationalError):
        db.enforce_retention(later)
    assert sorted(_rows(db, 60)) == r60 and sorted(_rows(db, 3600)) == r1h
    db.enforce_retention(later)
    assert sorted(_rows(db, 3600)) != r1h and len(_rows(db, 60)) < len(r60)
    for sid, (ts, vals) in data.items():
        _assert_buckets(db.read_rollup(sid, 3600, int(ts[0]), int(ts[-1])), _agg(ts, vals, 3600))
    db.close()


def test_downsampling_goes_in_bounded_batches(store: Store) -> None:
    db = store.make(retention_raw_days=1, chunk_samples=64, head_window=128, max_chunk_age_s=10**9)
    data = _fleet_days(db, 2)
    now = int(T0 + 2 * DAY)
    expired = sum(1 for e in _chunk_ends(db) if e < now - DAY)
    assert expired > 25
    db.downsample_batch_chunks = 10
    total = len(_chunk_ends(db))
    assert db.enforce_retention(now) == 10 and len(_chunk_ends(db)) == total - 10
    assert db.enforce_retention(now) == 10 and len(_chunk_ends(db)) == total - 20
    for sid, (ts, vals) in data.items():  # correct between batches too
        _assert_buckets(db.read_rollup(sid, 60, int(ts[0]), int(ts[-1])), _agg(ts, vals, 60))
    done = 20
    while (k := db.enforce_retention(now)) > 0:
        assert k <= 10
        done += k
    assert done == expired and min(_chunk_ends(db)) >= now - DAY
    assert len(_rows(db, 60)) <= 2 * 2  # merged into day rows, not one row per batch
    for sid, (ts, vals) in data.items():
        _assert_buckets(db.read_rollup(sid, 60, int(ts[0]), int(ts[-1])), _agg(ts, vals, 60))
        _assert_buckets(db.read_rollup(sid, 3600, int(ts[0]), int(ts[-1])), _agg(ts, vals, 3600))
    db.close()


def test_rollups_of_earlier_versions_are_migrated(store: Store) -> None:
    """Earlier versions wrote 60 s and 3600 s rows per chunk at every cut; after an upgrade every sample must
    still be counted once: rows of chunks that still exist are dropped, and so is the 3600 s copy of the rest."""
    from aurora.store import rollup as rollup_mod

    db = store.make(retention_raw_days=1, chunk_samples=64, head_window=128, max_chunk_age_s=10**9)
    data = _fleet_days(db, 2, n_series=1)
    db.close()
    with store.engine.begin() as conn:
        rows = conn.execute(sa.select(chunks.c.series_id, chunks.c.start_ms, chunks.c.end_ms, chunks.c.data)).all()
        from aurora.store.codec import decode_chunk

        old = []
        for sid, st, en, d in rows:
            t, v = decode_chunk(bytes(d))
            for res in (60, 3600):
                agg, _ = rollup_mod.compute(t, v, np.zeros(len(t), np.int64), res)
                old.append({"series_id": sid, "resolution_s": res, "start_ms": st, "end_ms": en, "count": len(agg),
                            "data": rollup_mod.encode_rows_v1(agg, [0], [len(agg)])[0]})
        conn.execute(rollups.insert(), old)
        # as the old retention did: the oldest chunks deleted, their rollups kept
        conn.execute(sa.delete(chunks).where(chunks.c.end_ms < T0 + DAY // 2))
    (store.data_dir / "rollups_by_age").unlink()
    db = store.make(retention_raw_days=1, chunk_samples=64, head_window=128, max_chunk_age_s=10**9)
    (sid, (ts, vals)), = data.items()
    m = ts >= min(_chunk_ends(db)) - 63 * STEP
    for res in (60, 3600):
        _assert_buckets(db.read_rollup(sid, res, int(ts[0]), int(ts[-1])), _agg(ts, vals, res))
    assert len(_rows(db, 3600)) == 0 and np.array_equal(db.read(sid, 0, T0 * 2)[0], ts[m])
    db.enforce_retention(int(T0 + 2 * DAY))
    for res in (60, 3600):
        _assert_buckets(db.read_rollup(sid, res, int(ts[0]), int(ts[-1])), _agg(ts, vals, res))
    db.close()


def test_replay_after_crash_without_close(store: Store) -> None:
    db = store.make(max_chunk_age_s=10**9)
    rng = np.random.default_rng(3)
    n = 16 * 3 + 9
    ts = T0 + STEP * np.arange(n)
    vals = rng.normal(size=n)
    vals[5] = STALE
    for a in range(0, n, 10):
        items = [("m", {"k": "v"}, list(ts[a : a + 10]), list(vals[a : a + 10])), ("new", {}, [int(ts[a])], [1.0])]
        db.append(batch(items))
    db.resolve(["only_resolved"], [{}])
    # simulated crash: no close(), no checkpoint; just drop the object (the fd leaks until GC)
    db.wal.close()
    del db
    db2 = store.make(max_chunk_age_s=10**9)
    sid = int(db2.resolve(["m"], [{"k": "v"}])[0])
    t, v = db2.read(sid, 0, T0 * 2)
    assert np.array_equal(t, ts) and np.array_equal(bits(v), bits(vals))
    assert {s.metric for s in db2.all_series()} == {"m", "new", "only_resolved"}
    # no chunk was written twice
    with db2.engine.connect() as conn:
        starts = conn.execute(sa.select(chunks.c.start_ms).where(chunks.c.series_id == sid)).scalars().all()
    assert len(starts) == len(set(starts)) == 3
    # keep going after replay; a second crash and replay still has everything
    more_t = T0 + STEP * np.arange(n, n + 20)
    db2.append(batch([("m", {"k": "v"}, list(more_t), [2.0] * 20)]))
    db2.wal.close()
    del db2
    db3 = store.make(max_chunk_age_s=10**9)
    t, v = db3.read(sid, 0, T0 * 2)
    assert np.array_equal(t, np.concatenate([ts, more_t]))
    db3.close()


def test_replay_ignores_torn_wal_tail(store: Store) -> None:
    db = store.make()
    db.append(batch([("m", {}, [T0, T0 + 1], [1.0, 2.0])]))
    db.append(batch([("m", {}, [T0 + 2], [3.0])]))
    db.wal.close()
    segs = db.wal.segments()
    path = segs[-1][1]
    data = path.read_bytes()
    # tear the last record: keep only part of it, as a kill -9 mid-write would
    last_len = 13 + 16 + 8 + 8 + 8 + 8
    path.write_bytes(data[: len(data) - last_len + 20])
    del db
    db2 = store.make()
    t, v = db2.read(0, 0, T0 * 2)
    assert list(t) == [T0, T0 + 1] and list(v) == [1.0, 2.0]
    # corrupted payload (CRC mismatch) in the middle is also the end of that segment
    db2.append(batch([("m", {}, [T0 + 5], [5.0])]))
    db2.close()
    db3 = store.make()
    t, _ = db3.read(0, 0, T0 * 2)
    assert list(t) == [T0, T0 + 1, T0 + 5]
    db3.close()


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    from aurora.clock import EventClock
    from aurora.config import LimitsConfig, StorageConfig
    from aurora.db.database import create_db_engine, migrate
    from aurora.model import SeriesBatch
    from aurora.store.tsdb import TSDB

    url, data_dir = sys.argv[1], Path(sys.argv[2])
    engine = create_db_engine(url)
    migrate(engine)
    st = StorageConfig(data_dir=data_dir, chunk_samples=16, head_window=32, wal_fsync="always")
    db = TSDB(engine, data_dir, st, LimitsConfig(), EventClock("data"))
    db.open()
    T0 = 1_700_000_000_000
    k = 0
    while True:
        n = 20
        metrics = [f"m{i % 7}" for i in range(n)]
        labels = [{"i": str(i), "k": str(k // 10)} for i in range(n)]
        offsets = np.arange(0, 3 * n + 1, 3, dtype=np.int64)
        ts = np.repeat(T0 + 3 * k * 1000, 3 * n) + np.tile(np.arange(3) * 1000, n)
        vals = np.tile(np.array([k, k + 0.5, k + 0.25]), n)
        db.append(SeriesBatch(metrics, labels, offsets, ts.astype(np.int64), vals))
        print(k, flush=True)
        k += 1
    """
)


def test_kill_9_keeps_acknowledged_samples(store: Store, db_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, db_url, str(store.data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    acked = -1
    try:
        for line in proc.stdout:
            acked = int(line)
            if acked >= 60:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert acked >= 60, proc.stderr.read() if proc.stderr else ""
    db = store.make()
    for k in range(acked + 1):
        for i in (0, 13, 19):
            sid = int(db.resolve([f"m{i % 7}"], [{"i": str(i), "k": str(k // 10)}])[0])
            t, v = db.read(sid, T0 + 3 * k * 1000, T0 + 3 * k * 1000 + 2000)
            assert list(t) == [T0 + 3 * k * 1000 + d for d in (0, 1000, 2000)], (k, i)
            assert list(v) == [k, k + 0.5, k + 0.25]
    db.close()


def test_backfill_larger_than_ring_and_age_flush(store: Store) -> None:
    db = store.make(max_chunk_age_s=600)  # ring = max(32, 2*16) = 32
    n = 1000
    ts = T0 + STEP * np.arange(n)
    vals = np.arange(n, dtype=float)
    r = db.append(batch([("m", {}, list(ts), list(vals)), ("slow", {}, [T0], [1.0])]))
    assert r.accepted == n + 1
    st = db.stats()
    # 62 full chunks of 16 for "m"; its 8 left over are younger than 600 s; "slow" is old: flushed
    assert st["chunks_written"] == 62 + 1 and st["head_unflushed_samples"] == 8
    t, v = db.read(0, 0, T0 * 2)
    assert np.array_equal(t, ts) and np.array_equal(v, vals)
    db.close()


def test_wal_rotates_when_large(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import aurora.store.tsdb as tsdb_mod

    monkeypatch.setattr(tsdb_mod, "WAL_SEGMENT_TARGET_BYTES", 2000)
    db = store.make(max_chunk_age_s=10**9)
    for k in range(100):
        db.append(batch([("m", {"i": str(i)}, [T0 + k * STEP], [float(k)]) for i in range(3)]))
    assert db.counters["wal_rotations"] > 2
    assert len(db.wal.segments()) == 1
    db.wal.close()
    del db
    db2 = store.make(max_chunk_age_s=10**9)
    for i in range(3):
        sid = int(db2.resolve(["m"], [{"i": str(i)}])[0])
        t, v = db2.read(sid, 0, T0 * 2)
        assert list(t) == [T0 + k * STEP for k in range(100)] and list(v) == [float(k) for k in range(100)]
    db2.close()


def test_concurrent_appends_and_reads(store: Store) -> None:
    import threading

    db = store.make()
    ids = db.resolve(["m"] * 4, [{"i": str(i)} for i in range(4)])
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for k in range(300):
                db.append_ids(ids, np.arange(5, dtype=np.int64), np.full(4, T0 + k * STEP, np.int64),
                              np.full(4, float(k)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(200):
                t, v = db.read(int(ids[1]), 0, T0 * 2)
                assert np.all(np.diff(t) > 0) and np.array_equal(v, (t - T0) / STEP)
                db.read_rollup(int(ids[1]), 60, 0, T0 * 2)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader), threading.Thread(target=reader)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    t, _ = db.read(int(ids[1]), 0, T0 * 2)
    assert len(t) == 300
    st = db.stats()
    assert st["series"] == 4 and st["chunks"] == 4 * (300 // 16) and st["bytes_on_disk"] > 0
    db.close()


def test_first_chunks_are_staggered(store: Store) -> None:
    db = store.make(max_chunk_age_s=10**9)
    ids = db.resolve(["m"] * 64, [{"i": str(i)} for i in range(64)])
    per_batch = []
    for k in range(48):
        before = db.counters["chunks_written"]
        db.append_ids(ids, np.arange(65, dtype=np.int64), np.full(64, T0 + k * STEP, np.int64), np.full(64, 1.0))
        per_batch.append(db.counters["chunks_written"] - before)
    assert max(per_batch) < 64 // 2  # cuts spread over several appends, not all 64 at once
    with db.engine.connect() as conn:
        counts = conn.execute(sa.select(chunks.c.series_id, chunks.c.count).order_by(chunks.c.start_ms)).all()
    firsts: dict[int, int] = {}
    for sid, cnt in counts:
        if sid in firsts:
            assert cnt == 16  # after the first, chunks are full size
        else:
            firsts[sid] = cnt
            assert 8 < cnt <= 16
    db.close()


# --- idempotent retries -------------------------------------------------------------------------------


def _stored_chunks(db: TSDB) -> list[tuple[int, int, int]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(chunks.c.series_id, chunks.c.start_ms, chunks.c.count))]


def test_retry_of_whole_request_is_all_duplicates(store: Store) -> None:
    db = store.make(max_chunk_age_s=10**9)
    n = 24  # some of it already cut into a chunk, all of it still in the ring (32)
    ts = T0 + STEP * np.arange(n)
    rng = np.random.default_rng(5)
    va, vb = rng.normal(size=n), rng.normal(size=n)
    va[4] = STALE
    req = batch([("m", {"s": "a"}, list(ts), list(va)), ("m", {"s": "b"}, list(ts), list(vb))])
    r = db.append(req)
    assert (r.accepted, r.duplicates, r.dropped) == (2 * n, 0, 0)
    chunks_before = _stored_chunks(db)
    assert chunks_before  # the retry covers flushed samples too
    wal_before = db.wal.bytes_written
    for _ in range(2):
        r = db.append(req)
        assert (r.accepted, r.duplicates, r.dropped, r.new_series) == (0, 2 * n, 0, 0)
    assert db.wal.bytes_written == wal_before
    db.checkpoint()
    for sid, v in zip(r.series_ids, (va, vb), strict=True):
        t, got = db.read(int(sid), 0, T0 * 2)
        assert np.array_equal(t, ts) and np.array_equal(bits(got), bits(v))
        assert int(db.read_rollup(int(sid), 3600, 0, T0 * 2).count.sum()) == n - (1 if v is va else 0)
    starts = [(s, st) for s, st, _ in _stored_chunks(db)]
    assert len(starts) == len(set(starts)) and sum(c for *_, c in _stored_chunks(db)) == 2 * n
    db.close()
    # after a restart the retry is still recognised (its samples are in the replayed head)
    db = store.make(max_chunk_age_s=10**9)
    r = db.append(batch([("m", {"s": "a"}, list(ts[-5:]), list(va[-5:]))]))
    assert (r.accepted, r.duplicates) == (0, 5)
    db.close()


def test_retry_with_a_changed_value_is_refused(store: Store) -> None:
    db = store.make()
    ts = T0 + STEP * np.arange(10)
    vals = np.arange(10, dtype=np.float64)
    db.append(batch([("m", {}, list(ts), list(vals))]))
    wal_before = db.wal.bytes_written
    changed = vals.copy()
    changed[3] = 99.0
    new_t = [*ts.tolist(), int(ts[-1]) + STEP]
    with pytest.raises(BadInput, match=r"same timestamp as a stored sample but a different value") as ei:
        db.append(batch([("m", {}, new_t, [*changed, 10.0]), ("m", {"x": "new"}, [T0], [1.0])]))
    assert str(int(ts[3])) in ei.value.message
    # NaN vs stale marker, -0.0 vs 0.0: value bits decide
    with pytest.raises(BadInput):
        db.append(batch([("m", {}, [int(ts[0])], [-0.0])]))
    # an older timestamp the series never had is out of order, not a duplicate
    with pytest.raises(BadInput, match=r"older than the newest stored sample"):
        db.append(batch([("m", {}, [int(ts[2]) + 1], [2.0])]))
    assert db.wal.bytes_written == wal_before
    assert [s.labels for s in db.all_series()] == [{}]
    t, v = db.read(0, 0, T0 * 2)
    assert np.array_equal(t, ts) and np.array_equal(v, vals)
    db.close()


def test_partly_retried_request_stores_the_new_tail(store: Store) -> None:
    db = store.make()
    ts = T0 + STEP * np.arange(30)
    vals = np.sqrt(np.arange(30, dtype=np.float64))
    db.append(batch([("m", {"s": "a"}, list(ts[:20]), list(vals[:20])), ("m", {"s": "b"}, list(ts[:5]), [1.0] * 5)]))
    r = db.append(
        batch([("m", {"s": "a"}, list(ts[12:30]), list(vals[12:30])), ("m", {"s": "b"}, list(ts[:5]), [1.0] * 5)])
    )
    assert (r.accepted, r.duplicates, r.dropped) == (10, 8 + 5, 0)
    t, v = db.read(0, 0, T0 * 2)
    assert np.array_equal(t, ts) and np.array_equal(v, vals)
    db.checkpoint()
    assert sum(c for *_, c in _stored_chunks(db)) == 30 + 5
    t, v = db.read(0, 0, T0 * 2)
    assert np.array_equal(t, ts) and np.array_equal(v, vals)
    db.close()


def test_retry_in_drop_mode(store: Store) -> None:
    db = store.make(out_of_order="drop")
    ts = T0 + STEP * np.arange(10)
    db.append(batch([("m", {}, list(ts), [1.0] * 10)]))
    # 3 exact retries, one changed value, one never-seen older timestamp, 2 new
    t = [int(ts[5]), int(ts[6]), int(ts[7]) + 1, int(ts[8]), int(ts[9]), int(ts[9]) + STEP, int(ts[9]) + 2 * STEP]
    v = [1.0, 1.0, 1.0, 2.0, 1.0, 3.0, 4.0]
    r = db.append(batch([("m", {}, t, v)]))
    assert (r.accepted, r.duplicates, r.dropped) == (2, 3, 2)
    got_t, got_v = db.read(0, 0, T0 * 2)
    assert list(got_t) == [*ts.tolist(), t[-2], t[-1]] and list(got_v) == [1.0] * 10 + [3.0, 4.0]
    assert db.counters["duplicates"] == 3 and db.counters["dropped"] == 2
    db.close()


# --- failed chunk writes ------------------------------------------------------------------------------


class FlakyEngine:
    """Delegates to an engine; while ``fail`` > 0, inserting into ``table`` raises (and uses up one failure)
    inside the real transaction, so what was executed before it in that transaction is rolled back."""

    def __init__(self, engine: sa.Engine, table: sa.Table, fail: int = 0) -> None:
        self._engine = engine
        self.table = table
        self.fail = fail
        self.failures = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)

    @contextlib.contextmanager
    def begin(self) -> Iterator[object]:
        with self._engine.begin() as conn:
            yield _FlakyConn(conn, self)


class _FlakyConn:
    def __init__(self, conn: sa.Connection, owner: FlakyEngine) -> None:
        self._conn = conn
        self._owner = owner

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)

    def execute(self, stmt: Any, *args: Any) -> Any:
        o = self._owner
        if o.fail > 0 and getattr(stmt, "table", None) is o.table:
            o.fail -= 1
            o.failures += 1
            raise sa.exc.OperationalError(str(stmt), {}, Exception("database unreachable"))
        return self._conn.execute(stmt, *args)


def _check_all(db: TSDB, expect: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    for sid, (ts, vals) in expect.items():
        t, v = db.read(sid, 0, T0 * 2)
        assert np.array_equal(t, ts) and np.array_equal(bits(v), bits(vals)), sid
        agg = db.read_rollup(sid, 60, 0, T0 * 2)
        assert int(agg.count.sum()) == len(ts) and np.isclose(agg.sum.sum(), vals.sum())
    rows = _stored_chunks(db)
    assert len({(s, st) for s, st, _ in rows}) == len(rows)  # no chunk written twice


def test_failed_chunk_write_loses_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    db = store.make(max_chunk_age_s=10**9)
    flaky = FlakyEngine(db.engine, chunks, fail=1)
    monkeypatch.setattr(db, "engine", flaky)
    ids = db.resolve(["m"] * 3, [{"i": str(i)} for i in range(3)])
    n = 40
    ts = T0 + STEP * np.arange(n)
    vals = np.stack([np.arange(n) * (i + 1.5) for i in range(3)])
    for k in range(n):
        r = db.append_ids(ids, np.arange(4, dtype=np.int64), np.full(3, ts[k]), vals[:, k].copy())
        assert r.accepted == 3  # the failed chunk write does not fail the append: the samples are in the WAL
    assert flaky.failures == 1 and db.counters["flush_errors"] == 1
    expect = {int(s): (ts, vals[i]) for i, s in enumerate(ids)}
    _check_all(db, expect)  # the samples of the failed cut were cut again by a later append
    stored = sum(c for *_, c in _stored_chunks(db))
    assert stored + db.stats()["head_unflushed_samples"] == 3 * n
    db.close()
    db = store.make(max_chunk_age_s=10**9)
    _check_all(db, expect)
    assert sum(c for *_, c in _stored_chunks(db)) == 3 * n
    db.close()


def test_failed_checkpoint_keeps_the_wal(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    db = store.make(max_chunk_age_s=10**9)
    flaky = FlakyEngine(db.engine, chunks)
    monkeypatch.setattr(db, "engine", flaky)
    ts = T0 + STEP * np.arange(20)
    vals = np.arange(20, dtype=np.float64)
    db.append(batch([("m", {}, list(ts[:5]), list(vals[:5]))]))
    flaky.fail = 10**6
    db.append(batch([("m", {}, list(ts[5:]), list(vals[5:]))]))
    assert db.counters["flush_errors"] >= 1 and not _stored_chunks(db)
    with pytest.raises(sa.exc.OperationalError):
        db.checkpoint()
    with pytest.raises(sa.exc.OperationalError):
        db.close()
    _check_all(db, {0: (ts, vals)})
    db.wal.close()  # crash
    del db
    db = store.make(max_chunk_age_s=10**9)
    _check_all(db, {0: (ts, vals)})
    db.checkpoint()
    assert sum(c for *_, c in _stored_chunks(db)) == 20
    db.close()


def test_full_ring_refuses_appends_while_chunk_writes_fail(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    db = store.make(max_chunk_age_s=10**9)  # ring 32, rounds of 16
    flaky = FlakyEngine(db.engine, chunks, fail=10**6)
    monkeypatch.setattr(db, "engine", flaky)
    ts = T0 + STEP * np.arange(45)
    vals = np.arange(45, dtype=np.float64) / 4
    big = batch([("m", {}, list(ts[:40]), list(vals[:40]))])  # rounds of 16, 16, 8
    with pytest.raises(sa.exc.OperationalError):
        db.append(big)
    # the first two rounds are stored (head and WAL, none flushed), the third did not fit beside them
    t, _ = db.read(0, 0, T0 * 2)
    assert np.array_equal(t, ts[:32])
    wal_before = db.wal.bytes_written
    with pytest.raises(sa.exc.OperationalError):
        db.append(batch([("m", {}, [int(ts[32])], [1.0])]))
    assert db.wal.bytes_written == wal_before
    flaky.fail = 0  # the database is back; the client retries the whole request
    r = db.append(big)
    assert (r.accepted, r.duplicates, r.dropped) == (8, 32, 0)
    db.append(batch([("m", {}, list(ts[40:]), list(vals[40:]))]))
    _check_all(db, {0: (ts, vals)})
    db.wal.close()  # crash
    del db
    db = store.make(max_chunk_age_s=10**9)
    _check_all(db, {0: (ts, vals)})
    db.close()
