"""Logging in with a token (-> a signed session cookie) and logging out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from aurora.api.deps import get_aurora
from aurora.auth import hash_token
from aurora.web.auth import WebUser, require_user, signer
from aurora.web.forms import check_csrf, read_form, safe_next
from aurora.web.render import SECURITY_HEADERS, page
from aurora.web.session import COOKIE, LOGIN_COOKIE, LOGIN_TTL_S, SESSION_TTL_S

router = APIRouter()


def _login_form(request: Request, status: int = 200, error: str | None = None, nonce: str | None = None,
                next_path: str | None = None) -> Response:
    s = signer(request)
    nonce = nonce or request.cookies.get(LOGIN_COOKIE) or ""
    if s.login_csrf(nonce) is None:
        nonce = s.login_nonce()
    resp = page(request, "login.html", status=status, error=error, login_csrf=s.login_csrf(nonce),
                next=safe_next(next_path or request.query_params.get("next")))
    resp.set_cookie(LOGIN_COOKIE, nonce, max_age=int(LOGIN_TTL_S), httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path="/ui/")
    return resp


@router.get("/ui/login")
async def login_form(request: Request) -> Response:
    return _login_form(request)


@router.post("/ui/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    s = signer(request)
    expected = s.login_csrf(request.cookies.get(LOGIN_COOKIE))
    if expected is None or form.get("csrf") != expected:
        return _login_form(request, 403, "The login form expired or did not come from this page. "
                                         "It has been reloaded: paste your token again.", next_path=form.get("next"))
    token = form.get("token", "").strip()
    aurora = get_aurora(request)
    principal = await run_in_threadpool(aurora.tokens.verify, token) if token else None
    if principal is None:
        return _login_form(request, 401, "That token is not valid or was revoked. Use a token from "
                                         "'aurora token create --scope read' (or operate/admin), or the admin "
                                         "token in <data-dir>/admin.token.", next_path=form.get("next"))
    if not principal.allows("read"):
        return _login_form(request, 403, f"This token's scopes ({', '.join(sorted(principal.scopes))}) do not "
                                         "include 'read', which the dashboard needs. Log in with a read, operate "
                                         "or admin token.", next_path=form.get("next"))
    value, _ = s.issue(hash_token(token))
    await run_in_threadpool(aurora.record_audit, principal.name, "web.login", "dashboard", {})
    target = form.get("next") or request.query_params.get("next")
    resp = RedirectResponse(safe_next(target), status_code=303, headers=SECURITY_HEADERS)
    resp.set_cookie(COOKIE, value, max_age=int(SESSION_TTL_S), httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path="/")
    resp.delete_cookie(LOGIN_COOKIE, path="/ui/")
    return resp


@router.post("/ui/logout")
async def logout(request: Request, user: WebUser = Depends(require_user("read"))) -> Response:
    check_csrf(request, user, await read_form(request))
    signer(request).end(user.session)
    resp = RedirectResponse("/ui/login", status_code=303, headers=SECURITY_HEADERS)
    resp.delete_cookie(COOKIE, path="/")
    return resp
