"""remote_write decoding from real protocol bytes: generated classes + raw snappy, and encode_remote_write."""

from __future__ import annotations

import math
import random
from typing import Any

import cramjam
import numpy as np
import pytest

from aurora.errors import BadInput, TooLarge
from aurora.ingest import remote_write as rw
from aurora.ingest.remote_write import clear_label_cache, decode_remote_write, encode_remote_write
from aurora.model import BatchBuilder, SeriesBatch
from aurora.proto import remote_pb2 as _remote_pb2
from aurora.proto import types_pb2 as _types_pb2

remote_pb2: Any = _remote_pb2  # generated code has no stubs
types_pb2: Any = _types_pb2
T0 = 1_700_000_000_000


def snappy(msg: Any) -> bytes:
    return bytes(cramjam.snappy.compress_raw(msg.SerializeToString()))


def request(series: list[tuple[list[tuple[str, str]], list[tuple[float, int]]]]) -> Any:
    req = remote_pb2.WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for k, v in labels:
            ts.labels.add(name=k, value=v)
        for value, t in samples:
            ts.samples.add(value=value, timestamp=t)
    return req


def assert_same(a: SeriesBatch, b: SeriesBatch) -> None:
    assert a.metrics == b.metrics
    assert a.labels == b.labels
    assert a.offsets.tolist() == b.offsets.tolist()
    assert a.ts_ms.tolist() == b.ts_ms.tolist()
    np.testing.assert_array_equal(a.values, b.values)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_label_cache()


def test_decodes_a_write_request_built_with_the_generated_classes() -> None:
    req = request([
        ([("__name__", "http_requests_total"), ("job", "api"), ("method", "GET")],
         [(1.0, T0), (0.0, T0 + 15_000), (7.5, T0 + 30_000)]),
        ([("__name__", "up"), ("instance", "10.0.0.1:9100"), ("job", "node")], [(1.0, T0)]),
        ([("__name__", "temp"), ("zone", "")], [(float("nan"), T0), (float("inf"), T0 + 1), (-2.5, T0 + 2)]),
    ])
    batch = decode_remote_write(snappy(req), "snappy")
    assert batch.metrics == ["http_requests_total", "up", "temp"]
    assert batch.labels == [{"job": "api", "method": "GET"}, {"instance": "10.0.0.1:9100", "job": "node"}, {}]
    assert batch.offsets.tolist() == [0, 3, 4, 7]
    assert batch.ts_ms.tolist() == [T0, T0 + 15_000, T0 + 30_000, T0, T0, T0 + 1, T0 + 2]
    vals = batch.values.tolist()
    assert vals[:5] == [1.0, 0.0, 7.5, 1.0, vals[4]] and math.isnan(vals[4])
    assert vals[5:] == [math.inf, -2.5]
    assert batch.ts_ms.dtype == np.int64 and batch.values.dtype == np.float64


def test_round_trip_through_encode_remote_write() -> None:
    bb = BatchBuilder()
    for i in range(300):
        n = 1 + i % 4
        bb.add("cpu_seconds_total", {"cpu": str(i % 8), "host": f"h{i}"}, [T0 + 1000 * j for j in range(n)],
               [0.0 if (i + j) % 3 == 0 else i * 0.5 + j for j in range(n)])
    batch = bb.build()
    body = encode_remote_write(batch)
    # What a client sends: raw snappy of a WriteRequest, labels sorted, __name__ among them.
    req = remote_pb2.WriteRequest.FromString(bytes(cramjam.snappy.decompress_raw(body)))
    assert [lb.name for lb in req.timeseries[0].labels] == ["__name__", "cpu", "host"]
    assert_same(decode_remote_write(body, "snappy"), batch)
    assert_same(decode_remote_write(body, "snappy"), batch)  # second time from the label cache


def test_fast_and_plain_decoders_agree_on_random_requests() -> None:
    rnd = random.Random(7)
    for _ in range(40):
        series = []
        for i in range(rnd.randint(0, 30)):
            labels = [("__name__", f"m{rnd.randint(0, 3)}"), ("i", str(i))]
            labels += [(f"l{k}", "x" * rnd.choice([0, 1, 5, 200])) for k in range(rnd.randint(0, 4))]
            samples = [(rnd.choice([0.0, 1.0, -1e300, rnd.random()]), rnd.choice([0, 1, T0 + k, -5, 2**62]))
                       for k in range(rnd.randint(0, 5))]
            series.append((labels, samples))
        raw = request(series).SerializeToString()
        clear_label_cache()
        fast = rw._decode_fast(raw)
        assert_same(fast, rw._decode_slow(raw))


