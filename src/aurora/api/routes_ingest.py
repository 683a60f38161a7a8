"""Ingest endpoints: JSON push, Prometheus remote_write, OTLP/HTTP metrics, change events, Alertmanager."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from aurora.api.deps import decompress, get_aurora, read_body, require
from aurora.api.json_ingest import parse_json_ingest
from aurora.errors import BadInput
from aurora.ingest.alertmanager import parse_alertmanager
from aurora.ingest.events import parse_events

router = APIRouter()
REMOTE_WRITE_TYPES = ("application/x-protobuf", "application/octet-stream")


def _content_type(request: Request) -> str | None:
    ctype = request.headers.get("content-type")
    return None if ctype is None else ctype.split(";")[0].strip().lower()


def _refuse_type(ctype: str, expected: str) -> BadInput:
    return BadInput(f"Content-Type {ctype!r} does not fit this endpoint: send {expected} (or no Content-Type)",
                    status=415)


async def _raw_json_body(request: Request) -> tuple[Any, bytes]:
    ctype = _content_type(request)  # none given is read as JSON; a body declared as something else is not
    if ctype is not None and not (ctype.endswith("/json") or ctype.endswith("+json")):
        raise _refuse_type(ctype, "application/json")
    limit = get_aurora(request).cfg.server.max_body_bytes
    raw = decompress(await read_body(request, limit), request.headers.get("content-encoding"), limit)
    try:
        return json.loads(raw), raw
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"body is not valid JSON: {exc}") from exc


async def _json_body(request: Request) -> Any:
    return (await _raw_json_body(request))[0]


@router.post("/api/v1/ingest", dependencies=[Depends(require("ingest"))])
async def ingest_json(request: Request, sync: bool = False) -> dict[str, int]:
    aurora = get_aurora(request)
    body, raw = await _raw_json_body(request)
    batch = parse_json_ingest(body, may_have_literals=b"true" in raw or b"false" in raw or b"null" in raw)
    accepted = await run_in_threadpool(aurora.ingest, batch, "json", sync)
    return {"accepted": accepted}


@router.post("/api/v1/write", status_code=204, dependencies=[Depends(require("ingest"))])
async def remote_write(request: Request) -> Response:
    from aurora.ingest.remote_write import decode_remote_write

    aurora = get_aurora(request)
    ctype = _content_type(request)
    if ctype is not None and ctype not in REMOTE_WRITE_TYPES:
        raise _refuse_type(ctype, "application/x-protobuf (snappy-compressed remote_write 1.0)")
    limit = aurora.cfg.server.max_body_bytes
    body = await read_body(request, limit)
    encoding = request.headers.get("content-encoding")

    # Decoding and storing run on the event loop (they hold the GIL anyway, and a thread hop per request
    # costs more than it frees); only the WAL fsync, which waits on the disk, goes to a thread, where
    # concurrent requests share it.
    batch = decode_remote_write(body, encoding, max_decoded_bytes=limit)  # TooLarge before inflating a bomb
    result = aurora.store_batch(batch, "remote_write")
    await run_in_threadpool(aurora.tsdb.commit, result.wal_position)
    return Response(status_code=204)


@router.post("/v1/metrics", dependencies=[Depends(require("ingest"))])
async def otlp_metrics(request: Request) -> Response:
    from aurora.ingest.otlp import decode_otlp_metrics

    aurora = get_aurora(request)
    limit = aurora.cfg.server.max_body_bytes
    body = decompress(await read_body(request, limit), request.headers.get("content-encoding"), limit)
    ctype = request.headers.get("content-type", "application/x-protobuf").split(";")[0].strip().lower()
    if ctype not in ("application/x-protobuf", "application/json"):
        raise BadInput(f"Content-Type {ctype!r} is not OTLP; use application/x-protobuf or application/json",
                       status=415)

    def work() -> None:
        aurora.ingest(decode_otlp_metrics(body, ctype), "otlp")

    await run_in_threadpool(work)
    # OTLP/HTTP success: an (empty) ExportMetricsServiceResponse in the request's encoding.
    if ctype == "application/json":
        return Response(content=b"{}", media_type="application/json")
    return Response(content=b"", media_type="application/x-protobuf")


@router.post("/api/v1/events", dependencies=[Depends(require("ingest"))])
async def post_events(request: Request) -> dict[str, Any]:
    aurora = get_aurora(request)
    evs = parse_events(await _json_body(request), aurora.clock, aurora.cfg.limits.max_future_s,
                       aurora.cfg.limits.min_time_s)
    ids = await run_in_threadpool(aurora.add_events, evs)
    return {"accepted": len(ids), "ids": ids}


@router.post("/api/v1/alerts/alertmanager", dependencies=[Depends(require("ingest"))])
async def alertmanager_webhook(request: Request) -> dict[str, Any]:
    aurora = get_aurora(request)
    items = parse_alertmanager(await _json_body(request))
    n = await run_in_threadpool(aurora.add_alerts, items)
    return {"accepted": n}
