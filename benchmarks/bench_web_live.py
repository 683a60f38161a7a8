"""How soon a live update reaches an open dashboard page: new data -> the page's EventSource -> a refresh.

A real `aurora serve` (event-time clock) with one service; headless Chromium holds the Service page open.
Each run posts one sample through ``POST /api/v1/ingest?sync=true`` and measures, from the moment the
server acknowledged it (wall clock, same machine), until (a) the page's ``aurora-data`` event and (b) its
charts were re-fetched and redrawn (``aurora-charts-drawn``).

    python benchmarks/bench_web_live.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.integration.server import ADMIN, ServerProcess

LISTEN = """() => { window.__live = {data: [], drawn: []};
  document.body.addEventListener("aurora-data", () => window.__live.data.push(Date.now()));
  document.body.addEventListener("aurora-charts-drawn", () => window.__live.drawn.push(Date.now())); }"""


def stats(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    return {"median_ms": round(s[len(s) // 2], 1), "p95_ms": round(s[int(0.95 * (len(s) - 1))], 1),
            "max_ms": round(s[-1], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(Path(tmp) / "data", clock="data").start()
        try:
            api = srv.client()
            t = time.time() - 3600
            pts = [[t + 15 * i, 0.5] for i in range(200)]
            api.post("/api/v1/ingest", params={"sync": "true"}, json={"series": [
                {"metric": "cpu_utilization_ratio", "labels": {"service": "bench"}, "points": pts}]}).raise_for_status()
            t = pts[-1][0]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = browser.new_page()
                page.goto(srv.url + "/ui/login?next=/ui/services/bench")
                page.fill("#token", ADMIN)
                page.click("form[action='/ui/login'] button[type=submit]")
                page.wait_for_selector("#live.on")
                page.wait_for_selector("#charts figure.chart canvas")
                page.evaluate(LISTEN)
                to_event, to_drawn = [], []
                for i in range(args.runs):
                    page.evaluate("() => { window.__live.data = []; window.__live.drawn = []; }")
                    t += 15
                    api.post("/api/v1/ingest", params={"sync": "true"}, json={"series": [
                        {"metric": "cpu_utilization_ratio", "labels": {"service": "bench"},
                         "points": [[t, 0.5 + 0.01 * i]]}]}).raise_for_status()
                    acked = time.time() * 1000
                    deadline = time.monotonic() + 5
                    while time.monotonic() < deadline:
                        got = page.evaluate("() => window.__live")
                        if got["data"] and got["drawn"] and got["drawn"][-1] >= got["data"][0]:
                            break
                        page.wait_for_timeout(20)
                    else:
                        raise SystemExit(f"run {i}: no live update within 5 s")
                    to_event.append(got["data"][0] - acked)
                    to_drawn.append(max(d for d in got["drawn"] if d >= got["data"][0]) - acked)
                    page.wait_for_timeout(1100)  # the page re-fetches at most once a second
                browser.close()
        finally:
            srv.stop()
    print(json.dumps({"runs": args.runs, "to_event": stats(to_event), "to_redrawn_chart": stats(to_drawn)}, indent=2))


if __name__ == "__main__":
    main()
