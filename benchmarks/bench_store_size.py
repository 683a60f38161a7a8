"""Bytes on disk per sample for a day of the simulated shop fleet stored by the real store.

The fleet (12 services, 3 hosts, ~170 series at 15 s: counters, latency quantiles, ratios, memory, disk,
connections, queue depth, cache and model metrics) runs 24 h through an in-process Aurora (SQLite). After a
checkpoint the figures per stored sample are (a) ``chunk_payload``: encoded chunk bytes (what the codec
achieves), (b) ``raw_table``: the ``chunks`` table incl. its primary-key index and row overhead (SQLite
``dbstat`` pages), (c) ``rollup_table``: the ``rollups`` table incl. index (empty while the day is within raw
retention: rollups are made only by downsampling on age), and (d) ``total_disk``: everything in the data dir
(database file, SQLite WAL, Aurora WAL). Then the day is aged past ``storage.retention_raw_days`` and
``enforce_retention`` is called until it has nothing left to do, and the same figures are reported under
``aged``: the day now lives in 60 s rollups only (``total_disk`` there is measured after a VACUUM).

    python benchmarks/bench_store_size.py [--hours 24] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
from pathlib import Path

from rich.progress import Progress

from aurora.app import Aurora
from aurora.config import load_config
from aurora.sim.faults import get_scenario
from aurora.sim.fleet import Fleet
from aurora.sim.runner import SimRunner, inprocess_sinks

DAY_MS = 86_400_000


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def table_bytes(db_file: str) -> dict[str, int]:
    """Pages of each table with its indexes (SQLite ``dbstat``), after a WAL checkpoint."""
    con = sqlite3.connect(db_file)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        owner = dict(con.execute("SELECT name, tbl_name FROM sqlite_schema").fetchall())
    finally:
        con.close()
    out: dict[str, int] = {}
    for name, size in rows:
        tbl = owner.get(name, name)
        out[tbl] = out.get(tbl, 0) + int(size)
    return out


def figures(d: Path, db_file: str, samples: int, chunk_payload: int) -> dict[str, float | int]:
    tb = table_bytes(db_file)
    on_disk = dir_bytes(d)
    return {
        "chunk_payload_bytes_per_sample": round(chunk_payload / samples, 3),
        "raw_table_bytes_per_sample": round(tb.get("chunks", 0) / samples, 3),
        "rollup_table_bytes_per_sample": round(tb.get("rollups", 0) / samples, 3),
        "total_disk_bytes_per_sample": round(on_disk / samples, 3),
        "raw_table_bytes": tb.get("chunks", 0),
        "rollup_table_bytes": tb.get("rollups", 0),
        "total_disk_bytes": on_disk,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cfg = load_config(None, {"AURORA_DATA_DIR": tmp, "AURORA_CLOCK": "data", "AURORA_HOST_AGENT__ENABLED": "false"})
        aurora = Aurora(cfg)
        aurora.open()
        db_file = str(aurora.engine.url.database)
        scenario = get_scenario("fault_free")
        fleet = Fleet(seed=args.seed, faults=scenario.at(0))
        sink, events = inprocess_sinks(aurora)
        end = fleet.start + args.hours * 3600
        with Progress() as progress:
            task = progress.add_task("fleet day", total=1)
            SimRunner(fleet, end, sink, events, speed=None, chunk_steps=240, progress=False).run()
            progress.advance(task)
        tsdb = aurora.tsdb
        tsdb.checkpoint()
        st = tsdb.stats()
        samples = int(st["samples_stored"])
        chunk_payload = int(st["chunk_bytes_written"])
        fresh = figures(d, db_file, samples, chunk_payload)
        # age the day past raw retention: it becomes 60 s rollups (in bounded batches, as maintenance does)
        now = int(end * 1000) + int(cfg.storage.retention_raw_days * DAY_MS) + 60_000
        while tsdb.enforce_retention(now) > 0:
            pass
        tsdb.checkpoint()
        with aurora.engine.connect() as conn:
            conn.exec_driver_sql("VACUUM")
        aged = figures(d, db_file, samples, chunk_payload)
        aged.pop("chunk_payload_bytes_per_sample")
        aurora.close()
    print(json.dumps({"bench": "store_size", "hours": args.hours, "series": int(st["series"]), "samples": samples,
                      **fresh, "aged": aged}))


if __name__ == "__main__":
    main()
