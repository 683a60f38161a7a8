"""Remote-write throughput over HTTP on loopback: a real `aurora serve`, real snappy+protobuf bodies.

Bodies are encoded before timing so the client's cost is only sending. Each round carries one sample for
every series (as Prometheus sends), split into requests of `--per-request` series; the requests of one
round go out concurrently, rounds in order (a series' samples must arrive in time order). The first round
creates the series and is reported on its own (`new_series_per_s`); `samples_per_s` is the steady state
over the remaining rounds, when every series is known, as in a long-running setup.

    python benchmarks/bench_remote_write_http.py --series 10000 --rounds 30 --per-request 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from aurora.ingest.remote_write import encode_remote_write
from aurora.model import SeriesBatch
from tests.integration.server import ADMIN, ServerProcess


def make_bodies(n_series: int, rounds: int, per_request: int, samples_per_series: int, t0_ms: int) -> list[list[bytes]]:
    rng = np.random.default_rng(1)
    metrics = ["http_requests_total", "process_resident_memory_bytes", "http_request_duration_seconds"]
    labels = [{"service": f"svc{i % 50}", "instance": f"10.0.{i // 250}.{i % 250}:9100", "job": "app",
               "series": str(i)} for i in range(n_series)]
    out = []
    for r in range(rounds):
        reqs = []
        for lo in range(0, n_series, per_request):
            hi = min(lo + per_request, n_series)
            n = hi - lo
            k = samples_per_series
            ts = np.tile(t0_ms + (r * k + np.arange(k)) * 15_000, n).astype(np.int64)
            vals = np.round(rng.normal(100, 5, n * k), 2)
            offsets = np.arange(0, n * k + 1, k, dtype=np.int64)
            batch = SeriesBatch([metrics[i % 3] for i in range(lo, hi)], labels[lo:hi], offsets, ts, vals)
            reqs.append(encode_remote_write(batch))
        out.append(reqs)
    return out


async def send_all(url: str, bodies: list[list[bytes]], progress: Progress) -> float:
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Encoding": "snappy",
               "Content-Type": "application/x-protobuf", "X-Prometheus-Remote-Write-Version": "0.1.0"}
    task = progress.add_task("remote_write", total=len(bodies))
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
        t0 = time.perf_counter()
        for reqs in bodies:
            rs = await asyncio.gather(*(client.post("/api/v1/write", content=b) for b in reqs))
            bad = [r for r in rs if r.status_code != 204]
            if bad:
                raise SystemExit(f"server refused: {bad[0].status_code} {bad[0].text}")
            progress.advance(task)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=30, help="rounds, the first of which creates the series")
    ap.add_argument("--per-request", type=int, default=2_000)
    ap.add_argument("--samples-per-series", type=int, default=1)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    t0_ms = (int(time.time()) - 86_400) * 1000
    with Progress() as progress:
        enc = progress.add_task("encoding", total=1)
        bodies = make_bodies(args.series, args.rounds, args.per_request, args.samples_per_series, t0_ms)
        progress.advance(enc)
        with tempfile.TemporaryDirectory() as d:
            srv = ServerProcess(Path(d) / "data", args.database_url,
                                extra_env={"AURORA_LIMITS__MAX_SERIES_PER_METRIC": "1000000"}).start()
            try:
                first = asyncio.run(send_all(srv.url, bodies[:1], progress))
                elapsed = asyncio.run(send_all(srv.url, bodies[1:], progress))
            finally:
                srv.stop()
    samples = args.series * (args.rounds - 1) * args.samples_per_series
    print(json.dumps({"bench": "remote_write_http", "series": args.series, "rounds": args.rounds,
                      "series_per_request": args.per_request, "samples_per_series": args.samples_per_series,
                      "samples": samples, "seconds": round(elapsed, 3),
                      "new_series_per_s": round(args.series / first),
                      "samples_per_s": round(samples / elapsed), "database": "postgresql" if args.database_url
                      else "sqlite", "bytes_per_request": int(np.mean([len(b) for r in bodies for b in r]))}))


if __name__ == "__main__":
    main()
