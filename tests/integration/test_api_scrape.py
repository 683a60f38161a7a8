"""A scraped Prometheus target: its samples come back exactly through query_range; `up` tracks health."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.server import ServerProcess, free_port

PAGE = """# HELP shop_orders_total Orders placed.
# TYPE shop_orders_total counter
shop_orders_total{region="eu"} 1027
shop_orders_total{region="us"} 5
# TYPE shop_temperature gauge
shop_temperature 21.75
"""


@pytest.fixture
def target() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_scraped_target_round_trips(target: str, tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    cfg = tmp_path / "aurora.yaml"
    cfg.write_text("scrape:\n  - name: shop\n    interval_s: 1\n    timeout_s: 1\n"
                   f"    targets: ['{target}', '{dead}']\n")
    srv = ServerProcess(tmp_path / "data", config=cfg).start()
    try:
        deadline = time.monotonic() + 20
        result: list[dict] = []
        with srv.client() as c:
            while time.monotonic() < deadline:
                r = c.get("/api/v1/query", params={"query": "shop_orders_total"})
                result = r.json()["data"]["result"]
                if len(result) == 2:
                    break
                time.sleep(0.3)
            assert len(result) == 2, result
            by_region = {s["metric"]["region"]: float(s["value"][1]) for s in result}
            assert by_region == {"eu": 1027.0, "us": 5.0}
            assert {s["metric"]["job"] for s in result} == {"shop"}
            assert {s["metric"]["instance"] for s in result} == {target}
            temp = c.get("/api/v1/query", params={"query": "shop_temperature"}).json()["data"]["result"]
            assert float(temp[0]["value"][1]) == 21.75
            up = c.get("/api/v1/query", params={"query": "up"}).json()["data"]["result"]
            health = {s["metric"]["instance"]: float(s["value"][1]) for s in up}
            assert health.get(target) == 1.0
            deadline = time.monotonic() + 10
            while dead not in health and time.monotonic() < deadline:
                time.sleep(0.3)
                up = c.get("/api/v1/query", params={"query": "up"}).json()["data"]["result"]
                health = {s["metric"]["instance"]: float(s["value"][1]) for s in up}
            assert health.get(dead) == 0.0
            targets = c.get("/api/v1/targets").json()["targets"]
            assert any(t["health"] != "up" and t["last_error"] for t in targets)
    finally:
        srv.stop()
