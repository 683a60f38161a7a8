"""Memory per active series in the TSDB head, beyond the window's own sample arrays.

Creates ``--series`` series with realistic labels (6 labels: job, instance, pod, container, namespace,
plus a per-metric one; 50 metric names) through ``append`` and writes ``--samples`` samples to each,
measuring with tracemalloc everything the TSDB allocated: (traced total - head ring arrays) / series.
The ring arrays (``series capacity x ring x 16 bytes``) are reported separately. Prints one JSON line.

    python benchmarks/bench_head_memory.py [--series N] [--samples N]
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
from rich.progress import Progress

from aurora.clock import EventClock
from aurora.config import LimitsConfig, StorageConfig
from aurora.db.database import create_db_engine, migrate
from aurora.model import SeriesBatch
from aurora.store.tsdb import TSDB

T0 = 1_700_000_000_000


def labels_for(i: int) -> tuple[str, dict[str, str]]:
    m = i % 50
    pod = i // 50
    return f"container_metric_{m}", {
        "job": "kubernetes-pods",
        "namespace": f"team-{pod % 40}",
        "pod": f"checkout-{pod:07d}-7f9c8d6b5-x{pod % 97:02d}",
        "container": ("app", "sidecar", "init")[pod % 3],
        "instance": f"10.{(pod >> 16) & 255}.{(pod >> 8) & 255}.{pod & 255}:8080",
        "le" if m % 5 == 0 else "phase": str(m % 7),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=5, help="samples written per series")
    ap.add_argument("--batch", type=int, default=10_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aurora-bench-"))
    try:
        engine = create_db_engine(f"sqlite:///{tmp / 'aurora.db'}")
        migrate(engine)
        storage = StorageConfig(data_dir=tmp, wal_fsync="never")
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        db = TSDB(engine, tmp, storage, LimitsConfig(max_series_per_metric=10**7), EventClock("data"))
        db.open()
        n = args.series
        with Progress() as progress:
            task = progress.add_task("series x samples", total=args.samples * ((n + args.batch - 1) // args.batch))
            for k in range(args.samples):
                for a in range(0, n, args.batch):
                    b = min(n, a + args.batch)
                    ml = [labels_for(i) for i in range(a, b)]
                    offsets = np.arange(b - a + 1, dtype=np.int64)
                    ts = np.full(b - a, T0 + k * 15_000, np.int64)
                    db.append(SeriesBatch([m for m, _ in ml], [lab for _, lab in ml], offsets, ts, np.ones(b - a)))
                    del ml
                    progress.advance(task)
        gc.collect()
        total = tracemalloc.get_traced_memory()[0] - base
        ring = db.head.window_bytes()
        snap = tracemalloc.take_snapshot()
        tracemalloc.stop()
        top = snap.statistics("filename")[:5]
        per_series = (total - ring) / n
        out = {
            "bench": "head_memory",
            "series": n,
            "samples_per_series": args.samples,
            "traced_bytes": total,
            "ring_arrays_bytes": ring,
            "ring_capacity_series": db.head.cap,
            "ring_samples_per_series": db.head.ring,
            "bytes_per_series_beyond_window": round(per_series, 1),
            "window_bytes_per_series_at_capacity": round(ring / db.head.cap, 1),
            "top_files": {Path(str(s.traceback[0].filename)).name: s.size for s in top},
        }
        db.close()
        engine.dispose()
        print(json.dumps(out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
