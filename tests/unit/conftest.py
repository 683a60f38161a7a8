"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from aurora.db.database import create_db_engine, migrate
from aurora.remedy.store import ActionStore


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh, migrated SQLite database."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'aurora.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(sqlite_engine: Engine) -> ActionStore:
    """An action store (test modules of other stores define their own ``store``)."""
    return ActionStore(sqlite_engine)
