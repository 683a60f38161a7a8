"""Downsampled aggregates: per bucket of ``resolution_s`` the min, max, sum, count and last value.

Rollups are made by downsampling on age (see ``aurora.store.tsdb``): raw chunks past raw retention become
60 s buckets, 60 s rows past their retention become 3600 s buckets, and recent data is bucketed on the fly
from raw samples. A bucket may be split between tiers or rows (a chunk boundary inside a minute); because
every sample is in exactly one place, :func:`merge` combines such partial buckets exactly, and
:func:`coarsen` turns 60 s buckets into 3600 s ones exactly. NaN values (including Prometheus stale markers)
are not samples of the measured quantity and are left out: ``count`` counts non-NaN samples and a bucket
with none is not stored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cramjam
import numpy as np

from aurora.model import Float64Array, Int64Array

RESOLUTIONS_S = (60, 3600)
_FIELDS = ("ts", "min", "max", "sum", "count", "last")
_HDR = struct.Struct("<BI")
_VERSION = 2


@dataclass(slots=True)
class RollupArrays:
    ts: Int64Array  # bucket start, unix ms
    min: Float64Array
    max: Float64Array
    sum: Float64Array
    count: Int64Array
    last: Float64Array

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @staticmethod
    def empty() -> RollupArrays:
        f = np.zeros(0, np.float64)
        i = np.zeros(0, np.int64)
        return RollupArrays(i, f, f.copy(), f.copy(), i.copy(), f.copy())

    def slice(self, a: int, b: int) -> RollupArrays:
        return RollupArrays(
            self.ts[a:b], self.min[a:b], self.max[a:b], self.sum[a:b], self.count[a:b], self.last[a:b]
        )


def compute(
    ts: Int64Array, vals: Float64Array, group: Int64Array, resolution_s: int
) -> tuple[RollupArrays, Int64Array]:
    """Buckets of samples sorted by (group, ts). Returns the aggregates and each bucket's group."""
    ok = ~np.isnan(vals)
    if not ok.all():
        ts, vals, group = ts[ok], vals[ok], group[ok]
    if len(ts) == 0:
        return RollupArrays.empty(), np.zeros(0, np.int64)
    width = resolution_s * 1000
    b = ts - ts % width
    brk = np.flatnonzero((group[1:] != group[:-1]) | (b[1:] != b[:-1])) + 1
    starts = np.concatenate(([0], brk))
    ends = np.concatenate((brk, [len(ts)]))
    agg = RollupArrays(
        b[starts],
        np.minimum.reduceat(vals, starts),
        np.maximum.reduceat(vals, starts),
        np.add.reduceat(vals, starts),
        (ends - starts).astype(np.int64),
        vals[ends - 1],
    )
    return agg, group[starts]


def _block(r: RollupArrays) -> np.ndarray:
    """Bucket-major ``(n, 6)`` little-endian 8-byte block: ts, min, max, sum, count, last (ints as bits)."""
    block = np.empty((len(r), 6), "<u8")
    block[:, 0] = r.ts.view(np.uint64)
    block[:, 1] = r.min.view(np.uint64)
    block[:, 2] = r.max.view(np.uint64)
    block[:, 3] = r.sum.view(np.uint64)
    block[:, 4] = r.count.view(np.uint64)
    block[:, 5] = r.last.view(np.uint64)
    return block


def encode(r: RollupArrays) -> bytes:
    """Version 2: columns ts, min, max, sum, count, last; ts as deltas (first absolute), floats XORed with the
    previous bucket's bits, every column byte-shuffled, zstd-compressed. Regular bucket steps and slowly
    changing values become runs of zero bytes."""
    block = _block(r).T.copy()  # (6, n): one row per column
    if len(r) > 1:
        block[0, 1:] = block[0, 1:] - block[0, :-1]  # wraps modulo 2**64, undone by cumsum
        block[[1, 2, 3, 5], 1:] ^= block[[1, 2, 3, 5], :-1].copy()
    shuffled = block.view(np.uint8).reshape(6, len(r), 8).transpose(0, 2, 1)  # per column, per byte plane
    return _HDR.pack(_VERSION, len(r)) + bytes(cramjam.zstd.compress(shuffled.tobytes(), level=3))


