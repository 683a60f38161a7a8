from __future__ import annotations

from pathlib import Path

import pytest

from aurora.auth import TokenStore, ensure_admin_token, hash_token
from aurora.db.database import create_db_engine, migrate
from aurora.errors import BadInput


def test_tokens_hashed_scoped_and_revocable(db_url: str, tmp_path: Path) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    store = TokenStore(engine)
    plain, tid = store.create("ci", ["read", "ingest"])
    p = store.verify(plain)
    assert p is not None and p.allows("read") and p.allows("ingest") and not p.allows("operate")
    assert hash_token(plain) not in plain
    assert all(plain not in str(t) for t in store.list())  # never listed in clear
    with pytest.raises(BadInput):
        store.create("x", ["superuser"])
    assert store.revoke(tid)
    assert store.verify(plain) is None
    op, _ = store.create("oncall", "operate")
    p2 = store.verify(op)
    assert p2 is not None and p2.allows("read") and not p2.allows("admin")
    admin = ensure_admin_token(store, tmp_path, None)
    assert admin and (tmp_path / "admin.token").stat().st_mode & 0o777 == 0o600
    assert ensure_admin_token(store, tmp_path, None) is None  # only on first start
    engine.dispose()


def test_env_admin_token(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    store = TokenStore(engine, env_admin_token="s3cret")
    p = store.verify("s3cret")
    assert p is not None and p.allows("admin")
    assert store.verify("s3cre") is None
    engine.dispose()
