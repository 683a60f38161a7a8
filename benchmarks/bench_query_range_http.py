"""query_range latency through a real `aurora serve` on loopback: one series over 24 h at 15 s.

The store holds 24 h of 15 s samples for 200 series (chunks on disk, as after a day of running); each
timed call is a full HTTP request from a client on the same machine, JSON parsed.

    python benchmarks/bench_query_range_http.py [--runs 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.integration.server import ServerProcess

DAY = 86_400
STEP = 15


def load(client: httpx.Client, t0: int, n_series: int, progress: Progress) -> int:
    """24 h of samples for ``n_series`` series, in hour-long requests (the way a backfill arrives)."""
    rng = np.random.default_rng(3)
    task = progress.add_task("loading 24 h", total=24)
    total = 0
    for hour in range(24):
        ts = t0 + hour * 3600 + STEP * np.arange(3600 // STEP)
        series = []
        for s in range(n_series):
            vals = np.round(500e6 + 1e6 * np.sin(ts / 3600) + rng.normal(0, 2e5, ts.size), 0)
            series.append({"metric": "memory_bytes", "labels": {"service": f"svc{s}"},
                           "points": np.column_stack([ts, vals]).tolist()})
            total += ts.size
        r = client.post("/api/v1/ingest", json={"series": series})
        r.raise_for_status()
        progress.advance(task)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    t0 = (int(time.time()) // 3600 - 25) * 3600
    with tempfile.TemporaryDirectory() as d, Progress() as progress:
        srv = ServerProcess(Path(d) / "data", args.database_url).start()
        try:
            with srv.client() as c:
                samples = load(c, t0, args.series, progress)
                params = {"query": 'memory_bytes{service="svc7"}', "start": t0, "end": t0 + DAY - STEP, "step": STEP}
                r = c.get("/api/v1/query_range", params=params)
                points = len(r.json()["data"]["result"][0]["values"])
                task = progress.add_task("query_range", total=args.runs)
                lat = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    r = c.get("/api/v1/query_range", params=params)
                    r.json()
                    lat.append(time.perf_counter() - t)
                    progress.advance(task)
        finally:
            srv.stop()
    ms = np.array(lat) * 1000
    print(json.dumps({"bench": "query_range_http", "series_stored": args.series, "samples_stored": samples,
                      "points_returned": points, "runs": args.runs, "median_ms": round(float(np.median(ms)), 2),
                      "p95_ms": round(float(np.percentile(ms, 95)), 2),
                      "database": "postgresql" if args.database_url else "sqlite"}))


if __name__ == "__main__":
    main()
