"""Topology endpoints: OTLP/HTTP traces in (``POST /v1/traces``), the service graph out (``GET /api/v1/topology``).

Traces live here rather than with the metric ingest routes because the topology is all Aurora reads from
them: they are decoded into span columns and merged into the graph, not stored.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from aurora.api.deps import decompress, get_aurora, read_body, require
from aurora.app import Aurora
from aurora.errors import AuroraError, BadInput

router = APIRouter()
log = logging.getLogger(__name__)
OTLP_TYPES = ("application/x-protobuf", "application/protobuf", "application/json")


@router.post("/v1/traces", dependencies=[Depends(require("ingest"))])
async def otlp_traces(request: Request) -> Response:
    from aurora.ingest.otlp_traces import decode_otlp_traces

    aurora = get_aurora(request)
    ctype = request.headers.get("content-type", "application/x-protobuf").split(";")[0].strip().lower()
    try:
        if ctype not in OTLP_TYPES:
            raise BadInput(f"Content-Type {ctype!r} is not OTLP; use application/x-protobuf or application/json",
                           status=415)
        limit = aurora.cfg.server.max_body_bytes
        body = decompress(await read_body(request, limit), request.headers.get("content-encoding"), limit)
        horizon = aurora.clock.wall_ms() + int(aurora.cfg.limits.max_future_s * 1000)  # either clock

        def work() -> None:
            aurora.ingest_traces(decode_otlp_traces(body, ctype, max_end_ms=horizon))

        await run_in_threadpool(work)
    except AuroraError as exc:
        aurora.counters["rejected"] += 1
        aurora.metrics.requests_rejected.labels("otlp_traces", exc.code).inc()
        raise
    # OTLP/HTTP success: an (empty) ExportTraceServiceResponse in the request's encoding.
    if ctype == "application/json":
        return Response(content=b"{}", media_type="application/json")
    return Response(content=ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")


def topology_view(aurora: Aurora) -> dict[str, Any]:
    """The graph with every node's health (see ``aurora.topology.health``) and every edge's traced calls."""
    from aurora.topology.health import ANOMALY_WINDOW_S, assess

    graph = aurora.topology
    now = aurora.clock.now()
    edges = graph.edges(int(now * 1000))
    services = graph.services()
    infos = {s: graph.service(s) or {} for s in services}
    has_data = {s: bool(infos[s].get("sources")) for s in services}
    for e in edges:
        if e["stats"]:
            has_data[e["from"]] = has_data[e["to"]] = True
    anomalies = aurora.anomalies.query(start=now - ANOMALY_WINDOW_S, end=now, limit=10_000)
    for a in anomalies:
        if a.get("service") in has_data:
            has_data[a["service"]] = True
    health = assess(services, has_data=has_data, anomalies=anomalies, edges=edges, incidents=_incidents(aurora))
    nodes = []
    for s in services:
        info = infos[s]
        node: dict[str, Any] = {"service": s, **health[s], "declared": info.get("declared", False),
                                "sources": info.get("sources", [])}
        for k in ("owner", "tier"):
            if info.get(k) is not None:
                node[k] = info[k]
        if info.get("user_facing"):
            node["user_facing"] = True
        nodes.append(node)
    return {"nodes": nodes, "edges": [_edge_view(e) for e in edges], "time": now}


def _edge_view(e: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"from": e["from"], "to": e["to"], "sources": e["sources"]}
    st = e["stats"]
    if st:
        out.update({k: st[k] for k in ("rate_per_s", "error_ratio", "latency_p50_s", "latency_p95_s",
                                       "latency_mean_s", "requests", "errors", "window_s", "measured_by")})
    return out


def _incidents(aurora: Aurora) -> dict[str, str]:
    """Open incidents' severity per service, from the incident engine's hook when it is there."""
    hook = getattr(aurora, "service_incidents", None)
    if hook is None:
        return {}
    try:
        return {str(k): str(v) for k, v in dict(hook()).items()}
    except Exception:
        log.exception("service_incidents hook failed; topology health without incidents")
        return {}


@router.get("/api/v1/topology", dependencies=[Depends(require("read"))])
async def topology(request: Request) -> dict[str, Any]:
    return await run_in_threadpool(topology_view, get_aurora(request))
