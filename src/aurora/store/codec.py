"""Chunk codec: samples of one series <-> compact bytes. PLACEHOLDER implementation (raw + zstd);
the real delta-of-delta / XOR codec replaces it with the same two functions."""

from __future__ import annotations

import cramjam
import numpy as np

from aurora.model import Float64Array, Int64Array


def encode_chunk(ts_ms: Int64Array, values: Float64Array) -> bytes:
    n = np.int32(len(ts_ms)).tobytes()
    return bytes(cramjam.zstd.compress(n + ts_ms.astype("<i8").tobytes() + values.astype("<f8").tobytes()))


def decode_chunk(data: bytes) -> tuple[Int64Array, Float64Array]:
    raw = bytes(cramjam.zstd.decompress(data))
    n = int(np.frombuffer(raw[:4], "<i4")[0])
    ts = np.frombuffer(raw, "<i8", count=n, offset=4).astype(np.int64)
    vals = np.frombuffer(raw, "<f8", count=n, offset=4 + 8 * n).astype(np.float64)
    return ts, vals
