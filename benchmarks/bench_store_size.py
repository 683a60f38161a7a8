"""Bytes on disk per sample for a day of the simulated shop fleet stored by the real store.

The fleet (12 services, 3 hosts, ~170 series at 15 s: counters, latency quantiles, ratios, memory, disk,
connections, queue depth, cache and model metrics) runs 24 h through an in-process Aurora; after a
checkpoint the figure is (a) chunk payload bytes / samples (what the codec achieves), (b) raw-chunk table
bytes incl. row overhead, and (c) everything on disk (database file incl. rollups and indexes, WAL) / samples.

    python benchmarks/bench_store_size.py [--hours 24] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.progress import Progress

from aurora.app import Aurora
from aurora.config import load_config
from aurora.sim.faults import get_scenario
from aurora.sim.fleet import Fleet
from aurora.sim.runner import SimRunner, inprocess_sinks


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cfg = load_config(None, {"AURORA_DATA_DIR": d, "AURORA_CLOCK": "data", "AURORA_HOST_AGENT__ENABLED": "false"})
        aurora = Aurora(cfg)
        aurora.open()
        scenario = get_scenario("fault_free")
        fleet = Fleet(seed=args.seed, faults=scenario.at(0))
        sink, events = inprocess_sinks(aurora)
        end = fleet.start + args.hours * 3600
        with Progress() as progress:
            task = progress.add_task("fleet day", total=1)
            SimRunner(fleet, end, sink, events, speed=None, chunk_steps=240, progress=False).run()
            progress.advance(task)
        aurora.tsdb.checkpoint()
        st = aurora.tsdb.stats()
        samples = int(st["samples_stored"])
        chunk_payload = int(st["chunk_bytes_written"])
        aurora.close()
        on_disk = dir_bytes(Path(d))
    print(json.dumps({"bench": "store_size", "hours": args.hours, "series": int(st["series"]), "samples": samples,
                      "chunk_payload_bytes_per_sample": round(chunk_payload / samples, 3),
                      "total_disk_bytes_per_sample": round(on_disk / samples, 3),
                      "total_disk_bytes": on_disk}))


if __name__ == "__main__":
    main()
