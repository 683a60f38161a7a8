"""Acknowledged writes survive kill -9 of the server."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.server import ServerProcess


def test_acknowledged_writes_survive_kill9(db_url: str, tmp_path: Path) -> None:
    pg = None if db_url.startswith("sqlite") else db_url
    srv = ServerProcess(tmp_path / "data", pg).start()
    n_batches, per = 30, 50
    t0 = int(time.time()) - 15 * n_batches * per - 3600
    try:
        with srv.client() as c:
            for b in range(n_batches):
                body = {"series": [{"metric": "durable_total", "labels": {"shard": str(s)},
                                    "points": [[t0 + 15 * (b * per + k), float(b * per + k)] for k in range(per)]}
                                   for s in range(5)]}
                assert c.post("/api/v1/ingest", json=body).status_code == 200
        srv.kill9()
        srv2 = ServerProcess(tmp_path / "data", pg).start()
        try:
            end = t0 + 15 * (n_batches * per - 1)
            with srv2.client() as c:
                r = c.get("/api/v1/query_range", params={"query": 'durable_total{shard="3"}', "start": t0,
                                                          "end": end, "step": 15})
            values = r.json()["data"]["result"][0]["values"]
            assert len(values) == n_batches * per
            assert [float(v) for _, v in values] == [float(i) for i in range(n_batches * per)]
        finally:
            srv2.stop()
    finally:
        srv.stop()
