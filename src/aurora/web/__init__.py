"""The Tech Command Center: Aurora's server-rendered dashboard (Jinja2 + htmx, uPlot and ECharts charts).

``install(app)`` adds the pages under ``/ui/``, the static files under ``/ui/static/`` and the session
machinery; the API module includes it, and nothing in the engine imports this package.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from aurora.web.assets import STATIC_DIR, CachedStatic
from aurora.web.auth import LoginRequired, NotAllowed, PrincipalLookup
from aurora.web.forms import CsrfFailed
from aurora.web.render import SECURITY_HEADERS, page
from aurora.web.session import SessionSigner, load_key

__all__ = ["install"]


def install(app: FastAPI) -> None:
    from aurora.web import (
        routes_analysis,
        routes_auth,
        routes_incidents,
        routes_pages,
        routes_remedy,
        routes_settings,
        routes_stream,
    )

    aurora = app.state.aurora
    app.state.web_signer = SessionSigner(load_key(aurora.cfg.storage.data_dir))
    app.state.web_principals = PrincipalLookup()

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        url = f"/ui/login?next={quote(target)}" if request.method == "GET" else "/ui/login"
        if request.headers.get("hx-request"):  # htmx follows HX-Redirect with a full page load
            return Response(status_code=200, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, exc: NotAllowed) -> Response:
        return page(request, "error.html", status=403, title="Not allowed", message=exc.message)

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, _: CsrfFailed) -> Response:
        return page(request, "error.html", status=403, title="Form expired",
                    message="The form did not carry this session's security token (CSRF), so nothing was changed. "
                            "Go back, reload the page and submit it again.")

    for module in (routes_auth, routes_pages, routes_incidents, routes_remedy, routes_analysis, routes_settings,
                   routes_stream):
        app.include_router(module.router, include_in_schema=False)
    app.mount("/ui/static", CachedStatic(directory=STATIC_DIR, check_dir=False), name="web-static")