def test_unusual_field_order_falls_back_and_stays_correct() -> None:
    # Samples before labels and a Sample with timestamp before value: valid protobuf, not the usual layout.
    sample = b"\x10" + b"\x01" + b"\x09" + np.float64(2.5).tobytes()
    label = types_pb2.Label(name="__name__", value="odd").SerializeToString()
    series = b"\x12" + bytes([len(sample)]) + sample + b"\x0a" + bytes([len(label)]) + label
    raw = b"\x0a" + bytes([len(series)]) + series
    batch = decode_remote_write(bytes(cramjam.snappy.compress_raw(raw)))
    assert batch.metrics == ["odd"] and batch.ts_ms.tolist() == [1] and batch.values.tolist() == [2.5]


def test_exemplars_are_ignored_and_native_histograms_become_count_and_sum() -> None:
    req = request([([("__name__", "lat_seconds_bucket"), ("le", "0.5")], [(3.0, T0)])])
    req.timeseries[0].exemplars.add(value=0.3, timestamp=T0).labels.add(name="trace_id", value="abc")
    ts = req.timeseries.add()
    ts.labels.add(name="__name__", value="rpc_seconds")
    ts.histograms.add(count_int=10, sum=4.5, schema=3, timestamp=T0)
    ts.histograms.add(count_float=12.0, sum=5.0, schema=3, timestamp=T0 + 1000)
    batch = decode_remote_write(snappy(req))
    assert batch.metrics == ["lat_seconds_bucket", "rpc_seconds_count", "rpc_seconds_sum"]
    assert batch.values.tolist() == [3.0, 10.0, 12.0, 4.5, 5.0]
    assert batch.offsets.tolist() == [0, 1, 3, 5]


def test_repeated_decode_gives_the_same_labels_from_the_cache() -> None:
    # Batch labels are read-only downstream, so the cache hands out its dicts without copying them.
    body = snappy(request([([("__name__", "x"), ("a", "1")], [(1.0, T0)])]))
    first = decode_remote_write(body)
    second = decode_remote_write(body)
    assert first.labels == second.labels == [{"a": "1"}] and first.metrics == second.metrics == ["x"]


def test_empty_request_gives_an_empty_batch() -> None:
    assert decode_remote_write(snappy(remote_pb2.WriteRequest())).n_series == 0
    assert decode_remote_write(b"\x00").n_series == 0  # snappy of zero bytes


@pytest.mark.parametrize(("body", "message"), [
    (b"definitely not snappy \xff\xff\xff", "not valid snappy"),
    (bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\xff\x0f garbage")), "not a valid WriteRequest"),
    (bytes(cramjam.snappy.compress_raw(b"\x0a\x05\x0a\x03\x0a\x01")), "not a valid WriteRequest"),
])
def test_bad_bytes_raise_bad_input(body: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        decode_remote_write(body, "snappy")


def test_series_without_metric_name_is_refused() -> None:
    body = snappy(request([([("job", "api")], [(1.0, T0)])]))
    with pytest.raises(BadInput, match=r"series 0 has no __name__ label \(job='api'\)"):
        decode_remote_write(body)


def test_repeated_label_name_is_refused() -> None:
    body = snappy(request([([("__name__", "ok"), ("a", "1")], [(1.0, T0)]),
                           ([("__name__", "x"), ("a", "1"), ("a", "2")], [(1.0, T0)])]))
    with pytest.raises(BadInput, match="series 1 has label 'a' more than once"):
        decode_remote_write(body)


def test_invalid_utf8_label_is_refused() -> None:
    label = b"\x0a\x08__name__\x12\x02\xff\xfe"
    series = b"\x0a" + bytes([len(label)]) + label
    raw = b"\x0a" + bytes([len(series)]) + series
    with pytest.raises(BadInput):
        decode_remote_write(bytes(cramjam.snappy.compress_raw(raw)))


def test_encodings_and_size_limit() -> None:
    raw = request([([("__name__", "x")], [(1.0, T0)])]).SerializeToString()
    assert decode_remote_write(bytes(cramjam.zstd.compress(raw)), "zstd").metrics == ["x"]
    assert decode_remote_write(raw, "identity").metrics == ["x"]
    with pytest.raises(BadInput, match="unsupported Content-Encoding 'br'"):
        decode_remote_write(raw, "br")
    with pytest.raises(TooLarge, match="decompresses to"):
        decode_remote_write(bytes(cramjam.snappy.compress_raw(raw)), "snappy", max_decoded_bytes=4)
