"""Throughput and state size of the ensemble detector alone (no stage, no store) on scrape-shaped batches.

10,000 series, each batch one sample per series (all slots in one ``update`` call), times advancing 15 s
per batch. Values are noisy gauges with a daily cycle at different levels and scales. The warm-up batches
(2,100: every analyzer and the likelihood layer past their warm-up and the likelihood's learning rate at its
steady value; the seasonal profile, which needs a day, stays silent) are not timed; the timed batches are.
Prints one JSON line: ``samples_per_s`` (target >= 1,000,000) and ``state_bytes_per_series``
(``EnsembleDetector.nbytes_per_slot()``, target <= 2,048).

    python benchmarks/bench_detector.py [--series 10000] [--batches 200] [--warmup 100] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time

import numpy as np
from rich.progress import Progress

from aurora.detect.ensemble import EnsembleDetector

T0 = 1_700_000_000.0
STEP_S = 15.0


def values(n: int, b: int, rng: np.random.Generator, level: np.ndarray, scale: np.ndarray) -> np.ndarray:
    t = T0 + b * STEP_S
    return level * (1 + 0.2 * np.sin(2 * np.pi * t / 86400.0)) + scale * rng.normal(0, 1, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=200, help="timed batches")
    ap.add_argument("--warmup", type=int, default=2100,
                    help="untimed batches first: past every warm-up, including the likelihood's 1/(n+1) phase")
    ap.add_argument("--profile", action="store_true", help="cProfile the timed batches, print the top functions")
    args = ap.parse_args()
    n = args.series
    rng = np.random.default_rng(0)
    level = 10.0 ** rng.uniform(0, 6, n)
    scale = level * rng.uniform(0.001, 0.1, n)
    det = EnsembleDetector(n)
    slots = np.arange(n, dtype=np.int64)
    total = args.warmup + args.batches
    batches = [values(n, b, rng, level, scale) for b in range(total)]
    alarms = 0
    with Progress() as progress:
        task = progress.add_task("warm-up", total=args.warmup)
        for b in range(args.warmup):
            det.update(slots, batches[b], np.full(n, T0 + b * STEP_S))
            progress.advance(task)
        task = progress.add_task("detector", total=args.batches)
        prof = cProfile.Profile() if args.profile else None
        times = [np.full(n, T0 + b * STEP_S) for b in range(args.warmup, total)]
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        for i, b in enumerate(range(args.warmup, total)):
            alarms += int(det.update(slots, batches[b], times[i]).alarm.sum())
            progress.advance(task)
        if prof:
            prof.disable()
        elapsed = time.perf_counter() - t0
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    print(json.dumps({"bench": "detector", "series": n, "batches": args.batches, "warmup_batches": args.warmup,
                      "samples_per_s": round(n * args.batches / elapsed),
                      "us_per_batch": round(elapsed / args.batches * 1e6),
                      "state_bytes_per_series": det.nbytes_per_slot(), "alarms": alarms}))


if __name__ == "__main__":
    main()
