"""OTLP/HTTP metrics, protobuf and JSON, built with the opentelemetry-proto classes."""

from __future__ import annotations

import gzip
import json

import pytest
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

from aurora.errors import BadInput
from aurora.ingest.otlp import decode_otlp_metrics, sanitize_label_name, sanitize_metric_name
from aurora.model import SeriesBatch

NS = 1_700_000_000_000_000_000  # unix ns
MS = NS // 1_000_000
CUMULATIVE = m.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = m.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


def kv(key: str, value: str | int | bool | float) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def export(*metrics: m.Metric) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend([kv("service.name", "cart"), kv("service.namespace", "shop"),
                                   kv("service.instance.id", "cart-7f9"), kv("process.pid", 42)])
    rm.scope_metrics.add().metrics.extend(metrics)
    return req


def series(batch: SeriesBatch) -> dict[str, list[tuple[int, float]]]:
    out = {}
    for i, key in enumerate(batch.keys()):
        s = batch.series_slice(i)
        out[key] = list(zip(batch.ts_ms[s].tolist(), batch.values[s].tolist(), strict=True))
    return out


def all_kinds() -> ExportMetricsServiceRequest:
    gauge = m.Metric(name="memory.usage", unit="By", gauge=m.Gauge(data_points=[
        m.NumberDataPoint(time_unix_nano=NS + 1_000_000_000, as_int=2048, attributes=[kv("pool.name", "heap")]),
        m.NumberDataPoint(time_unix_nano=NS, as_int=1024, attributes=[kv("pool.name", "heap")]),
    ]))
    counter = m.Metric(name="http.server.requests", sum=m.Sum(
        aggregation_temporality=CUMULATIVE, is_monotonic=True,
        data_points=[m.NumberDataPoint(time_unix_nano=NS, as_double=17.0,
                                       attributes=[kv("http.method", "GET"), kv("ok", True)])]))
    updown = m.Metric(name="queue_depth", sum=m.Sum(
        aggregation_temporality=CUMULATIVE, is_monotonic=False,
        data_points=[m.NumberDataPoint(time_unix_nano=NS, as_int=-3)]))
    delta = m.Metric(name="jobs_done", sum=m.Sum(
        aggregation_temporality=DELTA, is_monotonic=True,
        data_points=[m.NumberDataPoint(time_unix_nano=NS, as_int=5)]))
    hist = m.Metric(name="rpc.duration", histogram=m.Histogram(
        aggregation_temporality=CUMULATIVE,
        data_points=[m.HistogramDataPoint(time_unix_nano=NS, count=10, sum=3.5, explicit_bounds=[0.1, 1.0],
                                          bucket_counts=[4, 5, 1])]))
    exp = m.Metric(name="size", exponential_histogram=m.ExponentialHistogram(
        aggregation_temporality=CUMULATIVE,
        data_points=[m.ExponentialHistogramDataPoint(time_unix_nano=NS, count=6, sum=60.0, scale=2)]))
    summary = m.Metric(name="gc_pause", summary=m.Summary(data_points=[m.SummaryDataPoint(
        time_unix_nano=NS, count=4, sum=0.8,
        quantile_values=[m.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=0.1),
                         m.SummaryDataPoint.ValueAtQuantile(quantile=1, value=0.5)])]))
    return export(gauge, counter, updown, delta, hist, exp, summary)


EXPECTED = {
    'memory_usage{instance="cart-7f9",namespace="shop",pool_name="heap",service="cart"}':
        [(MS, 1024.0), (MS + 1000, 2048.0)],
    'http_server_requests_total{http_method="GET",instance="cart-7f9",namespace="shop",ok="true",'
    'service="cart"}': [(MS, 17.0)],
    'queue_depth{instance="cart-7f9",namespace="shop",service="cart"}': [(MS, -3.0)],
    'jobs_done{instance="cart-7f9",namespace="shop",service="cart",temporality="delta"}': [(MS, 5.0)],
    'rpc_duration_bucket{instance="cart-7f9",le="0.1",namespace="shop",service="cart"}': [(MS, 4.0)],
    'rpc_duration_bucket{instance="cart-7f9",le="1.0",namespace="shop",service="cart"}': [(MS, 9.0)],
    'rpc_duration_bucket{instance="cart-7f9",le="+Inf",namespace="shop",service="cart"}': [(MS, 10.0)],
    'rpc_duration_sum{instance="cart-7f9",namespace="shop",service="cart"}': [(MS, 3.5)],
    'rpc_duration_count{instance="cart-7f9",namespace="shop",service="cart"}': [(MS, 10.0)],
    'size_sum{instance="cart-7f9",namespace="shop",service="cart"}': [(MS, 60.0)],
    'size_count{instance="cart-7f9",namespace="shop",service="cart"}': [(MS, 6.0)],
    'gc_pause{instance="cart-7f9",namespace="shop",quantile="0.5",service="cart"}': [(MS, 0.1)],
    'gc_pause{instance="cart-7f9",namespace="shop",quantile="1.0",service="cart"}': [(MS, 0.5)],
    'gc_pause_sum{instance="cart-7f9",namespace="shop",service="cart"}': [(MS, 0.8)],
    'gc_pause_count{instance="cart-7f9",namespace="shop",service="cart"}': [(MS, 4.0)],
}


