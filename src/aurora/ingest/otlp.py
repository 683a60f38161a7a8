"""OTLP/HTTP metrics (``ExportMetricsServiceRequest``, protobuf or JSON) -> SeriesBatch in Prometheus naming.

Mapping, following the OpenTelemetry -> Prometheus conventions:

* Resource attributes ``service.name``, ``service.namespace``, ``service.instance.id`` and ``host.name``
  become the labels ``service``, ``namespace``, ``instance`` and ``host``. Other resource attributes
  are dropped (Prometheus moves them to ``target_info``; we keep label sets small on purpose).
* Data point attributes become labels; keys are sanitised to label names (``.`` and other invalid
  characters -> ``_``, a leading digit gets ``key_``, a leading ``_`` gets ``key``). Keys that collide
  after sanitising have their values joined with ``;`` (as the Prometheus translator does). A data
  point attribute wins over a resource label of the same name.
* Metric names are sanitised (invalid characters -> ``_``, leading digit -> ``_`` prefix). Unit
  suffixes are not appended.
* gauge -> gauge; monotonic cumulative sum -> ``<name>_total``; non-monotonic sum -> gauge (plain name).
* histogram -> ``<name>_bucket{le=...}`` (cumulative counts, ending with ``le="+Inf"``),
  ``<name>_sum`` (when the point has a sum) and ``<name>_count``.
* exponential histogram -> ``<name>_sum`` and ``<name>_count`` only: its buckets have no flat-series
  form that the rest of Aurora could use, and count/sum give rate and mean.
* summary -> ``<name>{quantile=...}``, ``<name>_sum``, ``<name>_count``.
* Delta temporality (sums and histograms): Aurora does not convert delta to cumulative (that needs
  per-stream state across requests). Delta points are stored as they come -- the increment per
  reporting interval -- under the name without ``_total`` (they are not counters) and with the label
  ``temporality="delta"``, so they never mix with a cumulative series and a query can tell them apart.
* Points flagged "no recorded value" are skipped. Exemplars and start times are ignored.

Points of the same series in one request are merged into one series, sorted by time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import cramjam
import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from prometheus_client.utils import floatToGoString

from aurora.errors import BadInput
from aurora.model import SeriesBatch

__all__ = ["decode_otlp_metrics", "sanitize_label_name", "sanitize_metric_name"]

RESOURCE_LABELS = {
    "service.name": "service",
    "service.namespace": "namespace",
    "service.instance.id": "instance",
    "host.name": "host",
}

_INVALID_METRIC = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_NO_RECORDED_VALUE = metrics_pb2.DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_DELTA = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


def sanitize_metric_name(name: str) -> str:
    out = _INVALID_METRIC.sub("_", name)
    if out and out[0].isdigit():
        out = "_" + out
    return out


def sanitize_label_name(key: str) -> str:
    out = _INVALID_LABEL.sub("_", key)
    if out and out[0].isdigit():
        out = "key_" + out
    elif out.startswith("_"):
        out = "key" + out  # names starting with "__" are reserved in Prometheus
    return out


def any_value_str(v: AnyValue) -> str:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return floatToGoString(v.double_value)
    if kind == "bytes_value":
        import base64

        return base64.b64encode(v.bytes_value).decode()
    if kind in ("array_value", "kvlist_value"):
        return json.dumps(json_format.MessageToDict(v), separators=(",", ":"), sort_keys=True)
    return ""


def _attr_labels(attrs: Iterable[KeyValue]) -> dict[str, str]:
    out: dict[str, str] = {}
    origin: dict[str, list[tuple[str, str]]] = {}
    for kv in attrs:
        name = sanitize_label_name(kv.key)
        if not name:
            continue
        value = any_value_str(kv.value)
        if name in origin:
            origin[name].append((kv.key, value))
            out[name] = ";".join(v for _, v in sorted(origin[name]))
        else:
            origin[name] = [(kv.key, value)]
            out[name] = value
    return out


class _Collector:
    """Groups points by series so repeated points of one series become one entry, sorted by time."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self.metrics: list[str] = []
        self.labels: list[dict[str, str]] = []
        self.ts: list[list[int]] = []
        self.values: list[list[float]] = []

    def add(self, metric: str, labels: dict[str, str], ts_ms: int, value: float) -> None:
        key = (metric, tuple(sorted(labels.items())))
        i = self.index.get(key)
        if i is None:
            i = self.index[key] = len(self.metrics)
            self.metrics.append(metric)
            self.labels.append(labels)
            self.ts.append([])
            self.values.append([])
        self.ts[i].append(ts_ms)
        self.values[i].append(value)

    def build(self) -> SeriesBatch:
        if not self.metrics:
            return SeriesBatch.empty()
        counts = np.fromiter((len(t) for t in self.ts), np.int64, len(self.ts))
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        ts = np.fromiter((t for part in self.ts for t in part), np.int64, int(offsets[-1]))
        vals = np.fromiter((v for part in self.values for v in part), np.float64, int(offsets[-1]))
        for i in np.flatnonzero(counts > 1):
            s = slice(int(offsets[i]), int(offsets[i + 1]))
            order = np.argsort(ts[s], kind="stable")
            ts[s] = ts[s][order]
            vals[s] = vals[s][order]
        return SeriesBatch(self.metrics, self.labels, offsets, ts, vals)


