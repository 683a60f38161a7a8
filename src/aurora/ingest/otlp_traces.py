"""OTLP/HTTP traces (``ExportTraceServiceRequest``, protobuf or JSON) -> a columnar ``SpanBatch``.

Aurora does not store spans: it reads them for the service topology (who calls whom, how often, how
slowly, how often it fails). So the decoder keeps, per span, only what the topology needs, as arrays:
the service (resource attribute ``service.name``), a 64-bit key for (trace id, span id) and one for
(trace id, parent span id), kind, whether the status is ERROR, end time (event time) and duration, and
for CLIENT/PRODUCER spans the peer they name (``peer.service``, else ``server.address`` /
``net.peer.name``).

The keys are a 64-bit mix of the ids rather than the ids themselves: they are what a bounded cache of
recent spans needs (an int per span, no bytes objects), and a collision between two live spans is about
as likely as 2^-64 per pair.

The whole request is validated before anything is returned (ids of the right length, end times present,
not before start, not far in the future); a bad request raises ``BadInput`` saying which span is wrong.

JSON follows the OTLP JSON mapping: camelCase keys, ``traceId`` / ``spanId`` / ``parentSpanId`` as hex
(not base64 as protobuf JSON would have them), enums as names or numbers, 64-bit integers as strings or
numbers.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from aurora.errors import BadInput
from aurora.ingest.otlp import any_value_str, parse_otlp_body

__all__ = ["KIND_CLIENT", "KIND_PRODUCER", "KIND_SERVER", "SpanBatch", "decode_otlp_traces", "span_keys"]

KIND_SERVER = trace_pb2.Span.SpanKind.SPAN_KIND_SERVER
KIND_CLIENT = trace_pb2.Span.SpanKind.SPAN_KIND_CLIENT
KIND_PRODUCER = trace_pb2.Span.SpanKind.SPAN_KIND_PRODUCER
_STATUS_ERROR = trace_pb2.Status.StatusCode.STATUS_CODE_ERROR
_OUTGOING = (KIND_CLIENT, KIND_PRODUCER)
# Attributes of an outgoing span that name the peer: exact service names first, then addresses (which
# only count when they name a service the topology knows).
PEER_SERVICE_KEYS = ("peer.service",)
PEER_ADDRESS_KEYS = ("server.address", "net.peer.name")
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_JSON_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


@dataclass(slots=True)
class SpanBatch:
    """Spans of one request, column by column. ``service[i]`` indexes ``services`` (-1: the resource had no
    ``service.name``); ``parent[i]`` is 0 for a root span; ``peer[i]`` indexes ``peer_names`` (-1: none),
    ``peer_exact[i]`` says it came from ``peer.service`` (a service name) rather than an address."""

    services: list[str]
    service: np.ndarray  # int32
    key: np.ndarray  # uint64, (trace id, span id)
    parent: np.ndarray  # uint64, (trace id, parent span id); 0 = root
    kind: np.ndarray  # int8, OTLP SpanKind
    error: np.ndarray  # bool, status code ERROR
    end_ms: np.ndarray  # int64, unix ms of the span's end (event time)
    duration_s: np.ndarray  # float64
    peer_names: list[str] = field(default_factory=list)
    peer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    peer_exact: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def n(self) -> int:
        return int(self.key.shape[0])

    @staticmethod
    def empty() -> SpanBatch:
        return SpanBatch([], np.zeros(0, np.int32), np.zeros(0, np.uint64), np.zeros(0, np.uint64),
                         np.zeros(0, np.int8), np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0, np.float64))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, on uint64 arrays (multiplication wraps, as intended)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def span_keys(trace_ids: bytes, span_ids: bytes) -> np.ndarray:
    """64-bit keys of (trace id, span id) pairs, given the ids concatenated (16 and 8 bytes each). Never 0."""
    t = np.frombuffer(trace_ids, ">u8").astype(np.uint64).reshape(-1, 2)
    s = np.frombuffer(span_ids, ">u8").astype(np.uint64)
    k = _mix(t[:, 0] ^ _mix(t[:, 1] ^ _mix(s)))
    k[k == 0] = 1
    return k


def _hex_ids_to_base64(data: Any, where: str) -> None:
    """OTLP JSON writes ids as hex; protobuf's JSON parser wants base64. Convert spans' and links' ids."""
    if not isinstance(data, dict):
        return
    for ri, rs in enumerate(_list(data, "resourceSpans", "resource_spans")):
        for si, ss in enumerate(_list(rs, "scopeSpans", "scope_spans")):
            for pi, span in enumerate(_list(ss, "spans")):
                at = f"{where}resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                _convert_ids(span, at)
                for li, link in enumerate(_list(span, "links")):
                    _convert_ids(link, f"{at}.links[{li}]")


def _list(node: Any, *keys: str) -> list[Any]:
    if not isinstance(node, dict):
        return []
    for k in keys:
        v = node.get(k)
        if isinstance(v, list):
            return v
    return []


def _convert_ids(node: Any, at: str) -> None:
    if not isinstance(node, dict):
        return
    for k in _JSON_ID_KEYS:
        v = node.get(k)
        if isinstance(v, str):
            try:
                node[k] = base64.b64encode(bytes.fromhex(v)).decode()
            except ValueError as exc:
                raise BadInput(f"{at}.{k} is {v[:40]!r}; OTLP JSON ids are hex strings") from exc


