"""Chunk codec: samples of one series <-> compact, bit-exact bytes.

Layout of a chunk (all integers little-endian, ``uv`` = unsigned LEB128 varint, ``sv`` = zigzag varint)::

    magic(1) uv(n) [ts-section value-section...] crc32(4)

The timestamp section and every value section start with a 1-byte tag, so each chunk (and each column
of a multi-column chunk) uses whichever scheme came out smallest:

* timestamps: delta or delta-of-delta, then a patched frame-of-reference bit-packed integer block;
* values: constant, scaled decimal integers (raw / delta / delta-of-delta, with a few exception slots
  for NaN/stale markers/-0.0), XOR + byte-plane shuffle + zstd, integer delta of the IEEE bits, or raw.

Everything is vectorised NumPy; the only Python loops are over a handful of candidate schemes.
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
    # XOR with the previous value: equal high bits (sign, exponent, leading mantissa) become zero
    # bytes, which the byte-plane shuffle lines up for zstd.
    x = bits.copy()
    x[1:] ^= bits[:-1]
    planes = x.astype("<u8").view(_U8).reshape(n, 8).T.tobytes()
    z = bytes(cramjam.zstd.compress(planes, level=3))
    cands.append(bytes([_V_XOR_ZSTD]) + _uv(len(z)) + z)
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
    """Encode many chunks (store flush). A plain loop: per-chunk scheme choice dominates the cost."""
    return [encode_chunk(ts, v) for ts, v in series]


def decode_chunks(blobs: Sequence[bytes]) -> list[tuple[Int64Array, Float64Array]]:
    return [decode_chunk(b) for b in blobs]
