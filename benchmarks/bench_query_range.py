"""Time ``aurora.query.query_range`` on one series of 24 h at 15 s (5,760 samples), in memory.

    .venv/bin/python benchmarks/bench_query_range.py [--runs 200] [--step 15] [--query 'memory_bytes{service="cart"}']

Prints the median and p95 over the runs of query_range alone (parse, select, evaluate, build the
Prometheus body) and of query_range + json.dumps (what the HTTP layer adds before the socket).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass

import numpy as np

from aurora.query import query_range

START_S = 1_700_000_000
SAMPLES = 24 * 3600 // 15  # 5,760


@dataclass(frozen=True)
class _Info:
    id: int
    metric: str
    labels: dict[str, str]


class MemorySource:
    def __init__(self) -> None:
        self.series: list[_Info] = []
        self.data: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def add(self, metric: str, labels: dict[str, str], t: np.ndarray, v: np.ndarray) -> None:
        sid = len(self.series)
        self.series.append(_Info(sid, metric, labels))
        self.data[sid] = (t, v)

    def all_series(self) -> list[_Info]:
        return self.series

    def read(self, series_id: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        t, v = self.data[series_id]
        lo, hi = np.searchsorted(t, [start_ms, end_ms + 1])
        return t[lo:hi], v[lo:hi]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--step", type=float, default=15.0)
    ap.add_argument("--query", default='memory_bytes{service="cart"}')
    args = ap.parse_args()

    rng = np.random.default_rng(7)
    t = START_S * 1000 + np.arange(SAMPLES, dtype=np.int64) * 15_000
    v = np.round(2e9 + np.cumsum(rng.normal(0, 1e6, SAMPLES)), 1)
    src = MemorySource()
    src.add("memory_bytes", {"service": "cart", "instance": "cart-0"}, t, v)
    src.add("memory_bytes", {"service": "web", "instance": "web-0"}, t, v * 0.5)
    start, end = float(START_S), float(START_S + 24 * 3600 - 15)

    body = query_range(src, args.query, start, end, args.step)
    points = sum(len(r["values"]) for r in body["data"]["result"])
    core, full = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        body = query_range(src, args.query, start, end, args.step)
        t1 = time.perf_counter()
        json.dumps(body)
        t2 = time.perf_counter()
        core.append((t1 - t0) * 1000)
        full.append((t2 - t0) * 1000)

    def p95(xs: list[float]) -> float:
        return sorted(xs)[int(0.95 * (len(xs) - 1))]

    print(f"query: {args.query}  step: {args.step}s  samples: {SAMPLES}  points returned: {points}  runs: {args.runs}")
    print(f"query_range:              median {statistics.median(core):.2f} ms  p95 {p95(core):.2f} ms")
    print(f"query_range + json.dumps: median {statistics.median(full):.2f} ms  p95 {p95(full):.2f} ms")


if __name__ == "__main__":
    main()