def _parse(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    return parse_otlp_body(body, content_type, ExportTraceServiceRequest(), "traces", "resourceSpans",
                           lambda data: _hex_ids_to_base64(data, ""), unsupported_status=415)


def decode_otlp_traces(body: bytes, content_type: str, max_end_ms: int | None = None) -> SpanBatch:
    """Decode an OTLP/HTTP traces export (already decompressed). ``max_end_ms``: refuse spans that end
    later (the future-timestamp limit). Raises BadInput saying what is wrong; returns only when every span
    is valid."""
    req = _parse(body, content_type)
    services: list[str] = []
    svc_code: dict[str, int] = {}
    peer_names: list[str] = []
    peer_code: dict[str, int] = {}
    svc_col: list[int] = []
    tids: list[bytes] = []
    sids: list[bytes] = []
    pids: list[bytes] = []
    has_parent: list[bool] = []
    kinds: list[int] = []
    errors: list[bool] = []
    ends: list[int] = []
    durs: list[int] = []
    peers: list[int] = []
    exact: list[bool] = []
    for ri, rs in enumerate(req.resource_spans):
        name = next((any_value_str(kv.value) for kv in rs.resource.attributes if kv.key == "service.name"), "")
        code = -1
        if name:
            code = svc_code.get(name, -1)
            if code < 0:
                code = svc_code[name] = len(services)
                services.append(name)
        for si, ss in enumerate(rs.scope_spans):
            for pi, sp in enumerate(ss.spans):
                tid, sid, pid = sp.trace_id, sp.span_id, sp.parent_span_id
                start, end = sp.start_time_unix_nano, sp.end_time_unix_nano
                if len(tid) != 16 or tid == _ZERO_TRACE or len(sid) != 8 or sid == _ZERO_SPAN or \
                        len(pid) not in (0, 8) or not end or end < start:
                    _reject(ri, si, pi, name, tid, sid, pid, start, end)
                tids.append(tid)
                sids.append(sid)
                root = not pid or pid == _ZERO_SPAN
                pids.append(_ZERO_SPAN if root else pid)
                has_parent.append(not root)
                svc_col.append(code)
                kinds.append(sp.kind)
                errors.append(sp.status.code == _STATUS_ERROR)
                ends.append(end)
                durs.append(end - start if start else 0)
                p, is_exact = -1, False
                if sp.kind in _OUTGOING and sp.attributes:
                    peer, is_exact = _peer_of(sp)
                    if peer:
                        p = peer_code.get(peer, -1)
                        if p < 0:
                            p = peer_code[peer] = len(peer_names)
                            peer_names.append(peer)
                peers.append(p)
                exact.append(is_exact)
    if not tids:
        return SpanBatch.empty()
    end_ns = np.asarray(ends, np.uint64)
    end_ms = (end_ns // np.uint64(1_000_000)).astype(np.int64)
    if max_end_ms is not None and int(end_ms.max()) > max_end_ms:
        j = int(np.argmax(end_ms))
        raise BadInput(f"span {j} of the request ends {(int(end_ms[j]) - max_end_ms) / 1000:.0f} s beyond the "
                       "future-timestamp limit (limits.max_future_s); check the sender's clock and that times "
                       "are unix nanoseconds", span_index=j)
    key = span_keys(b"".join(tids), b"".join(sids))
    parent = span_keys(b"".join(tids), b"".join(pids))
    parent[~np.asarray(has_parent, bool)] = 0
    return SpanBatch(
        services=services, service=np.asarray(svc_col, np.int32), key=key, parent=parent,
        kind=np.asarray(kinds, np.int8), error=np.asarray(errors, bool), end_ms=end_ms,
        duration_s=np.asarray(durs, np.uint64).astype(np.float64) / 1e9,
        peer_names=peer_names, peer=np.asarray(peers, np.int32), peer_exact=np.asarray(exact, bool))


def _peer_of(sp: trace_pb2.Span) -> tuple[str, bool]:
    found: dict[str, str] = {}
    for kv in sp.attributes:
        if kv.key in PEER_SERVICE_KEYS or kv.key in PEER_ADDRESS_KEYS:
            found[kv.key] = any_value_str(kv.value)
    for k in PEER_SERVICE_KEYS:
        if found.get(k):
            return found[k], True
    for k in PEER_ADDRESS_KEYS:
        if found.get(k):
            return found[k], False
    return "", False


def _reject(ri: int, si: int, pi: int, service: str, tid: bytes, sid: bytes, pid: bytes, start: int,
            end: int) -> None:
    at = f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]" + (f" (service {service!r})" if service else "")
    if len(tid) != 16 or tid == _ZERO_TRACE:
        why = f"traceId must be 16 bytes and not all zero, got {len(tid)} bytes"
    elif len(sid) != 8 or sid == _ZERO_SPAN:
        why = f"spanId must be 8 bytes and not all zero, got {len(sid)} bytes"
    elif len(pid) not in (0, 8):
        why = f"parentSpanId must be empty or 8 bytes, got {len(pid)} bytes"
    elif not end:
        why = "endTimeUnixNano is missing"
    else:
        why = f"endTimeUnixNano ({end}) is before startTimeUnixNano ({start})"
    raise BadInput(f"OTLP span {at}: {why}; nothing of this request was accepted")
