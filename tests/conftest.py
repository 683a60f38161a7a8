"""Shared fixtures: every storage-touching test runs against SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("AURORA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> bool:
    try:
        eng = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


PG_OK = _pg_available()
# In CI a missing PostgreSQL is a failure, not a skip: .ci/run starts it.
REQUIRE_PG = os.environ.get("CI") == "true" or os.environ.get("AURORA_REQUIRE_PG") == "1"


@contextlib.contextmanager
def pg_schema(prefix: str = "t") -> Iterator[str]:
    """The URL of a private, empty schema in the PostgreSQL test database, dropped afterwards; skips the test
    (fails it in CI) when PostgreSQL does not answer."""
    if not PG_OK:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required but does not answer at {PG_ADMIN_URL}")
        pytest.skip("PostgreSQL not available")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a private schema in the PostgreSQL test database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'aurora.db'}"
        return
    with pg_schema() as url:
        yield url
