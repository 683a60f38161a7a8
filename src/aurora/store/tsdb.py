"""The time-series store: series index, in-memory head, write-ahead log, compressed chunks and rollups.

Data path of one ``append``: look series up (creating new ones, cardinality-checked) -> validate the whole
batch against the head (ordering, duplicates, out-of-order) -> commit new series rows -> one WAL write ->
vectorized write into the head's ring buffers -> cut full chunks (``storage.chunk_samples``) and partial
chunks older than ``storage.max_chunk_age_s`` of event time into ``chunks`` rows (encoded together with
``codec.encode_chunks``) in one database transaction. No rollups are written then (see ROLLUPS).

ROLLUPS (downsampling on age, as Thanos and Cortex do)
    Every sample is in exactly one tier at a time: raw (the head and ``chunks``), 60 s buckets
    (``rollups`` rows with ``resolution_s = 60``, one row per series and UTC day) or 3600 s buckets
    (``resolution_s = 3600``, one row per series and 30-day span). A rollup row's ``start_ms`` is the start
    of its span and its ``end_ms`` the newest source sample it covers. Rollups exist only for data past raw
    retention: ``enforce_retention(now_ms)`` turns chunks whose ``end_ms`` is more than
    ``storage.retention_raw_days`` before ``now_ms`` into 60 s buckets, merged into the series' day rows, and
    deletes those chunks in the same transaction; likewise 60 s rows whose ``end_ms`` is past
    ``retention_1m_days`` become 3600 s buckets (so 60 s buckets live up to a day longer than that), and
    3600 s rows past ``retention_1h_days`` are deleted. Each call converts at most
    ``downsample_batch_chunks`` chunks and ``downsample_batch_rows`` 60 s rows (oldest first), so one
    maintenance pass never holds the database for long; a backlog is worked off by later calls.
    ``read_rollup`` computes buckets for the part of a range still held raw on the fly from chunks and head,
    reads the stored rollups for the older part and merges them (a bucket split across tiers is combined
    exactly), all from one SQL statement, so a concurrent downsampling pass never shows a gap or counts a
    sample twice. 60 s buckets are available as long as 60 s rollups are kept, 3600 s ones as long as
    either is. ``read`` returns raw samples only: data past raw retention is served by ``read_rollup`` alone.
    NaN values (and stale markers) are left out of rollups; ``count`` counts the other samples.

DUPLICATES
    A sample at or before its series' newest timestamp is a duplicate (skipped, counted in
    ``AppendResult.duplicates``) if the head holds a sample of that series with the same timestamp and
    identical value bits, so a client may retry a whole request: the retried samples are duplicates and
    only samples newer than the series' newest are stored. Any other older sample is out of order
    (``limits.out_of_order``: the batch is rejected, or those samples are dropped). The head holds the
    newest ``max(head_window, 2 * chunk_samples)`` samples of each series (after a restart it is
    back-filled from chunks to ``head_window`` samples first); a retry of something older is out of order.
    Only series with such older samples pay for the lookup (a binary search of their ring).

DURABILITY
    When ``append`` (or ``append_ids``/``resolve``) returns, its samples and any new series are in the
    write-ahead log under ``data_dir/wal/``, and new series rows are committed to the database before the
    WAL record that refers to them is written.
    With ``storage.wal_fsync: always`` (the default) the WAL record has been fsynced before ``append``
    returns: every acknowledged sample survives ``kill -9``, an OS crash and power loss. The fsync happens
    after the store's lock is released (group commit: concurrent appends share one fsync), so a query may
    see samples a moment before they are durable; they are acknowledged only after.
    With ``interval`` the WAL is fsynced at most every ``wal_fsync_interval_s`` seconds (by the append
    that finds the interval elapsed and by a background thread): acknowledged samples survive ``kill -9``
    of Aurora (they are in the OS page cache) but up to that interval of them can be lost if the machine
    itself crashes.
    With ``never`` only the operating system decides; ``kill -9`` still loses nothing acknowledged.
    Chunks are written to the database as they are cut, in one transaction per append; the
    WAL keeps their samples until a WAL rotation. ``checkpoint()`` (and ``close()``, and an automatic
    rotation once a segment passes 64 MiB) flushes or snapshots every unflushed sample, makes the database
    durable (an SQLite WAL checkpoint, which fsyncs under ``synchronous=NORMAL``; PostgreSQL commits are
    durable already), writes and fsyncs a new segment holding the newest-sample state and the unflushed
    samples, and only then deletes the old segments.
    If writing chunks fails (say the database is briefly unreachable), the cut is undone: those samples
    stay unflushed in the head, and so in every WAL segment, and are written by a later cut, ``checkpoint()``
    or WAL replay. An append whose chunk write fails still succeeds (its samples are in the WAL; the failure
    is logged and counted in ``flush_errors``). Once a series' unflushed samples would no longer fit in its
    ring beside the new ones, the append first writes them and, if that fails too, raises storing nothing
    (a batch with more than ``ring - chunk_samples`` samples of a series goes in rounds, one WAL record
    each; rounds before the failing one stay stored, so a retry finds them as duplicates).
    ``checkpoint()`` and ``close()`` raise and keep the WAL as it was.
    ``open()`` replays the WAL: samples already in chunks are recognised (by each series' newest chunk end, or
    the newest sample a rollup row of the series covers) and not written twice; a torn record at the tail of a
    segment (a write interrupted by the crash, never acknowledged) is detected by its length and CRC32 and
    ignored.
    Downsampling writes the rollup rows and deletes their source chunks (or 60 s rows) in one database
    transaction: if it fails or the process dies, nothing has changed and the next call redoes it. Rollup
    rows written per chunk by older versions are deleted by ``open()`` while their chunks still exist.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Engine

from aurora.clock import EventClock
from aurora.config import LimitsConfig, StorageConfig
from aurora.db.tables import chunks, rollups, series
from aurora.errors import BadInput, LimitExceeded, NotFound
from aurora.model import Float64Array, Int64Array, SeriesBatch
from aurora.store import rollup as rollup_mod
from aurora.store.codec import decode_chunk, encode_chunks
from aurora.store.head import NO_TS, Head
from aurora.store.index import SeriesIndex, SeriesInfo, key_hash, sorted_key
from aurora.store.rollup import RESOLUTIONS_S, RollupArrays
from aurora.store.wal import (
    REC_SAMPLES,
    REC_SERIES,
    REC_STATE,
    WAL,
    SamplesRecord,
    SeriesRecord,
    StateRecord,
    encode_record,
    samples_parts,
    series_parts,
    state_parts,
)

__all__ = ["TSDB", "AppendResult", "RollupArrays", "SeriesInfo"]

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
# Start a new WAL segment (snapshotting the unflushed head) once the current one is this large
# and at least 4x the size of that snapshot.
WAL_SEGMENT_TARGET_BYTES = 64 * 1024 * 1024
# Rollup rows span this much time (aligned to the unix epoch): one row per series and span.
ROW_SPAN_MS = {60: DAY_MS, 3600: 30 * DAY_MS}
# Bound of SQL parameters in one IN (...) list.
_IN_BATCH = 500


@dataclass
class AppendResult:
    accepted: int
    duplicates: int
    dropped: int
    new_series: int
    series_ids: Int64Array = field(default_factory=lambda: np.zeros(0, np.int64))
    # With ``defer_commit``: the WAL position to pass to ``commit`` before acknowledging the write.
    wal_position: int = 0


@dataclass
class _Pending:
    """Samples gathered from the head to be written as chunks: ``sid[i]`` owns ``ts[start[i]:end[i]]``.
    ``cut_sids``/``cut_n``: how far each ``_cut`` advanced ``head.flushed``, undone if the write fails."""

    ts: list[Int64Array] = field(default_factory=list)
    vals: list[Float64Array] = field(default_factory=list)
    sid: list[Int64Array] = field(default_factory=list)
    sizes: list[Int64Array] = field(default_factory=list)
    cut_sids: list[Int64Array] = field(default_factory=list)
    cut_n: list[Int64Array] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ts)


def _ranges(sizes: Int64Array) -> tuple[Int64Array, Int64Array]:
    starts = np.zeros(len(sizes), np.int64)
    if len(sizes) > 1:
        np.cumsum(sizes[:-1], out=starts[1:])
    return starts, starts + sizes


class TSDB:
    def __init__(
        self,
        engine: Engine,
        data_dir: Path,
        storage: StorageConfig,
        limits: LimitsConfig,
        clock: EventClock,
    ) -> None:
        self.engine = engine
        self.data_dir = Path(data_dir)
        self.storage = storage
        self.limits = limits
        self.clock = clock
        self._lock = threading.RLock()
        self.index = SeriesIndex()
        self.head = Head(storage.head_window, storage.chunk_samples)
        self.wal = WAL(self.data_dir / "wal", storage.wal_fsync, storage.wal_fsync_interval_s)
        self._chunk = storage.chunk_samples
        self._age_ms = int(storage.max_chunk_age_s * 1000)
        self._age_step_ms = max(1, min(self._age_ms // 8, 60_000))
        self._last_age_check = NO_TS
        self._opened = False
        self._stored: dict[str, int] | None = None  # chunk/rollup totals in the DB, counted lazily
        self._maint_lock = threading.Lock()  # one downsampling pass at a time (read-modify-write of rows)
        # at most this many chunks / 60 s rows are downsampled per ``enforce_retention`` call
        self.downsample_batch_chunks = 4096
        self.downsample_batch_rows = 1024
        self.counters: dict[str, int] = {
            "chunks_written": 0,
            "rollups_written": 0,
            "samples_flushed": 0,
            "chunk_bytes_written": 0,
            "samples_appended": 0,
            "duplicates": 0,
            "dropped": 0,
            "replayed_samples": 0,
            "wal_rotations": 0,
            "flush_errors": 0,
            "chunks_downsampled": 0,
            "rollups_downsampled": 0,
        }

    # --- lifecycle -------------------------------------------------------------------------------
    def open(self) -> None:
        """Load the series index from the database and replay the WAL into the head."""
        with self._lock:
            if self._opened:
                return
            self._load_series()
            self._drop_chunk_rollups()
            self._replay()
            self.wal.start()
            self._rotate()
            self._opened = True

    def close(self) -> None:
        with self._lock:
            if not self._opened:
                return
            self.checkpoint()
            self.wal.close()
            self._opened = False

    def checkpoint(self) -> None:
        """Flush every unflushed sample into chunks, then start a new WAL segment and drop the old ones."""
        with self._lock:
            self._check_open()
            n = self.head.n
            unfl = self.head.pos[:n] - self.head.flushed[:n]
            has = np.flatnonzero(unfl > 0)
            pending = _Pending()
            self._cut(has, unfl[has], pending)
            self._store(pending)
            self._rotate()

    def _check_open(self) -> None:
        if not self._opened:
            raise RuntimeError("TSDB is not open; call open() first")

    def _load_series(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(series.c.id, series.c.metric, series.c.labels).order_by(series.c.id)
            ).all()
        max_id = -1
        for sid, metric, labels in rows:
            self.index.add(int(sid), metric, json.loads(labels))
            max_id = max(max_id, int(sid))
        self.head.reserve(max_id + 1)
        self.head.n = max_id + 1
        self.head.loaded[: self.head.n] = False
        self.head.cut_at[: self.head.n] = self.head.first_cut(np.arange(self.head.n, dtype=np.int64))

    def _replay(self) -> None:
        head = self.head
        records = list(self.wal.replay_records())
        state_seen = False
        samples: list[SamplesRecord] = []
        for _seg, rec in records:
            if isinstance(rec, StateRecord):
                state_seen = True
                k = min(len(rec.last_ts), head.n)
                head.last_ts[:k] = rec.last_ts[:k]
                head.last_bits[:k] = rec.last_bits[:k]
            elif isinstance(rec, SeriesRecord):
                missing = [s for s in rec.series if self.index.get(s[0]) is None]
                if missing:
                    head.reserve(max(s[0] for s in missing) + 1)
                    self._insert_series([(sid, m, lab, None) for sid, m, lab in missing])
            else:
                samples.append(rec)
        n = head.n
        if not state_seen and n:
            self._last_from_db()
        if not samples:
            return
        min_ts = min(int(r.ts.min()) for r in samples if len(r.ts))
        flushed_end = np.full(n, NO_TS, np.int64)
        with self.engine.connect() as conn:
            for tbl in (chunks, rollups):  # samples downsampled already count as flushed too
                for sid, end in conn.execute(
                    sa.select(tbl.c.series_id, sa.func.max(tbl.c.end_ms))
                    .where(tbl.c.end_ms >= min_ts)
                    .group_by(tbl.c.series_id)
                ):
                    if 0 <= sid < n:
                        flushed_end[sid] = max(int(flushed_end[sid]), int(end))
        for rec in samples:
            ok = (rec.ids >= 0) & (rec.ids < n)
            if not ok.all():  # series unknown to both DB and WAL: cannot place these samples
                log.warning("WAL replay: skipping samples of %d unknown series", int((~ok).sum()))
            rep = np.repeat(np.arange(len(rec.ids)), rec.counts)
            keep = ok[rep]
            sid_rep = rec.ids[rep]
            fl = np.zeros(len(rec.ts), bool)
            fl[keep] = rec.ts[keep] <= flushed_end[sid_rep[keep]]
            # Samples already in chunks go to the ring as flushed; the rest are applied normally.
            k = len(rec.ids)
            if fl.any():
                c_fl = np.bincount(rep[fl], minlength=k).astype(np.int64)
                head.write(rec.ids[c_fl > 0], c_fl[c_fl > 0], rec.ts[fl], rec.values[fl])
                done = rec.ids[c_fl > 0]
                head.flushed[done] = head.pos[done]
            rest = keep & ~fl
            if rest.any():
                c_r = np.bincount(rep[rest], minlength=k).astype(np.int64)
                sel = c_r > 0
                self._apply(rec.ids[sel], c_r[sel], rec.ts[rest], rec.values[rest])
            self.counters["replayed_samples"] += int(keep.sum())
            if len(rec.ts):
                self.clock.observe_ms(int(rec.ts.max()))

    def _last_from_db(self) -> None:
        """Newest sample of every series from its newest chunk (only when the WAL has no STATE record)."""
        latest = (
            sa.select(chunks.c.series_id, sa.func.max(chunks.c.start_ms).label("m"))
            .group_by(chunks.c.series_id)
            .subquery()
        )
        q = sa.select(chunks.c.series_id, chunks.c.data).join(
            latest, sa.and_(chunks.c.series_id == latest.c.series_id, chunks.c.start_ms == latest.c.m)
        )
        with self.engine.connect() as conn:
            for sid, data in conn.execute(q):
                ts, vals = decode_chunk(bytes(data))
                if len(ts) and 0 <= sid < self.head.n:
                    self.head.last_ts[sid] = ts[-1]
                    self.head.last_bits[sid] = vals[-1:].view(np.uint64)[0]

    def _rotate(self) -> None:
        """Start a new WAL segment (STATE + unflushed samples) and delete the old ones. Chunks committed so
        far must be durable first: SQLite with ``synchronous=NORMAL`` syncs its WAL only at a checkpoint."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        head = self.head
        n = head.n
        unfl = head.pos[:n] - head.flushed[:n]
        has = np.flatnonzero(unfl > 0)
        recs = [encode_record(REC_STATE, state_parts(head.last_ts[:n], head.last_bits[:n]))]
        if len(has):
            counts = unfl[has]
            ts, vals = head.gather_many(has, head.flushed[has], counts)
            recs.append(encode_record(REC_SAMPLES, samples_parts(has, counts, ts, vals)))
        self.wal.rotate(recs)
        self.counters["wal_rotations"] += 1

    # --- series ----------------------------------------------------------------------------------
    def _insert_series(self, new: list[tuple[int, str, dict[str, str], bytes | None]]) -> None:
        """Commit new series rows, then add them to the index and head (ids must be reserved)."""
        from aurora.model import series_key

        now = self.clock.now_ms()
        rows = []
        for sid, metric, labels, kh in new:
            h = kh if kh is not None else key_hash(series_key(metric, labels))
            rows.append(
                {
                    "id": sid,
                    "key_hash": h.hex(),
                    "metric": metric,
                    "labels": json.dumps(labels, sort_keys=True, separators=(",", ":")),
                    "created_ms": now,
                }
            )
        with self.engine.begin() as conn:
            conn.execute(series.insert(), rows)
        for sid, metric, labels, _ in new:
            self.index.add(sid, metric, labels)
            self.head.n = max(self.head.n, sid + 1)
            self.head.loaded[sid] = True

    def _lookup(
        self, metrics: list[str], labels: list[dict[str, str]], known: Int64Array | None = None
    ) -> tuple[Int64Array, list[tuple[int, str, dict[str, str], bytes | None]]]:
        """Ids for (metric, labels), with provisional ids for unknown series (nothing is created).
        ``known``: ids from an earlier ``known_ids`` call (series are never removed, so they stay valid)."""
        ids = known.tolist() if known is not None else self.index.lookup_fast(metrics, labels)
        new: list[tuple[int, str, dict[str, str], bytes | None]] = []
        new_by_key: dict[tuple[str, ...], int] = {}
        base = self.head.n
        if -1 in ids:
            for i, c in enumerate(ids):
                if c >= 0:
                    continue
                sid = self.index.lookup_slow(metrics[i], labels[i])
                if sid < 0:
                    sk = sorted_key(metrics[i], labels[i])
                    got = new_by_key.get(sk)
                    if got is None:
                        sid = base + len(new)
                        new_by_key[sk] = sid
                        new.append((sid, metrics[i], labels[i], None))
                    else:
                        sid = got
                ids[i] = sid
        if new:
            per: dict[str, int] = {}
            for _, m, _, _ in new:
                per[m] = per.get(m, 0) + 1
            limit = self.limits.max_series_per_metric
            for m, k in per.items():
                have = self.index.per_metric.get(m, 0)
                if have + k > limit:
                    raise LimitExceeded(
                        f"metric {m!r} would have {have + k} series, above the limit of {limit} series per "
                        f"metric (limits.max_series_per_metric); {k} new series in this request",
                        metric=m,
                        limit=limit,
                        existing=have,
                        new=k,
                    )
            self.head.reserve(base + len(new))
        return np.asarray(ids, np.int64), new

    def resolve(self, metrics: list[str], labels: list[dict[str, str]]) -> Int64Array:
        """Ids of the given series, creating (cardinality-checked, WAL-logged) the ones that are new."""
        if len(metrics) != len(labels):
            raise BadInput("metrics and labels differ in length")
        try:
            with self._lock:
                self._check_open()
                ids, new = self._lookup(metrics, labels)
                if new:
                    self._insert_series(new)
                    self.wal.write([encode_record(REC_SERIES, self._series_parts(new))])
                return ids
        finally:
            self.wal.commit()

    def known_ids(self, metrics: list[str], labels: list[dict[str, str]]) -> Int64Array:
        """Ids of the given series, -1 for series the store does not know (nothing is created).

        Lock-free on purpose (it runs before ``append`` takes the lock): the index only grows, an entry is
        published in ``by_key`` after its info exists, and single dict operations are atomic under the GIL."""
        ids = self.index.lookup_fast(metrics, labels)
        if -1 in ids:
            for i, c in enumerate(ids):
                if c < 0:
                    ids[i] = self.index.lookup_slow(metrics[i], labels[i])
        return np.asarray(ids, np.int64)

    def _series_parts(self, new: list[tuple[int, str, dict[str, str], bytes | None]]) -> list[Any]:
        return series_parts([(sid, m, dict(lab)) for sid, m, lab, _ in new])

    def all_series(self) -> list[SeriesInfo]:
        """Every series (shared objects: do not mutate)."""
        with self._lock:
            return [s for s in self.index.infos if s is not None]

    def get_series(self, series_id: int) -> SeriesInfo:
        info = self.index.get(int(series_id))
        if info is None:
            raise NotFound(f"no series with id {series_id}")
        return info

    # --- append ----------------------------------------------------------------------------------
    def append(self, batch: SeriesBatch, known_ids: Int64Array | None = None,
               defer_commit: bool = False) -> AppendResult:
        """Store a batch. ``known_ids``: what ``known_ids`` returned for it, to skip a second lookup.
        ``defer_commit``: return before the WAL fsync; the caller must ``commit(result.wal_position)``
        before it acknowledges the write (so the fsync can run off an event loop, grouped with others)."""
        result = None
        k = batch.n_series
        _check_shapes(k, batch.offsets, batch.ts_ms, batch.values)
        if len(batch.labels) != k:
            raise BadInput("metrics and labels differ in length")
        try:
            with self._lock:
                self._check_open()
                if k == 0:
                    return AppendResult(0, 0, 0, 0, np.zeros(0, np.int64))
                if known_ids is not None and len(known_ids) != k:
                    raise BadInput("known_ids does not match the batch")
                ids, new = self._lookup(batch.metrics, batch.labels, known_ids)
                result = self._append_locked(ids, batch.offsets, batch.ts_ms, batch.values, new)
                result.wal_position = self.wal.pending_position()
                return result
        finally:
            if result is None or not defer_commit:
                self.wal.commit()  # group commit: the fsync happens outside the store's lock

    def commit(self, wal_position: int) -> None:
        """Make an ``append(..., defer_commit=True)`` durable (fsync per policy); safe from any thread."""
        self.wal.commit(wal_position)

    def append_ids(
        self, series_ids: Int64Array, offsets: Int64Array, ts_ms: Int64Array, values: Float64Array
    ) -> AppendResult:
        ids = np.asarray(series_ids, np.int64)
        _check_shapes(len(ids), offsets, ts_ms, values)
        try:
            with self._lock:
                self._check_open()
                if len(ids) == 0:
                    return AppendResult(0, 0, 0, 0, ids)
                bad = (ids < 0) | (ids >= self.head.n)
                if bad.any():
                    raise BadInput(f"unknown series id {int(ids[np.argmax(bad)])}")
                return self._append_locked(ids, offsets, ts_ms, values, [])
        finally:
            self.wal.commit()

    def _key(self, sid: int, new: list[tuple[int, str, dict[str, str], bytes | None]]) -> str:
        from aurora.model import series_key

        for nsid, m, lab, _ in new:
            if nsid == sid:
                return series_key(m, lab)
        return self.index.key_of(sid)

    def _append_locked(
        self,
        ids_in: Int64Array,
        offsets: Int64Array,
        ts: Int64Array,
        vals: Float64Array,
        new: list[tuple[int, str, dict[str, str], bytes | None]],
    ) -> AppendResult:
        head = self.head
        ts = np.asarray(ts, np.int64)
        vals = np.asarray(vals, np.float64)
        counts: Int64Array = np.diff(np.asarray(offsets, np.int64)).astype(np.int64, copy=False)
        ids = ids_in
        k = len(ids)
        # the same series twice in one batch: merge its groups (in batch order)
        mark = np.empty(head.cap, np.int64)
        ar = np.arange(k)
        mark[ids] = ar
        if (mark[ids] != ar).any():
            sid_rep = np.repeat(ids, counts)
            order = np.argsort(sid_rep, kind="stable")
            ts, vals = ts[order], vals[order]
            ids, counts = np.unique(sid_rep, return_counts=True)
            counts = counts.astype(np.int64)
            k = len(ids)
        n = len(ts)
        rep = np.repeat(np.arange(k), counts)
        sid_rep = ids[rep]
        if n > 1:
            bad = (ts[1:] <= ts[:-1]) & (rep[1:] == rep[:-1])
            if bad.any():
                j = int(np.argmax(bad)) + 1
                raise BadInput(
                    f"samples of series {self._key(int(sid_rep[j]), new)} are not in strictly increasing time "
                    f"order: timestamp {int(ts[j])} follows {int(ts[j - 1])}",
                    series=self._key(int(sid_rep[j]), new),
                    timestamp_ms=int(ts[j]),
                )
        last_ts = head.last_ts[sid_rep]
        bits = vals.view(np.uint64)
        eq = ts == last_ts
        older = ts < last_ts
        dup = eq & (bits == head.last_bits[sid_rep])
        if older.any():
            self._older_duplicates(np.flatnonzero(older), sid_rep, ts, bits, dup)
        ooo = (older | eq) & ~dup
        n_dup = int(dup.sum())
        n_ooo = int(ooo.sum())
        if n_ooo and self.limits.out_of_order == "reject":
            j = int(np.argmax(ooo))
            key = self._key(int(sid_rep[j]), new)
            if eq[j] or self._in_head(int(sid_rep[j]), int(ts[j])):
                why = "has the same timestamp as a stored sample but a different value"
            else:
                why = f"is older than the newest stored sample at {int(last_ts[j])} and not a retry of a stored one"
            raise BadInput(
                f"out-of-order sample for series {key}: timestamp {int(ts[j])} {why} "
                f"(newest stored timestamp {int(last_ts[j])}); limits.out_of_order is 'reject'",
                series=key,
                timestamp_ms=int(ts[j]),
                newest_ms=int(last_ts[j]),
            )
        if n_dup or n_ooo:
            keep = ~(dup | ooo)
            ts, vals, rep = ts[keep], vals[keep], rep[keep]
            counts = np.bincount(rep, minlength=k).astype(np.int64)
        # --- validated: from here on the batch is stored ---
        if len(ts):
            sel = counts > 0
            ids_w, counts_w = (ids, counts) if sel.all() else (ids[sel], counts[sel])
            # refused (nothing stored) if the head is full of samples whose chunk writes keep failing
            self._make_room(ids_w, np.minimum(counts_w, head.ring - self._chunk))
        if new:
            self._insert_series(new)
        recs = []
        if new:
            recs.append(encode_record(REC_SERIES, self._series_parts(new)))
        if len(ts):
            self._apply(ids_w, counts_w, ts, vals, wal_first=recs)
            self.clock.observe_ms(int(ts.max()))
            self._maybe_rotate()
        elif recs:
            self.wal.write(recs)
        self.counters["samples_appended"] += len(ts)
        self.counters["duplicates"] += n_dup
        self.counters["dropped"] += n_ooo
        return AppendResult(len(ts), n_dup, n_ooo, len(new), np.asarray(ids_in, np.int64))

    def _older_duplicates(
        self, idx: Int64Array, sid_rep: Int64Array, ts: Int64Array, bits: np.ndarray, dup: np.ndarray
    ) -> None:
        """Set ``dup[i]`` for the samples ``idx`` (older than their series' newest) that repeat a sample in
        the head: same timestamp, same value bits (a retried request). Per series, only for these."""
        head = self.head
        s = sid_rep[idx]
        brk = np.flatnonzero(s[1:] != s[:-1]) + 1  # idx is in batch order: each series' samples are together
        for part in np.split(idx, brk):
            sid = int(sid_rep[part[0]])
            if not head.loaded[sid]:  # after a restart: what was flushed before it is only in chunks
                self._load_window(sid)
            lo, hi = head.present(sid)
            if hi == lo:
                continue
            hts, hvals = head.gather(sid, lo, hi)
            q = ts[part]
            p = np.minimum(np.searchsorted(hts, q), hi - lo - 1)
            m = (hts[p] == q) & (hvals[p].view(np.uint64) == bits[part])
            dup[part[m]] = True

    def _in_head(self, sid: int, t: int) -> bool:
        """Whether the head holds a sample of ``sid`` at time ``t``."""
        hts, _ = self.head.gather(sid, *self.head.present(sid))
        p = int(np.searchsorted(hts, t))
        return p < len(hts) and int(hts[p]) == t

    def _maybe_rotate(self) -> None:
        if self.wal.segment_bytes < WAL_SEGMENT_TARGET_BYTES:
            return
        n = self.head.n
        unflushed_bytes = int((self.head.pos[:n] - self.head.flushed[:n]).sum()) * 16 + n * 16
        if self.wal.segment_bytes >= 4 * unflushed_bytes:
            try:
                self._rotate()
            except sa.exc.SQLAlchemyError:  # database unreachable: keep the old segments, try again later
                log.warning("WAL rotation postponed: the database did not answer", exc_info=True)

    # --- head -> chunks ----------------------------------------------------------------------------
    def _apply(
        self,
        sids: Int64Array,
        counts: Int64Array,
        ts: Int64Array,
        vals: Float64Array,
        wal_first: list[list[Any]] | None = None,
    ) -> None:
        """Write validated samples (grouped by unique series) to the head and cut chunks that are due.

        With ``wal_first`` (the append path) the samples are written to the WAL first, after the records in
        ``wal_first``. A batch with more than ``ring - chunk_samples`` samples of one series goes in rounds,
        each logged, written and flushed before the next; if a round cannot be made room for (chunk writes
        failing) this raises with the earlier rounds stored, in the WAL and the head alike."""
        head = self.head
        c = self._chunk
        room = head.ring - c  # each round adds at most this many per series: unflushed never overwritten
        if int(counts.max()) <= room:
            rounds = [(sids, counts, ts, vals)]
        else:
            starts, _ = _ranges(counts)
            rep = np.repeat(np.arange(len(sids)), counts)
            rank = np.arange(len(ts)) - starts[rep]
            rounds = []
            for r in range(int(counts.max() + room - 1) // room):
                m = (rank >= r * room) & (rank < (r + 1) * room)
                cr = np.bincount(rep[m], minlength=len(sids)).astype(np.int64)
                sel = cr > 0
                rounds.append((sids[sel], cr[sel], ts[m], vals[m]))
        last = len(rounds) - 1
        for i, (r_sids, r_counts, r_ts, r_vals) in enumerate(rounds):
            self._make_room(r_sids, r_counts)
            if wal_first is not None:
                recs = wal_first if i == 0 else []
                self.wal.write([*recs, encode_record(REC_SAMPLES, samples_parts(r_sids, r_counts, r_ts, r_vals))])
            head.write(r_sids, r_counts, r_ts, r_vals)
            pending = _Pending()
            unfl = head.pos[r_sids] - head.flushed[r_sids]
            cut_at = head.cut_at[r_sids]
            due = unfl >= cut_at
            if due.any():
                u, f = unfl[due], cut_at[due]
                self._cut(r_sids[due], f + ((u - f) // c) * c, pending)
            if i == last:
                wm = self.clock.watermark_ms
                top = int(ts.max())
                now = top if wm is None else max(wm, top)
                if now - self._last_age_check >= self._age_step_ms:
                    self._last_age_check = now
                    self._cut_aged(now, pending)
            self._try_store(pending)

    def _cut_aged(self, now_ms: int, pending: _Pending) -> None:
        head = self.head
        n = head.n
        unfl = head.pos[:n] - head.flushed[:n]
        has = np.flatnonzero(unfl > 0)
        if not len(has):
            return
        first = head.ts[has, head.flushed[has] % head.ring]
        old = first < now_ms - self._age_ms
        if old.any():
            sel = has[old]
            self._cut(sel, unfl[sel], pending)

    def _cut(self, sids: Int64Array, nflush: Int64Array, pending: _Pending) -> None:
        """Move the oldest ``nflush[i]`` unflushed samples of ``sids[i]`` into ``pending`` (chunks of at most
        ``chunk_samples``) and mark them flushed."""
        if not len(sids):
            return
        head = self.head
        ts, vals = head.gather_many(sids, head.flushed[sids], nflush)
        c = self._chunk
        per = (nflush + c - 1) // c
        csid = np.repeat(sids, per)
        rep = np.repeat(np.arange(len(sids)), per)
        first_chunk = np.zeros(len(sids), np.int64)
        if len(sids) > 1:
            np.cumsum(per[:-1], out=first_chunk[1:])
        k = np.arange(len(csid)) - first_chunk[rep]
        sizes = np.minimum(c, nflush[rep] - k * c)  # full chunks first, the short one (if any) last
        pending.ts.append(ts)
        pending.vals.append(vals)
        pending.sid.append(csid)
        pending.sizes.append(sizes)
        pending.cut_sids.append(sids)
        pending.cut_n.append(nflush)
        head.flushed[sids] += nflush
        head.cut_at[sids] = c

    def _store(self, pending: _Pending) -> None:
        """Encode pending chunks and insert them in one transaction. If anything fails the
        cut is undone (``head.flushed`` moves back: the samples are unflushed again, in the head and in the
        WAL) and the error is raised."""
        if not pending:
            return
        try:
            self._write_pending(pending)
        except BaseException:
            head = self.head
            for sids, n in zip(pending.cut_sids, pending.cut_n, strict=True):
                np.subtract.at(head.flushed, sids, n)  # a series may have been cut twice (due, then aged)
            raise
        finally:
            pending.ts.clear()
            pending.vals.clear()
            pending.sid.clear()
            pending.sizes.clear()
            pending.cut_sids.clear()
            pending.cut_n.clear()

    def _try_store(self, pending: _Pending) -> None:
        """``_store`` for the append path: the samples are in the WAL and the head already, so a database
        error is logged and counted, and the cut is retried later (the next append of those series, the next
        age check, ``checkpoint``). Appends are refused once a series' unflushed samples fill its ring."""
        try:
            self._store(pending)
        except sa.exc.SQLAlchemyError:
            self.counters["flush_errors"] += 1
            self._last_age_check = NO_TS  # look for aged chunks again on the next append
            log.warning("writing chunks failed; their samples stay in the head and the WAL", exc_info=True)

    def _make_room(self, sids: Int64Array, counts: Int64Array) -> None:
        """Before ``counts[i]`` more samples of ``sids[i]`` enter the head: if they would overwrite unflushed
        samples (only possible after failed chunk writes), write those series' full chunks first, raising if
        that fails (nothing of the new samples is stored then). ``counts`` must be at most ring - chunk."""
        head = self.head
        unfl = head.pos[sids] - head.flushed[sids]
        over = unfl + counts > head.ring
        if not over.any():
            return
        c = self._chunk
        pending = _Pending()
        self._cut(sids[over], (unfl[over] // c) * c, pending)
        self._store(pending)

    def _write_pending(self, pending: _Pending) -> None:
        ts = np.concatenate(pending.ts) if len(pending.ts) > 1 else pending.ts[0]
        vals = np.concatenate(pending.vals) if len(pending.vals) > 1 else pending.vals[0]
        csid = np.concatenate(pending.sid) if len(pending.sid) > 1 else pending.sid[0]
        sizes = np.concatenate(pending.sizes) if len(pending.sizes) > 1 else pending.sizes[0]
        starts, ends = _ranges(sizes)
        first_ts = ts[starts].tolist()
        last_ts = ts[ends - 1].tolist()
        sid_l = csid.tolist()
        st_l = starts.tolist()
        en_l = ends.tolist()
        sz_l = sizes.tolist()
        blobs = encode_chunks([(ts[a:b], vals[a:b]) for a, b in zip(st_l, en_l, strict=True)])
        nbytes = 0
        chunk_rows = []
        for i, data in enumerate(blobs):
            nbytes += len(data)
            chunk_rows.append(
                {"series_id": sid_l[i], "start_ms": first_ts[i], "end_ms": last_ts[i], "count": sz_l[i],
                 "data": data}
            )
        with self.engine.begin() as conn:
            conn.execute(chunks.insert(), chunk_rows)
        self.counters["chunks_written"] += len(chunk_rows)
        self.counters["samples_flushed"] += len(ts)
        self.counters["chunk_bytes_written"] += nbytes
        if self._stored is not None:
            self._stored["chunks"] += len(chunk_rows)
            self._stored["samples"] += len(ts)

    # --- reads -----------------------------------------------------------------------------------
    def _check_sid(self, series_id: int) -> int:
        sid = int(series_id)
        if self.index.get(sid) is None:
            raise NotFound(f"no series with id {series_id}")
        return sid

    def read(self, series_id: int, start_ms: int, end_ms: int) -> tuple[Int64Array, Float64Array]:
        """Raw samples with ``start_ms <= ts <= end_ms`` from chunks and head, sorted by time. Samples past raw
        retention have been downsampled (``enforce_retention``) and are not returned; see ``read_rollup``."""
        head = self.head
        with self._lock:
            sid = self._check_sid(series_id)
            lo, hi = head.present(sid)
            f = int(head.flushed[sid])
            oldest = int(head.ts[sid, lo % head.ring]) if hi > lo else None
            if oldest is not None and start_ms >= oldest:
                # everything asked for is in the ring
                rts, rvals = head.gather(sid, lo, hi)
                a = int(np.searchsorted(rts, start_ms, side="left"))
                b = int(np.searchsorted(rts, end_ms, side="right"))
                return rts[a:b].copy(), rvals[a:b].copy()
            hts, hvals = head.gather(sid, max(f, lo), hi)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(chunks.c.data)
                .where(
                    chunks.c.series_id == sid,
                    chunks.c.start_ms <= end_ms,
                    chunks.c.end_ms >= start_ms,
                )
                .order_by(chunks.c.start_ms)
            ).all()
        parts_t: list[Int64Array] = []
        parts_v: list[Float64Array] = []
        for (data,) in rows:
            t, v = decode_chunk(bytes(data))
            parts_t.append(t)
            parts_v.append(v)
        if parts_t and len(hts) and hts[0] <= parts_t[-1][-1]:
            # a flush raced with this read: those head samples are in the chunks already
            m = hts > parts_t[-1][-1]
            hts, hvals = hts[m], hvals[m]
        parts_t.append(hts)
        parts_v.append(hvals)
        ts = np.concatenate(parts_t)
        vals = np.concatenate(parts_v)
        a = int(np.searchsorted(ts, start_ms, side="left"))
        b = int(np.searchsorted(ts, end_ms, side="right"))
        return ts[a:b], vals[a:b]

    def read_rollup(self, series_id: int, resolution_s: int, start_ms: int, end_ms: int) -> RollupArrays:
        """Buckets of ``resolution_s`` (60 or 3600) whose start lies in ``[start_ms - start_ms % width,
        end_ms]``. Where raw samples still exist (chunks and the head) the buckets are computed from them; older
        buckets come from the stored rollups (for 3600 s also from 60 s rows); the parts are merged exactly."""
        if resolution_s not in RESOLUTIONS_S:
            raise BadInput(f"rollup resolution must be one of {list(RESOLUTIONS_S)} seconds, not {resolution_s}")
        width = resolution_s * 1000
        a_ms = start_ms - start_ms % width
        head = self.head
        with self._lock:
            sid = self._check_sid(series_id)
            lo, hi = head.present(sid)
            hts, hvals = head.gather(sid, max(int(head.flushed[sid]), lo), hi)
        tiers = [r for r in RESOLUTIONS_S if r <= resolution_s]
        q_raw = sa.select(
            sa.literal(0, sa.Integer).label("res"), chunks.c.start_ms, chunks.c.end_ms, chunks.c.data
        ).where(chunks.c.series_id == sid, chunks.c.start_ms <= end_ms, chunks.c.end_ms >= a_ms)
        q_roll = sa.select(rollups.c.resolution_s, rollups.c.start_ms, rollups.c.end_ms, rollups.c.data).where(
            rollups.c.series_id == sid,
            rollups.c.resolution_s.in_(tiers),
            rollups.c.start_ms <= end_ms,
            rollups.c.end_ms >= a_ms,
        )
        # One statement: one snapshot of both tables, so a concurrent downsampling pass (which moves samples
        # from chunks to rollups in one transaction) cannot make a sample appear twice or not at all.
        with self.engine.connect() as conn:
            rows = sorted(conn.execute(sa.union_all(q_raw, q_roll)).all(), key=lambda r: (-int(r[0]), int(r[2])))
        parts: list[RollupArrays] = []
        raw_t: list[Int64Array] = []
        raw_v: list[Float64Array] = []
        cover = NO_TS
        # oldest first: tier 3600 s, 60 s, raw; within a tier by newest sample (rows of a series are disjoint)
        for res, _start, end, data in rows:
            cover = max(cover, int(end))
            if res == 0:
                t, v = decode_chunk(bytes(data))
                raw_t.append(t)
                raw_v.append(v)
            else:
                r = rollup_mod.decode(bytes(data))
                parts.append(rollup_mod.coarsen(r, resolution_s) if res != resolution_s else r)
        if len(hts) and hts[0] <= cover:
            # a flush raced with this read: those head samples are in the database already
            m = hts > cover
            hts, hvals = hts[m], hvals[m]
        raw_t.append(hts)
        raw_v.append(hvals)
        ts = np.concatenate(raw_t)
        vals = np.concatenate(raw_v)
        # only samples in buckets that start in [a_ms, end_ms]
        i = int(np.searchsorted(ts, a_ms, side="left"))
        j = int(np.searchsorted(ts, end_ms - end_ms % width + width, side="left"))
        if j > i:
            agg, _ = rollup_mod.compute(ts[i:j], vals[i:j], np.zeros(j - i, np.int64), resolution_s)
            parts.append(agg)
        merged = rollup_mod.merge(parts)
        a = int(np.searchsorted(merged.ts, a_ms, side="left"))
        b = int(np.searchsorted(merged.ts, end_ms, side="right"))
        return merged.slice(a, b)

    def window(self, series_id: int) -> tuple[Int64Array, Float64Array]:
        """The newest ``storage.head_window`` samples of a series (copies)."""
        head = self.head
        w = head.window
        with self._lock:
            sid = self._check_sid(series_id)
            if not head.loaded[sid]:
                self._load_window(sid)
            lo, hi = head.present(sid)
            ts, vals = head.gather(sid, max(lo, hi - w), hi)
            return ts, vals

    def _load_window(self, sid: int) -> None:
        """After a restart: back-fill a series' ring with at least ``head_window`` samples from chunks."""
        head = self.head
        lo, hi = head.present(sid)
        if hi - lo < head.window:
            self._backfill(sid, head.window - (hi - lo))
        head.loaded[sid] = True

    def _backfill(self, sid: int, need: int) -> None:
        """After a restart: fill the ring with up to ``need`` older samples from chunks."""
        head = self.head
        lo, hi = head.present(sid)
        rts, rvals = head.gather(sid, lo, hi)
        before = int(rts[0]) if len(rts) else None
        q = sa.select(chunks.c.data).where(chunks.c.series_id == sid)
        if before is not None:
            q = q.where(chunks.c.start_ms < before)
        q = q.order_by(chunks.c.start_ms.desc())
        got_t: list[Int64Array] = []
        got_v: list[Float64Array] = []
        have = 0
        with self.engine.connect() as conn:
            for (data,) in conn.execute(q).yield_per(8):
                t, v = decode_chunk(bytes(data))
                if before is not None:
                    m = t < before
                    t, v = t[m], v[m]
                got_t.append(t)
                got_v.append(v)
                have += len(t)
                if have >= need:
                    break
        if not have:
            return
        got_t.reverse()
        got_v.reverse()
        unfl = hi - int(head.flushed[sid])
        head.replace(sid, np.concatenate([*got_t, rts]), np.concatenate([*got_v, rvals]), unfl)

    # --- maintenance -----------------------------------------------------------------------------
    def flush_aged(self, now_ms: int) -> None:
        """Write partial chunks whose oldest sample is more than ``max_chunk_age_s`` before ``now_ms``."""
        with self._lock:
            self._check_open()
            pending = _Pending()
            self._cut_aged(now_ms, pending)
            self._store(pending)

    def enforce_retention(self, now_ms: int) -> int:
        """Flush aged partial chunks; downsample chunks past raw retention into 60 s rollups and 60 s rollups
        past theirs into 3600 s rollups (each in one transaction with deleting the source rows, at most
        ``downsample_batch_chunks`` chunks and ``downsample_batch_rows`` rows per call, oldest first); delete
        3600 s rollups past retention. Returns the number of source rows deleted (chunks, 60 s rows that were
        downsampled, 3600 s rows)."""
        self.flush_aged(now_ms)
        st = self.storage
        cut_raw = now_ms - int(st.retention_raw_days * DAY_MS)
        cut_1m = now_ms - int(st.retention_1m_days * DAY_MS)
        cut_1h = now_ms - int(st.retention_1h_days * DAY_MS)
        with self._maint_lock:
            try:
                n_raw = self._downsample_chunks(cut_raw, self.downsample_batch_chunks)
                n_1m = self._downsample_rows(cut_1m, self.downsample_batch_rows)
                with self.engine.begin() as conn:
                    n_1h = conn.execute(
                        sa.delete(rollups).where(rollups.c.resolution_s == 3600, rollups.c.end_ms < cut_1h)
                    ).rowcount
            finally:
                with self._lock:
                    self._stored = None  # recount lazily
        return n_raw + n_1m + int(n_1h or 0)

    def _downsample_chunks(self, cut_ms: int, limit: int) -> int:
        """Turn up to ``limit`` chunks with ``end_ms < cut_ms`` (oldest first) into 60 s buckets merged into the
        series' day rows, and delete them, in one transaction. Returns the number of chunks deleted."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(chunks.c.series_id, chunks.c.start_ms, chunks.c.end_ms, chunks.c.data)
                .where(chunks.c.end_ms < cut_ms)
                .order_by(chunks.c.end_ms, chunks.c.series_id, chunks.c.start_ms)
                .limit(limit)
            ).all()
            if not rows:
                return 0
            rows = sorted(rows, key=lambda r: (int(r[0]), int(r[1])))
            decoded = [decode_chunk(bytes(r[3])) for r in rows]
            sizes = np.array([len(t) for t, _ in decoded], np.int64)
            ts = np.concatenate([t for t, _ in decoded])
            vals = np.concatenate([v for _, v in decoded])
            row_sid = np.array([int(r[0]) for r in rows], np.int64)
            agg, grp = rollup_mod.compute(ts, vals, np.repeat(row_sid, sizes), 60)
            self._merge_into_rows(conn, 60, agg, grp, row_sid, np.array([int(r[2]) for r in rows], np.int64))
            conn.execute(
                sa.delete(chunks).where(
                    chunks.c.series_id == sa.bindparam("b_sid"), chunks.c.start_ms == sa.bindparam("b_start")
                ),
                [{"b_sid": int(r[0]), "b_start": int(r[1])} for r in rows],
            )
        self.counters["chunks_downsampled"] += len(rows)
        return len(rows)

    def _downsample_rows(self, cut_ms: int, limit: int) -> int:
        """Turn up to ``limit`` 60 s rollup rows with ``end_ms < cut_ms`` (oldest first) into 3600 s buckets
        merged into the series' 30-day rows, and delete them, in one transaction. Returns rows deleted."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(rollups.c.series_id, rollups.c.start_ms, rollups.c.end_ms, rollups.c.data)
                .where(rollups.c.resolution_s == 60, rollups.c.end_ms < cut_ms)
                .order_by(rollups.c.end_ms, rollups.c.series_id, rollups.c.start_ms)
                .limit(limit)
            ).all()
            if not rows:
                return 0
            rows = sorted(rows, key=lambda r: (int(r[0]), int(r[2])))  # a series' rows: disjoint, by end
            src = [rollup_mod.coarsen(rollup_mod.decode(bytes(r[3])), 3600) for r in rows]
            row_sid = np.array([int(r[0]) for r in rows], np.int64)
            new = rollup_mod.concat(src)
            grp = np.repeat(row_sid, [len(x) for x in src])
            ends = np.array([int(r[2]) for r in rows], np.int64)
            self._merge_into_rows(conn, 3600, new, grp, row_sid, ends)
            conn.execute(
                sa.delete(rollups).where(
                    rollups.c.series_id == sa.bindparam("b_sid"),
                    rollups.c.resolution_s == 60,
                    rollups.c.start_ms == sa.bindparam("b_start"),
                ),
                [{"b_sid": int(r[0]), "b_start": int(r[1])} for r in rows],
            )
        self.counters["rollups_downsampled"] += len(rows)
        return len(rows)

    def _merge_into_rows(
        self, conn: sa.Connection, res: int, new: RollupArrays, grp: Int64Array, cov_sid: Int64Array,
        cov_ts: Int64Array,
    ) -> None:
        """Merge buckets ``new`` (of series ``grp``, sorted by series, oldest first) into the ``res`` rollup rows
        of their spans (one row per series and ``ROW_SPAN_MS[res]``), creating or rewriting those rows.
        ``cov_sid``/``cov_ts``: the source samples' (or rows') newest timestamps, kept as the rows' ``end_ms``."""
        span = ROW_SPAN_MS[res]
        mult, off = np.int64(2**32), np.int64(2**31)
        kb = grp * mult + (new.ts // span + off)
        order = np.argsort(kb, kind="stable")
        if (order != np.arange(len(order))).any():
            new = RollupArrays(new.ts[order], new.min[order], new.max[order], new.sum[order], new.count[order],
                               new.last[order])
            kb = kb[order]
        kc = cov_sid * mult + (cov_ts // span + off)
        keys = np.unique(np.concatenate([kb, kc]))
        end = np.full(len(keys), NO_TS, np.int64)
        np.maximum.at(end, np.searchsorted(keys, kc), cov_ts)
        if len(kb):
            np.maximum.at(end, np.searchsorted(keys, kb), new.ts)
        lo = np.searchsorted(kb, keys, side="left").tolist()
        hi = np.searchsorted(kb, keys, side="right").tolist()
        key_sid = (keys // mult).tolist()
        key_start = ((keys % mult - off) * span).tolist()
        end_l = end.tolist()
        existing: dict[tuple[int, int], tuple[int, bytes]] = {}
        uniq_sid = sorted(set(key_sid))
        s_lo, s_hi = min(key_start), max(key_start)
        for i in range(0, len(uniq_sid), _IN_BATCH):
            for sid, start, e, data in conn.execute(
                sa.select(rollups.c.series_id, rollups.c.start_ms, rollups.c.end_ms, rollups.c.data).where(
                    rollups.c.resolution_s == res,
                    rollups.c.series_id.in_(uniq_sid[i : i + _IN_BATCH]),
                    rollups.c.start_ms >= s_lo,
                    rollups.c.start_ms <= s_hi,
                )
            ):
                existing[(int(sid), int(start))] = (int(e), bytes(data))
        replace: list[dict[str, Any]] = []
        insert: list[dict[str, Any]] = []
        for k in range(len(keys)):
            sid, start = key_sid[k], key_start[k]
            old = existing.get((sid, start))
            part = new.slice(lo[k], hi[k])
            if old is None and not len(part):
                continue  # only NaN samples in this span
            parts = [rollup_mod.decode(old[1]), part] if old is not None else [part]
            merged = rollup_mod.merge(parts)
            row = {"series_id": sid, "resolution_s": res, "start_ms": start,
                   "end_ms": max(end_l[k], old[0]) if old is not None else end_l[k],
                   "count": len(merged), "data": rollup_mod.encode(merged)}
            (replace if old is not None else insert).append(row)
        if replace:
            conn.execute(
                sa.update(rollups)
                .where(
                    rollups.c.series_id == sa.bindparam("b_sid"),
                    rollups.c.resolution_s == res,
                    rollups.c.start_ms == sa.bindparam("b_start"),
                )
                .values(end_ms=sa.bindparam("b_end"), count=sa.bindparam("b_count"), data=sa.bindparam("b_data")),
                [{"b_sid": r["series_id"], "b_start": r["start_ms"], "b_end": r["end_ms"], "b_count": r["count"],
                  "b_data": r["data"]} for r in replace],
            )
        if insert:
            conn.execute(rollups.insert(), insert)
        self.counters["rollups_written"] += len(replace) + len(insert)

    def _drop_chunk_rollups(self) -> None:
        """Once per data dir: earlier versions wrote 60 s and 3600 s rollups for every chunk as it was cut
        (version-1 rows with the chunk's ``start_ms`` and ``end_ms``). Delete those whose chunk still exists
        (their samples are raw, so bucketed on the fly and downsampled later) and the 3600 s copy of each
        remaining 60 s one (the 60 s row becomes 3600 s buckets later), so every sample is in one tier."""
        marker = self.data_dir / "rollups_by_age"
        if marker.exists():
            return
        v1 = sa.func.substr(rollups.c.data, 1, 1) == b"\x01"
        with self.engine.begin() as conn:
            oldest = conn.execute(sa.select(sa.func.min(chunks.c.start_ms))).scalar()
            if oldest is not None:
                conn.execute(
                    sa.delete(rollups).where(
                        rollups.c.end_ms >= oldest,
                        v1,
                        sa.exists().where(
                            chunks.c.series_id == rollups.c.series_id,
                            chunks.c.start_ms == rollups.c.start_ms,
                            chunks.c.end_ms == rollups.c.end_ms,
                        ),
                    )
                )
            r60 = rollups.alias("r60")
            conn.execute(
                sa.delete(rollups).where(
                    rollups.c.resolution_s == 3600,
                    v1,
                    sa.exists().where(
                        r60.c.series_id == rollups.c.series_id,
                        r60.c.resolution_s == 60,
                        r60.c.start_ms == rollups.c.start_ms,
                        r60.c.end_ms == rollups.c.end_ms,
                    ),
                )
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        marker.write_bytes(b"")

    def _count_stored(self) -> dict[str, int]:
        if self._stored is None:
            with self.engine.connect() as conn:
                nc, ns = conn.execute(
                    sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(chunks.c.count), 0))
                ).one()
                nr = conn.execute(sa.select(sa.func.count()).select_from(rollups)).scalar_one()
            self._stored = {"chunks": int(nc), "samples": int(ns), "rollups": int(nr)}
        return self._stored

    def _db_bytes(self) -> int:
        if self.engine.dialect.name == "sqlite":
            db = self.engine.url.database
            if not db or db == ":memory:":
                return 0
            total = 0
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    total += os.stat(db + suffix).st_size
            return total
        try:
            with self.engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.text(
                            "SELECT pg_total_relation_size('chunks') + pg_total_relation_size('rollups')"
                            " + pg_total_relation_size('series')"
                        )
                    ).scalar_one()
                )
        except sa.exc.SQLAlchemyError:
            return 0

    def stats(self) -> dict[str, int | float]:
        with self._lock:
            head = self.head
            n = head.n
            present = np.minimum(head.pos[:n], head.ring)
            unfl = head.pos[:n] - head.flushed[:n]
            stored = self._count_stored()
            out: dict[str, int | float] = {
                "series": sum(1 for s in self.index.infos if s is not None),
                "head_samples": int(present.sum()),
                "head_unflushed_samples": int(unfl.sum()),
                "head_capacity_series": head.cap,
                "head_window_bytes": head.window_bytes(),
                "chunks": stored["chunks"],
                "rollup_rows": stored["rollups"],
                "samples_stored": stored["samples"],
                "wal_bytes": self.wal.disk_bytes(),
                "db_bytes": self._db_bytes(),
                **self.counters,
                "wal_fsyncs": self.wal.fsyncs,
            }
            out["bytes_on_disk"] = int(out["wal_bytes"]) + int(out["db_bytes"])
            return out


def _check_shapes(k: int, offsets: Any, ts: Any, values: Any) -> None:
    offsets = np.asarray(offsets)
    if offsets.shape != (k + 1,):
        raise BadInput(f"offsets must have {k + 1} entries (series + 1), got {offsets.shape[0]}")
    if len(ts) != len(values):
        raise BadInput(f"{len(ts)} timestamps but {len(values)} values")
    if int(offsets[0]) != 0 or int(offsets[-1]) != len(ts) or (k and (np.diff(offsets) < 0).any()):
        raise BadInput("offsets must start at 0, never decrease and end at the number of samples")
