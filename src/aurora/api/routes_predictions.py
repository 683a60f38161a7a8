"""Prediction and risk endpoints (scope ``read``): what will break, when, and how sure Aurora is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from aurora.api.deps import get_aurora, require
from aurora.errors import BadInput, NotFound
from aurora.predict.store import STATES

router = APIRouter()
read_scope = [Depends(require("read"))]


@router.get("/api/v1/predictions", dependencies=read_scope)
async def list_predictions(request: Request, service: str | None = None, active: bool = True,
                           state: str | None = None, metric: str | None = None, start: float | None = None,
                           end: float | None = None, limit: int = 500) -> dict[str, Any]:
    """Predictions newest first: by default the active ones; ``active=false`` adds the withdrawn and
    confirmed ones (``state=`` picks one state); ``start``/``end`` bound them in event time."""
    if state is not None and state not in STATES:
        raise BadInput(f"state must be one of {', '.join(STATES)}")
    if limit < 1:
        raise BadInput("limit must be at least 1")
    if start is not None and end is not None and end < start:
        raise BadInput("end is before start")
    aurora = get_aurora(request)
    found = await run_in_threadpool(aurora.prediction_records, service, active and state is None, state=state,
                                    metric=metric, start=start, end=end, limit=min(limit, 10_000))
    return {"predictions": found, "now": aurora.clock.now()}


@router.get("/api/v1/predictions/{prediction_id}", dependencies=read_scope)
async def get_prediction(request: Request, prediction_id: int) -> dict[str, Any]:
    found = await run_in_threadpool(get_aurora(request).prediction_store.get, prediction_id)
    if found is None:
        raise NotFound(f"no prediction {prediction_id}")
    return found


@router.get("/api/v1/risk", dependencies=read_scope)
async def risk(request: Request, service: str | None = None) -> dict[str, Any]:
    """Per service a 0-100 risk score with its factors (predictions, anomalies, incidents, changes)."""
    aurora = get_aurora(request)
    scores = await run_in_threadpool(aurora.risk_scores)
    if service is not None:
        scores = [s for s in scores if s["service"] == service]
    return {"services": scores, "now": aurora.clock.now()}
