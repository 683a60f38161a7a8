"""Chunk codec: bit-exact round trips, per-chunk scheme choice, size on realistic data, corruption."""

from __future__ import annotations

import numpy as np
import pytest

from aurora.store.codec import (
    decode_chunk,
    decode_chunks,
    decode_multi,
    encode_chunk,
    encode_chunks,
    encode_multi,
)

STALE_NAN = np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0]
SPECIAL_BITS = np.array(
    [
        0x7FF0000000000002,  # Prometheus stale marker
        0x7FF8000000000000,  # quiet NaN
        0xFFF8000000000001,  # negative NaN with payload
        0x7FF0000000000001,  # signalling NaN
        0x8000000000000000,  # -0.0
        0x0000000000000000,
        0x7FF0000000000000,  # +inf
        0xFFF0000000000000,  # -inf
        0x0000000000000001,  # smallest subnormal
        0x800FFFFFFFFFFFFF,  # largest negative subnormal
        0x7FEFFFFFFFFFFFFF,  # max float
    ],
    dtype=np.uint64,
)
T0 = 1_700_000_000_000


def _tag(blob: bytes) -> int:
    """Value-scheme tag of a single-series chunk (after magic, n varint and the ts section)."""
    from aurora.store import codec

    r, n = codec._open(blob, codec._MAGIC_SINGLE)
    codec._decode_ts(r, n)
    return r.buf[r.pos]


def _roundtrip(ts: np.ndarray, v: np.ndarray) -> bytes:
    blob = encode_chunk(ts, v)
    ts2, v2 = decode_chunk(blob)
    assert ts2.dtype == np.int64 and v2.dtype == np.float64
    assert np.array_equal(ts2, ts)
    assert np.array_equal(v2.view(np.uint64), np.asarray(v, dtype=np.float64).view(np.uint64))
    return blob


def _scrape_ts(rng: np.random.Generator, n: int, jitter: int = 5) -> np.ndarray:
    return T0 + np.arange(n, dtype=np.int64) * 15_000 + rng.integers(-jitter, jitter + 1, n)


