"""Downsampled aggregates: per bucket of ``resolution_s`` the min, max, sum, count and last value.

Rollups are computed from each chunk when it is cut and stored as one ``rollups`` row per chunk and
resolution (so a bucket that straddles two chunks is two partial rows); :func:`merge` combines partial
buckets exactly. NaN values (including Prometheus stale markers) are not samples of the measured
quantity and are left out: ``count`` counts non-NaN samples and a bucket with none is not stored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cramjam
import numpy as np

from aurora.model import Float64Array, Int64Array

RESOLUTIONS_S = (60, 3600)
_HDR = struct.Struct("<BI")
_VERSION = 1


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
    return encode_rows(r, [0], [len(r)])[0]


def encode_rows(r: RollupArrays, starts: list[int], ends: list[int]) -> list[bytes]:
    """One compressed blob per bucket range ``[starts[i], ends[i])`` (LZ4 block, size stored)."""
    block = _block(r)
    compress = cramjam.lz4.compress_block
    pack = _HDR.pack
    return [
        pack(_VERSION, b - a) + bytes(compress(block[a:b].tobytes()))
        for a, b in zip(starts, ends, strict=True)
    ]


def decode(data: bytes) -> RollupArrays:
    version, n = _HDR.unpack_from(data, 0)
    if version != _VERSION:
        raise ValueError("corrupt rollup row: unknown version")
    raw = bytes(cramjam.lz4.decompress_block(data[_HDR.size :]))
    if len(raw) != 48 * n:
        raise ValueError("corrupt rollup row: wrong length")
    block = np.frombuffer(raw, "<u8").reshape(n, 6)
    return RollupArrays(
        block[:, 0].astype(np.int64),
        block[:, 1].copy().view(np.float64),
        block[:, 2].copy().view(np.float64),
        block[:, 3].copy().view(np.float64),
        block[:, 4].astype(np.int64),
        block[:, 5].copy().view(np.float64),
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
    ts = ts[order]
    mn = np.concatenate([p.min for p in parts])[order]
    mx = np.concatenate([p.max for p in parts])[order]
    sm = np.concatenate([p.sum for p in parts])[order]
    cnt = np.concatenate([p.count for p in parts])[order]
    last = np.concatenate([p.last for p in parts])[order]
    brk = np.flatnonzero(ts[1:] != ts[:-1]) + 1
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
