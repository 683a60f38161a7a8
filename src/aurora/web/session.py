"""Signed session cookies and CSRF tokens for the dashboard (no server-side session store).

The cookie holds ``{sid, th, csrf, exp}``: a random session id, the SHA-256 of the token the user logged in
with (never the token), the session's CSRF token and its expiry, signed with HMAC-SHA256 under a key kept in
the data dir. Every request re-checks ``th`` against the token table, so revoking a token ends its sessions.
Logout forgets the session id in memory until the cookie would have expired anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COOKIE = "aurora_session"
LOGIN_COOKIE = "aurora_login"  # a nonce that binds the login form's CSRF token to this browser
SESSION_TTL_S = 12 * 3600.0
LOGIN_TTL_S = 1800.0
KEY_FILE = "web-session.key"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    sid: str
    token_hash: str
    csrf: str
    expires: float


def load_key(data_dir: Path) -> bytes:
    """The signing key: read from the data dir, or created there (mode 0600) on first use, so sessions
    survive a restart."""
    path = data_dir / KEY_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


class SessionSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self._ended: dict[str, float] = {}  # sid -> expiry, for sessions ended by logout
        self._lock = threading.Lock()

    def _sign(self, body: bytes) -> str:
        return _b64(hmac.new(self._key, body, hashlib.sha256).digest())

    def _seal(self, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._sign(body.encode())}"

    def _open(self, value: str) -> dict[str, Any] | None:
        body, _, sig = value.partition(".")
        if not body or not sig or not hmac.compare_digest(sig, self._sign(body.encode())):
            return None
        try:
            payload = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            return None
        return payload if isinstance(payload, dict) else None

    # --- sessions -----------------------------------------------------------------------------
    def issue(self, token_hash: str, now: float | None = None) -> tuple[str, Session]:
        t = time.time() if now is None else now
        s = Session(secrets.token_urlsafe(16), token_hash, secrets.token_urlsafe(24), t + SESSION_TTL_S)
        return self._seal({"sid": s.sid, "th": s.token_hash, "csrf": s.csrf, "exp": s.expires}), s

    def read(self, value: str | None, now: float | None = None) -> Session | None:
        if not value:
            return None
        p = self._open(value)
        t = time.time() if now is None else now
        try:
            s = Session(str(p["sid"]), str(p["th"]), str(p["csrf"]), float(p["exp"])) if p else None
        except (KeyError, TypeError, ValueError):
            return None
        if s is None or s.expires <= t:
            return None
        with self._lock:
            if s.sid in self._ended:
                return None
        return s

    def end(self, s: Session) -> None:
        now = time.time()
        with self._lock:
            self._ended = {k: v for k, v in self._ended.items() if v > now}  # forget sessions past expiry
            self._ended[s.sid] = s.expires

    # --- the login form's CSRF token ----------------------------------------------------------
    def login_nonce(self) -> str:
        return self._seal({"n": secrets.token_urlsafe(16), "exp": time.time() + LOGIN_TTL_S})

    def login_csrf(self, nonce_cookie: str | None) -> str | None:
        """The CSRF token the login form must carry, derived from the browser's login cookie."""
        p = self._open(nonce_cookie or "")
        if not p or float(p.get("exp", 0)) <= time.time():
            return None
        return self._sign(b"login:" + str(p.get("n")).encode())


def same(a: str | None, b: str | None) -> bool:
    """Constant-time comparison that is False when either side is missing."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())
