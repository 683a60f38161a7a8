"""Settings (admin only): notification channels and their delivery log, and API tokens (create, revoke).

Token changes go through ``TokenStore`` and are audited as the API's are (``token.create``,
``token.revoke``). A new token's plaintext is in the response to the form post and nowhere else: it is
stored only as a hash, so that page is the one chance to copy it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from aurora.api.deps import get_aurora
from aurora.auth import SCOPES, parse_scopes
from aurora.errors import AuroraError
from aurora.web import settings
from aurora.web.auth import WebUser, require_user
from aurora.web.forms import check_csrf, read_fields, read_form
from aurora.web.render import SECURITY_HEADERS, page

router = APIRouter()
admin = Depends(require_user("admin"))
MAX_NAME = 200


def _ctx(aurora: Any) -> dict[str, Any]:
    return {"tokens": aurora.tokens.list(), "channels": settings.channels(aurora), "routes": settings.routes(aurora),
            "deliveries": settings.deliveries(aurora), "scopes": SCOPES}


async def _page(request: Request, status: int = 200, **extra: Any) -> Response:
    ctx = await run_in_threadpool(_ctx, get_aurora(request))
    return page(request, "settings.html", status=status, **{"created": None, "error": None, "form": {}, **ctx,
                                                             **extra})


@router.get("/ui/settings")
async def settings_page(request: Request, user: WebUser = admin) -> Response:
    return await _page(request, revoked=request.query_params.get("revoked"))


@router.get("/ui/settings/tokens")
async def tokens_page(request: Request, user: WebUser = admin) -> Response:
    return await _page(request, revoked=request.query_params.get("revoked"))


@router.post("/ui/settings/tokens")
async def create_token(request: Request, user: WebUser = admin) -> Response:
    fields = await read_fields(request)
    form, scopes = {k: v[-1] for k, v in fields.items()}, fields.get("scope", [])
    check_csrf(request, user, form)
    name = form.get("name", "").strip()
    aurora = get_aurora(request)
    try:
        if not name or len(name) > MAX_NAME:
            raise ValueError(f"Give the token a name of 1 to {MAX_NAME} characters (who or what will use it), "
                             "so you can tell it apart when revoking.")
        chosen = parse_scopes(scopes)
    except (ValueError, AuroraError) as exc:
        msg = exc.message if isinstance(exc, AuroraError) else str(exc)
        if not scopes:
            msg = f"Tick at least one scope ({', '.join(SCOPES)}): a token without scopes can do nothing."
        return await _page(request, status=400, error=msg, form={"name": name, "scopes": scopes})
    plain, tid = await run_in_threadpool(aurora.tokens.create, name, chosen)
    await run_in_threadpool(aurora.record_audit, user.principal.name, "token.create", str(tid),
                            {"name": name, "scopes": chosen, "via": "dashboard"})
    return await _page(request, status=201, created={"id": tid, "name": name, "scopes": chosen, "token": plain})


@router.post("/ui/settings/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: int, user: WebUser = admin) -> Response:
    check_csrf(request, user, await read_form(request))
    aurora = get_aurora(request)
    if not await run_in_threadpool(aurora.tokens.revoke, token_id):
        return await _page(request, status=404, error=f"There is no token with id {token_id}; the list below "
                                                       "shows the ones there are.")
    await run_in_threadpool(aurora.record_audit, user.principal.name, "token.revoke", str(token_id),
                            {"via": "dashboard"})
    return RedirectResponse(f"/ui/settings?revoked={token_id}#tokens", status_code=303, headers=SECURITY_HEADERS)
