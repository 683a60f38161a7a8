"""OTLP/HTTP traces, protobuf and JSON (the OTLP JSON mapping: hex ids, camelCase keys), decoded into span
columns; bad requests are refused whole with a message that says which span is wrong."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import numpy as np
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

from aurora.errors import BadInput
from aurora.ingest.otlp_traces import KIND_CLIENT, KIND_SERVER, decode_otlp_traces, span_keys
from aurora.topology import ServiceGraph

NS = 1_700_000_000_000_000_000
PB = "application/x-protobuf"
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
ROOT, CALL, CHILD = (bytes.fromhex(h) for h in ("eee19b7ec3c1b174", "eee19b7ec3c1b173", "0102030405060708"))


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span(span_id: bytes, parent: bytes = b"", *, kind: int = KIND_SERVER, start: int = NS, dur_ns: int = 20_000_000,
         error: bool = False, attrs: dict[str, str] | None = None, trace: bytes = TRACE) -> trace_pb2.Span:
    s = trace_pb2.Span(trace_id=trace, span_id=span_id, parent_span_id=parent, name="op",
                       kind=trace_pb2.Span.SpanKind.ValueType(kind),
                       start_time_unix_nano=start, end_time_unix_nano=start + dur_ns)
    s.attributes.extend(kv(k, v) for k, v in (attrs or {}).items())
    if error:
        s.status.code = trace_pb2.Status.StatusCode.STATUS_CODE_ERROR
    return s


def export(*groups: tuple[str | None, list[trace_pb2.Span]]) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for service, sps in groups:
        rs = req.resource_spans.add()
        if service is not None:
            rs.resource.attributes.extend([kv("service.name", service), kv("host.name", "h1")])
        rs.scope_spans.add().spans.extend(sps)
    return req


def web_calls_cart() -> ExportTraceServiceRequest:
    return export(("web", [span(ROOT, dur_ns=50_000_000),
                           span(CALL, ROOT, kind=KIND_CLIENT, attrs={"peer.service": "cart"})]),
                  ("cart", [span(CHILD, CALL, dur_ns=10_000_000, error=True)]))


def test_protobuf_spans_become_columns() -> None:
    b = decode_otlp_traces(web_calls_cart().SerializeToString(), PB)
    assert b.n == 3 and b.services == ["web", "cart"]
    assert b.service.tolist() == [0, 0, 1]
    assert b.kind.tolist() == [KIND_SERVER, KIND_CLIENT, KIND_SERVER]
    assert b.error.tolist() == [False, False, True]
    assert b.end_ms.tolist() == [NS // 10**6 + 50, NS // 10**6 + 20, NS // 10**6 + 10]
    assert b.duration_s.tolist() == pytest.approx([0.05, 0.02, 0.01])
    assert b.parent[0] == 0 and b.parent[1] == b.key[0] and b.parent[2] == b.key[1]
    assert len(set(b.key.tolist())) == 3
    assert b.peer_names == ["cart"] and b.peer.tolist() == [-1, 0, -1] and b.peer_exact.tolist() == [False, True, False]


def test_keys_depend_on_trace_and_span() -> None:
    other = bytes(15) + b"\x01"
    k = span_keys(TRACE + TRACE + other, ROOT + CALL + ROOT)
    assert len(set(k.tolist())) == 3 and (k != 0).all()
    assert span_keys(TRACE, ROOT)[0] == k[0]  # deterministic


def test_graph_from_decoded_protobuf() -> None:
    g = ServiceGraph()
    g.add_spans(decode_otlp_traces(web_calls_cart().SerializeToString(), PB))
    (e,) = g.edges()
    assert (e["from"], e["to"]) == ("web", "cart")
    assert e["stats"]["error_ratio"] == 1.0 and e["stats"]["measured_by"] == "server_spans"


def otlp_json(req: ExportTraceServiceRequest) -> dict:
    """The OTLP JSON encoding of ``req``: protobuf JSON with ids in hex (as the OTLP spec writes them)."""
    d = MessageToDict(req)
    for rs in d["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in sp:
                        sp[k] = base64.b64decode(sp[k]).hex()
    return d


def test_json_mapping_matches_protobuf() -> None:
    req = web_calls_cart()
    body = otlp_json(req)
    assert body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == TRACE.hex()
    a = decode_otlp_traces(req.SerializeToString(), PB)
    b = decode_otlp_traces(json.dumps(body).encode(), "application/json; charset=utf-8")
    for col in ("service", "key", "parent", "kind", "error", "end_ms", "duration_s", "peer", "peer_exact"):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col
    assert a.services == b.services


def test_hand_written_json_with_numeric_enums_and_string_times() -> None:
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeSpans": [{"scope": {"name": "x"}, "spans": [
            {"traceId": TRACE.hex().upper(), "spanId": CHILD.hex(), "parentSpanId": "", "name": "GET",
             "kind": 3, "startTimeUnixNano": str(NS), "endTimeUnixNano": str(NS + 5_000_000),
             "attributes": [{"key": "server.address", "value": {"stringValue": "payment:443"}}],
             "status": {"code": "STATUS_CODE_ERROR"},
             "links": [{"traceId": TRACE.hex(), "spanId": ROOT.hex()}]}]}]}]}
    b = decode_otlp_traces(json.dumps(body).encode(), "application/json")
    assert b.services == ["checkout"] and b.kind.tolist() == [KIND_CLIENT] and b.error.tolist() == [True]
    assert b.parent.tolist() == [0] and b.duration_s.tolist() == pytest.approx([0.005])
    assert b.peer_names == ["payment:443"] and b.peer_exact.tolist() == [False]


def test_spans_without_service_name_are_kept_unattributed() -> None:
    b = decode_otlp_traces(export((None, [span(ROOT)])).SerializeToString(), PB)
    assert b.n == 1 and b.services == [] and b.service.tolist() == [-1]


def test_empty_request() -> None:
    assert decode_otlp_traces(b"", PB).n == 0
    assert decode_otlp_traces(b"{}", "application/json").n == 0


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: setattr(s, "trace_id", b"\x01" * 8), "traceId must be 16 bytes"),
    (lambda s: setattr(s, "trace_id", bytes(16)), "traceId must be 16 bytes and not all zero"),
    (lambda s: setattr(s, "span_id", b""), "spanId must be 8 bytes"),
    (lambda s: setattr(s, "parent_span_id", b"\x01\x02"), "parentSpanId must be empty or 8 bytes"),
    (lambda s: setattr(s, "end_time_unix_nano", 0), "endTimeUnixNano is missing"),
    (lambda s: setattr(s, "end_time_unix_nano", s.start_time_unix_nano - 1), "is before startTimeUnixNano"),
])
def test_invalid_spans_refuse_the_request(mutate: Callable[[trace_pb2.Span], None], message: str) -> None:
    req = web_calls_cart()
    mutate(req.resource_spans[1].scope_spans[0].spans[0])
    with pytest.raises(BadInput, match=message) as info:
        decode_otlp_traces(req.SerializeToString(), PB)
    assert "resourceSpans[1].scopeSpans[0].spans[0] (service 'cart')" in info.value.message


def test_bad_bodies() -> None:
    with pytest.raises(BadInput, match="not a valid ExportTraceServiceRequest"):
        decode_otlp_traces(b"\xff\xff\xff\xff", PB)
    with pytest.raises(BadInput, match="not valid JSON"):
        decode_otlp_traces(b"{nope", "application/json")
    with pytest.raises(BadInput, match="must be an object"):
        decode_otlp_traces(b"[]", "application/json")
    with pytest.raises(BadInput, match="does not follow the OTLP JSON mapping"):
        decode_otlp_traces(b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
                           "application/json")
    bad_hex = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": CHILD.hex()}]}]}]}
    with pytest.raises(BadInput, match=r"resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.traceId .* hex"):
        decode_otlp_traces(json.dumps(bad_hex).encode(), "application/json")
    with pytest.raises(BadInput, match="unsupported Content-Type") as info:
        decode_otlp_traces(b"", "text/plain")
    assert info.value.status == 415


def test_future_spans_are_refused() -> None:
    body = web_calls_cart().SerializeToString()
    with pytest.raises(BadInput, match="future-timestamp limit"):
        decode_otlp_traces(body, PB, max_end_ms=NS // 10**6)
    assert decode_otlp_traces(body, PB, max_end_ms=NS // 10**6 + 60_000).n == 3
