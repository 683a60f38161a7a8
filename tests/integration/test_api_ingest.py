"""Black-box tests of ingestion through a real server: what goes in comes back exactly via query_range."""

from __future__ import annotations

import gzip
import json
import time

import cramjam
import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from aurora.ingest.remote_write import encode_remote_write
from aurora.model import BatchBuilder
from tests.integration.server import ServerProcess

T0 = int(time.time()) - 3600  # an hour ago, on a whole second


def one_sample(metric: str, t_ms: int) -> bytes:
    b = BatchBuilder()
    b.add(metric, {}, [t_ms], [1.0])
    return encode_remote_write(b.build())


def query(srv: ServerProcess, q: str, start: float, end: float, step: float = 15) -> list[dict]:
    with srv.client() as c:
        r = c.get("/api/v1/query_range", params={"query": q, "start": start, "end": end, "step": step})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success" and body["data"]["resultType"] == "matrix"
    return body["data"]["result"]


def series_count(srv: ServerProcess) -> int:
    with srv.client() as c:
        r = c.get("/api/v1/status")
    return int(r.json()["storage"]["series"])


def test_json_ingest_round_trips_exactly(server: ServerProcess) -> None:
    pts = [[T0 + 15 * i, 100.0 + i * 0.25] for i in range(40)]
    body = {"series": [{"metric": "memory_bytes", "labels": {"service": "cart"}, "points": pts}]}
    with server.client() as c:
        r = c.post("/api/v1/ingest", params={"sync": "true"}, json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 40}
    res = query(server, 'memory_bytes{service="cart"}', T0, T0 + 15 * 39)
    assert len(res) == 1
    assert res[0]["metric"] == {"__name__": "memory_bytes", "service": "cart"}
    got = [[float(t), float(v)] for t, v in res[0]["values"]]
    assert got == [[float(t), v] for t, v in pts]


def test_gzip_json_and_repeated_post_is_idempotent(server: ServerProcess) -> None:
    body = {"series": [{"metric": "up", "labels": {"job": "x"}, "points": [[T0, 1], [T0 + 15, 1]]}]}
    raw = gzip.compress(json.dumps(body).encode())
    with server.client() as c:
        for _ in range(2):  # a retried request is not an out-of-order error
            r = c.post("/api/v1/ingest", content=raw,
                       headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
            assert r.status_code == 200, r.text
    res = query(server, "up", T0, T0 + 15)
    assert [float(v) for _, v in res[0]["values"]] == [1.0, 1.0]


def test_remote_write_round_trips_exactly(server: ServerProcess) -> None:
    b = BatchBuilder()
    rng = np.random.default_rng(7)
    expected = {}
    for i in range(20):
        vals = rng.normal(50, 10, 30)
        ts = [(T0 + 15 * k) * 1000 + 123 for k in range(30)]  # ms precision survives
        b.add("http_request_duration_seconds", {"service": f"svc{i}", "quantile": "0.99"}, ts, vals)
        expected[f"svc{i}"] = (ts, vals)
    with server.client() as c:
        r = c.post("/api/v1/write", content=encode_remote_write(b.build()),
                   headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                            "X-Prometheus-Remote-Write-Version": "0.1.0"})
    assert r.status_code == 204, r.text
    with server.client() as c:
        r = c.get("/api/v1/series", params={"match[]": "http_request_duration_seconds"})
    assert len(r.json()["data"]) == 20
    # Query at the exact sample times: step 15 s aligned on the samples (offset by their 123 ms).
    res = query(server, 'http_request_duration_seconds{service="svc3"}', T0 + 0.123, T0 + 0.123 + 15 * 29)
    ts, vals = expected["svc3"]
    assert [float(v) for _, v in res[0]["values"]] == list(vals)


