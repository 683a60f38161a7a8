"""Throughput of the live detection stage (the ensemble detector behind it) on scrape-shaped batches.

10,000 series (a quarter of them counters, scored by their rate), one sample per series per batch, times
advancing 15 s. The warm-up batches are not timed. Prints one JSON line (``samples_per_s``: samples handed
to the stage per second; ``anomalies``: records made in the timed batches).

    python benchmarks/bench_detect_stage.py [--series 10000] [--batches 200] [--warmup 2100]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from rich.progress import Progress

from aurora.detect.stage import DetectStage
from aurora.model import SeriesBatch
from aurora.store.index import SeriesInfo

T0_MS = 1_700_000_000_000
STEP_MS = 15_000


def metric_of(series_id: int) -> str:
    return f"requests_{series_id % 10}_total" if series_id % 4 == 0 else f"gauge_{series_id % 40}"


class Series:
    def get_series(self, series_id: int) -> SeriesInfo:
        return SeriesInfo(series_id, metric_of(series_id), {"service": f"svc{series_id % 50}"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=200, help="timed batches")
    ap.add_argument("--warmup", type=int, default=2100,
                    help="untimed batches first: past every warm-up, including the likelihood's 1/(n+1) phase")
    args = ap.parse_args()
    n = args.series
    stage = DetectStage(Series(), lambda records: None)
    metrics = [metric_of(i) for i in range(n)]
    labels = [{"service": f"svc{i % 50}"} for i in range(n)]
    offsets, ids = np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.int64)
    counter = np.arange(n) % 4 == 0
    rng = np.random.default_rng(0)
    level = 10.0 ** rng.uniform(0, 6, n)
    total = np.zeros(n)

    def batch(b: int) -> SeriesBatch:
        gauge = level * (1 + 0.01 * rng.normal(0, 1, n))
        total[:] += np.abs(level * 15 * (1 + 0.05 * rng.normal(0, 1, n)))
        return SeriesBatch(metrics, labels, offsets, np.full(n, T0_MS + b * STEP_MS, np.int64),
                           np.where(counter, total, gauge))

    with Progress() as progress:
        task = progress.add_task("warm-up", total=args.warmup)
        for k in range(args.warmup):
            stage.process(batch(k), ids, 0)
            progress.advance(task)
        timed = [batch(k) for k in range(args.warmup, args.warmup + args.batches)]  # built before the clock starts
        before = stage.anomalies_found
        task = progress.add_task("detect stage", total=args.batches)
        t0 = time.perf_counter()
        for b in timed:
            stage.process(b, ids, 0)
            progress.advance(task)
        elapsed = time.perf_counter() - t0
    print(json.dumps({"bench": "detect_stage", "series": n, "batches": args.batches, "warmup_batches": args.warmup,
                      "samples_per_s": round(n * args.batches / elapsed),
                      "us_per_batch": round(elapsed / args.batches * 1e6),
                      "anomalies": stage.anomalies_found - before}))


if __name__ == "__main__":
    main()
