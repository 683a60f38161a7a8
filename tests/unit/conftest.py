"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aurora.db.database import create_db_engine, migrate
from aurora.remedy.store import ActionStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ActionStore]:
    """An action store on a fresh, migrated SQLite database."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate(engine)
    yield ActionStore(engine)
    engine.dispose()
