"""Throughput of incident correlation: a storm of signals through the incident engine, stored in SQLite.

A 200-service random call graph; every event-time second brings ``--rate`` signals: 90 % from ongoing
faults (each on a service and its neighbours, 40 fingerprints apiece, so most are repeats that
deduplicate) and 10 % noise on random services. Signals arrive in batches of one event-time second, as
the pipeline hands them over. Measured: the wall time of ``IncidentEngine.step`` (correlation, lifecycle,
SQLite writes of incidents, signals and timelines; root-cause ranking is off: it reads series, which this
benchmark has none of), and the correlator alone. Prints one JSON line; ``signals_per_s`` must exceed the
arrival rate for correlation to keep up.

    python benchmarks/bench_correlate.py [--rate 1000] [--seconds 120] [--database-url sqlite:///...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from aurora.config import ServiceConfig
from aurora.db.database import create_db_engine, migrate
from aurora.incidents.correlate import Correlator
from aurora.incidents.engine import IncidentEngine
from aurora.incidents.model import Signal
from aurora.incidents.store import IncidentStore
from aurora.topology.graph import ServiceGraph

T0 = 1_700_000_000.0


def build_graph(n: int, rng: np.random.Generator) -> tuple[ServiceGraph, list[str]]:
    names = [f"svc-{i:03d}" for i in range(n)]
    services = []
    for i, name in enumerate(names):
        deps = sorted({names[j] for j in rng.integers(i + 1, n, size=3) if j < n}) if i < n - 1 else []
        services.append(ServiceConfig(name=name, depends_on=deps))
    g = ServiceGraph()
    g.set_declared(services)
    return g, names


def storm(rate: int, seconds: int, names: list[str], g: ServiceGraph, rng: np.random.Generator) -> list[list[Signal]]:
    faults = [names[i] for i in rng.choice(len(names), size=20, replace=False)]
    scope = {f: [f, *list(g.downstream(f, 1)), *list(g.upstream(f, 1))] for f in faults}
    batches = []
    for sec in range(seconds):
        t = T0 + sec
        out = []
        for k in range(rate):
            if rng.random() < 0.9:
                f = faults[int(rng.integers(len(faults)))]
                svc = scope[f][int(rng.integers(len(scope[f])))]
                fp = f"anomaly:{f}:{svc}:{int(rng.integers(40))}"
            else:
                svc = names[int(rng.integers(len(names)))]
                fp = f"anomaly:noise:{sec}:{k}"
            out.append(Signal("anomaly", fp, t + rng.random(), svc, "latency_seconds", 0.999, "warning",
                              f"latency of {svc} high", {"service": svc}))
        batches.append(out)
    return batches


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=1000, help="signals per event-time second")
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--services", type=int, default=200)
    ap.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    g, names = build_graph(args.services, rng)
    batches = storm(args.rate, args.seconds, names, g, rng)
    n = sum(len(b) for b in batches)

    corr = Correlator(lambda a, b: a == b or g.connected(a, b, 2))
    t0 = time.perf_counter()
    for b in batches:
        corr.add(b)
        corr.tick(b[-1].time)
    corr_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = create_db_engine(url)
        migrate(engine)
        store = IncidentStore(engine)
        inc = IncidentEngine(store, None, g)
        wall = 0.0
        with Progress() as bar:
            task = bar.add_task("correlate", total=len(batches))
            for b in batches:
                inc.offer(b)
                t1 = time.perf_counter()
                inc.step(b[-1].time + 1)
                wall += time.perf_counter() - t1
                bar.advance(task)
        opened = len(store.list(limit=10_000))
        engine.dispose()
    print(json.dumps({"signals": n, "rate_per_event_s": args.rate, "services": args.services,
                      "database": url.split(":", 1)[0],
                      "signals_per_s": round(n / wall), "correlator_only_signals_per_s": round(n / corr_s),
                      "incidents": opened, "engine_wall_s": round(wall, 2)}))


if __name__ == "__main__":
    main()
