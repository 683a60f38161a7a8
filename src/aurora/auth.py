"""API tokens with scopes, stored as SHA-256 hashes (tokens are 256-bit random, so no slow KDF is needed).

Scopes: ``ingest`` (write data), ``read``, ``operate`` (approve actions, ack/resolve; implies read) and
``admin`` (everything).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, insert, select, update

from aurora.db.tables import tokens
from aurora.errors import BadInput

SCOPES = ("ingest", "read", "operate", "admin")
IMPLIED = {"admin": set(SCOPES), "operate": {"operate", "read"}, "read": {"read"}, "ingest": {"ingest"}}
TOKEN_PREFIX = "aur_"
CACHE_TTL_S = 5.0  # a revoked token stops working within this long


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    token_id: int | None = None

    def allows(self, scope: str) -> bool:
        return any(scope in IMPLIED[s] for s in self.scopes)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(raw: list[str] | str) -> list[str]:
    parts = [raw] if isinstance(raw, str) else raw
    items = [s for r in parts for s in r.replace(",", " ").split()]
    bad = [s for s in items if s not in SCOPES]
    if bad or not items:
        raise BadInput(f"unknown or missing scope {bad or items}; choose from {', '.join(SCOPES)}")
    return sorted(set(items), key=SCOPES.index)


class TokenStore:
    def __init__(self, engine: Engine, env_admin_token: str | None = None) -> None:
        self._engine = engine
        self._env_admin = env_admin_token or None
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._lock = threading.Lock()

    def create(self, name: str, scopes: list[str] | str) -> tuple[str, int]:
        """Create a token; returns the plaintext (shown once) and its id."""
        chosen = parse_scopes(scopes)
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._engine.begin() as conn:
            row_id = conn.execute(
                insert(tokens).values(name=name, token_hash=hash_token(plain), prefix=plain[:10],
                                      scopes=" ".join(chosen), created_at=time.time(), revoked=False)
            ).inserted_primary_key
        assert row_id is not None
        return plain, int(row_id[0])

    def list(self) -> list[dict[str, object]]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(tokens).order_by(tokens.c.id)).mappings().all()
        return [{"id": r["id"], "name": r["name"], "prefix": r["prefix"], "scopes": r["scopes"].split(),
                 "created_at": r["created_at"], "revoked": bool(r["revoked"])} for r in rows]

    def revoke(self, token_id: int) -> bool:
        with self._engine.begin() as conn:
            n = conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked=True)).rowcount
        with self._lock:
            self._cache.clear()
        return n > 0

    def has_admin(self) -> bool:
        with self._engine.connect() as conn:
            rows = conn.execute(select(tokens.c.scopes).where(tokens.c.revoked.is_(False))).scalars().all()
        return any("admin" in s.split() for s in rows)

    def verify(self, token: str) -> Principal | None:
        if not token:
            return None
        if self._env_admin and hmac.compare_digest(token.encode(), self._env_admin.encode()):
            return Principal("AURORA_ADMIN_TOKEN", frozenset({"admin"}))
        digest = hash_token(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        with self._engine.connect() as conn:
            row = conn.execute(select(tokens).where(tokens.c.token_hash == digest)).mappings().first()
        principal = None
        if row is not None and not row["revoked"]:
            principal = Principal(row["name"], frozenset(row["scopes"].split()), int(row["id"]))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (principal, now + CACHE_TTL_S)
        return principal


def ensure_admin_token(store: TokenStore, data_dir: Path, env_token: str | None) -> str | None:
    """First start without AURORA_ADMIN_TOKEN: create an admin token, write it to data_dir/admin.token
    (mode 0600) and return it so the caller can print it. Returns None when nothing was created."""
    if env_token:
        return None
    path = data_dir / "admin.token"
    if path.exists() or store.has_admin():
        return None
    plain, _ = store.create("admin (first start)", ["admin"])
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(plain + "\n")
    return plain
