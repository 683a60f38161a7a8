"""`aurora demo`: a live simulated fleet streams into the server, faults arrive on schedule."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.server import ServerProcess


def test_demo_streams_the_fleet(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", command=["demo", "--speed", "60x", "--backfill-hours", "0.5"])
    srv.start()
    try:
        with srv.client() as c:
            deadline = time.monotonic() + 30
            services: set[str] = set()
            while time.monotonic() < deadline:
                r = c.get("/api/v1/label/service/values")
                services = set(r.json()["data"])
                if len(services) >= 12:
                    break
                time.sleep(0.5)
            assert {"gateway", "cart", "checkout", "postgres", "recommender"} <= services
            # The first scheduled fault is a bad deployment of cart: its deployment event arrives.
            deadline = time.monotonic() + 40
            kinds: set[tuple[str, str]] = set()
            while time.monotonic() < deadline:
                evs = c.get("/api/v1/events").json()["events"]
                kinds = {(e["kind"], e["service"]) for e in evs}
                if ("deployment", "cart") in kinds:
                    break
                time.sleep(0.5)
            assert ("deployment", "cart") in kinds
            data_time = c.get("/api/v1/status").json()["data_time"]  # faster than real time, data lags the clock
            r = c.get("/api/v1/query", params={"query": 'http_request_error_ratio{service="gateway"}',
                                               "time": data_time})
            assert r.json()["data"]["result"], "no live gateway error ratio"
    finally:
        srv.stop()
