"""The service graph: merging declared, label and trace edges; graph queries and their caches; the bounded
span cache; per-edge call statistics; the label stage; node health."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from aurora.config import ServiceConfig
from aurora.ingest.otlp_traces import KIND_CLIENT, KIND_SERVER, SpanBatch
from aurora.model import BatchBuilder
from aurora.topology import ServiceGraph, TopologyStage
from aurora.topology.health import assess
from aurora.topology.spans import GenerationalCache, SpanJoiner
from aurora.topology.stage import label_edge
from aurora.topology.window import EdgeWindow, quantile

T = 1_700_000_000_000  # unix ms


def spans(rows: list[tuple[str, int, int]], *, end_ms: int | list[int] = T, error: list[bool] | None = None,
          duration_s: float | list[float] = 0.01, kind: int = KIND_SERVER,
          peers: list[tuple[str, bool] | None] | None = None) -> SpanBatch:
    """A SpanBatch from (service, key, parent key) rows."""
    services = sorted({s for s, _, _ in rows})
    n = len(rows)
    peer_names = sorted({p[0] for p in peers or [] if p})
    return SpanBatch(
        services=services, service=np.array([services.index(s) for s, _, _ in rows], np.int32),
        key=np.array([k for _, k, _ in rows], np.uint64), parent=np.array([p for _, _, p in rows], np.uint64),
        kind=np.full(n, kind, np.int8), error=np.array(error or [False] * n, bool),
        end_ms=np.broadcast_to(np.asarray(end_ms, np.int64), (n,)).copy(),
        duration_s=np.broadcast_to(np.asarray(duration_s, np.float64), (n,)).copy(),
        peer_names=peer_names,
        peer=np.array([peer_names.index(p[0]) if p else -1 for p in (peers or [None] * n)], np.int32),
        peer_exact=np.array([bool(p and p[1]) for p in (peers or [None] * n)], bool))


def declared(*pairs: tuple[str, list[str]], **attrs: str) -> list[ServiceConfig]:
    return [ServiceConfig(name=n, depends_on=deps, **attrs) for n, deps in pairs]


# --- merging sources -----------------------------------------------------------------------------------
def test_sources_merge_on_one_edge() -> None:
    g = ServiceGraph()
    g.set_declared(declared(("web", ["cart"]), ("cart", ["postgres"])))
    g.add_edge("web", "cart", "labels")
    g.add_spans(spans([("web", 1, 0), ("cart", 2, 1)]))
    by = {(e["from"], e["to"]): e for e in g.edges()}
    assert set(by) == {("web", "cart"), ("cart", "postgres")}
    assert by["web", "cart"]["sources"] == ["declared", "labels", "traces"]
    assert by["cart", "postgres"]["sources"] == ["declared"]
    assert by["web", "cart"]["stats"]["requests"] == 1
    assert by["cart", "postgres"]["stats"] is None
    assert g.services() == ["cart", "postgres", "web"]


def test_declared_attributes_and_replacement() -> None:
    g = ServiceGraph()
    g.set_declared([ServiceConfig(name="web", depends_on=["cart"], owner="team-web", tier="1", user_facing=True)])
    assert g.service("web") == {"service": "web", "declared": True, "owner": "team-web", "tier": "1",
                                "user_facing": True, "sources": []}
    g.add_edge("web", "cart", "labels")
    g.set_declared(declared(("web", ["search"])))
    edges = {(e["from"], e["to"]): e["sources"] for e in g.edges()}
    assert edges == {("web", "cart"): ["labels"], ("web", "search"): ["declared"]}
    g.set_declared([])
    assert {(e["from"], e["to"]) for e in g.edges()} == {("web", "cart")}
    assert g.services() == ["cart", "web"]  # search had nothing but the declaration
    assert (g.service("web") or {}).get("declared") is False


def test_self_and_empty_edges_are_ignored() -> None:
    g = ServiceGraph()
    assert not g.add_edge("web", "web", "labels")
    assert not g.add_edge("", "web", "labels")
    assert g.edges() == []


def test_limits_bound_nodes_and_edges() -> None:
    g = ServiceGraph(max_services=3, max_edges=2)
    assert g.add_edge("a", "b", "labels")
    assert g.add_edge("b", "c", "labels")
    assert not g.add_edge("a", "c", "labels")  # third edge
    assert not g.add_edge("c", "d", "labels")
    g.add_services(["x", "y"], "labels")
    assert g.services() == ["a", "b", "c"]
    assert g.stats()["dropped"]["edges"] >= 2


# --- queries and caches --------------------------------------------------------------------------------
def chain() -> ServiceGraph:
    g = ServiceGraph()
    g.set_declared(declared(("gateway", ["web"]), ("web", ["cart", "catalog"]), ("cart", ["postgres"]),
                            ("catalog", ["postgres", "redis"]), ("billing", [])))
    return g


def test_direct_and_transitive_queries() -> None:
    g = chain()
    assert g.callees("web") == {"cart", "catalog"}
    assert g.callers("postgres") == {"cart", "catalog"}
    assert g.callees("nobody") == frozenset()
    assert g.downstream("web") == {"cart": 1, "catalog": 1, "postgres": 2, "redis": 2}
    assert list(g.downstream("gateway"))[:1] == ["web"]  # nearest first
    assert g.downstream("gateway", hops=2) == {"web": 1, "cart": 2, "catalog": 2}
    assert g.upstream("postgres") == {"cart": 1, "catalog": 1, "web": 2, "gateway": 3}
    assert g.upstream("postgres", hops=1) == {"cart": 1, "catalog": 1}
    assert g.upstream("gateway") == {}


def test_distance_and_connected_ignore_direction() -> None:
    g = chain()
    assert g.distance("postgres", "gateway") == 3
    assert g.distance("cart", "catalog") == 2  # via web or via postgres
    assert g.distance("cart", "redis") == 3
    assert g.distance("web", "web") == 0
    assert g.distance("web", "billing") is None  # declared, no edges
    assert g.distance("web", "unknown") is None
    assert g.connected("cart", "catalog", 2)
    assert not g.connected("cart", "catalog", 1)
    assert not g.connected("web", "billing", 10)


def test_caches_are_invalidated_on_change() -> None:
    g = chain()
    assert g.distance("web", "billing") is None
    assert g.callers("billing") == frozenset()
    v = g.version
    g.add_edge("billing", "postgres", "labels")
    assert g.version > v
    assert g.distance("web", "billing") == 3
    assert g.callees("billing") == {"postgres"}
    assert g.upstream("postgres")["billing"] == 1
    v = g.version
    g.add_edge("billing", "postgres", "traces")  # a new source on a known edge: adjacency unchanged
    assert g.version == v
    g.set_declared(declared(("gateway", ["web"])))
    assert g.distance("gateway", "postgres") is None
    assert g.distance("billing", "postgres") == 1  # the labels edge stays


def test_returned_maps_do_not_leak_into_the_cache() -> None:
    g = chain()
    got = g.downstream("web")
    got["injected"] = 9
    assert "injected" not in g.downstream("web")


def test_concurrent_writers_and_readers() -> None:
    g = ServiceGraph()
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for i in range(100):
                g.add_edge(f"s{k}-{i}", f"s{k}-{i + 1}", "labels")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        try:
            for i in range(1000):
                g.distance("s0-0", f"s0-{i % 100}")
                g.downstream("s1-0", hops=3)
                g.edges()
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(3)] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert g.edge_count() == 300
    assert g.distance("s0-0", "s0-100") == 100


# --- traces --------------------------------------------------------------------------------------------
def test_child_before_parent_across_requests() -> None:
    g = ServiceGraph()
    assert g.add_spans(spans([("cart", 3, 2)])) == 0  # the callee's span ends (and is sent) first
    assert g.edges() == []
    assert g.add_spans(spans([("web", 1, 0), ("web", 2, 1)], end_ms=T + 50)) == 1
    (e,) = g.edges()
    assert (e["from"], e["to"], e["sources"]) == ("web", "cart", ["traces"])
    assert e["stats"]["measured_by"] == "server_spans"


def test_parent_before_child_across_requests() -> None:
    g = ServiceGraph()
    g.add_spans(spans([("web", 1, 0)]))
    g.add_spans(spans([("cart", 2, 1), ("postgres", 3, 2), ("cart", 4, 2)]))
    assert {(e["from"], e["to"]) for e in g.edges()} == {("web", "cart"), ("cart", "postgres")}


def test_unattributed_spans_are_skipped() -> None:
    g = ServiceGraph()
    b = spans([("web", 1, 0), ("web", 2, 1)])
    b.service[0] = -1  # its resource had no service.name
    g.add_spans(b)
    g.add_spans(spans([("cart", 3, 1), ("cart", 4, 2)]))
    assert [(e["from"], e["to"]) for e in g.edges()] == [("web", "cart")]  # only from the attributed span


def test_client_span_peer_gives_edge() -> None:
    g = ServiceGraph()
    g.add_services(["redis"], "labels")
    g.add_spans(spans([("cart", 1, 0), ("cart", 2, 0), ("cart", 3, 0)], kind=KIND_CLIENT,
                      peers=[("postgres", True), ("redis.shop.svc.cluster.local:6379", False),
                             ("10.0.0.7", False)]))
    by = {(e["from"], e["to"]): e for e in g.edges()}
    assert set(by) == {("cart", "postgres"), ("cart", "redis")}  # the bare address names no known service
    assert by["cart", "postgres"]["stats"]["measured_by"] == "client_spans"


def test_server_side_stats_win_over_client_side() -> None:
    g = ServiceGraph()
    # web's client span names cart (peer.service) and is the parent of cart's server span.
    g.add_spans(spans([("web", 1, 0)], kind=KIND_CLIENT, peers=[("cart", True)], duration_s=0.5))
    g.add_spans(spans([("cart", 2, 1)], duration_s=0.2))
    (e,) = g.edges()
    assert e["stats"]["measured_by"] == "server_spans"
    assert e["stats"]["requests"] == 1
    assert e["stats"]["latency_mean_s"] == pytest.approx(0.2)


def test_edge_stats_rate_errors_latency_in_event_time() -> None:
    g = ServiceGraph(window_s=300, bucket_s=15)
    rng = np.random.default_rng(3)
    n = 480
    ends = (T + np.arange(n) * 500).tolist()  # 2 calls/s for 240 s, inside the 300 s window
    durs = rng.lognormal(np.log(0.05), 0.3, n).tolist()
    errors = (np.arange(n) % 20 == 0).tolist()  # 5 %
    rows = [("web", 1, 0)] + [("cart", 2 + i, 1) for i in range(n)]
    g.add_spans(spans(rows, end_ms=[T, *ends], duration_s=[0.5, *durs], error=[False, *errors]))
    now = ends[-1]
    st = g.edges(now)[0]["stats"]
    assert st["requests"] == n
    assert st["rate_per_s"] == pytest.approx(2.0, rel=0.06)
    assert st["error_ratio"] == pytest.approx(0.05)
    assert st["latency_p50_s"] == pytest.approx(np.quantile(durs, 0.5), rel=0.15)
    assert st["latency_p95_s"] == pytest.approx(np.quantile(durs, 0.95), rel=0.15)
    assert g.edges(now + 120_000)[0]["stats"]["requests"] < n  # the window slides in event time
    assert g.edges(now + 400_000)[0]["stats"] is None


def test_window_drops_calls_older_than_the_window() -> None:
    w = EdgeWindow(window_s=60, bucket_s=10)
    assert w.add(np.array([T + 120_000]), np.array([False]), np.array([0.1])) == 1
    assert w.add(np.array([T, T + 119_000]), np.array([True, True]), np.array([0.1, 0.1])) == 1
    s = w.summary(T + 120_000)
    assert s is not None and s["requests"] == 2 and s["errors"] == 1


def test_quantile_of_histogram() -> None:
    h = np.zeros(82, np.int64)
    h[21] = 100  # [1 ms, 1.26 ms)
    assert 0.001 <= quantile(h, 0.5) < 0.00126
    assert np.isnan(quantile(np.zeros(82, np.int64), 0.5))


# --- the bounded span cache ----------------------------------------------------------------------------
def test_generational_cache_is_bounded_and_ages_out() -> None:
    c: GenerationalCache[int] = GenerationalCache(capacity=100, ttl_ms=60_000)
    c.advance(T)
    for k in range(1, 1001):
        c.put(k, k)
    assert len(c) <= 100
    assert c.get(1000) == 1000 and c.get(1) is None
    c.advance(T + 30_000)  # half the ttl: a rotation, newest entries kept
    assert c.get(1000) == 1000
    c.advance(T + 61_000)
    c.advance(T + 200_000)
    assert len(c) == 0 and c.get(1000) is None


def test_span_joiner_memory_is_bounded() -> None:
    j = SpanJoiner(capacity=1000, ttl_s=300)
    rng = np.random.default_rng(1)
    for i in range(50):  # orphans whose parents never come
        k = rng.integers(1, 2**63, 500, dtype=np.int64).astype(np.uint64)
        p = rng.integers(1, 2**63, 500, dtype=np.int64).astype(np.uint64)
        j.join(k, p, np.zeros(500, np.int64), np.full(500, T + i), np.zeros(500, bool), np.zeros(500))
    assert len(j.seen) <= 1000 and len(j.waiting) <= 1000


def test_parent_after_the_time_limit_gives_no_edge() -> None:
    g = ServiceGraph(span_ttl_s=60)
    g.add_spans(spans([("cart", 2, 1)], end_ms=T))
    g.add_spans(spans([("x", 9, 0)], end_ms=T + 45_000))
    g.add_spans(spans([("x", 10, 0)], end_ms=T + 130_000))  # both generations expire
    g.add_spans(spans([("web", 1, 0)], end_ms=T + 131_000))
    assert g.edges() == []


# --- labels --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("labels", "expected"), [
    ({"service": "web", "peer_service": "cart"}, ("web", "cart")),
    ({"job": "web", "upstream": "cart:8080"}, ("web", "cart")),
    ({"service": "web", "destination_service": "cart.shop.svc.cluster.local"}, ("web", "cart")),
    ({"service": "web", "target_service": "cart"}, ("web", "cart")),
    ({"service": "web", "server_service": "cart"}, ("web", "cart")),
    ({"source_workload": "web-v1", "destination_workload": "cart-v2", "job": "istio"}, ("web-v1", "cart-v2")),
    ({"source_workload": "unknown", "destination_workload": "cart", "service": "mesh"}, ("mesh", None)),
    ({"service": "web"}, ("web", None)),
    ({"instance": "x"}, (None, None)),
])
def test_label_edge(labels: dict[str, str], expected: tuple[str | None, str | None]) -> None:
    assert label_edge(labels) == expected


def test_stage_reads_each_series_once() -> None:
    g = ServiceGraph()
    stage = TopologyStage(g)
    b = BatchBuilder()
    b.add("rpc_calls_total", {"service": "web", "peer_service": "cart"}, [T], [1.0])
    b.add("rpc_calls_total", {"service": "web", "peer_service": "search"}, [T], [1.0])
    b.add("memory_bytes", {"service": "postgres"}, [T], [1.0])
    batch = b.build()
    stage.process(batch, np.array([0, 1, 2]), T)
    assert {(e["from"], e["to"]) for e in g.edges()} == {("web", "cart"), ("web", "search")}
    assert (g.service("postgres") or {}).get("sources") == ["labels"]
    assert (g.service("cart") or {}).get("sources") == []  # named as a peer only
    stage.process(batch, np.array([0, 1, 2]), T + 15_000)
    assert stage.series_read == 3
    b2 = BatchBuilder()
    b2.add("rpc_calls_total", {"service": "cart", "peer": "postgres"}, [T], [1.0])
    stage.process(b2.build(), np.array([7]), T)
    assert stage.series_read == 4
    assert g.callees("cart") == {"postgres"}


# --- health --------------------------------------------------------------------------------------------
def test_health_levels_and_reasons() -> None:
    services = ["web", "cart", "postgres", "search", "billing"]
    has_data = {"web": True, "cart": True, "postgres": True, "search": False, "billing": False}
    anomalies = [{"service": "cart", "severity": "warning", "metric": "latency"},
                 {"service": "postgres", "severity": "critical", "metric": "disk_used_bytes"}]
    edges = [{"from": "web", "to": "search", "stats": {"requests": 100, "error_ratio": 0.02, "window_s": 300}},
             {"from": "web", "to": "cart", "stats": {"requests": 5, "error_ratio": 1.0, "window_s": 300}}]
    h = assess(services, has_data=has_data, anomalies=anomalies, edges=edges, incidents={"web": "warning"})
    assert h["cart"]["health"] == "degraded" and "1 anomaly in the last 15 min: latency" in h["cart"]["reasons"]
    assert h["postgres"]["health"] == "critical"
    assert h["search"]["health"] == "degraded"  # failing calls into it are evidence even without own data
    assert "2.0% of 100 traced calls from web failed" in h["search"]["reasons"][0]
    assert h["web"]["health"] == "degraded" and h["web"]["reasons"] == ["open incident (severity warning)"]
    assert h["billing"]["health"] == "unknown" and h["billing"]["reasons"]
    h = assess(["web"], has_data={"web": True}, anomalies=[], edges=[], incidents={"web": "critical"})
    assert h["web"]["health"] == "critical"
    h = assess(["web"], has_data={"web": True}, anomalies=[], edges=[])
    assert h["web"]["health"] == "ok" and h["web"]["reasons"]
    h = assess(["web"], has_data={"web": False}, anomalies=[], edges=[], incidents={"web": "info"})
    assert h["web"] == {"health": "ok", "reasons": ["open incident (severity info)"]}