@pytest.mark.parametrize("n", [1, 2, 3, 17, 240, 65_536])
@pytest.mark.parametrize("seed", range(3))
def test_random_bit_patterns_roundtrip(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    mask = rng.random(n) < 0.2
    bits[mask] = rng.choice(SPECIAL_BITS, n)[mask]
    ts = np.sort(rng.integers(-(2**62), 2**62, n))
    _roundtrip(ts, bits.view(np.float64))


@pytest.mark.parametrize("n", [1, 2, 240, 65_536])
def test_special_values_everywhere(n: int) -> None:
    rng = np.random.default_rng(n)
    v = rng.choice(SPECIAL_BITS, n).view(np.float64)
    _roundtrip(_scrape_ts(rng, n), v)
    # a decimal series with a few special values sprinkled in still round-trips exactly
    d = np.round(rng.normal(50, 5, n), 2)
    d[rng.integers(0, n, max(1, n // 50))] = rng.choice(SPECIAL_BITS).view(np.float64)
    _roundtrip(_scrape_ts(rng, n), d)


@pytest.mark.parametrize("k", range(0, 10))
@pytest.mark.parametrize("seed", range(3))
def test_random_decimals(k: int, seed: int) -> None:
    rng = np.random.default_rng(seed * 100 + k)
    n = 240
    v = np.round(rng.normal(0, 10 ** rng.integers(0, 8), n), k)
    blob = _roundtrip(_scrape_ts(rng, n), v)
    if k <= 4:
        assert len(blob) / n < 6


def test_decimal_with_stale_marker_and_negative_zero_uses_decimal_scheme() -> None:
    rng = np.random.default_rng(7)
    v = np.round(rng.uniform(0, 4, 240), 2)
    v[100] = STALE_NAN
    v[5] = -0.0
    blob = _roundtrip(_scrape_ts(rng, 240), v)
    assert _tag(blob) == 1  # decimal, with two exception slots
    assert len(blob) / 240 < 2.5


def test_counters_and_resets() -> None:
    rng = np.random.default_rng(3)
    n = 240
    c = np.cumsum(rng.poisson(40, n)).astype(np.float64)
    c[150:] -= c[150]  # counter reset
    _roundtrip(_scrape_ts(rng, n), c)
    cpu = np.round(np.cumsum(rng.uniform(0, 0.3, n)) + 123_456.78, 2)
    blob = _roundtrip(_scrape_ts(rng, n), cpu)
    assert len(blob) / n < 2


def test_constant_and_regular_cost_nearly_nothing() -> None:
    ts = T0 + np.arange(240, dtype=np.int64) * 15_000
    blob = _roundtrip(ts, np.ones(240))
    assert len(blob) < 32
    assert _tag(blob) == 0
    big = T0 + np.arange(65_536, dtype=np.int64) * 15_000
    assert len(_roundtrip(big, np.full(65_536, STALE_NAN))) < 32


def test_length_one_and_two_and_empty() -> None:
    _roundtrip(np.array([T0]), np.array([STALE_NAN]))
    _roundtrip(np.array([-5, -(2**63)]), np.array([-0.0, 1.5]))
    _roundtrip(np.array([2**63 - 1, -(2**63)]), np.array([1.0, np.inf]))
    ts, v = decode_chunk(encode_chunk(np.empty(0, np.int64), np.empty(0)))
    assert len(ts) == len(v) == 0


@pytest.mark.parametrize("seed", range(5))
def test_irregular_and_non_monotonic_timestamps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    ts = _scrape_ts(rng, n)
    ts[rng.integers(0, n, 10)] += rng.integers(-(10**9), 10**9, 10)  # gaps, duplicates, going back
    ts[50] = ts[49]
    _roundtrip(ts, rng.normal(size=n))
    _roundtrip(rng.integers(-(2**63), 2**63 - 1, n, endpoint=True), rng.normal(size=n))
    _roundtrip(np.cumsum(rng.exponential(1000, n)).astype(np.int64), np.zeros(n))


def test_missed_scrape_stays_cheap() -> None:
    rng = np.random.default_rng(11)
    ts = np.delete(_scrape_ts(rng, 241), 120)  # one scrape missed -> one big delta
    blob = _roundtrip(ts, np.ones(240))
    assert len(blob) / 240 < 1.0


def test_format_chosen_per_chunk() -> None:
    rng = np.random.default_rng(5)
    ts = _scrape_ts(rng, 240)
    tags = {
        _tag(encode_chunk(ts, np.full(240, 1.0))),
        _tag(encode_chunk(ts, np.round(rng.uniform(0, 4, 240), 2))),
        _tag(encode_chunk(ts, rng.lognormal(-3, 0.5, 240))),
    }
    assert tags >= {0, 1} and len(tags) == 3


def test_realistic_gauge_under_two_bytes_per_sample() -> None:
    rng = np.random.default_rng(9)
    n = 240
    pages = 2_000_000 + np.cumsum(rng.integers(-40, 41, n))
    mem = pages.astype(np.float64) * 4096  # memory bytes in 4 KiB pages
    blob = _roundtrip(_scrape_ts(rng, n), mem)
    assert len(blob) / n < 2.0
    load = np.round(np.clip(1.5 + np.cumsum(rng.normal(0, 0.05, n)), 0, None), 2)
    assert len(_roundtrip(_scrape_ts(rng, n), load)) / n < 2.0


def test_multi_column_roundtrip() -> None:
    rng = np.random.default_rng(2)
    n = 120
    ts = T0 + np.arange(n, dtype=np.int64) * 300_000
    raw = rng.lognormal(0, 1, (n, 20))
    cols = {
        "min": raw.min(axis=1),
        "max": raw.max(axis=1),
        "sum": raw.sum(axis=1),
        "count": np.full(n, 20.0),
        "last": np.where(rng.random(n) < 0.1, STALE_NAN, raw[:, -1]),
    }
    blob = encode_multi(ts, cols)
    ts2, cols2 = decode_multi(blob)
    assert np.array_equal(ts2, ts)
    assert list(cols2) == list(cols)
    for name, v in cols.items():
        assert np.array_equal(cols2[name].view(np.uint64), v.view(np.uint64))
    ts3, cols3 = decode_multi(encode_multi(np.empty(0, np.int64), {"a": np.empty(0)}))
    assert len(ts3) == 0 and len(cols3["a"]) == 0
    with pytest.raises(ValueError):
        decode_chunk(blob)  # a multi chunk is not a single chunk
    with pytest.raises(ValueError):
        encode_multi(ts, {"x": np.ones(n - 1)})


def test_batch_helpers() -> None:
    rng = np.random.default_rng(4)
    series = [(_scrape_ts(rng, 240), np.round(rng.normal(size=240), i % 4)) for i in range(10)]
    blobs = encode_chunks(series)
    for (ts, v), (ts2, v2) in zip(series, decode_chunks(blobs), strict=True):
        assert np.array_equal(ts, ts2) and np.array_equal(v.view(np.uint64), v2.view(np.uint64))


def test_length_mismatch_rejected() -> None:
    with pytest.raises(ValueError):
        encode_chunk(np.arange(3), np.ones(2))


def _samples_for_corruption() -> list[bytes]:
    rng = np.random.default_rng(8)
    ts = _scrape_ts(rng, 240)
    return [
        encode_chunk(ts, np.ones(240)),
        encode_chunk(ts, np.round(rng.uniform(0, 4, 240), 2)),
        encode_chunk(ts, rng.lognormal(-3, 0.5, 240)),
        encode_chunk(np.sort(rng.integers(0, 2**40, 240)), np.cumsum(rng.poisson(5, 240)) * 1.0),
    ]


def test_truncated_data_raises_value_error() -> None:
    for blob in _samples_for_corruption():
        for cut in range(len(blob)):
            with pytest.raises(ValueError):
                decode_chunk(blob[:cut])


def test_corrupted_data_raises_value_error() -> None:
    rng = np.random.default_rng(1)
    for blob in _samples_for_corruption():
        for _ in range(300):
            bad = bytearray(blob)
            pos = int(rng.integers(0, len(bad)))
            bad[pos] ^= int(rng.integers(1, 256))
            with pytest.raises(ValueError):
                decode_chunk(bytes(bad))
    with pytest.raises(ValueError):
        decode_chunk(b"")
    with pytest.raises(ValueError):
        decode_chunk(b"\x00" * 100)


def test_hostile_body_with_valid_checksum_raises_value_error() -> None:
    """Garbage that passes the CRC (e.g. a buggy writer) must still fail cleanly, never crash."""
    import zlib

    from aurora.store import codec

    rng = np.random.default_rng(12)
    for blob in _samples_for_corruption():
        body = blob[:-4]
        for _ in range(300):
            bad = bytearray(body)
            for _ in range(int(rng.integers(1, 4))):
                bad[int(rng.integers(1, len(bad)))] = int(rng.integers(0, 256))
            sealed = bytes(bad) + zlib.crc32(bytes(bad)).to_bytes(4, "little")
            try:
                ts, v = decode_chunk(sealed)
            except ValueError:
                continue
            assert len(ts) == len(v) <= codec.MAX_SAMPLES  # decoded something well-formed


# ----------------------------------------------------------------------------- batch encoder


def _mixed_series(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """One chunk of a randomly drawn kind: every value scheme, timestamp shape and special float."""
    kind = int(rng.integers(0, 14))
    ts = _scrape_ts(rng, n, int(rng.integers(0, 8)))
    if kind == 0:
        v = np.full(n, rng.choice(SPECIAL_BITS).view(np.float64))
    elif kind == 1:
        v = np.round(rng.normal(50, 5, n), int(rng.integers(0, 5)))
        v[rng.integers(0, n, max(1, n // 40))] = rng.choice(SPECIAL_BITS, max(1, n // 40)).view(np.float64)
    elif kind == 2:
        v = np.cumsum(rng.poisson(float(rng.choice([0.01, 3, 400])), n)).astype(np.float64)
        v[n // 2 :] -= v[n // 2]  # counter reset
    elif kind == 3:
        v = 4096.0 * np.round(2e6 + np.cumsum(rng.normal(0, 40, n)))  # common factor in the deltas
    elif kind == 4:
        v = rng.lognormal(-3, 0.5, n)
    elif kind == 5:
        bits = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
        mask = rng.random(n) < 0.3
        bits[mask] = rng.choice(SPECIAL_BITS, n)[mask]
        v = bits.view(np.float64)
    elif kind == 6:
        v = rng.choice(SPECIAL_BITS, n).view(np.float64)
    elif kind == 7:
        v = np.round(rng.uniform(100, 110, n), 1)
        v[rng.integers(0, n, 3)] = -1e6  # far outliers below the bulk: centred, zigzagged blocks
    elif kind == 8:
        v = np.round(rng.normal(0, 10 ** rng.integers(0, 12), n), int(rng.integers(0, 16)))
    elif kind == 9:
        v = np.round(rng.uniform(0, 4, n), 2)
        v[0] = STALE_NAN  # exception before any good sample
        v[-1] = -0.0
    elif kind == 10:
        v = rng.integers(-(2**62), 2**62, n).astype(np.float64)
    else:
        v = np.round(np.cumsum(rng.uniform(0, 0.3, n)) + 123_456.78, 2)
    if kind in (11, 12):
        ts = ts.copy()
        ts[rng.integers(0, n, 3)] += rng.integers(-(10**9), 10**9, 3)  # gaps, going back
        if n > 4:
            ts[n // 2] = ts[n // 2 - 1]  # duplicate
            ts = np.delete(np.append(ts, ts[-1] + 15_000), n // 3)  # missed scrape
    elif kind == 13:
        ts = np.sort(rng.integers(-(2**63), 2**63 - 1, n, endpoint=True))  # spans beyond int64
    if rng.random() < 0.1:
        ts = np.cumsum(rng.exponential(1000, n)).astype(np.int64)  # irregular
    return ts, np.asarray(v, dtype=np.float64)


def _check_batch(series: list[tuple[np.ndarray, np.ndarray]]) -> list[bytes]:
    blobs = encode_chunks(series)
    assert len(blobs) == len(series)
    for (ts, v), blob in zip(series, blobs, strict=True):
        assert blob == encode_chunk(ts, v)
        ts2, v2 = decode_chunk(blob)
        assert np.array_equal(ts2, ts)
        assert np.array_equal(v2.view(np.uint64), v.view(np.uint64))
    return blobs


@pytest.mark.parametrize("seed", range(4))
def test_batch_identical_to_single_on_random_mix(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    lengths = [240] * 60 + [1, 2, 2, 3, 3, 3, 3, 3, 17, 17, 17, 17, 17, 65, 65, 65, 65, 258, 258, 258, 258, 7]
    series = [_mixed_series(rng, int(n)) for n in rng.permutation(lengths)]
    _check_batch(series)


@pytest.mark.parametrize("n", [3, 4, 15, 16, 17, 18, 63, 64, 65, 129, 257, 258, 300])
def test_batch_every_length_through_the_vectorised_path(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from aurora.store import codec

    monkeypatch.setattr(codec, "_BATCH_MIN_ROWS", 1)
    monkeypatch.setattr(codec, "_BATCH_MAX_ROWS", 7)  # several blocks per length group
    rng = np.random.default_rng(n)
    _check_batch([_mixed_series(rng, n) for _ in range(40)])


def test_batch_lengths_one_two_and_empty_batch() -> None:
    assert encode_chunks([]) == []
    series = [
        (np.array([T0]), np.array([STALE_NAN])),
        (np.array([-5, -(2**63)]), np.array([-0.0, 1.5])),
        (np.array([2**63 - 1, -(2**63)]), np.array([1.0, np.inf])),
        (np.empty(0, np.int64), np.empty(0)),
    ] * 5
    _check_batch(series)
    with pytest.raises(ValueError):
        encode_chunks([(np.arange(3), np.ones(2))])


def test_batch_special_floats_bit_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    from aurora.store import codec

    monkeypatch.setattr(codec, "_BATCH_MIN_ROWS", 1)
    rng = np.random.default_rng(21)
    series = []
    for n in (3, 240):
        ts = _scrape_ts(rng, n)
        series += [(ts, np.full(n, b).view(np.float64)) for b in SPECIAL_BITS]
        for _ in range(10):
            series.append((ts, rng.choice(SPECIAL_BITS, n).view(np.float64)))
            d = np.round(rng.normal(50, 5, n), 2)
            d[rng.integers(0, n, 2)] = rng.choice(SPECIAL_BITS, 2).view(np.float64)
            series.append((ts, d))
    _check_batch(series)


def test_xor_zstd_chunks_still_decode() -> None:
    """The encoder no longer writes scheme 2 (XOR + shuffle + zstd), but chunks holding it stay readable."""
    import zlib

    import cramjam

    from aurora.store import codec

    rng = np.random.default_rng(13)
    ts, v = _scrape_ts(rng, 50), rng.lognormal(0, 1, 50)
    bits = v.view(np.uint64)
    x = bits.copy()
    x[1:] ^= bits[:-1]
    z = bytes(cramjam.zstd.compress(x.astype("<u8").view(np.uint8).reshape(50, 8).T.tobytes(), level=3))
    body = bytes([codec._MAGIC_SINGLE]) + codec._uv(50) + codec._encode_ts(ts) + bytes([2]) + codec._uv(len(z)) + z
    ts2, v2 = decode_chunk(body + zlib.crc32(body).to_bytes(4, "little"))
    assert np.array_equal(ts2, ts) and np.array_equal(v2.view(np.uint64), bits)


def test_batch_blocks_of_one_scheme_only() -> None:
    rng = np.random.default_rng(31)
    ts = _scrape_ts(rng, 240)
    _check_batch([(ts, np.full(240, float(i))) for i in range(8)])  # all constant
    _check_batch([(ts, rng.integers(0, 2**64 - 1, 240, dtype=np.uint64).view(np.float64)) for _ in range(8)])