M = TypeVar("M", bound=Message)


def parse_otlp_body(body: bytes, content_type: str, req: M, what: str, root_key: str,
                    prepare: Callable[[dict[str, Any]], None], unsupported_status: int = 400) -> M:
    """Parse an OTLP/HTTP export body into ``req``: protobuf as it is, JSON through ``prepare`` (OTLP JSON
    differs from protobuf JSON, e.g. in how ids are written) and the protobuf JSON mapping. Bad input is a
    BadInput naming the ``what`` ("metrics", "traces") and the message type."""
    mime = (content_type or "").split(";")[0].strip().lower()
    name = type(req).__name__
    if mime in ("application/x-protobuf", "application/protobuf"):
        try:
            req.ParseFromString(body)
        except DecodeError as exc:
            raise BadInput(f"OTLP {what} body is not a valid {name} protobuf: {exc}") from exc
        return req
    if mime == "application/json":
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadInput(f"OTLP {what} body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise BadInput(f"OTLP {what} JSON body must be an object with {root_key}")
        prepare(data)
        try:
            json_format.ParseDict(data, req, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise BadInput(f"OTLP {what} JSON does not follow the OTLP JSON mapping: {exc}") from exc
        return req
    raise BadInput(f"unsupported Content-Type {content_type!r} for OTLP {what}; use application/x-protobuf "
                   "or application/json", status=unsupported_status)


def _parse(body: bytes, content_type: str) -> ExportMetricsServiceRequest:
    return parse_otlp_body(body, content_type, ExportMetricsServiceRequest(), "metrics", "resourceMetrics",
                           _drop_exemplars)


def _drop_exemplars(node: Any) -> None:
    # OTLP JSON writes trace/span ids as hex, not the base64 protobuf JSON expects; we ignore exemplars
    # anyway, so remove them before parsing rather than mis-decode them.
    if isinstance(node, dict):
        node.pop("exemplars", None)
        for v in node.values():
            if isinstance(v, (dict, list)):
                _drop_exemplars(v)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, (dict, list)):
                _drop_exemplars(v)


def decode_otlp_metrics(body: bytes, content_type: str, content_encoding: str | None = None) -> SeriesBatch:
    """Decode an OTLP/HTTP metrics export. Raises BadInput saying what is wrong."""
    enc = (content_encoding or "identity").strip().lower()
    if enc == "gzip":
        try:
            body = bytes(cramjam.gzip.decompress(body))
        except Exception as exc:
            raise BadInput(f"OTLP body is not valid gzip data: {exc}") from exc
    elif enc != "identity":
        raise BadInput(f"unsupported Content-Encoding {content_encoding!r} for OTLP; use gzip or none")
    req = _parse(body, content_type)
    out = _Collector()
    for rm in req.resource_metrics:
        res_labels: dict[str, str] = {}
        for kv in rm.resource.attributes:
            target = RESOURCE_LABELS.get(kv.key)
            if target is not None:
                res_labels[target] = any_value_str(kv.value)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                _metric(out, metric, res_labels)
    return out.build()


def _ts_ms(metric: str, i: int, time_unix_nano: int) -> int:
    if not time_unix_nano:
        raise BadInput(f"OTLP metric {metric!r} data point {i} has no timestamp (timeUnixNano)")
    return time_unix_nano // 1_000_000


def _metric(out: _Collector, metric: metrics_pb2.Metric, res_labels: dict[str, str]) -> None:
    kind = metric.WhichOneof("data")
    if not metric.name:
        raise BadInput("OTLP metric without a name")
    name = sanitize_metric_name(metric.name)
    if kind is None:
        return  # a metric with no data is allowed by OTLP and carries nothing to store

    def labels_of(attrs: Iterable[KeyValue], extra: dict[str, str] | None = None) -> dict[str, str]:
        lab = {**res_labels, **_attr_labels(attrs)}
        if extra:
            lab.update(extra)
        return {k: v for k, v in lab.items() if v != ""}

    if kind in ("gauge", "sum"):
        data = metric.gauge if kind == "gauge" else metric.sum
        target = name
        extra: dict[str, str] | None = None
        if kind == "sum":
            if metric.sum.aggregation_temporality == _DELTA:
                extra = {"temporality": "delta"}
            elif metric.sum.is_monotonic and not name.endswith("_total"):
                target = name + "_total"
        for i, p in enumerate(data.data_points):
            if p.flags & _NO_RECORDED_VALUE:
                continue
            ts = _ts_ms(metric.name, i, p.time_unix_nano)
            which = p.WhichOneof("value")
            if which is None:
                raise BadInput(f"OTLP metric {metric.name!r} data point {i} has no value (asDouble or asInt)")
            value = p.as_double if which == "as_double" else float(p.as_int)
            out.add(target, labels_of(p.attributes, extra), ts, value)
    elif kind == "histogram":
        extra = {"temporality": "delta"} if metric.histogram.aggregation_temporality == _DELTA else None
        for i, hp in enumerate(metric.histogram.data_points):
            if hp.flags & _NO_RECORDED_VALUE:
                continue
            ts = _ts_ms(metric.name, i, hp.time_unix_nano)
            base = labels_of(hp.attributes, extra)
            bounds = list(hp.explicit_bounds)
            counts = list(hp.bucket_counts)
            if counts:
                if len(counts) != len(bounds) + 1:
                    raise BadInput(f"OTLP histogram {metric.name!r} data point {i} has {len(counts)} bucket "
                                   f"counts for {len(bounds)} bounds; expected {len(bounds) + 1}")
                cum = 0
                for bound, c in zip([*bounds, float("inf")], counts, strict=True):
                    cum += c
                    out.add(name + "_bucket", {**base, "le": floatToGoString(bound)}, ts, float(cum))
            if hp.HasField("sum"):
                out.add(name + "_sum", dict(base), ts, hp.sum)
            out.add(name + "_count", dict(base), ts, float(hp.count))
    elif kind == "exponential_histogram":
        # Only count and sum: exponential buckets have no flat-series form the rest of Aurora uses.
        extra = {"temporality": "delta"} if metric.exponential_histogram.aggregation_temporality == _DELTA \
            else None
        for i, ep in enumerate(metric.exponential_histogram.data_points):
            if ep.flags & _NO_RECORDED_VALUE:
                continue
            ts = _ts_ms(metric.name, i, ep.time_unix_nano)
            base = labels_of(ep.attributes, extra)
            if ep.HasField("sum"):
                out.add(name + "_sum", dict(base), ts, ep.sum)
            out.add(name + "_count", dict(base), ts, float(ep.count))
    elif kind == "summary":
        for i, sp in enumerate(metric.summary.data_points):
            if sp.flags & _NO_RECORDED_VALUE:
                continue
            ts = _ts_ms(metric.name, i, sp.time_unix_nano)
            base = labels_of(sp.attributes)
            for q in sp.quantile_values:
                out.add(name, {**base, "quantile": floatToGoString(q.quantile)}, ts, q.value)
            out.add(name + "_sum", dict(base), ts, sp.sum)
            out.add(name + "_count", dict(base), ts, float(sp.count))