def encode_rows_v1(r: RollupArrays, starts: list[int], ends: list[int]) -> list[bytes]:
    """Version 1 (written by earlier versions, one row per chunk): bucket-major block, LZ4. Kept for tests."""
    block = _block(r)
    compress = cramjam.lz4.compress_block
    pack = _HDR.pack
    return [
        pack(1, b - a) + bytes(compress(block[a:b].tobytes()))
        for a, b in zip(starts, ends, strict=True)
    ]


def decode(data: bytes) -> RollupArrays:
    version, n = _HDR.unpack_from(data, 0)
    if version == 1:
        raw = bytes(cramjam.lz4.decompress_block(data[_HDR.size :]))
        if len(raw) != 48 * n:
            raise ValueError("corrupt rollup row: wrong length")
        block = np.frombuffer(raw, "<u8").reshape(n, 6).T
    elif version == _VERSION:
        raw = bytes(cramjam.zstd.decompress(data[_HDR.size :]))
        if len(raw) != 48 * n:
            raise ValueError("corrupt rollup row: wrong length")
        planes = np.frombuffer(raw, np.uint8).reshape(6, 8, n)
        block = np.ascontiguousarray(planes.transpose(0, 2, 1)).view("<u8").reshape(6, n)
        if n > 1:
            block[0] = np.cumsum(block[0], dtype=np.uint64)
            for c in (1, 2, 3, 5):
                block[c] = np.bitwise_xor.accumulate(block[c])
    else:
        raise ValueError("corrupt rollup row: unknown version")
    return RollupArrays(
        block[0].astype(np.int64),
        block[1].copy().view(np.float64),
        block[2].copy().view(np.float64),
        block[3].copy().view(np.float64),
        block[4].astype(np.int64),
        block[5].copy().view(np.float64),
    )


def _reduce(ts: Int64Array, mn: Float64Array, mx: Float64Array, sm: Float64Array, cnt: Int64Array,
            last: Float64Array) -> RollupArrays:
    """One bucket per run of equal ``ts`` (which must be sorted; within a run the last entry is newest)."""
    brk = np.flatnonzero(ts[1:] != ts[:-1]) + 1
    if not len(brk) and len(ts) <= 1:
        return RollupArrays(ts, mn, mx, sm, cnt, last)
    starts = np.concatenate(([0], brk))
    ends = np.concatenate((brk, [len(ts)]))
    return RollupArrays(
        ts[starts],
        np.minimum.reduceat(mn, starts),
        np.maximum.reduceat(mx, starts),
        np.add.reduceat(sm, starts),
        np.add.reduceat(cnt, starts),
        last[ends - 1],
    )


def merge(parts: list[RollupArrays]) -> RollupArrays:
    """Combine partial rows (given oldest first) into one row per bucket, sorted by bucket start."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return RollupArrays.empty()
    if len(parts) == 1:
        return parts[0]
    ts = np.concatenate([p.ts for p in parts])
    order = np.argsort(ts, kind="stable")  # stable: the later part's "last" stays last within a bucket
    return _reduce(
        ts[order],
        np.concatenate([p.min for p in parts])[order],
        np.concatenate([p.max for p in parts])[order],
        np.concatenate([p.sum for p in parts])[order],
        np.concatenate([p.count for p in parts])[order],
        np.concatenate([p.last for p in parts])[order],
    )


def concat(parts: list[RollupArrays]) -> RollupArrays:
    """The buckets of ``parts`` one after another (no merging)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return RollupArrays.empty()
    if len(parts) == 1:
        return parts[0]
    return RollupArrays(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


def coarsen(r: RollupArrays, resolution_s: int) -> RollupArrays:
    """Buckets of ``r`` (sorted, of a finer resolution that divides ``resolution_s``) combined into buckets of
    ``resolution_s``: exact, since min, max, sum, count and last compose."""
    if not len(r):
        return r
    width = resolution_s * 1000
    return _reduce(r.ts - r.ts % width, r.min, r.max, r.sum, r.count, r.last)
