"""Analysis pages: model health of AI services and the persistent-homology view of any service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from aurora.api.deps import get_aurora
from aurora.model import escape_label_value
from aurora.predict.limits import LIMITS
from aurora.web import adapter, homology_view
from aurora.web.auth import WebUser, require_user
from aurora.web.charts import RANGES, metrics_of, service_charts, unit_of
from aurora.web.queries import data_now, instant_by
from aurora.web.render import page

router = APIRouter()
reader = Depends(require_user("read"))
MODEL_PREFIX = "model_"


def is_model_metric(metric: str) -> bool:
    return metric.startswith(MODEL_PREFIX)


def model_services(aurora: Any) -> list[str]:
    return sorted({i.labels.get("service", "") for i in aurora.tsdb.all_series()
                   if is_model_metric(i.metric) and i.labels.get("service")})


def _range(request: Request) -> str:
    r = request.query_params.get("range", "6h")
    return r if r in RANGES else "6h"


@router.get("/ui/models")
async def models_page(request: Request, user: WebUser = reader) -> Response:
    """AI services (the services with model_* series), and every service's homology view."""
    aurora = get_aurora(request)
    models = await run_in_threadpool(model_services, aurora)
    return page(request, "models.html", models=models, services=sorted(aurora.topology.services()))


def _model(aurora: Any, service: str) -> dict[str, Any]:
    at = data_now(aurora)
    sel = f'{{service="{escape_label_value(service)}"}}'
    latest = []
    for m in [m for m in metrics_of(aurora, service) if is_model_metric(m)]:
        v = instant_by(aurora, f"max by (service) ({m}{sel})", at, "service").get(service)
        floor = LIMITS.get(m)
        latest.append({"metric": m, "value": v, "unit": unit_of(m),
                       "floor": floor[0] if floor and not isinstance(floor[0], str) else None})
    preds = [p for p in adapter.predictions(aurora, service, True) or [] if is_model_metric(str(p.get("metric")))]
    return {"service": service, "latest": latest, "predictions": preds, "now": at}


@router.get("/ui/models/{service}")
async def model_page(request: Request, service: str, user: WebUser = reader) -> Response:
    aurora = get_aurora(request)
    if service not in await run_in_threadpool(model_services, aurora):
        return page(request, "error.html", status=404, title="Not an AI service",
                    message=f"'{service}' reports no model_* metrics (such as model_accuracy_ratio), so there is no "
                            "model health to show. The Models page lists the services that do.")
    ctx = await run_in_threadpool(_model, aurora, service)
    return page(request, "model.html", range=_range(request), ranges=list(RANGES), **ctx)


@router.get("/ui/models/{service}/charts.json")
async def model_chart_data(request: Request, service: str, user: WebUser = reader) -> Response:
    data = await run_in_threadpool(service_charts, get_aurora(request), service, RANGES[_range(request)],
                                   is_model_metric)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@router.get("/ui/services/{name}/homology")
async def homology_page(request: Request, name: str, user: WebUser = reader) -> Response:
    aurora = get_aurora(request)
    if name not in aurora.topology.services() and not await run_in_threadpool(metrics_of, aurora, name):
        return page(request, "error.html", status=404, title="Unknown service",
                    message=f"Aurora knows no service named '{name}'. Pick one from the Models or Services page.")
    return page(request, "homology.html", service=name, live=aurora.cfg.detection.homology.enabled)


@router.get("/ui/services/{name}/homology.json")
async def homology_data(request: Request, name: str, user: WebUser = reader) -> Response:
    data = await run_in_threadpool(homology_view.view, get_aurora(request), name)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})
