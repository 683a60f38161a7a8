"""The topology through a real server: OTLP/HTTP traces (protobuf, gzip, JSON) posted to /v1/traces and the
declared services of the configuration come back from GET /api/v1/topology as edges with their sources and
traced call statistics, nodes with their health; a bad trace request is refused whole and changes nothing.
And, in process, how health follows anomalies, traced errors and the incident engine's hook."""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

from aurora.app import Aurora
from aurora.config import load_config
from tests.integration.server import ServerProcess

PB = {"Content-Type": "application/x-protobuf"}
SERVER, CLIENT = trace_pb2.Span.SpanKind.SPAN_KIND_SERVER, trace_pb2.Span.SpanKind.SPAN_KIND_CLIENT
CONFIG = """
services:
  - name: gateway
    depends_on: [web]
    owner: team-edge
    tier: "1"
    user_facing: true
  - name: web
    depends_on: [cart]
  - name: billing
"""


@pytest.fixture
def topo_server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    cfg = tmp_path / "aurora.yaml"
    cfg.write_text(CONFIG)
    srv = ServerProcess(tmp_path / "data", None if db_url.startswith("sqlite") else db_url, config=cfg).start()
    yield srv
    srv.stop()


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def traces(n: int, failing_every: int = 2, end_ns: int | None = None) -> ExportTraceServiceRequest:
    """``n`` traces web -> cart -> postgres (cart's call to postgres is a client span naming its peer); every
    ``failing_every``-th cart span fails (0: none). Parents in a later request: see the JSON test."""
    end = end_ns or time.time_ns() - 5_000_000_000
    req = ExportTraceServiceRequest()
    groups = {}
    for svc in ("web", "cart"):
        rs = req.resource_spans.add()
        rs.resource.attributes.append(kv("service.name", svc))
        groups[svc] = rs.scope_spans.add().spans
    for i in range(n):
        tid, root, call, child, db = os.urandom(16), os.urandom(8), os.urandom(8), os.urandom(8), os.urandom(8)
        t = end - i * 100_000_000
        groups["web"].append(trace_pb2.Span(trace_id=tid, span_id=root, name="GET /", kind=SERVER,
                                            start_time_unix_nano=t - 80_000_000, end_time_unix_nano=t))
        groups["web"].append(trace_pb2.Span(trace_id=tid, span_id=call, parent_span_id=root, name="cart.get",
                                            kind=CLIENT, start_time_unix_nano=t - 70_000_000,
                                            end_time_unix_nano=t - 10_000_000))
        cart = trace_pb2.Span(trace_id=tid, span_id=child, parent_span_id=call, name="get", kind=SERVER,
                              start_time_unix_nano=t - 60_000_000, end_time_unix_nano=t - 20_000_000)
        if failing_every and i % failing_every == 0:
            cart.status.code = trace_pb2.Status.StatusCode.STATUS_CODE_ERROR
        groups["cart"].append(cart)
        q = trace_pb2.Span(trace_id=tid, span_id=db, parent_span_id=child, name="SELECT", kind=CLIENT,
                           start_time_unix_nano=t - 50_000_000, end_time_unix_nano=t - 45_000_000)
        q.attributes.append(kv("peer.service", "postgres"))
        groups["cart"].append(q)
    return req


def topology(srv: ServerProcess) -> dict:
    with srv.client() as c:
        r = c.get("/api/v1/topology")
    assert r.status_code == 200, r.text
    body: dict = r.json()
    return body


