"""Form posts from the dashboard: bounded body parsing and the CSRF check every form post passes."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request

from aurora.api.deps import read_body
from aurora.web.auth import WebUser
from aurora.web.session import same

MAX_FORM_BYTES = 64 * 1024


class CsrfFailed(Exception):
    """A form post without the session's CSRF token: refused, nothing changed."""


async def read_fields(request: Request) -> dict[str, list[str]]:
    """Every value of every field (a group of checkboxes sends one name several times)."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("application/x-www-form-urlencoded"):
        return {}
    body = await read_body(request, MAX_FORM_BYTES)
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields, the last value of each."""
    return {k: v[-1] for k, v in (await read_fields(request)).items()}


def check_csrf(request: Request, user: WebUser, form: dict[str, str]) -> None:
    sent = form.get("csrf") or request.headers.get("x-csrf-token")
    if not same(sent, user.session.csrf):
        raise CsrfFailed()


def safe_next(target: str | None, default: str = "/ui/") -> str:
    """Only paths of the dashboard itself (no //host, no scheme): a login must not redirect off-site."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return default
