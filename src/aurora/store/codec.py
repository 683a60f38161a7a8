"""Chunk codec: samples of one series <-> compact, bit-exact bytes.

Layout of a chunk (all integers little-endian, ``uv`` = unsigned LEB128 varint, ``sv`` = zigzag varint)::

    magic(1) uv(n) [ts-section value-section...] crc32(4)

The timestamp section and every value section start with a 1-byte tag, so each chunk (and each column
of a multi-column chunk) uses whichever scheme came out smallest:

* timestamps: delta or delta-of-delta, then a patched frame-of-reference bit-packed integer block;
* values: constant, scaled decimal integers (raw / delta / delta-of-delta, with a few exception slots
  for NaN/stale markers/-0.0), integer delta of the IEEE bits, or raw. (XOR + byte-plane shuffle + zstd
  is still decoded but no longer written.)

:func:`encode_chunks` (store flush) makes the same per-chunk choices over 2-D arrays, many series per
NumPy call, and returns the same bytes as :func:`encode_chunk` for every chunk.
Decoding never trusts the input: bad or truncated data raises ``ValueError``.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import cramjam
import numpy as np
import numpy.typing as npt

from aurora.model import Float64Array, Int64Array

__all__ = ["decode_chunk", "decode_multi", "encode_chunk", "encode_chunks", "encode_multi"]

_MAGIC_SINGLE = 0xA1
_MAGIC_MULTI = 0xA2
# Generous bound so a corrupted length cannot make the decoder allocate gigabytes.
MAX_SAMPLES = 1 << 22

_TS_DELTA, _TS_DOD, _TS_GRID = 0, 1, 2
_V_CONST, _V_DEC, _V_XOR_ZSTD, _V_INTDELTA, _V_RAW = 0, 1, 2, 3, 4

_U8 = np.uint8
_U64 = np.uint64
_I64 = np.int64
_POW2 = np.array([1 << i for i in range(64)], dtype=_U64)  # searchsorted(_POW2, u, "right") == bit_length(u)
_I64_MIN = _I64(-(1 << 63))
_MAX_K = 15
_POW10 = np.array([10.0**k for k in range(_MAX_K + 1)])
_EXACT_INT = float(1 << 53)

_T = TypeVar("_T")
_UInt64Array = npt.NDArray[np.uint64]
_ByteArray = npt.NDArray[np.uint8]


# ----------------------------------------------------------------------------- scalar varints


def _uv(x: int) -> bytes:
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        if x:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _sv(x: int) -> bytes:
    # zigzag of a 64-bit signed value so small negatives stay short
    return _uv(((x << 1) ^ (x >> 63)) & 0xFFFFFFFFFFFFFFFF)


class _Reader:
    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, pos, end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ValueError("codec: truncated chunk")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def uv(self) -> int:
        x = shift = 0
        while True:
            b = self.byte()
            x |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                raise ValueError("codec: varint too long")
        if x >> 64:
            raise ValueError("codec: varint overflow")
        return x

    def sv(self) -> int:
        z = self.uv()
        return (z >> 1) ^ -(z & 1)

    def take(self, k: int) -> bytes:
        if k < 0 or self.pos + k > self.end:
            raise ValueError("codec: truncated chunk")
        out = self.buf[self.pos : self.pos + k]
        self.pos += k
        return out


# ----------------------------------------------------------------------------- bit packing


def _wrap(x: int) -> int:
    """Python int -> the int64 with the same low 64 bits."""
    x &= 0xFFFFFFFFFFFFFFFF
    return x - (1 << 64) if x >> 63 else x


def _bitpack(u: _UInt64Array, w: int) -> bytes:
    if w == 0 or len(u) == 0:
        return b""
    # unpackbits on the little-endian bytes gives bit i of each value at column i; keep the low w.
    bits = np.unpackbits(u.astype("<u8").view(_U8).reshape(-1, 8), axis=1, bitorder="little")
    return np.packbits(bits[:, :w], bitorder="little").tobytes()


def _bitunpack(raw: bytes, m: int, w: int) -> _UInt64Array:
    if w == 0:
        return np.zeros(m, dtype=_U64)
    bits = np.unpackbits(np.frombuffer(raw, dtype=_U8), count=m * w, bitorder="little").reshape(m, w)
    full = np.zeros((m, 64), dtype=_U8)
    full[:, :w] = bits
    return np.packbits(full, axis=1, bitorder="little").view("<u8").reshape(m).astype(_U64)


# ----------------------------------------------------------------------------- integer blocks
# Block: flags(1) sv(ref) uv(gcd) w(1) [uv(E) gap-block high-block] bits(ceil(m*w/8))
# value = ref + gcd * u   (u zigzag-decoded when flagged), all mod 2**64.
# Patched frame-of-reference: values wider than w are "exceptions" whose high bits are stored
# separately, so one missed scrape or counter reset does not widen every sample.

_F_ZIGZAG, _F_EXC = 1, 2
_WS = np.arange(65)


def _est(x: Int64Array) -> int:
    """Cheap size estimate (bits) used to rank candidate transforms before packing the winner."""
    if len(x) == 0:
        return 0
    return len(x) * (int(x.max()) - int(x.min())).bit_length()


def _idx_width(m: int) -> int:
    return 1 if m <= 256 else 2 if m <= 65536 else 4


def _pfor_width(u: _UInt64Array, full: int) -> int:
    """Width minimising n*w + exception cost (exceptions: delta-coded index + high bits)."""
    n = len(u)
    cnt = np.bincount(np.searchsorted(_POW2, u, side="right"), minlength=full + 1)
    over = n - np.cumsum(cnt)  # over[w] = values needing more than w bits
    ws = _WS[: full + 1]
    idx_bits = _idx_width(n) * 8
    cost = n * ws + over * (idx_bits + (full - ws)) + np.where(over > 0, 48, 0)
    return int(np.argmin(cost))


def _pack_ints(x: Int64Array, exc: bool = True) -> bytes:
    n = len(x)
    if n == 0:
        return b"\x00\x00\x00\x00"
    mn, mx = int(x.min()), int(x.max())
    if mn == mx:  # constant: reference only (regular timestamps, constant deltas)
        return b"\x00" + _sv(mn) + b"\x00\x00"
    ref, zz = mn, False
    if exc and n >= 16:
        q1, med, q3 = (int(t) for t in np.partition(x, (n // 4, n // 2, 3 * n // 4))[[n // 4, n // 2, 3 * n // 4]])
        if med - mn > 4 * (q3 - q1) + 4:
            # the minimum is an outlier far below the bulk: centre on the median and zigzag instead
            ref, zz = med, True
    with np.errstate(over="ignore"):
        d = x - _I64(_wrap(ref))  # wraps mod 2**64; the decoder wraps back identically
    if zz:
        # |d| < 2**63 unless the range is absurd; then skip the common factor
        g = int(np.gcd.reduce(d)) if mx - mn < (1 << 62) else 1
        if g > 1:
            d = d // _I64(g)
        u = (d << _I64(1)).view(_U64) ^ (d >> _I64(63)).view(_U64)
        full = int(u.max()).bit_length()
    else:
        u = d.view(_U64)
        g = int(np.gcd.reduce(u))
        if g > 1:
            u = u // _U64(g)
        full = ((mx - mn) // g).bit_length()
    w = _pfor_width(u, full) if exc and n >= 16 and full > 3 else full
    flags = _F_ZIGZAG if zz else 0
    body = b""
    if w < full:
        big = np.flatnonzero(u >> _U64(w))
        flags |= _F_EXC
        high = u[big] >> _U64(w)
        u = u & _U64((1 << w) - 1)
        hw = full - w
        idx = big.astype(f"<u{_idx_width(n)}")  # raw indices: cheaper to emit than delta-coding
        body = b"".join([_uv(len(big)), idx.tobytes(), bytes([hw]), _bitpack(high, hw)])
    return b"".join([bytes([flags]), _sv(ref), _uv(g), bytes([w]), body, _bitpack(u, w)])


def _unpack_ints(r: _Reader, m: int, allow_exc: bool = True) -> Int64Array:
    flags = r.byte()
    if flags & ~(_F_ZIGZAG | _F_EXC) or (flags & _F_EXC and not allow_exc):
        raise ValueError("codec: bad integer block flags")
    ref = r.sv()
    g = r.uv()
    w = r.byte()
    if g == 0 and w:
        raise ValueError("codec: bad integer block")
    if w > 64:
        raise ValueError("codec: bad bit width")
    high_idx = high = None
    if flags & _F_EXC:
        e = r.uv()
        if e == 0 or e > m:
            raise ValueError("codec: bad exception count")
        iw = _idx_width(m)
        high_idx = np.frombuffer(r.take(e * iw), dtype=f"<u{iw}").astype(np.intp)
        if (high_idx >= m).any():
            raise ValueError("codec: bad exception index")
        hw = r.byte()
        if hw + w > 64:
            raise ValueError("codec: bad bit width")
        high = _bitunpack(r.take((e * hw + 7) // 8), e, hw)
    u = _bitunpack(r.take((m * w + 7) // 8), m, w)
    if high_idx is not None and high is not None:
        u[high_idx] |= high << _U64(w)
    zz = bool(flags & _F_ZIGZAG)
    d = (u >> _U64(1)).view(_I64) ^ -(u & _U64(1)).view(_I64) if zz else u.view(_I64)
    with np.errstate(over="ignore"):
        if g != 1:
            d = d * _I64(_wrap(g))
        return d + _I64(_wrap(ref))


# ----------------------------------------------------------------------------- timestamps


def _grid(first: int, span: int, n: int) -> Int64Array:
    # evenly spread integer grid from first to first+span; integer maths so decoding is exact
    return first + (np.arange(n, dtype=_I64) * _I64(span)) // _I64(n - 1)


def _encode_ts(ts: Int64Array) -> bytes:
    n = len(ts)
    first = int(ts[0])
    if n == 1:
        return bytes([_TS_DELTA]) + _sv(first)
    with np.errstate(over="ignore"):
        d = ts[1:] - ts[:-1]  # wraps mod 2**64 for absurd inputs; decoding wraps back identically
        dd = d[1:] - d[:-1]
    cands = [(_est(d), _TS_DELTA), (_est(dd) + 16, _TS_DOD)]
    span = int(ts[-1]) - first
    if n >= 3 and 0 < span < (1 << 62) // n:
        # scrapes sit on a fixed schedule plus a few ms of jitter: residuals from the even grid
        # carry the jitter once, where deltas carry it twice
        resid = ts - _grid(first, span, n)
        cands.append((_est(resid) + 16, _TS_GRID))
    tag = min(cands)[1]
    if tag == _TS_GRID:
        return bytes([_TS_GRID]) + _sv(first) + _uv(span) + _pack_ints(resid[1:-1])
    if tag == _TS_DOD:
        return bytes([_TS_DOD]) + _sv(first) + _sv(int(d[0])) + _pack_ints(dd)
    return bytes([_TS_DELTA]) + _sv(first) + _pack_ints(d)


def _decode_ts(r: _Reader, n: int) -> Int64Array:
    tag = r.byte()
    first = _wrap(r.sv())
    out = np.empty(n, dtype=_I64)
    out[0] = first
    if n == 1:
        if tag != _TS_DELTA:
            raise ValueError("codec: bad timestamp tag")
        return out
    with np.errstate(over="ignore"):
        if tag == _TS_DELTA:
            d = _unpack_ints(r, n - 1)
        elif tag == _TS_DOD:
            d0 = _wrap(r.sv())
            dd = _unpack_ints(r, n - 2)
            d = np.empty(n - 1, dtype=_I64)
            d[0] = d0
            d[1:] = dd
            d = np.cumsum(d, dtype=_I64)
        elif tag == _TS_GRID:
            span = r.uv()
            if n < 3 or not 0 < span < (1 << 62) // n:
                raise ValueError("codec: bad timestamp grid")
            out = _grid(first, span, n)
            out[1:-1] += _unpack_ints(r, n - 2)
            return out
        else:
            raise ValueError("codec: bad timestamp tag")
        out[1:] = d
        return np.cumsum(out, dtype=_I64)


# ----------------------------------------------------------------------------- values


def _encode_decimal(v: Float64Array, bits: _UInt64Array) -> bytes | None:
    """Values that are short decimals: store round(v * 10**k) as integers (exactly checked)."""
    n = len(v)
    # cheap pass over the common scales first; all 16 scales only when none of them fits everything
    for rows in (4, _MAX_K + 1):
        pow10 = _POW10[:rows, None]
        with np.errstate(all="ignore"):
            # NaN/Inf/huge values cast to garbage integers and then fail the bit-exact check below
            mi = np.rint(v[None, :] * pow10).astype(_I64)
            ok = (mi.astype(np.float64) / pow10).view(_U64) == bits[None, :]
        good = ok.sum(axis=1)
        k = int(np.argmax(good))  # first maximum: the fewest digits that explain most samples
        if good[k] == n:
            break
    if good[k] * 2 < n:
        return None
    m = mi[k]
    okk = ok[k]
    exc = np.flatnonzero(~okk)
    parts = [bytes([_V_DEC, k])]
    if len(exc):
        # exception slots (NaN, stale markers, -0.0, noise) hold the previous good integer so
        # deltas stay small; their real bits are stored raw
        pos = np.where(okk, np.arange(n), 0)
        np.maximum.accumulate(pos, out=pos)
        m = np.where(okk, m, 0)[pos]
        parts.append(_uv(len(exc)))
        parts.append(_pack_ints(np.diff(exc, prepend=0).astype(_I64), exc=False))
        parts.append(bits[exc].astype("<u8").tobytes())
    else:
        parts.append(_uv(0))
    with np.errstate(over="ignore"):
        orders = [m]
        if n >= 2:
            orders.append(np.diff(m))
        if n >= 3:
            orders.append(np.diff(orders[1]))
    order = min(range(len(orders)), key=lambda o: _est(orders[o]) + 16 * o)
    parts.append(bytes([order]))
    if order >= 1:
        parts.append(_sv(int(m[0])))
    if order == 2:
        parts.append(_sv(int(orders[1][0])))
    parts.append(_pack_ints(orders[order]))
    return b"".join(parts)


def _decode_decimal(r: _Reader, n: int) -> Float64Array:
    k = r.byte()
    if k > _MAX_K:
        raise ValueError("codec: bad decimal scale")
    e = r.uv()
    if e > n:
        raise ValueError("codec: bad exception count")
    exc = exc_bits = None
    if e:
        gaps = _unpack_ints(r, e, allow_exc=False)
        exc = np.cumsum(gaps)
        if (gaps < 0).any() or (e > 1 and (gaps[1:] == 0).any()) or exc[-1] >= n:
            raise ValueError("codec: bad exception index")
        exc_bits = np.frombuffer(r.take(8 * e), dtype="<u8").astype(_U64)
    order = r.byte()
    if order > 2 or order > n - 1:
        raise ValueError("codec: bad decimal order")
    with np.errstate(over="ignore"):
        if order == 0:
            m = _unpack_ints(r, n)
        else:
            head = [_wrap(r.sv())]
            if order == 2:
                head.append(_wrap(r.sv()))
            m = np.concatenate([np.array(head, dtype=_I64), _unpack_ints(r, n - order)])
            if order == 2:
                m[1:] = np.cumsum(m[1:], dtype=_I64)
            m = np.cumsum(m, dtype=_I64)
    v = m.astype(np.float64) / _POW10[k]
    if exc is not None and exc_bits is not None:
        v.view(_U64)[exc] = exc_bits
    return v


def _encode_values(v: Float64Array) -> bytes:
    n = len(v)
    bits = v.view(_U64)
    if (bits == bits[0]).all():
        return bytes([_V_CONST]) + bits[:1].astype("<u8").tobytes()
    cands: list[bytes] = []
    dec = _encode_decimal(v, bits)
    if dec is not None:
        if len(dec) <= 2 * n + 16:  # good enough; float paths cannot beat short decimals meaningfully
            return dec
        cands.append(dec)
    # XOR + byte-plane shuffle + zstd (_V_XOR_ZSTD) is no longer tried: integer delta of the bits or the
    # decimal scheme beat it on every chunk of the synthetic mix and on all but 25 of 1,546 NAB chunks
    # (0.35 % of their value bytes), and it cost a zstd call per chunk. Old chunks using it still decode.
    # integer delta of the IEEE bits: slowly drifting same-sign values give small deltas
    with np.errstate(over="ignore"):
        bi = bits.view(_I64)
        di = bi[1:] - bi[:-1]
    cands.append(bytes([_V_INTDELTA]) + bits[:1].astype("<u8").tobytes() + _pack_ints(di))
    cands.append(bytes([_V_RAW]) + bits.astype("<u8").tobytes())
    return min(cands, key=len)


def _decode_values(r: _Reader, n: int) -> Float64Array:
    tag = r.byte()
    if tag == _V_CONST:
        b = np.frombuffer(r.take(8), dtype="<u8")
        return np.repeat(b, n).astype(_U64).view(np.float64)
    if tag == _V_DEC:
        return _decode_decimal(r, n)
    if tag == _V_XOR_ZSTD:
        try:
            raw = bytes(cramjam.zstd.decompress(r.take(r.uv()), output_len=8 * n))
        except cramjam.DecompressionError as exc:
            raise ValueError(f"codec: bad compressed values: {exc}") from None
        if len(raw) != 8 * n:
            raise ValueError("codec: bad compressed value length")
        x = np.frombuffer(raw, dtype=_U8).reshape(8, n).T.copy().view("<u8").reshape(n).astype(_U64)
        return np.bitwise_xor.accumulate(x).view(np.float64)
    if tag == _V_INTDELTA:
        first = np.frombuffer(r.take(8), dtype="<u8").view(_I64)
        d = _unpack_ints(r, n - 1) if n > 1 else np.empty(0, dtype=_I64)
        with np.errstate(over="ignore"):
            return np.cumsum(np.concatenate([first, d]), dtype=_I64).view(np.float64)
    if tag == _V_RAW:
        return np.frombuffer(r.take(8 * n), dtype="<u8").astype(_U64).view(np.float64)
    raise ValueError(f"codec: unknown value tag {tag}")


# ----------------------------------------------------------------------------- containers


def _as_ts(ts_ms: npt.ArrayLike) -> Int64Array:
    return np.ascontiguousarray(ts_ms, dtype=_I64).reshape(-1)


def _as_values(values: npt.ArrayLike) -> Float64Array:
    return np.ascontiguousarray(values, dtype=np.float64).reshape(-1)


def _seal(body: list[bytes]) -> bytes:
    out = b"".join(body)
    return out + zlib.crc32(out).to_bytes(4, "little")


def _open(data: bytes, magic: int) -> tuple[_Reader, int]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError("codec: chunk must be bytes")
    data = bytes(data)
    if len(data) < 6:
        raise ValueError("codec: truncated chunk")
    if zlib.crc32(data[:-4]) != int.from_bytes(data[-4:], "little"):
        raise ValueError("codec: checksum mismatch (corrupted or truncated chunk)")
    r = _Reader(data, 0, len(data) - 4)
    if r.byte() != magic:
        raise ValueError("codec: not a chunk of this kind (bad magic)")
    n = r.uv()
    if n > MAX_SAMPLES:
        raise ValueError("codec: sample count out of range")
    return r, n


def _finish(r: _Reader) -> None:
    if r.pos != r.end:
        raise ValueError("codec: trailing bytes in chunk")


def _guard(fn: Callable[[bytes], _T]) -> Callable[[bytes], _T]:
    """Any parse failure on hostile input surfaces as ValueError, never as IndexError & co."""

    @functools.wraps(fn)
    def wrapper(data: bytes) -> _T:
        try:
            return fn(data)
        except ValueError:
            raise
        except (IndexError, TypeError, OverflowError, MemoryError, ArithmeticError) as exc:
            raise ValueError(f"codec: corrupted chunk ({type(exc).__name__}: {exc})") from None

    return wrapper


def encode_chunk(ts_ms: Int64Array, values: Float64Array) -> bytes:
    """Encode one series chunk. Lossless for every int64 timestamp and float64 bit pattern."""
    ts, v = _as_ts(ts_ms), _as_values(values)
    if len(ts) != len(v):
        raise ValueError(f"codec: {len(ts)} timestamps but {len(v)} values")
    if len(ts) > MAX_SAMPLES:
        raise ValueError(f"codec: chunk of {len(ts)} samples exceeds {MAX_SAMPLES}")
    body = [bytes([_MAGIC_SINGLE]), _uv(len(ts))]
    if len(ts):
        body += [_encode_ts(ts), _encode_values(v)]
    return _seal(body)


@_guard
def decode_chunk(data: bytes) -> tuple[Int64Array, Float64Array]:
    """Inverse of :func:`encode_chunk`; raises ValueError on corrupted or truncated data."""
    r, n = _open(data, _MAGIC_SINGLE)
    if n == 0:
        _finish(r)
        return np.empty(0, dtype=_I64), np.empty(0, dtype=np.float64)
    ts = _decode_ts(r, n)
    v = _decode_values(r, n)
    _finish(r)
    return ts, v


def encode_multi(ts_ms: Int64Array, columns: Mapping[str, Float64Array]) -> bytes:
    """Several float columns over shared timestamps (rollups: min/max/sum/count/last).

    Each column picks its own value scheme; the timestamps are stored once. Column order is kept.
    """
    ts = _as_ts(ts_ms)
    if len(ts) > MAX_SAMPLES:
        raise ValueError(f"codec: chunk of {len(ts)} samples exceeds {MAX_SAMPLES}")
    body = [bytes([_MAGIC_MULTI]), _uv(len(ts)), _uv(len(columns))]
    if len(ts):
        body.append(_encode_ts(ts))
    for name, values in columns.items():
        v = _as_values(values)
        if len(v) != len(ts):
            raise ValueError(f"codec: column {name!r} has {len(v)} values for {len(ts)} timestamps")
        raw_name = name.encode()
        body += [_uv(len(raw_name)), raw_name]
        if len(ts):
            body.append(_encode_values(v))
    return _seal(body)


@_guard
def decode_multi(data: bytes) -> tuple[Int64Array, dict[str, Float64Array]]:
    """Inverse of :func:`encode_multi`; raises ValueError on corrupted or truncated data."""
    r, n = _open(data, _MAGIC_MULTI)
    ncols = r.uv()
    if ncols > r.end:  # each column needs at least one byte
        raise ValueError("codec: bad column count")
    ts = _decode_ts(r, n) if n else np.empty(0, dtype=_I64)
    cols: dict[str, Float64Array] = {}
    for _ in range(ncols):
        try:
            name = r.take(r.uv()).decode()
        except UnicodeDecodeError:
            raise ValueError("codec: bad column name") from None
        if name in cols:
            raise ValueError("codec: duplicate column name")
        cols[name] = _decode_values(r, n) if n else np.empty(0, dtype=np.float64)
    _finish(r)
    return ts, cols


def encode_chunks(series: Iterable[tuple[Int64Array, Float64Array]]) -> list[bytes]:
    """Encode many chunks (store flush); element ``i`` is byte-identical to ``encode_chunk(*series[i])``.

    Chunks are grouped by sample count and each group of at least ``_BATCH_MIN_ROWS`` chunks is encoded
    as 2-D arrays (rows = series) in a number of NumPy calls that does not grow with the number of rows;
    smaller groups and chunks of fewer than 3 samples take the single-chunk path.
    """
    items = []
    for ts_ms, values in series:
        ts, v = _as_ts(ts_ms), _as_values(values)
        if len(ts) != len(v):
            raise ValueError(f"codec: {len(ts)} timestamps but {len(v)} values")
        if len(ts) > MAX_SAMPLES:
            raise ValueError(f"codec: chunk of {len(ts)} samples exceeds {MAX_SAMPLES}")
        items.append((ts, v))
    out: list[bytes] = [b""] * len(items)
    groups: dict[int, list[int]] = {}
    for i, (ts, _) in enumerate(items):
        groups.setdefault(len(ts), []).append(i)
    for n, idx in groups.items():
        if n < 3 or len(idx) < _BATCH_MIN_ROWS:
            for i in idx:
                out[i] = encode_chunk(*items[i])
            continue
        nblocks = -(-len(idx) // _BATCH_MAX_ROWS)
        for part in np.array_split(np.array(idx), nblocks):
            rows = part.tolist()
            blobs = _encode_group(np.stack([items[i][0] for i in rows]), np.stack([items[i][1] for i in rows]))
            for i, blob in zip(rows, blobs, strict=True):
                out[i] = blob
    return out


# ----------------------------------------------------------------------------- batch encoding
# encode_chunks() runs the same scheme choice as encode_chunk() over a 2-D array (rows = series of one
# length) and assembles the bytes column by column: every piece below gives, for a subset of rows, the
# next bytes of those rows. The choices, and therefore the bytes, are identical to the single-chunk path
# (tests check this row by row); every integer step uses the same wrapping int64/uint64 arithmetic.

_BATCH_MIN_ROWS = 4
# Rows per 2-D block: large enough to amortise the per-call overhead, small enough that temporaries stay
# around 1 MB (multi-MB temporaries went back to the OS on every free here and cost page faults).
_BATCH_MAX_ROWS = 512
_IntpArray = npt.NDArray[np.intp]
_SHIFT7 = np.arange(0, 64, 7, dtype=_U64)  # 10 varint groups
_ARANGE10 = np.arange(10)


def _bitlen(u: npt.NDArray[np.uint64]) -> _IntpArray:
    return np.searchsorted(_POW2, u, side="right")


def _zigzag(x: Int64Array) -> _UInt64Array:
    return ((x << _I64(1)) ^ (x >> _I64(63))).view(_U64)


def _uv_len(u: _UInt64Array) -> _IntpArray:
    return np.maximum(1, (_bitlen(u) + 6) // 7)


def _uv_ragged(u: _UInt64Array) -> tuple[_IntpArray, _ByteArray]:
    """Varints of many values: (byte length per value, concatenated bytes)."""
    lens = _uv_len(u)
    groups = (u[:, None] >> _SHIFT7) & _U64(0x7F)
    more = (lens - 1)[:, None] > _ARANGE10
    mat = (groups | (more.astype(_U64) << _U64(7))).astype(_U8)
    return lens, mat[lens[:, None] > _ARANGE10]


class _Rows:
    """Byte strings of many chunks built piece by piece; pieces of one row are laid out in call order."""

    def __init__(self, nrows: int) -> None:
        self.total = np.zeros(nrows, dtype=np.intp)
        self.pieces: list[tuple[_IntpArray, _IntpArray | None, _ByteArray]] = []

    def fixed(self, rows: _IntpArray, mat: npt.ArrayLike) -> None:
        """The same number of bytes for every row: a (len(rows), c) matrix, or one byte string for all."""
        m = np.asarray(mat, dtype=_U8)
        if m.ndim == 1:
            m = np.broadcast_to(m, (len(rows), len(m)))
        self.total[rows] += m.shape[1]
        self.pieces.append((rows, None, m))

    def ragged(self, rows: _IntpArray, lens: _IntpArray, data: _ByteArray) -> None:
        """``lens[i]`` bytes for ``rows[i]``; ``data`` is their concatenation."""
        self.total[rows] += lens
        self.pieces.append((rows, lens, data))

    def varint(self, rows: _IntpArray, u: _UInt64Array) -> None:
        self.ragged(rows, *_uv_ragged(u))

    def build(self) -> list[bytes]:
        ends = np.cumsum(self.total)
        starts = ends - self.total
        buf = np.empty(int(ends[-1]) if len(ends) else 0, dtype=_U8)
        pos = starts.copy()
        for rows, lens, data in self.pieces:
            if not len(rows):
                continue
            at = pos[rows]
            if lens is None:
                c = data.shape[1]
                buf[(at[:, None] + np.arange(c)).reshape(-1)] = data.reshape(-1)
                pos[rows] += c
            else:
                src = np.cumsum(lens) - lens
                buf[np.repeat(at - src, lens) + np.arange(len(data))] = data
                pos[rows] += lens
        raw = buf.tobytes()
        out = []
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            b = raw[s:e]
            out.append(b + zlib.crc32(b).to_bytes(4, "little"))
        return out


def _bitpack_ragged(vals: _UInt64Array, counts: _IntpArray, widths: _IntpArray) -> tuple[_IntpArray, _ByteArray]:
    """Row i packs its counts[i] >= 1 values (each < 2**widths[i], widths >= 1) like _bitpack.

    Returns (bytes per row, their concatenation). Used for the few exception high bits of a block."""
    nbits = counts * widths
    nbytes = (nbits + 7) // 8
    nwords = (nbits + 63) // 64
    wbase = np.cumsum(nwords) - nwords
    row = np.repeat(np.arange(len(counts)), counts)
    w = widths[row]
    p = (np.arange(len(vals)) - (np.cumsum(counts) - counts)[row]) * w
    gw = wbase[row] + (p >> 6)  # word of each value's lowest bit, non-decreasing
    sh = (p & 63).astype(_U64)
    seg = np.flatnonzero(np.diff(gw, prepend=-1))
    words = np.zeros(int(nwords.sum()), dtype=_U64)
    words[gw[seg]] = np.bitwise_or.reduceat(vals << sh, seg)  # bits never overlap: OR == sum
    spill = np.flatnonzero(sh.astype(np.intp) + w > 64)
    words[gw[spill] + 1] |= vals[spill] >> (_U64(64) - sh[spill])
    wb = words.astype("<u8").view(_U8)
    bstart = np.cumsum(nbytes) - nbytes
    return nbytes, wb[np.repeat(wbase * 8 - bstart, nbytes) + np.arange(int(nbytes.sum()))]


def _pack_layout(w: int) -> tuple[_UInt64Array, _IntpArray, _IntpArray, _IntpArray]:
    """How 64 values of width w fill w words: shift of each value, first value of each word, spills."""
    p = np.arange(64) * w
    sh = p & 63
    spill = np.flatnonzero(sh + w > 64)  # straddles into the next word (never the last value)
    return sh.astype(_U64), np.searchsorted(p >> 6, np.arange(w)), spill, (p >> 6)[spill] + 1


_PACK_LAYOUT = [_pack_layout(w) if w else None for w in range(65)]


def _bitpack_rect(u: _UInt64Array, w: _IntpArray) -> tuple[_IntpArray, _IntpArray, _ByteArray]:
    """_bitpack() of each row of a (k, m) matrix at its own width, rows grouped by width.

    Returns (row order, bytes per row in that order, concatenation in that order)."""
    k, m = u.shape
    nb = -(-m // 64)
    order = np.argsort(w, kind="stable")
    ws = w[order]
    lens = (m * ws + 7) // 8
    cuts = np.flatnonzero(np.diff(ws)) + 1
    parts = []
    for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), k], strict=True):
        width = int(ws[a])
        layout = _PACK_LAYOUT[width]
        if layout is None:
            continue
        sh, starts, spill, spill_to = layout
        rows = order[a:b]
        if m % 64:
            v = np.zeros((b - a, nb * 64), dtype=_U64)
            v[:, :m] = u[rows]
        else:
            v = u[rows]
        v = v.reshape(b - a, nb, 64)
        words = np.bitwise_or.reduceat(v << sh, starts, axis=2)
        if len(spill):
            words[:, :, spill_to] |= v[:, :, spill] >> (_U64(64) - sh[spill])
        parts.append(words.astype("<u8").reshape(b - a, nb * width).view(_U8)[:, : int(lens[a])].reshape(-1))
    return order, lens, np.concatenate(parts) if parts else np.empty(0, dtype=_U8)


class _IntPlan:
    """_pack_ints() over the rows of a (k, m) matrix: every choice made, sizes known, bytes on demand."""

    __slots__ = ("e", "flags", "g", "hw", "m", "ref", "size", "u", "w")

    def __init__(self, x: Int64Array) -> None:
        k, m = x.shape
        self.m = m
        mn, mx = x.min(axis=1), x.max(axis=1)
        with np.errstate(over="ignore"):
            span = (mx - mn).view(_U64)  # exact: mx >= mn
        const = span == 0
        ref = mn
        zz = np.zeros(k, dtype=bool)
        pfor = m >= 16
        if pfor:
            qk = (m // 4, m // 2, 3 * m // 4)
            q = np.sort(x, axis=1)  # an order of magnitude faster than partition() with three kth here
            q1, med, q3 = q[:, qk[0]], q[:, qk[1]], q[:, qk[2]]
            with np.errstate(over="ignore"):
                a = (med - mn).view(_U64)
                b = (q3 - q1).view(_U64)
                # med - mn > 4 * (q3 - q1) + 4, exactly: when 4 * (q3 - q1) + 4 >= 2**64 it cannot hold
                zz = ~const & (b < _U64((1 << 62) - 1)) & (a > b * _U64(4) + _U64(4))
            ref = np.where(zz, med, mn)
        with np.errstate(over="ignore"):
            d = x - ref[:, None]
        u = d.view(_U64).copy()
        g = np.zeros(k, dtype=_U64)
        full = np.zeros(k, dtype=np.intp)
        plain = np.flatnonzero(~const & ~zz)
        if len(plain):
            up = u[plain]
            gp = _gcd_rows(up)
            big = gp > 1
            if big.any():
                up[big] //= gp[big, None]
                u[plain] = up
            g[plain] = gp
            full[plain] = _bitlen(span[plain] // gp)
        zrows = np.flatnonzero(zz)
        if len(zrows):
            dz = d[zrows]
            small = span[zrows] < _U64(1 << 62)
            gz = np.ones(len(zrows), dtype=_I64)
            if small.any():
                gz[small] = _gcd_rows(dz[small]).view(_I64)
            gz = np.maximum(gz, 1)
            dz = dz // gz[:, None]
            uz = _zigzag(dz)
            u[zrows] = uz
            g[zrows] = gz.view(_U64)
            full[zrows] = _bitlen(uz.max(axis=1))
        w = full.copy()
        if pfor:
            cand = np.flatnonzero(full > 3)
            if len(cand):
                w[cand] = _pfor_width_rows(u[cand], full[cand])
        e = np.zeros(k, dtype=np.intp)
        ex = np.flatnonzero(w < full)
        if len(ex):
            e[ex] = (u[ex] >> w[ex, None].astype(_U64) != 0).sum(axis=1)
        hw = full - w
        flags = np.where(zz, _F_ZIGZAG, 0) | np.where(e > 0, _F_EXC, 0)
        size = 2 + _uv_len(_zigzag(ref)) + _uv_len(g) + (m * w + 7) // 8
        size += np.where(e > 0, _uv_len(e.astype(_U64)) + e * _idx_width(m) + 1 + (e * hw + 7) // 8, 0)
        self.e, self.flags, self.g, self.hw, self.ref, self.size, self.u, self.w = e, flags, g, hw, ref, size, u, w

    def emit(self, out: _Rows, sel: _IntpArray, rows: _IntpArray) -> None:
        """Append the blocks of plan rows ``sel`` to output rows ``rows``."""
        if not len(sel):
            return
        out.fixed(rows, self.flags[sel, None])
        out.varint(rows, _zigzag(self.ref[sel]))
        out.varint(rows, self.g[sel])
        out.fixed(rows, self.w[sel, None])
        u, w = self.u[sel], self.w[sel]
        ex = np.flatnonzero(self.e[sel])
        if len(ex):
            ue, we = u[ex], w[ex].astype(_U64)
            er, ec = np.nonzero(ue >> we[:, None])
            e, hw = self.e[sel][ex], self.hw[sel][ex]
            iw = _idx_width(self.m)
            out.varint(rows[ex], e.astype(_U64))
            out.ragged(rows[ex], e * iw, ec.astype(f"<u{iw}").view(_U8))
            out.fixed(rows[ex], hw[:, None])
            out.ragged(rows[ex], *_bitpack_ragged(ue[er, ec] >> we[er], e, hw))
            u = u.copy()
            u[ex] &= (_U64(1) << we[:, None]) - _U64(1)  # we < full <= 64
        order, lens, data = _bitpack_rect(u, w)
        out.ragged(rows[order], lens, data)


def _gcd_rows(x: npt.NDArray[np.integer]) -> npt.NDArray[np.integer]:
    """gcd of each row; rows whose first few values are already coprime skip the full reduction."""
    head = np.gcd.reduce(x[:, :8], axis=1)
    g = head.copy()
    rest = np.flatnonzero(head != 1)
    if len(rest) and x.shape[1] > 8:
        g[rest] = np.gcd(head[rest], np.gcd.reduce(x[rest, 8:], axis=1))
    return g


def _pfor_width_rows(u: _UInt64Array, full: _IntpArray) -> _IntpArray:
    """_pfor_width() of each row of u (widths above ``full`` never win, so all 65 are scored)."""
    k, n = u.shape
    if (full <= 53).all():
        # exact below 2**53: the float exponent is the bit length (0 -> 0 after the clip)
        bl = np.maximum((u.view(_I64).astype(np.float64).view(_I64) >> _I64(52)) - 1022, 0)
    else:
        bl = _bitlen(u)
    bl += (65 * np.arange(k))[:, None]
    cnt = np.bincount(bl.reshape(-1), minlength=65 * k).reshape(k, 65)
    over = n - np.cumsum(cnt, axis=1)
    idx_bits = _idx_width(n) * 8
    cost = n * _WS + over * (idx_bits + (full[:, None] - _WS)) + np.where(over > 0, 48, 0)
    return np.argmin(cost, axis=1)


def _range_est(x: Int64Array) -> _IntpArray:
    """_est() of each row."""
    with np.errstate(over="ignore"):
        return x.shape[1] * _bitlen((x.max(axis=1) - x.min(axis=1)).view(_U64))


def _encode_ts_rows(ts: Int64Array, out: _Rows) -> None:
    k, n = ts.shape  # n >= 3
    first, last = ts[:, 0], ts[:, -1]
    with np.errstate(over="ignore"):
        d = ts[:, 1:] - ts[:, :-1]
        dd = d[:, 1:] - d[:, :-1]
        span = (last - first).view(_U64)
    grid_ok = (last > first) & (span < _U64((1 << 62) // n))
    spans = np.where(grid_ok, span, _U64(0)).view(_I64)
    with np.errstate(over="ignore"):
        resid = ts - (first[:, None] + (np.arange(n, dtype=_I64) * spans[:, None]) // _I64(n - 1))
    best, tag = _range_est(d), np.zeros(k, dtype=np.intp)
    e_dod = _range_est(dd) + 16
    tag[e_dod < best] = _TS_DOD
    best = np.minimum(best, e_dod)
    e_grid = _range_est(resid) + 16
    tag[grid_ok & (e_grid < best)] = _TS_GRID
    for t in (_TS_DELTA, _TS_DOD, _TS_GRID):
        rows = np.flatnonzero(tag == t)
        if not len(rows):
            continue
        out.fixed(rows, [t])
        out.varint(rows, _zigzag(first[rows]))
        if t == _TS_DELTA:
            block = d[rows]
        elif t == _TS_DOD:
            out.varint(rows, _zigzag(d[rows, 0]))
            block = dd[rows]
        else:
            out.varint(rows, span[rows])
            block = resid[rows, 1:-1]
        _IntPlan(block).emit(out, np.arange(len(rows)), rows)


def _decimal_scales(v: Float64Array, bits: _UInt64Array) -> tuple[_IntpArray, _IntpArray]:
    """_encode_decimal()'s scale choice per row: (k, samples explained exactly at scale k)."""
    r, n = v.shape
    good = np.zeros((r, _MAX_K + 1), dtype=np.intp)
    k = np.full(r, -1, dtype=np.intp)
    active = np.arange(r)

    def count(rows: _IntpArray, s: int) -> _IntpArray:
        with np.errstate(all="ignore"):
            mi = np.rint(v[rows] * _POW10[s]).astype(_I64)
            return ((mi.astype(np.float64) / _POW10[s]).view(_U64) == bits[rows]).sum(axis=1)

    for s in range(4):  # the cheap pass: the first scale explaining every sample wins
        if not len(active):
            break
        c = count(active, s)
        good[active, s] = c
        done = c == n
        k[active[done]] = s
        active = active[~done]
    if len(active):
        for s in range(4, _MAX_K + 1):
            good[active, s] = count(active, s)
        k[active] = np.argmax(good[active], axis=1)
    return k, good[np.arange(r), k]


