"""Cost of the live prediction stage (``PredictStage.process``) at 100,000 series, as the ingest path runs it.

Unlike ``bench_predict_cost.py`` (the forecaster alone) this times everything the stage does per scrape:
finding limited and limit series in the batch, keeping the newest limit values, filling the block ring,
tracking each series' peak, the forecast once a minute of event time, and the lifecycle (predictions
stored in SQLite, announced, handed on as signals). The batch is one scrape of ``--series`` series: half
of them limited (``container_memory_working_set_bytes``), each with its limit series
(``container_spec_memory_limit_bytes``): the worst case for the stage, where every series is either forecast
or a limit. Values come from ``bench_predict_cost.fleet`` (flat, daily cycles, sawtooth, pools, growth,
``--leaking`` trending to their limit). 4 h are loaded first (untimed), then ``--minutes`` of scrapes are
timed.

The budget is relative to the ingest path's CPU, as in ``bench_predict_cost.py``: ``--ingest-samples-per-s``
(README, Performance: remote_write over HTTP with detection on) gives the ingest CPU per scrape. Prints one
JSON line.

    python benchmarks/bench_predict_stage.py [--series 100000] [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from aurora.db.database import create_db_engine, migrate
from aurora.model import SeriesBatch
from aurora.predict.lifecycle import Lifecycle
from aurora.predict.stage import PredictStage
from aurora.predict.store import PredictionStore

sys.path.insert(0, str(Path(__file__).parent))
from bench_predict_cost import T0, fleet, sample

MEM, LIM = "container_memory_working_set_bytes", "container_spec_memory_limit_bytes"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=100_000, help="series per scrape (half limited, half limits)")
    ap.add_argument("--minutes", type=int, default=10, help="timed minutes of scrapes")
    ap.add_argument("--scrape-s", type=float, default=15.0)
    ap.add_argument("--leaking", type=float, default=0.005)
    ap.add_argument("--ingest-samples-per-s", type=float, default=177_000.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    n_lim = args.series // 2
    rng = np.random.default_rng(args.seed)
    f = fleet(n_lim, args.leaking, rng)
    f["direction"][:] = 1  # memory rises to its limit
    f["limit"] = np.where(f["limit"] < f["level"], f["level"] * 2, f["limit"])
    labels = [{"service": f"svc{i % 500}", "instance": f"i{i}"} for i in range(n_lim)]
    metrics, labs = [MEM] * n_lim + [LIM] * n_lim, labels + labels
    ids = np.arange(2 * n_lim, dtype=np.int64)
    offsets = np.arange(2 * n_lim + 1, dtype=np.int64)

    def batch(t: float) -> SeriesBatch:
        vals = np.concatenate([sample(f, t, rng), f["limit"]])
        return SeriesBatch(metrics, labs, offsets, np.full(2 * n_lim, int(t * 1000), np.int64), vals)

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_db_engine(f"sqlite:///{tmp}/bench.db")
        migrate(engine)
        stage = PredictStage(Lifecycle(PredictionStore(engine)))
        per_min = round(60.0 / args.scrape_s)
        warm, timed = 240 * per_min, args.minutes * per_min
        t = T0
        spent: list[float] = []
        with Progress(transient=True) as progress:
            task = progress.add_task("4 h of scrapes, then the timed ones", total=warm + timed)
            for i in range(warm + timed):
                b = batch(t)
                t0 = time.perf_counter()
                stage.process(b, ids, int(t * 1000))
                if i >= warm:
                    spent.append(time.perf_counter() - t0)
                t += args.scrape_s
                progress.advance(task)
        engine.dispose()
    per_scrape = float(np.mean(spent))
    ingest_cpu = 2 * n_lim / args.ingest_samples_per_s
    print(json.dumps({
        "bench": "predict_stage",
        "series": 2 * n_lim,
        "limited_series": n_lim,
        "scrapes_timed": len(spent),
        "evaluations": stage.evaluations,
        "stage_s_per_scrape_mean": round(per_scrape, 4),
        "stage_s_per_scrape_max": round(max(spent), 4),
        "stage_us_per_sample": round(1e6 * per_scrape / (2 * n_lim), 3),
        "active_predictions": len(stage.lifecycle.active),
        "predictions_issued": stage.lifecycle.counts["issued"],
        "ingest_samples_per_s": args.ingest_samples_per_s,
        "ingest_cpu_s_per_scrape": round(ingest_cpu, 4),
        "stage_share_of_ingest_cpu": round(per_scrape / ingest_cpu, 4),
        "target_share": 0.05,
    }))


if __name__ == "__main__":
    main()
