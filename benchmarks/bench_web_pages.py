"""Dashboard page times with the demo fleet running: p50/p95 per page through a real `aurora demo`.

The demo streams its 12-service fleet at 60x (2 h of history first) and keeps doing so while the pages are
timed, so the figures include a busy engine. Each timed call is a full HTTP request on loopback with a
logged-in session cookie (server time plus well under a millisecond of transport). The homology view is
cached per 5 min of data time (5 s of wall time at 60x), so its max shows a recomputation and p50 a hit.

    python benchmarks/bench_web_pages.py [--runs 100] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.integration.server import ServerProcess

PAGES = ["/ui/", "/ui/fragments/overview", "/ui/services", "/ui/services/cart", "/ui/services/cart/charts.json",
         "/ui/incidents", "/ui/incidents/{incident}", "/ui/incidents/{incident}/charts.json",
         "/ui/incidents/{incident}/report.md", "/ui/topology",
         "/ui/topology.json", "/ui/audit", "/ui/models", "/ui/incidents/{incident}/actions",
         "/ui/fragments/nav-pending", "/ui/playbooks", "/ui/models/recommender", "/ui/models/recommender/charts.json",
         "/ui/services/cart/homology", "/ui/services/cart/homology.json", "/ui/settings"]


def login(client: httpx.Client, token: str) -> None:
    form = client.get("/ui/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    r = client.post("/ui/login", data={"token": token, "csrf": csrf.group(1)})
    if r.status_code != 303:
        raise SystemExit(f"login failed: {r.status_code} {r.text[:200]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(Path(tmp) / "data", command=["demo", "--speed", "60x", "--backfill-hours", "2"])
        srv.start(timeout=60)
        try:
            with srv.client() as api:
                deadline = time.monotonic() + 90
                incidents: list[dict[str, object]] = []
                while not incidents and time.monotonic() < deadline:
                    incidents = api.get("/api/v1/incidents", params={"compact": "true"}).json()["incidents"]
                    time.sleep(0.5)
                if not incidents:
                    raise SystemExit("the demo opened no incident in 90 s")
                status = api.get("/api/v1/status").json()
                services = [n["service"] for n in api.get("/api/v1/topology").json()["nodes"]]
            with httpx.Client(base_url=srv.url, timeout=30) as web:
                login(web, "test-admin-token-0123456789")
                results = {}
                with Progress() as progress:
                    task = progress.add_task("pages", total=len(PAGES) * args.runs)
                    for tpl in PAGES:
                        path = tpl.format(incident=incidents[0]["id"])
                        web.get(path).raise_for_status()  # warm-up
                        times = []
                        for _ in range(args.runs):
                            t0 = time.perf_counter()
                            r = web.get(path)
                            times.append((time.perf_counter() - t0) * 1000)
                            r.raise_for_status()
                            progress.advance(task)
                        arr = np.array(times)
                        results[tpl] = {"p50_ms": round(float(np.percentile(arr, 50)), 2),
                                        "p95_ms": round(float(np.percentile(arr, 95)), 2),
                                        "max_ms": round(float(arr.max()), 2), "bytes": len(r.content)}
                # The homology view uncached: the first request for each other service computes it.
                cold = []
                for name in services:
                    if name == "cart":
                        continue
                    t0 = time.perf_counter()
                    web.get(f"/ui/services/{name}/homology.json").raise_for_status()
                    cold.append((time.perf_counter() - t0) * 1000)
        finally:
            srv.stop()
    report = {"runs": args.runs, "series": status["storage"]["series"], "samples": status["counters"]["samples"],
              "pages": results, "worst_p95_ms": max(v["p95_ms"] for v in results.values()),
              "homology_uncached_ms": {"n": len(cold), "p50": round(float(np.percentile(cold, 50)), 2),
                                       "max": round(float(max(cold)), 2)}}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_web_pages.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
