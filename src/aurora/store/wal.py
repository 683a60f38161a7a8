"""Write-ahead log for the time-series store: binary, columnar records in numbered segment files.

Each record is ``magic(4) type(1) length(4) crc32(4)`` followed by ``length`` bytes of payload; the CRC
covers the type byte and the payload. A reader stops at the first record whose header is short, whose
magic is wrong, whose payload runs past the end of the file or whose CRC does not match: that is the
torn tail a ``kill -9`` (or power loss) in the middle of a write leaves, and it was never acknowledged.

Record types:

* ``SERIES``  new series (id, metric, labels) as JSON; the rows are in the database already.
* ``SAMPLES`` ``n_series n_samples`` then ids (int64), counts (int64), timestamps (int64), value bits
  (float64, written and read as raw bytes so NaN payloads survive).
* ``STATE``   the newest timestamp and value bits of every series; the first record of every segment
  written by :meth:`WAL.rotate`, so a segment plus its successors is a complete replay source.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aurora.model import Float64Array, Int64Array

MAGIC = b"AWL1"
HEADER = struct.Struct("<4sBII")
REC_SERIES = 1
REC_SAMPLES = 2
REC_STATE = 3
_COUNTS = struct.Struct("<QQ")
SEGMENT_SUFFIX = ".wal"

FsyncMode = Literal["always", "interval", "never"]


@dataclass(slots=True)
class SamplesRecord:
    ids: Int64Array
    counts: Int64Array
    ts: Int64Array
    values: Float64Array


@dataclass(slots=True)
class StateRecord:
    last_ts: Int64Array
    last_bits: np.ndarray  # uint64


@dataclass(slots=True)
class SeriesRecord:
    series: list[tuple[int, str, dict[str, str]]]


Record = SamplesRecord | StateRecord | SeriesRecord


def _header(rtype: int, parts: list[bytes | memoryview]) -> bytes:
    crc = zlib.crc32(bytes((rtype,)))
    length = 0
    for p in parts:
        crc = zlib.crc32(p, crc)
        length += memoryview(p).nbytes
    return HEADER.pack(MAGIC, rtype, length, crc)


def samples_parts(ids: Int64Array, counts: Int64Array, ts: Int64Array, values: Float64Array) -> list[Any]:
    return [
        _COUNTS.pack(len(ids), len(ts)),
        np.ascontiguousarray(ids, "<i8").data,
        np.ascontiguousarray(counts, "<i8").data,
        np.ascontiguousarray(ts, "<i8").data,
        np.ascontiguousarray(values, "<f8").data,
    ]


def encode_record(rtype: int, parts: list[Any]) -> list[Any]:
    return [_header(rtype, parts), *parts]


def series_parts(series: list[tuple[int, str, dict[str, str]]]) -> list[Any]:
    return [json.dumps(series, separators=(",", ":")).encode()]


def state_parts(last_ts: Int64Array, last_bits: np.ndarray) -> list[Any]:
    return [
        struct.pack("<Q", len(last_ts)),
        np.ascontiguousarray(last_ts, "<i8").data,
        np.ascontiguousarray(last_bits, "<u8").data,
    ]


def _decode(rtype: int, payload: memoryview) -> Record | None:
    if rtype == REC_SAMPLES:
        ns, n = _COUNTS.unpack_from(payload, 0)
        off = _COUNTS.size
        ids = np.frombuffer(payload, "<i8", ns, off).astype(np.int64)
        off += 8 * ns
        counts = np.frombuffer(payload, "<i8", ns, off).astype(np.int64)
        off += 8 * ns
        ts = np.frombuffer(payload, "<i8", n, off).astype(np.int64)
        off += 8 * n
        vals = np.frombuffer(payload, "<f8", n, off).copy()
        return SamplesRecord(ids, counts, ts, vals)
    if rtype == REC_STATE:
        (n,) = struct.unpack_from("<Q", payload, 0)
        last_ts = np.frombuffer(payload, "<i8", n, 8).astype(np.int64)
        last_bits = np.frombuffer(payload, "<u8", n, 8 + 8 * n).astype(np.uint64)
        return StateRecord(last_ts, last_bits)
    if rtype == REC_SERIES:
        raw = json.loads(bytes(payload))
        return SeriesRecord([(int(i), str(m), dict(lab)) for i, m, lab in raw])
    return None


def read_segment(path: Path) -> tuple[list[Record], int, bool]:
    """All intact records of one segment, the byte length they span, and whether a torn tail followed."""
    data = memoryview(path.read_bytes())
    out: list[Record] = []
    pos = 0
    size = len(data)
    while pos + HEADER.size <= size:
        magic, rtype, length, crc = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if magic != MAGIC or end > size:
            break
        payload = data[pos + HEADER.size : end]
        if zlib.crc32(payload, zlib.crc32(bytes((rtype,)))) != crc:
            break
        try:
            rec = _decode(rtype, payload)
        except (ValueError, struct.error, json.JSONDecodeError):
            break
        if rec is not None:
            out.append(rec)
        pos = end
    return out, pos, pos != size


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class WAL:
    """Appends records to the newest segment; fsyncs per policy; rotates to a new segment on request."""

    def __init__(self, directory: Path, fsync: FsyncMode, interval_s: float) -> None:
        self.dir = directory
        self.fsync_mode: FsyncMode = fsync
        self.interval_s = interval_s
        self._fd: int | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self._dirty = False
        self._last_sync = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.segment_bytes = 0
        self.bytes_written = 0
        self.fsyncs = 0
        # Group commit (fsync "always"): a write does not fsync; the writer calls commit() once it has left
        # the store's lock, and one fsync covers every record written before it started.
        self._sync_lock = threading.Lock()  # taken before _lock, never after
        self._synced_upto = 0
        self._local = threading.local()

    # --- reading ---------------------------------------------------------------------------------
    def segments(self) -> list[tuple[int, Path]]:
        if not self.dir.exists():
            return []
        segs = []
        for p in self.dir.iterdir():
            if p.suffix == SEGMENT_SUFFIX and p.stem.isdigit():
                segs.append((int(p.stem), p))
        return sorted(segs)

    def replay_records(self) -> Iterator[tuple[int, Record]]:
        """Records to replay: from the newest segment that begins with an intact STATE record onward
        (older segments are leftovers of an interrupted rotation); all segments if none does."""
        segs = self.segments()
        start = 0
        loaded: dict[int, list[Record]] = {}
        for i in range(len(segs) - 1, -1, -1):
            recs, _, _ = read_segment(segs[i][1])
            loaded[i] = recs
            if recs and isinstance(recs[0], StateRecord):
                start = i
                break
        for i in range(start, len(segs)):
            recs = loaded.pop(i) if i in loaded else read_segment(segs[i][1])[0]
            for r in recs:
                yield segs[i][0], r

    # --- writing ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Open a fresh segment after the newest existing one (older ones stay until :meth:`rotate`)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        segs = self.segments()
        self._seq = (segs[-1][0] + 1) if segs else 1
        self._open_segment(self._seq)
        if self.fsync_mode == "interval" and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sync_loop, name="aurora-wal-fsync", daemon=True)
            self._thread.start()

    def _open_segment(self, seq: int) -> None:
        path = self.dir / f"{seq:016d}{SEGMENT_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self.segment_bytes = 0
        _fsync_dir(self.dir)

    def write(self, records: list[list[Any]]) -> None:
        """Append records (each a list of buffers from ``encode_record``) and fsync per policy."""
        bufs = [b for rec in records for b in rec]
        total = sum(len(b) if not isinstance(b, memoryview) else b.nbytes for b in bufs)
        with self._lock:
            fd = self._fd
            if fd is None:
                raise RuntimeError("WAL is not open")
            written = os.writev(fd, bufs)
            while written < total:  # short write (rare): finish it with plain writes
                flat = b"".join(bytes(b) for b in bufs)
                written += os.write(fd, flat[written:])
            self.segment_bytes += total
            self.bytes_written += total
            self._local.pending = self.bytes_written
            self._dirty = True
            mode = self.fsync_mode
            if mode == "interval" and time.monotonic() - self._last_sync >= self.interval_s:
                self._sync_locked()

    def pending_position(self) -> int:
        """How far this thread has written: what ``commit`` would make durable."""
        pending: int = getattr(self._local, "pending", 0)
        return pending

    def commit(self, upto: int | None = None) -> None:
        """Make what this thread wrote (or everything up to ``upto``, e.g. from ``pending_position`` in
        another thread) durable per policy (``always``: fsync unless a concurrent fsync that started after
        our write already covered it). Call after releasing any lock other writers need."""
        pending = self.pending_position() if upto is None else upto
        if self.fsync_mode != "always" or pending <= self._synced_upto:
            return
        with self._sync_lock:
            if pending <= self._synced_upto:
                return  # another writer's fsync covered ours
            with self._lock:
                fd, upto = self._fd, self.bytes_written
            if fd is not None:
                os.fsync(fd)  # outside _lock: other writers keep appending meanwhile
                self.fsyncs += 1
            self._synced_upto = max(self._synced_upto, upto)

    def _sync_locked(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self.fsyncs += 1
        self._dirty = False
        self._synced_upto = self.bytes_written
        self._last_sync = time.monotonic()

    def sync(self) -> None:
        with self._lock:
            self._sync_locked()

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(OSError):
                self.sync()

    def rotate(self, first_records: list[list[Any]]) -> None:
        """Start a new segment holding ``first_records`` (a STATE record and a snapshot of unflushed
        samples), make it durable, then delete every older segment."""
        with self._sync_lock, self._lock:
            old = [p for _, p in self.segments()]
            if self._fd is not None:
                os.close(self._fd)
            self._seq += 1
            self._open_segment(self._seq)
            assert self._fd is not None
            bufs = [b for rec in first_records for b in rec]
            data = b"".join(bytes(b) for b in bufs)
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            os.fsync(self._fd)
            self.segment_bytes = len(data)
            self.bytes_written += len(data)
            self._dirty = False
            self._synced_upto = self.bytes_written  # the snapshot holds every unflushed sample
            self._last_sync = time.monotonic()
            for p in old:
                p.unlink(missing_ok=True)
            _fsync_dir(self.dir)

    def disk_bytes(self) -> int:
        total = 0
        for _, p in self.segments():
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        return total

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._sync_lock, self._lock:
            if self._fd is not None:
                if self._dirty and self.fsync_mode != "never":
                    os.fsync(self._fd)
                    self._synced_upto = self.bytes_written
                os.close(self._fd)
                self._fd = None
            self._dirty = False