def test_traces_and_config_make_the_topology(topo_server: ServerProcess) -> None:
    before = topology(topo_server)
    assert {(e["from"], e["to"]) for e in before["edges"]} == {("gateway", "web"), ("web", "cart")}
    assert all(n["health"] == "unknown" for n in before["nodes"])
    body = traces(40).SerializeToString()
    with topo_server.client() as c:
        r = c.post("/v1/traces", content=body, headers=PB)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/x-protobuf")
        ExportTraceServiceResponse().ParseFromString(r.content)  # an (empty) OTLP response
        r = c.post("/v1/traces", content=gzip.compress(traces(10, failing_every=0).SerializeToString()),
                   headers={**PB, "Content-Encoding": "gzip"})
        assert r.status_code == 200, r.text
        status = c.get("/api/v1/status").json()["counters"]
    assert status["traces"] == 2 and status["spans"] == 4 * 50

    topo = topology(topo_server)
    edges = {(e["from"], e["to"]): e for e in topo["edges"]}
    assert set(edges) == {("gateway", "web"), ("web", "cart"), ("cart", "postgres")}
    wc = edges["web", "cart"]
    assert wc["sources"] == ["declared", "traces"]
    assert wc["requests"] == 50 and wc["errors"] == 20 and wc["error_ratio"] == pytest.approx(0.4)
    assert wc["rate_per_s"] > 0 and wc["measured_by"] == "server_spans"
    assert 0.03 <= wc["latency_p50_s"] <= 0.055 and wc["latency_p50_s"] <= wc["latency_p95_s"]
    assert edges["cart", "postgres"]["sources"] == ["traces"]
    assert edges["cart", "postgres"]["measured_by"] == "client_spans"
    assert "rate_per_s" not in edges["gateway", "web"]  # declared only: no traced calls

    nodes = {n["service"]: n for n in topo["nodes"]}
    assert set(nodes) == {"gateway", "web", "cart", "postgres", "billing"}
    assert nodes["cart"]["health"] == "critical"
    assert any("40.0% of 50 traced calls from web failed" in r for r in nodes["cart"]["reasons"])
    assert nodes["web"]["health"] == "ok" and nodes["postgres"]["health"] == "ok"
    assert nodes["billing"]["health"] == "unknown" and nodes["gateway"]["health"] == "unknown"
    assert nodes["gateway"]["owner"] == "team-edge" and nodes["gateway"]["tier"] == "1"
    assert nodes["gateway"]["user_facing"] is True and nodes["gateway"]["declared"] is True
    assert nodes["web"]["sources"] == ["traces"]


def test_json_traces_and_parents_in_a_later_request(server: ServerProcess) -> None:
    tid, root, child = os.urandom(16).hex(), os.urandom(8).hex(), os.urandom(8).hex()
    end = time.time_ns() - 1_000_000_000

    def export(service: str, span: dict) -> dict:
        return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name",
                                                               "value": {"stringValue": service}}]},
                                   "scopeSpans": [{"spans": [span]}]}]}

    child_span = {"traceId": tid, "spanId": child, "parentSpanId": root, "name": "pay", "kind": "SPAN_KIND_SERVER",
                  "startTimeUnixNano": str(end - 30_000_000), "endTimeUnixNano": str(end - 10_000_000)}
    root_span = {"traceId": tid, "spanId": root, "name": "checkout", "kind": 2,
                 "startTimeUnixNano": str(end - 50_000_000), "endTimeUnixNano": str(end)}
    with server.client() as c:
        for body in (export("payment", child_span), export("checkout", root_span)):  # the child ends first
            r = c.post("/v1/traces", json=body)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("application/json") and r.json() == {}
    (e,) = topology(server)["edges"]
    assert (e["from"], e["to"], e["requests"]) == ("checkout", "payment", 1)


