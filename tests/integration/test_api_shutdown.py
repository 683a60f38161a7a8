"""SIGTERM shuts the server down cleanly: exit code 0, and the store's close() ran (chunks flushed).

uvicorn re-raises SIGTERM after its graceful shutdown; left to the default handler that kills the process
before Aurora's own shutdown code runs."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.server import ServerProcess


def test_sigterm_exits_zero_after_closing_the_store(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data").start()
    with srv.client() as c:
        t = time.time() - 60
        body = {"series": [{"metric": "queue_depth", "labels": {"service": "worker"},
                            "points": [[t + i, float(i)] for i in range(50)]}]}
        assert c.post("/api/v1/ingest", json=body).status_code == 200
    srv.stop()
    assert srv.proc is not None and srv.proc.returncode == 0, srv.log.read_text()
    assert "Traceback" not in srv.log.read_text()
    # Restarted, the samples are all there (from chunks written at close, or the WAL).
    srv2 = ServerProcess(tmp_path / "data").start()
    try:
        with srv2.client() as c:
            r = c.get("/api/v1/query_range", params={"query": "queue_depth", "start": t, "end": t + 49,
                                                      "step": 1}).json()
        assert len(r["data"]["result"][0]["values"]) == 50
    finally:
        srv2.stop()