def test_protobuf_request_maps_every_kind_to_prometheus_series() -> None:
    batch = decode_otlp_metrics(all_kinds().SerializeToString(), "application/x-protobuf")
    assert series(batch) == EXPECTED


def test_json_request_gives_the_same_series() -> None:
    body = MessageToJson(all_kinds()).encode()
    assert '"timeUnixNano": "' in body.decode()  # the OTLP JSON mapping: camelCase, int64 as strings
    assert series(decode_otlp_metrics(body, "application/json; charset=utf-8")) == EXPECTED


def test_json_with_hex_exemplar_ids_and_unknown_fields() -> None:
    doc = json.loads(MessageToJson(all_kinds()))
    point = doc["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][1]["sum"]["dataPoints"][0]
    point["exemplars"] = [{"timeUnixNano": str(NS), "asDouble": 1.0,
                           "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]
    doc["somethingNew"] = {"x": 1}
    assert series(decode_otlp_metrics(json.dumps(doc).encode(), "application/json")) == EXPECTED


def test_gzip_body() -> None:
    body = gzip.compress(all_kinds().SerializeToString())
    assert series(decode_otlp_metrics(body, "application/x-protobuf", "gzip")) == EXPECTED


def test_missing_timestamp_is_named() -> None:
    req = export(m.Metric(name="x", gauge=m.Gauge(data_points=[
        m.NumberDataPoint(time_unix_nano=NS, as_double=1), m.NumberDataPoint(as_double=2)])))
    with pytest.raises(BadInput, match="OTLP metric 'x' data point 1 has no timestamp"):
        decode_otlp_metrics(req.SerializeToString(), "application/x-protobuf")


def test_no_recorded_value_points_are_skipped() -> None:
    req = export(m.Metric(name="x", gauge=m.Gauge(data_points=[
        m.NumberDataPoint(time_unix_nano=NS, as_double=1),
        m.NumberDataPoint(time_unix_nano=NS + 10**9, flags=1)])))
    batch = decode_otlp_metrics(req.SerializeToString(), "application/x-protobuf")
    assert batch.n_samples == 1


def test_histogram_with_wrong_bucket_count_is_refused() -> None:
    req = export(m.Metric(name="h", histogram=m.Histogram(aggregation_temporality=CUMULATIVE, data_points=[
        m.HistogramDataPoint(time_unix_nano=NS, count=1, explicit_bounds=[1.0], bucket_counts=[1])])))
    with pytest.raises(BadInput, match="has 1 bucket counts for 1 bounds"):
        decode_otlp_metrics(req.SerializeToString(), "application/x-protobuf")


@pytest.mark.parametrize(("body", "ctype", "message"), [
    (b"\xff\xff\xff\xff", "application/x-protobuf", "not a valid ExportMetricsServiceRequest"),
    (b"{not json", "application/json", "not valid JSON"),
    (b'{"resourceMetrics": "nope"}', "application/json", "OTLP JSON mapping"),
    (b"[]", "application/json", "must be an object"),
    (b"", "text/plain", "unsupported Content-Type"),
])
def test_bad_bodies(body: bytes, ctype: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        decode_otlp_metrics(body, ctype)


def test_name_sanitising() -> None:
    assert sanitize_metric_name("http.server.duration") == "http_server_duration"
    assert sanitize_metric_name("2xx-count") == "_2xx_count"
    assert sanitize_label_name("k8s.pod.name") == "k8s_pod_name"
    assert sanitize_label_name("1st") == "key_1st"
    assert sanitize_label_name("__secret") == "key__secret"


def test_colliding_attribute_keys_are_joined() -> None:
    req = export(m.Metric(name="x", gauge=m.Gauge(data_points=[m.NumberDataPoint(
        time_unix_nano=NS, as_double=1, attributes=[kv("a.b", "1"), kv("a_b", "2")])])))
    batch = decode_otlp_metrics(req.SerializeToString(), "application/x-protobuf")
    assert batch.labels[0]["a_b"] == "1;2"
