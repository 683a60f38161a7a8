"""Read latency of TSDB.read over 24 h of 15 s samples (5,760 samples, 24 chunks of 240), cold head.

Writes ``--series`` series x 2 days of 15 s samples, closes and reopens the store (so the head holds no
flushed samples and every read goes to the chunks in the database), then times ``read`` of the last 24 h
of random series, ``read_rollup`` at 60 s over the same range, and ``read`` of the last hour (served
from the head when it holds it). Prints one JSON line.

    python benchmarks/bench_query_read.py [--db URL] [--series N] [--reads N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_ingest import database_url  # benchmarks/ is on sys.path when run as a script
from rich.progress import Progress

from aurora.clock import EventClock
from aurora.config import LimitsConfig, StorageConfig
from aurora.db.database import create_db_engine, migrate
from aurora.store.tsdb import TSDB

T0 = 1_700_000_000_000


STEP = 15_000
DAY = 86_400_000


def open_db(url: str, tmp: Path) -> TSDB:
    engine = create_db_engine(url)
    migrate(engine)
    db = TSDB(engine, tmp, StorageConfig(data_dir=tmp, wal_fsync="never"), LimitsConfig(), EventClock("data"))
    db.open()
    return db


def pct(a: list[float]) -> dict[str, float]:
    x = np.array(a) * 1000
    return {"median_ms": float(np.median(x)), "p90_ms": float(np.percentile(x, 90)), "max_ms": float(x.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=None)
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--reads", type=int, default=300)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aurora-bench-"))
    try:
        with database_url(args.db, tmp) as url:
            run(url, tmp, args.series, args.reads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(url: str, tmp: Path, n_series: int, n_reads: int) -> None:
    if True:  # (kept indented as one block)
        db = open_db(url, tmp)
        n = n_series
        ids = db.resolve([f"http_requests_{i % 10}" for i in range(n)],
                         [{"job": "api", "instance": f"pod-{i:05d}", "code": "200"} for i in range(n)])
        per = 240
        total = 2 * DAY // STEP
        offsets = np.arange(0, n * per + 1, per, dtype=np.int64)
        rng = np.random.default_rng(0)
        counters = np.zeros(n)
        with Progress() as progress:
            task = progress.add_task("write 2 days", total=total // per)
            for b in range(total // per):
                ts = np.tile(T0 + STEP * (b * per + np.arange(per, dtype=np.int64)), n)
                inc = np.cumsum(rng.integers(0, 20, (n, per)), axis=1) + counters[:, None]
                counters = inc[:, -1].astype(float)
                db.append_ids(ids, offsets, ts, inc.reshape(-1).astype(float))
                progress.advance(task)
            db.close()
            db = open_db(url, tmp)
            end = T0 + STEP * (total - 1)
            start = end - DAY
            reads: list[float] = []
            rolls: list[float] = []
            recent: list[float] = []
            samples = 0
            task = progress.add_task("reads", total=n_reads)
            for _ in range(n_reads):
                sid = int(rng.integers(0, n))
                t = time.perf_counter()
                ts_, _v = db.read(sid, start, end)
                reads.append(time.perf_counter() - t)
                samples = len(ts_)
                t = time.perf_counter()
                db.read_rollup(sid, 60, start, end)
                rolls.append(time.perf_counter() - t)
                db.window(sid)  # after the first window() the head holds the newest samples again
                t = time.perf_counter()
                db.read(sid, end - 3_600_000, end)
                recent.append(time.perf_counter() - t)
                progress.advance(task)
            db.close()
        out = {
            "bench": "query_read",
            "db": url.split(":")[0],
            "series": n,
            "samples_per_24h_read": samples,
            **{f"read_24h_{k}": round(v, 3) for k, v in pct(reads).items()},
            **{f"read_rollup_60s_24h_{k}": round(v, 3) for k, v in pct(rolls).items()},
            **{f"read_1h_head_{k}": round(v, 3) for k, v in pct(recent).items()},
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
