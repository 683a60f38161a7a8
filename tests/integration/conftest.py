from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.server import ServerProcess


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real server on a loopback port, on SQLite or PostgreSQL (see the db_url fixture)."""
    srv = ServerProcess(tmp_path / "data", None if db_url.startswith("sqlite") else db_url).start()
    yield srv
    srv.stop()
