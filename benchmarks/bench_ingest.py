"""In-process ingest throughput of TSDB.append / TSDB.append_ids.

Shapes (all with WAL fsync=always and chunk cutting, over enough batches that every series cuts chunks):

* ``scrape_append``: 10,000 series x 1 sample per batch via ``append`` with metric names and labels,
  the way a scrape or remote_write request arrives. Label strings are fresh objects in every batch (as a
  decoder produces them), so their hashes are not cached between batches.
* ``scrape_append_decoded``: the same, but the label strings are the same objects in every batch, as
  Aurora's remote_write decoder and scraper deliver them (both cache decoded label sets), so string hashes
  are cached. This is what the real ingest paths see; ``scrape_append`` is the worst case.
* ``scrape_append_ids``: the same through ``append_ids`` (ids resolved once).
* ``bulk_append``: 1,000 series x 100 samples per batch via ``append``.

Only the append call is timed; building the batches is not. Prints one JSON line.

    python benchmarks/bench_ingest.py [--db URL] [--batches N] [--bulk-batches N] [--values realistic|random]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from rich.progress import Progress

from aurora.clock import EventClock
from aurora.config import LimitsConfig, StorageConfig
from aurora.db.database import create_db_engine, migrate, normalize_url
from aurora.model import SeriesBatch
from aurora.store.tsdb import TSDB

T0 = 1_700_000_000_000


@contextlib.contextmanager
def database_url(url: str | None, tmp: Path) -> Iterator[str]:
    """SQLite in ``tmp`` by default; for PostgreSQL a private schema, dropped afterwards."""
    if not url:
        yield f"sqlite:///{tmp / 'aurora.db'}"
        return
    if not url.startswith("postgres"):
        yield url
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalize_url(url))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{normalize_url(url)}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def realistic_series(n: int) -> tuple[list[str], list[dict[str, str]]]:
    """Node-exporter-like series: 40 metrics over n/40 (instance, cpu/device) combinations."""
    metrics, labels = [], []
    n_metric = 40
    for i in range(n):
        m = i % n_metric
        j = i // n_metric
        metrics.append(f"node_metric_{m}_total" if m % 2 else f"node_metric_{m}_bytes")
        labels.append(
            {
                "job": "node",
                "instance": f"host-{j // 8:04d}.prod.example.com:9100",
                "cpu": str(j % 8),
                "mode": ("user", "system", "idle", "iowait")[m % 4],
                "env": "prod",
                "region": ("eu-west-1", "us-east-1")[j % 2],
            }
        )
    return metrics, labels


class Values:
    """Per-series value generators. ``realistic``: a quarter each of integer counters, 2-decimal gauges,
    near-constant 0/1 gauges and full-precision floats (ratios); ``random``: all full-precision floats
    (the codec's worst case)."""

    def __init__(self, n: int, kind: str, seed: int = 0) -> None:
        self.n = n
        self.kind = kind
        self.rng = np.random.default_rng(seed)
        self.counter = np.zeros(n)
        self.cls = np.arange(n) % 4

    def next(self, per: int = 1) -> np.ndarray:
        """``per`` consecutive values for every series, series-major (shape n*per)."""
        n, rng = self.n, self.rng
        if self.kind == "random":
            return rng.random(n * per) * 100
        out = np.empty((n, per))
        inc = np.cumsum(rng.integers(0, 50, (n, per)), axis=1)
        out[:] = self.counter[:, None] + inc
        self.counter = out[:, -1].copy()
        g = self.cls == 1
        out[g] = np.round(rng.normal(50, 5, (int(g.sum()), per)), 2)
        c = self.cls == 2
        out[c] = (rng.random((int(c.sum()), per)) < 0.01).astype(float)
        f = self.cls == 3
        out[f] = rng.random((int(f.sum()), per))
        return out.reshape(-1)


def fresh(metrics: list[str], labels: list[dict[str, str]]) -> tuple[list[str], list[dict[str, str]]]:
    """New string objects, as a protocol decoder would produce (no cached hashes)."""
    return (
        [m.encode().decode() for m in metrics],
        [{k.encode().decode(): v.encode().decode() for k, v in lab.items()} for lab in labels],
    )


def open_db(url: str, tmp: Path) -> TSDB:
    engine = create_db_engine(url)
    migrate(engine)
    storage = StorageConfig(data_dir=tmp, wal_fsync="always")
    db = TSDB(engine, tmp, storage, LimitsConfig(max_series_per_metric=1_000_000), EventClock("data"))
    db.open()
    return db


def run_scrape(url: str | None, batches: int, use_ids: bool, values: str, progress: Progress,
               reuse_labels: bool = False) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="aurora-bench-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        db = open_db(stack.enter_context(database_url(url, tmp)), tmp)
        n = 10_000
        metrics, labels = realistic_series(n)
        ids = db.resolve(metrics, labels) if use_ids else None
        offsets = np.arange(n + 1, dtype=np.int64)
        gen = Values(n, values)
        total = 0.0
        samples = 0
        name = "scrape_append_ids" if use_ids else "scrape_append_decoded" if reuse_labels else "scrape_append"
        task = progress.add_task(name, total=batches)
        for b in range(batches):
            ts = np.full(n, T0 + b * 15_000, np.int64)
            vals = gen.next()
            if use_ids:
                assert ids is not None
                t = time.perf_counter()
                r = db.append_ids(ids, offsets, ts, vals)
                total += time.perf_counter() - t
            else:
                ms, ls = (metrics, labels) if reuse_labels else fresh(metrics, labels)
                batch = SeriesBatch(ms, ls, offsets, ts, vals)
                t = time.perf_counter()
                r = db.append(batch)
                total += time.perf_counter() - t
            samples += r.accepted
            progress.advance(task)
        st = db.stats()
        t = time.perf_counter()
        db.close()
        close_s = time.perf_counter() - t
        return {
            f"{name}_samples_per_s": samples / total,
            f"{name}_samples": samples,
            f"{name}_batch_ms_mean": 1000 * total / batches,
            f"{name}_chunks": int(st["chunks_written"]),
            f"{name}_close_s": close_s,
        }


def run_bulk(url: str | None, batches: int, values: str, progress: Progress) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="aurora-bench-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        db = open_db(stack.enter_context(database_url(url, tmp)), tmp)
        n, per = 1_000, 100
        metrics, labels = realistic_series(n)
        offsets = np.arange(0, n * per + 1, per, dtype=np.int64)
        gen = Values(n, values)
        total = 0.0
        samples = 0
        task = progress.add_task("bulk_append", total=batches)
        for b in range(batches):
            base = T0 + b * per * 15_000
            ts = np.tile(base + 15_000 * np.arange(per, dtype=np.int64), n)
            vals = gen.next(per)
            ms, ls = fresh(metrics, labels)
            batch = SeriesBatch(ms, ls, offsets, ts, vals)
            t = time.perf_counter()
            r = db.append(batch)
            total += time.perf_counter() - t
            samples += r.accepted
            progress.advance(task)
        st = db.stats()
        db.close()
        return {
            "bulk_append_samples_per_s": samples / total,
            "bulk_append_samples": samples,
            "bulk_append_batch_ms_mean": 1000 * total / batches,
            "bulk_append_chunks": int(st["chunks_written"]),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in a temp dir)")
    ap.add_argument("--batches", type=int, default=300, help="scrape-shape batches (chunks cut at 240)")
    ap.add_argument("--bulk-batches", type=int, default=30)
    ap.add_argument("--only", choices=["scrape_append", "scrape_append_decoded", "scrape_append_ids", "bulk_append"],
                    default=None)
    ap.add_argument("--values", choices=["realistic", "random"], default="realistic")
    args = ap.parse_args()
    db_kind = "sqlite" if not args.db else args.db.split(":")[0]
    out: dict[str, float | str] = {"bench": "ingest", "values": args.values, "db": db_kind}
    with Progress() as progress:
        if args.only in (None, "scrape_append"):
            out.update(run_scrape(args.db, args.batches, False, args.values, progress))
        if args.only in (None, "scrape_append_decoded"):
            out.update(run_scrape(args.db, args.batches, False, args.values, progress, reuse_labels=True))
        if args.only in (None, "scrape_append_ids"):
            out.update(run_scrape(args.db, args.batches, True, args.values, progress))
        if args.only in (None, "bulk_append"):
            out.update(run_bulk(args.db, args.bulk_batches, args.values, progress))
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}))


if __name__ == "__main__":
    main()
