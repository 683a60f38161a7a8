"""Throughput of the live detection stage (the baseline detector behind it) on scrape-shaped batches.

    python benchmarks/bench_detect_stage.py [--series 10000] [--batches 200]
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


class Series:
    def get_series(self, series_id: int) -> SeriesInfo:
        return SeriesInfo(series_id, f"gauge_{series_id % 40}", {"service": f"svc{series_id % 50}"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=200)
    args = ap.parse_args()
    n = args.series
    stage = DetectStage(Series(), lambda records: None)
    metrics, labels = [f"gauge_{i % 40}" for i in range(n)], [{} for _ in range(n)]
    offsets, ids = np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(0)
    batches = [SeriesBatch(metrics, labels, offsets, np.full(n, b * 15_000, np.int64), rng.normal(0, 1, n))
               for b in range(args.batches)]
    with Progress() as progress:
        task = progress.add_task("detect", total=args.batches)
        t0 = time.perf_counter()
        for b in batches:
            stage.process(b, ids, 0)
            progress.advance(task)
        elapsed = time.perf_counter() - t0
    print(json.dumps({"bench": "detect_stage", "series": n, "batches": args.batches,
                      "samples_per_s": round(n * args.batches / elapsed),
                      "anomalies": stage.anomalies_found}))


if __name__ == "__main__":
    main()
