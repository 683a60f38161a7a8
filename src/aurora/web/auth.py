"""Who is looking at the dashboard: the session cookie -> the token it was opened with -> a Principal.

The cookie carries the token's hash; each request looks the hash up (cached briefly, like ``TokenStore``)
so a revoked token's sessions stop working within seconds, and scopes always come from the token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import select

from aurora.api.deps import get_aurora
from aurora.auth import Principal, hash_token
from aurora.db.tables import tokens
from aurora.web.session import COOKIE, Session, SessionSigner, same

CACHE_TTL_S = 5.0


class LoginRequired(Exception):
    """No valid session: pages redirect to the login form."""


class NotAllowed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class WebUser:
    principal: Principal
    session: Session

    @property
    def can_operate(self) -> bool:
        return self.principal.allows("operate")

    @property
    def is_admin(self) -> bool:
        return self.principal.allows("admin")


class PrincipalLookup:
    """Token hash -> Principal (None when unknown or revoked), cached for a few seconds."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Request, digest: str) -> Principal | None:
        aurora = get_aurora(request)
        env = aurora.cfg.server.admin_token
        if env and same(digest, hash_token(env)):
            return Principal("AURORA_ADMIN_TOKEN", frozenset({"admin"}))
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        with aurora.engine.connect() as conn:
            row = conn.execute(select(tokens).where(tokens.c.token_hash == digest)).mappings().first()
        found = None
        if row is not None and not row["revoked"]:
            found = Principal(row["name"], frozenset(row["scopes"].split()), int(row["id"]))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (found, now + CACHE_TTL_S)
        return found


def signer(request: Request) -> SessionSigner:
    s: SessionSigner = request.app.state.web_signer
    return s


def current_user(request: Request) -> WebUser | None:
    session = signer(request).read(request.cookies.get(COOKIE))
    if session is None:
        return None
    lookup: PrincipalLookup = request.app.state.web_principals
    principal = lookup(request, session.token_hash)
    return None if principal is None else WebUser(principal, session)


def require_user(scope: str = "read") -> Callable[[Request], WebUser]:
    """A dependency: the logged-in user, who must hold ``scope``."""

    def check(request: Request) -> WebUser:
        user = current_user(request)
        if user is None:
            raise LoginRequired()
        if not user.principal.allows(scope):
            have = ", ".join(sorted(user.principal.scopes))
            raise NotAllowed(f"This page needs the '{scope}' scope; the token you logged in with has {have}. "
                             f"Log in with a token that has '{scope}' (create one with "
                             f"'aurora token create --scope {scope}').")
        request.state.web_user = user
        return user

    return check