def test_bad_trace_requests_change_nothing_and_scopes_apply(server: ServerProcess) -> None:
    with server.client() as c:
        assert c.post("/v1/traces", content=traces(5).SerializeToString(), headers=PB).status_code == 200
    before = topology(server)
    bad = traces(5)
    bad.resource_spans[1].scope_spans[0].spans[3].trace_id = b"\x01\x02"  # one bad span among good ones
    with server.client() as c:
        r = c.post("/v1/traces", content=bad.SerializeToString(), headers=PB)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "bad_input"
        assert "resourceSpans[1].scopeSpans[0].spans[3] (service 'cart'): traceId must be 16 bytes" in \
            r.json()["message"]
        r = c.post("/v1/traces", content=b"\x0a\xff\xff\xff", headers=PB)
        assert r.status_code == 400 and "ExportTraceServiceRequest" in r.json()["message"]
        r = c.post("/v1/traces", content=b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}',
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "hex" in r.json()["message"]
        r = c.post("/v1/traces", content=b"gzip?", headers={**PB, "Content-Encoding": "gzip"})
        assert r.status_code == 400
        r = c.post("/v1/traces", content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        future = traces(2, end_ns=time.time_ns() + 3600 * 10**9).SerializeToString()
        r = c.post("/v1/traces", content=future, headers=PB)
        assert r.status_code == 400 and "limits.max_future_s" in r.json()["message"]
        counters = c.get("/api/v1/status").json()["counters"]
    assert counters["traces"] == 1 and counters["spans"] == 20 and counters["rejected"] == 6
    after = topology(server)
    assert after["edges"] == before["edges"] and after["nodes"] == before["nodes"]

    # Scopes: traces need ingest, the topology read.
    with server.client() as admin:
        reader = admin.post("/api/v1/tokens", json={"name": "reader", "scopes": ["read"]}).json()["token"]
    with server.client(reader) as c:
        assert c.post("/v1/traces", content=traces(1).SerializeToString(), headers=PB).status_code == 403
        assert c.get("/api/v1/topology").status_code == 200
    with server.client(None) as c:
        assert c.get("/api/v1/topology").status_code == 401
        assert c.post("/v1/traces", content=b"", headers=PB).status_code == 401
    assert topology(server)["edges"] == before["edges"]




# --- in process: health from anomalies and incidents ---------------------------------------------------------
@pytest.fixture
def aurora(tmp_path: Path) -> Iterator[Aurora]:
    cfg_file = tmp_path / "aurora.yaml"
    cfg_file.write_text(CONFIG)
    cfg = load_config(cfg_file, {"AURORA_DATA_DIR": str(tmp_path / "data"), "AURORA_CLOCK": "data",
                                 "AURORA_HOST_AGENT__ENABLED": "false"})
    a = Aurora(cfg)
    a.open()
    yield a
    a.close()


def anomaly(t: float, service: str, severity: str, metric: str = "latency_seconds") -> dict:
    return {"time": t, "series_id": 0, "service": service, "metric": metric, "labels": {"service": service},
            "score": 0.99, "severity": severity, "expected": [0.0, 1.0], "observed": 5.0, "detectors": ["level"],
            "explanation": "test"}


def test_health_follows_anomalies_and_incidents(aurora: Aurora, monkeypatch: pytest.MonkeyPatch) -> None:
    from aurora.api.routes_topology import topology_view
    from aurora.model import BatchBuilder

    t = 1_700_000_000.0
    b = BatchBuilder()
    for svc in ("gateway", "web", "cart"):
        b.add("memory_bytes", {"service": svc}, [int(t * 1000)], [1.0])
    aurora.ingest(b.build(), "test", sync=True)  # the topology stage sees the services' series
    aurora.anomalies.add([anomaly(t - 60, "web", "warning"), anomaly(t - 30, "cart", "critical"),
                          anomaly(t - 2000, "gateway", "critical")])  # older than 15 min: no longer counts
    nodes = {n["service"]: n for n in topology_view(aurora)["nodes"]}
    assert (nodes["web"]["health"], nodes["cart"]["health"]) == ("degraded", "critical")
    assert nodes["gateway"]["health"] == "ok" and nodes["billing"]["health"] == "unknown"
    assert nodes["web"]["reasons"] == ["1 anomaly in the last 15 min: latency_seconds"]

    monkeypatch.setattr(aurora, "service_incidents", lambda: {"gateway": "critical", "billing": "warning"})
    nodes = {n["service"]: n for n in topology_view(aurora)["nodes"]}
    assert nodes["gateway"]["health"] == "critical" and nodes["billing"]["health"] == "degraded"
    assert nodes["gateway"]["reasons"] == ["open incident (severity critical)"]

    def broken() -> dict[str, str]:
        raise RuntimeError("incident store down")

    monkeypatch.setattr(aurora, "service_incidents", broken)
    nodes = {n["service"]: n for n in topology_view(aurora)["nodes"]}  # a failing hook is logged, not raised
    assert nodes["gateway"]["health"] == "ok"
    json.dumps(topology_view(aurora))  # JSON-able


def test_services_seen_only_in_change_events_or_alerts_are_nodes(aurora: Aurora) -> None:
    from aurora.api.routes_topology import topology_view
    from aurora.ingest.alertmanager import parse_alertmanager
    from aurora.ingest.events import ChangeEvent

    aurora.add_events([ChangeEvent("deployment", "search", 1_700_000_000.0, {"version": "2.0"})])
    aurora.add_alerts(parse_alertmanager({"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "QueueStuck", "service": "mailer", "severity": "critical"},
         "annotations": {}, "startsAt": "2023-11-14T22:13:20Z", "fingerprint": "f1"}]}))
    nodes = {n["service"]: n for n in topology_view(aurora)["nodes"]}
    assert {"search", "mailer"} <= set(nodes)
