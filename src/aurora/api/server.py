"""The HTTP server: FastAPI app over one Aurora engine."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aurora import __version__
from aurora.api import (
    routes_admin,
    routes_incidents,
    routes_ingest,
    routes_predictions,
    routes_read,
    routes_remedy,
    routes_topology,
)
from aurora.app import Aurora
from aurora.errors import AuroraError
from aurora.notify import routes as routes_notify


def create_app(aurora: Aurora, background: bool = True) -> FastAPI:
    """``background`` starts the scraper, host agent and maintenance with the server."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background:
            await aurora.start_background()
        try:
            yield
        finally:
            await aurora.stop_background()

    app = FastAPI(title="Aurora", version=__version__, lifespan=lifespan,
                  description="Self-hosted AIOps engine. HTTP API v1.")
    app.state.aurora = aurora

    @app.exception_handler(AuroraError)
    async def aurora_error(_: Request, exc: AuroraError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        msgs = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "bad_input", "message": "; ".join(msgs)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code)

    @app.middleware("http")
    async def timing(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        aurora.metrics.http_duration.labels(path, request.method, str(response.status_code)).observe(
            time.perf_counter() - t0)
        return response

    app.include_router(routes_ingest.router)
    app.include_router(routes_read.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_incidents.router)
    app.include_router(routes_topology.router)
    app.include_router(routes_predictions.router)
    app.include_router(routes_remedy.router)
    app.include_router(routes_notify.router)
    from aurora.web import install as install_web  # the dashboard depends on the API, not the other way round

    install_web(app)
    return app
