"""Read endpoints: Prometheus-compatible queries, status, health, self-metrics, events, alerts, live stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from aurora.api.deps import get_aurora, read_body, require
from aurora.app import Aurora
from aurora.errors import AuroraError, BadInput

router = APIRouter()
read_scope = [Depends(require("read"))]


async def _params(request: Request) -> dict[str, list[str]]:
    """Query-string parameters merged with a form-encoded POST body (Grafana POSTs queries by default)."""
    params: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        params.setdefault(k, []).append(v)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            body = await read_body(request, 1 << 20)
            for k, vs in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
                params.setdefault(k, []).extend(vs)
    return params


def _one(params: dict[str, list[str]], name: str, default: str | None = None) -> str:
    vals = params.get(name)
    if not vals:
        if default is None:
            raise BadInput(f"missing parameter '{name}'")
        return default
    return vals[-1]


def _prom_error(exc: AuroraError) -> JSONResponse:
    from aurora.query.response import error_body

    status, body = error_body(exc)
    return JSONResponse(body, status_code=status)


def _lookback(p: dict[str, list[str]]) -> float:
    from aurora.query.params import parse_duration

    return parse_duration(p["lookback_delta"][-1]) if p.get("lookback_delta") else 300.0


def _opt_time(p: dict[str, list[str]], name: str) -> float | None:
    from aurora.query.params import parse_time

    return parse_time(p[name][-1]) if p.get(name) else None


async def _prometheus(request: Request, plan: Callable[[Aurora, dict[str, list[str]]], Callable[[], Any]]) -> Response:
    """Read parameters (query string or form), run the planned query in a thread, answer in Prometheus'
    shape, errors included (``plan`` raises on bad parameters; the returned callable does the work)."""
    aurora = get_aurora(request)
    try:
        work = plan(aurora, await _params(request))
        body = await run_in_threadpool(work)
    except AuroraError as exc:
        return _prom_error(exc)
    return JSONResponse(body)


@router.api_route("/api/v1/query_range", methods=["GET", "POST"], dependencies=read_scope)
async def query_range(request: Request) -> Response:
    from aurora.query.params import parse_duration, parse_time
    from aurora.query.promql import query_range as run_query_range

    def plan(aurora: Aurora, p: dict[str, list[str]]) -> Callable[[], Any]:
        q, lookback = _one(p, "query"), _lookback(p)
        start, end = parse_time(_one(p, "start")), parse_time(_one(p, "end"))
        step = parse_duration(_one(p, "step"))
        return lambda: run_query_range(aurora.tsdb, q, start, end, step, lookback)

    return await _prometheus(request, plan)


@router.api_route("/api/v1/query", methods=["GET", "POST"], dependencies=read_scope)
async def instant_query(request: Request) -> Response:
    from aurora.query.promql import instant_query as run_instant

    def plan(aurora: Aurora, p: dict[str, list[str]]) -> Callable[[], Any]:
        q, lookback = _one(p, "query"), _lookback(p)
        t = _opt_time(p, "time")
        at = aurora.clock.now() if t is None else t
        return lambda: run_instant(aurora.tsdb, q, at, lookback)

    return await _prometheus(request, plan)


@router.api_route("/api/v1/series", methods=["GET", "POST"], dependencies=read_scope)
async def series(request: Request) -> Response:
    from aurora.query.promql import series_match

    def plan(aurora: Aurora, p: dict[str, list[str]]) -> Callable[[], Any]:
        selectors = p.get("match[]", [])
        if not selectors:
            raise BadInput("missing parameter 'match[]': give at least one series selector")
        start, end = _opt_time(p, "start"), _opt_time(p, "end")
        return lambda: series_match(aurora.tsdb, selectors, start, end)

    return await _prometheus(request, plan)


@router.api_route("/api/v1/labels", methods=["GET", "POST"], dependencies=read_scope)
@router.api_route("/api/v1/label/{name}/values", methods=["GET"], dependencies=read_scope)
async def labels(request: Request, name: str | None = None) -> Response:
    from aurora.query.promql import label_names, label_values

    def plan(aurora: Aurora, p: dict[str, list[str]]) -> Callable[[], Any]:
        selectors = p.get("match[]") or None
        start, end = _opt_time(p, "start"), _opt_time(p, "end")
        if name is None:
            return lambda: label_names(aurora.tsdb, selectors, start, end)
        return lambda: label_values(aurora.tsdb, name, selectors, start, end)

    return await _prometheus(request, plan)


@router.get("/api/v1/status/buildinfo", dependencies=read_scope)
async def buildinfo() -> dict[str, Any]:
    """Grafana asks this to pick query features; Aurora answers with its own version."""
    from aurora import __version__

    return {"status": "success", "data": {"version": __version__, "revision": "", "branch": "",
                                          "buildUser": "", "buildDate": "", "goVersion": "none (aurora)"}}


@router.get("/api/v1/metadata", dependencies=read_scope)
async def metadata() -> dict[str, Any]:
    """Metric metadata (HELP/TYPE) is not kept yet: an empty, well-formed answer for Grafana."""
    return {"status": "success", "data": {}}


@router.get("/api/v1/status", dependencies=read_scope)
async def status(request: Request) -> dict[str, Any]:
    return await run_in_threadpool(get_aurora(request).status)


@router.get("/api/v1/targets", dependencies=read_scope)
async def targets(request: Request) -> dict[str, Any]:
    return {"targets": get_aurora(request).targets()}


@router.get("/api/v1/events", dependencies=read_scope)
async def list_events(request: Request, service: str | None = None, kind: str | None = None,
                      start: float | None = None, end: float | None = None, limit: int = 1000) -> dict[str, Any]:
    evs = await run_in_threadpool(get_aurora(request).events.query, service, kind, start, end, min(limit, 10_000))
    return {"events": evs}


@router.get("/api/v1/anomalies", dependencies=read_scope)
async def list_anomalies(request: Request, start: float | None = None, end: float | None = None,
                         service: str | None = None, limit: int = 1000) -> dict[str, Any]:
    """Anomalies with their evidence (expected range, observed value, detectors, explanation), newest first."""
    if limit < 1:
        raise BadInput("limit must be at least 1")
    found = await run_in_threadpool(get_aurora(request).anomalies.query, start, end, service, min(limit, 10_000))
    return {"anomalies": found}


@router.get("/api/v1/alerts", dependencies=read_scope)
async def list_alerts(request: Request, status: str | None = None) -> dict[str, Any]:
    if status not in (None, "firing", "resolved"):
        raise BadInput("status must be 'firing' or 'resolved'")
    return {"alerts": await run_in_threadpool(get_aurora(request).alerts.query, status)}


@router.get("/api/v1/stream", dependencies=read_scope)
async def stream(request: Request) -> StreamingResponse:
    """Server-sent events: everything published on the bus, plus a status heartbeat every few seconds."""
    aurora = get_aurora(request)
    q = aurora.bus.subscribe()

    async def gen() -> AsyncIterator[bytes]:
        try:
            yield b": connected\n\n"
            while True:
                try:
                    msg = await asyncio.wait_for(q.get(), timeout=5.0)
                except TimeoutError:
                    wm = aurora.clock.watermark_ms
                    msg = {"event": "heartbeat", "data": {"data_time": None if wm is None else wm / 1000,
                                                          "samples": aurora.counters["samples"]}}
                if await request.is_disconnected():
                    return
                yield f"event: {msg['event']}\ndata: {json.dumps(msg['data'])}\n\n".encode()
        finally:
            aurora.bus.unsubscribe(q)

    return StreamingResponse(gen(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/metrics", dependencies=read_scope)
async def self_metrics(request: Request) -> Response:
    aurora = get_aurora(request)
    aurora.refresh_gauges()
    return Response(generate_latest(aurora.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    aurora = get_aurora(request)
    problems = []
    if not aurora.opened:
        problems.append("store not open")
    try:
        def ping() -> None:
            with aurora.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        await run_in_threadpool(ping)
    except Exception as exc:
        problems.append(f"database: {exc.__class__.__name__}")
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})