def _encode_values_rows(v: Float64Array, out: _Rows) -> None:
    n = v.shape[1]  # >= 3
    bits = v.view(_U64)
    const = (bits == bits[:, :1]).all(axis=1)
    rows = np.flatnonzero(const)
    out.fixed(rows, np.concatenate([np.full((len(rows), 1), _V_CONST, dtype=_U8), bits[rows, :1].view(_U8)], axis=1))
    rest = np.flatnonzero(~const)
    if not len(rest):
        return
    vr, br = v[rest], bits[rest]
    scale, good = _decimal_scales(vr, br)
    is_dec = good * 2 >= n
    dec_size = np.full(len(rest), np.iinfo(np.intp).max // 2, dtype=np.intp)
    di = np.flatnonzero(is_dec)
    dec = None
    if len(di):
        p10 = _POW10[scale[di]][:, None]
        with np.errstate(all="ignore"):
            mi = np.rint(vr[di] * p10).astype(_I64)
            ok = (mi.astype(np.float64) / p10).view(_U64) == br[di]
        e = n - good[di]
        pos = np.where(ok, np.arange(n), 0)
        np.maximum.accumulate(pos, axis=1, out=pos)
        mm = np.take_along_axis(np.where(ok, mi, 0), pos, axis=1)
        with np.errstate(over="ignore"):
            o1 = mm[:, 1:] - mm[:, :-1]
            o2 = o1[:, 1:] - o1[:, :-1]
        ests = np.stack([_range_est(mm), _range_est(o1) + 16, _range_est(o2) + 32])
        order = np.argmin(ests, axis=0)  # first minimum, as min(range(3), key=...)
        exc_rows = np.flatnonzero(e)
        gap_blocks = [
            _pack_ints(np.diff(np.flatnonzero(~ok[i]), prepend=0).astype(_I64), exc=False) for i in exc_rows.tolist()
        ]
        size = 3 + _uv_len(e.astype(_U64)) + 8 * e
        size[exc_rows] += np.array([len(b) for b in gap_blocks], dtype=np.intp)
        size += np.where(order >= 1, _uv_len(_zigzag(mm[:, 0])), 0)
        size += np.where(order == 2, _uv_len(_zigzag(o1[:, 0])), 0)
        plans = []
        for o, blk in enumerate((mm, o1, o2)):
            sel = np.flatnonzero(order == o)
            plan = _IntPlan(blk[sel]) if len(sel) else None
            if plan is not None:
                size[sel] += plan.size
            plans.append((sel, plan))
        dec_size[di] = size
        dec = (di, scale[di], e, ok, exc_rows, gap_blocks, order, mm, o1, plans)
    # float fallbacks where the decimal scheme is missing or not obviously good enough
    fb = np.flatnonzero(~is_dec | (dec_size > 2 * n + 16))
    choice = np.full(len(rest), _V_DEC, dtype=np.intp)
    if len(fb):
        with np.errstate(over="ignore"):
            bi = br[fb].view(_I64)
            ip = _IntPlan(bi[:, 1:] - bi[:, :-1])
        id_size = 9 + ip.size
        raw_size = 1 + 8 * n
        c = np.where(id_size <= raw_size, _V_INTDELTA, _V_RAW)
        best = np.minimum(id_size, raw_size)
        c[dec_size[fb] <= best] = _V_DEC  # min() keeps the first of equal candidates: decimal
        choice[fb] = c
        sel = np.flatnonzero(c == _V_INTDELTA)
        orows = rest[fb[sel]]
        out.fixed(orows, np.concatenate([np.full((len(sel), 1), _V_INTDELTA, dtype=_U8), br[fb[sel], :1].view(_U8)], 1))
        ip.emit(out, sel, orows)
        sel = fb[c == _V_RAW]
        out.fixed(rest[sel], np.concatenate([np.full((len(sel), 1), _V_RAW, dtype=_U8), br[sel].view(_U8)], axis=1))
    if dec is None:
        return
    di, sc, e, ok, exc_rows, gap_blocks, order, mm, o1, plans = dec
    # decimal rows that won: (positions within di)
    keep = choice[di] == _V_DEC
    orow = rest[di]
    kk = np.flatnonzero(keep)
    out.fixed(orow[kk], np.stack([np.full(len(kk), _V_DEC, dtype=_U8), sc[kk].astype(_U8)], axis=1))
    out.varint(orow[kk], e[kk].astype(_U64))
    xk = exc_rows[keep[exc_rows]]
    if len(xk):
        blocks = [gap_blocks[j] for j in np.flatnonzero(keep[exc_rows]).tolist()]
        out.ragged(orow[xk], np.array([len(b) for b in blocks], dtype=np.intp), np.frombuffer(b"".join(blocks), _U8))
        bad = ~ok[xk]
        out.ragged(orow[xk], 8 * e[xk], br[di[xk]][bad].astype("<u8").view(_U8))
    out.fixed(orow[kk], order[kk, None])
    first_d = kk[order[kk] >= 1]
    out.varint(orow[first_d], _zigzag(mm[first_d, 0]))
    second_d = kk[order[kk] == 2]
    out.varint(orow[second_d], _zigzag(o1[second_d, 0]))
    for sel, plan in plans:
        if plan is not None:
            s = np.flatnonzero(keep[sel])
            plan.emit(out, s, orow[sel[s]])


def _encode_group(ts: Int64Array, v: Float64Array) -> list[bytes]:
    """encode_chunk() of every row of (r, n) arrays, n >= 3."""
    r, n = ts.shape
    out = _Rows(r)
    out.fixed(np.arange(r), np.frombuffer(bytes([_MAGIC_SINGLE]) + _uv(n), dtype=_U8))
    _encode_ts_rows(ts, out)
    _encode_values_rows(v, out)
    return out.build()


def decode_chunks(blobs: Sequence[bytes]) -> list[tuple[Int64Array, Float64Array]]:
    return [decode_chunk(b) for b in blobs]