def test_otlp_protobuf_and_json(server: ServerProcess) -> None:
    from google.protobuf.json_format import MessageToJson

    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    attr = rm.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", "checkout"
    m = rm.scope_metrics.add().metrics.add()
    m.name = "queue_depth"
    for k in range(5):
        dp = m.gauge.data_points.add()
        dp.time_unix_nano = (T0 + 15 * k) * 1_000_000_000
        dp.as_double = float(k * 3)
    with server.client() as c:
        r = c.post("/v1/metrics", content=req.SerializeToString(), headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 200, r.text
        m.name = "queue_depth_json"
        r = c.post("/v1/metrics", content=MessageToJson(req), headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
    for name in ("queue_depth", "queue_depth_json"):
        res = query(server, f'{name}{{service="checkout"}}', T0, T0 + 60)
        assert [float(v) for _, v in res[0]["values"]] == [0.0, 3.0, 6.0, 9.0, 12.0]


def test_bad_inputs_are_refused_and_store_nothing(server: ServerProcess) -> None:
    good = {"metric": "ok_metric", "labels": {"a": "b"}, "points": [[T0, 1]]}
    bad_cases = {
        "bad metric name": {"metric": "9bad", "labels": {}, "points": [[T0, 1]]},
        "bad label name": {"metric": "m", "labels": {"bad-name": "x"}, "points": [[T0, 1]]},
        "reserved label": {"metric": "m", "labels": {"__x": "x"}, "points": [[T0, 1]]},
        "unsorted": {"metric": "m", "labels": {}, "points": [[T0 + 15, 1], [T0, 2]]},
        "far future": {"metric": "m", "labels": {}, "points": [[time.time() + 86400, 1]]},
        "ms not s": {"metric": "m", "labels": {}, "points": [[T0 * 1000, 1]]},
        "string value": {"metric": "m", "labels": {}, "points": [[T0, "abc"]]},
        "long label value": {"metric": "m", "labels": {"a": "x" * 5000}, "points": [[T0, 1]]},
        "unknown field": {"metric": "m", "labelz": {}, "points": [[T0, 1]]},
        "null value": {"metric": "m", "labels": {}, "points": [[T0, None]]},
    }
    with server.client() as c:
        for name, bad in bad_cases.items():
            r = c.post("/api/v1/ingest", json={"series": [good, bad]})
            assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
            err = r.json()
            assert err["error"] and len(err["message"]) > 10, name
        for raw, ctype in ((b"{not json", "application/json"), (b"\x00\x01garbage", "application/x-protobuf")):
            path = "/api/v1/ingest" if ctype == "application/json" else "/api/v1/write"
            r = c.post(path, content=raw, headers={"Content-Type": ctype})
            assert 400 <= r.status_code < 500, r.text
        r = c.post("/api/v1/write", content=bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff")),
                   headers={"Content-Encoding": "snappy"})
        assert r.status_code == 400, r.text
        # a body declared as something the endpoint does not read is refused before it is parsed
        wr = one_sample("m", T0 * 1000)
        for path, content, ctype in (("/api/v1/ingest", json.dumps({"series": [good]}).encode(), "text/plain"),
                                     ("/api/v1/write", wr, "application/json")):
            r = c.post(path, content=content, headers={"Content-Type": ctype})
            assert r.status_code == 415 and ctype in r.json()["message"], r.text
        r = c.post("/api/v1/ingest", json={"series": [good], "seriez": []})
        assert r.status_code == 400 and "seriez" in r.json()["message"], r.text
        # a series without points is not created
        r = c.post("/api/v1/ingest", json={"series": [{"metric": "empty_metric", "labels": {}, "points": []}]})
        assert r.status_code == 200 and r.json() == {"accepted": 0}, r.text
    assert series_count(server) == 0, "a refused request stored something"


def test_the_data_clock_refuses_far_future_samples_too(tmp_path) -> None:
    """One far-future sample would move event time (cooldowns, verification, predictions) forward for good."""
    srv = ServerProcess(tmp_path / "d", clock="data").start()
    try:
        future = time.time() + 86400
        with srv.client() as c:
            r = c.post("/api/v1/ingest", json={"series": [{"metric": "ok", "points": [[T0, 1]]},
                                                          {"metric": "m", "points": [[future, 1]]}]})
            assert r.status_code == 400 and "in the future" in r.json()["message"], r.text
            r = c.post("/api/v1/write", content=one_sample("m", int(future * 1000)),
                       headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"})
            assert r.status_code == 400, r.text
            r = c.post("/api/v1/events", json={"events": [{"kind": "deployment", "service": "cart", "time": future}]})
            assert r.status_code == 400, r.text
            # seconds sent as remote_write milliseconds: January 1970, before the floor (limits.min_time_s)
            r = c.post("/api/v1/write", content=one_sample("m", int(T0)),
                       headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"})
            assert r.status_code == 400 and "1970-01-" in r.json()["message"], r.text
            r = c.post("/api/v1/events", json={"events": [{"kind": "deployment", "service": "cart", "time": 5}]})
            assert r.status_code == 400 and "min_time_s" in r.json()["message"], r.text
            assert c.get("/api/v1/status").json()["storage"]["series"] == 0
            assert c.get("/api/v1/events").json()["events"] == []
    finally:
        srv.stop()


def test_out_of_order_is_refused_with_the_series_named(server: ServerProcess) -> None:
    with server.client() as c:
        r = c.post("/api/v1/ingest", json={"series": [{"metric": "m", "points": [[T0 + 60, 1]]}]})
        assert r.status_code == 200
        r = c.post("/api/v1/ingest", json={"series": [
            {"metric": "fresh", "points": [[T0, 1]]},
            {"metric": "m", "points": [[T0, 2]]}]})
        assert r.status_code == 400
        assert "m" in r.json()["message"]
    assert series_count(server) == 1  # 'fresh' was not created


def test_body_limit(tmp_path) -> None:
    srv = ServerProcess(tmp_path / "d", extra_env={"AURORA_SERVER__MAX_BODY_BYTES": "2048"}).start()
    try:
        big = {"series": [{"metric": "m", "points": [[T0 + i, i] for i in range(500)]}]}
        with srv.client() as c:
            r = c.post("/api/v1/ingest", json=big)
            assert r.status_code == 413
            assert "2048" in r.json()["message"]
            small = gzip.compress(json.dumps(big).encode())  # small on the wire, large inflated
            r = c.post("/api/v1/ingest", content=small, headers={"Content-Encoding": "gzip"})
            assert r.status_code == 413
    finally:
        srv.stop()


def test_events_and_alertmanager(server: ServerProcess) -> None:
    with server.client() as c:
        r = c.post("/api/v1/events", json={"events": [
            {"kind": "deployment", "service": "cart", "time": T0, "attributes": {"version": "1.4.2"}}]})
        assert r.status_code == 200, r.text
        r = c.post("/api/v1/events", json={"events": [{"kind": "Deploy!", "service": "cart"}]})
        assert r.status_code == 400
        evs = c.get("/api/v1/events", params={"service": "cart"}).json()["events"]
        assert len(evs) == 1 and evs[0]["attributes"] == {"version": "1.4.2"}
        payload = {"version": "4", "status": "firing", "receiver": "aurora", "groupLabels": {}, "commonLabels": {},
                   "commonAnnotations": {}, "externalURL": "http://am", "groupKey": "{}:{}", "truncatedAlerts": 0,
                   "alerts": [{"status": "firing", "labels": {"alertname": "HighLatency", "service": "cart",
                                                             "severity": "page"},
                               "annotations": {"summary": "p99 > 1s"}, "startsAt": "2024-01-01T00:00:00Z",
                               "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom",
                               "fingerprint": "abc123"}]}
        assert c.post("/api/v1/alerts/alertmanager", json=payload).status_code == 200
        payload["alerts"][0]["status"] = "resolved"
        payload["alerts"][0]["endsAt"] = "2024-01-01T00:10:00Z"
        assert c.post("/api/v1/alerts/alertmanager", json=payload).status_code == 200
        alerts = c.get("/api/v1/alerts").json()["alerts"]
        assert len(alerts) == 1 and alerts[0]["status"] == "resolved" and alerts[0]["service"] == "cart"


def test_sync_ingest_detects_a_spike_and_explains_it(server: ServerProcess) -> None:
    rng = np.random.default_rng(5)
    vals = 0.2 + rng.normal(0, 0.01, 400)
    vals[380] = 0.9
    pts = [[T0 - 6000 + 15 * i, float(v)] for i, v in enumerate(vals)]
    body = {"series": [{"metric": "request_latency_seconds", "labels": {"service": "checkout"}, "points": pts}]}
    with server.client() as c:
        assert c.post("/api/v1/ingest", params={"sync": "true"}, json=body).status_code == 200
        found = c.get("/api/v1/anomalies", params={"service": "checkout"}).json()["anomalies"]
        assert len(found) == 1
        a = found[0]
        assert a["time"] == T0 - 6000 + 15 * 380 and a["observed"] == 0.9
        assert a["expected"][1] < 0.9 and a["severity"] in ("warning", "critical") and a["explanation"]
        assert c.get("/api/v1/anomalies", params={"service": "cart"}).json()["anomalies"] == []
        assert 'aurora_anomalies_total{service="checkout"} 1.0' in c.get("/metrics").text
