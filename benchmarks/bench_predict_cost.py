"""Cost of the trend forecaster over 100,000 limited series, per evaluation, with the window used live.

The live shape: every limited series keeps a ``BlockBuffer`` ring (1-min blocks over 4 h, the
forecaster's default window), filled sample by sample as scrapes arrive (one ``add`` per scrape round,
columnar); once a minute of event time the forecaster evaluates every series (``forecast``: the
screen on a dozen blocks of every series, the full fit on those that pass it or have an active
prediction). The buffer is first filled with 4 h of data (untimed), then ``--evals`` evaluations are
timed, each after one more minute of scrapes (whose ``add`` is timed separately, per sample).

The fleet is a mix of what limited series look like: flat noisy gauges, daily cycles (no daily
profile yet: the worst case, every rise is a candidate), GC sawtooth, integer connection pools,
organic growth, and ``--leaking`` of them genuinely trending to their limit. The worst case (every
series gets the full fit, ``screen=False``) is measured on ``--worst-series`` series and reported per
series.

The budget is relative to the ingest path's CPU: ``--ingest-samples-per-s`` is the measured throughput
of remote_write over HTTP with live detection (README, Performance), so ingest costs
``1 / ingest_samples_per_s`` CPU-seconds per sample; at ``--scrape-s`` 15 s, 100,000 series send
``100,000 * eval_s / scrape_s`` samples per evaluation interval. Prints one JSON line.

    python benchmarks/bench_predict_cost.py [--series 100000] [--evals 10] [--ingest-samples-per-s 177000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from rich.progress import Progress

from aurora.predict.blocks import BlockBuffer
from aurora.predict.trend import TrendConfig, forecast

T0 = 1_700_006_400.0  # a minute boundary


def fleet(n: int, leaking: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    kind = rng.choice(6, size=n, p=[0.60, 0.15, 0.10, 0.10, 0.05 - leaking, leaking])
    ceiling = np.where(kind == 3, rng.integers(20, 101, n).astype(np.float64), 1000.0)
    level = ceiling * rng.uniform(0.2, 0.6, n)
    direction = np.where((rng.random(n) < 0.02) & (kind != 3), -1, 1)
    return {
        "kind": kind,
        "limit": np.where(direction < 0, 0.4 * level, ceiling),  # a falling series has a floor below it
        "direction": direction,
        "level": level,
        "noise": ceiling * rng.uniform(0.001, 0.01, n),
        "amp": ceiling * rng.uniform(0.05, 0.15, n),
        "period": rng.uniform(120.0, 600.0, n),
        "phase": rng.uniform(0.0, 1.0, n),
        "rate": np.where(kind == 5, ceiling * rng.uniform(0.4, 0.8, n) / rng.uniform(2 * 3600, 10 * 3600, n),
                         ceiling * rng.uniform(0.01, 0.05, n) / 86400.0),
    }


def sample(f: dict[str, np.ndarray], t: float, rng: np.random.Generator) -> np.ndarray:
    k, el = f["kind"], t - T0
    v = f["level"] + f["noise"] * rng.standard_normal(k.size)
    v = v + np.where(k == 1, f["amp"] * np.sin(2 * np.pi * (t / 86400.0 + f["phase"])), 0.0)
    v = v + np.where(k == 2, f["amp"] * ((el / f["period"] + f["phase"]) % 1.0), 0.0)
    v = np.where(k == 3, np.floor(f["level"] + 3 * np.sin(2 * np.pi * (el / 5400.0 + f["phase"]))), v)
    v = v + np.where((k == 4) | (k == 5), f["rate"] * el, 0.0)
    # falling series (accuracy-like) move the other way around their level
    return np.where(f["direction"] < 0, 2 * f["level"] - v, v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=100_000, help="limited series")
    ap.add_argument("--evals", type=int, default=10, help="timed evaluations")
    ap.add_argument("--scrape-s", type=float, default=15.0)
    ap.add_argument("--leaking", type=float, default=0.005, help="share of series trending to their limit")
    ap.add_argument("--worst-series", type=int, default=10_000, help="series for the no-screen worst case")
    ap.add_argument("--ingest-samples-per-s", type=float, default=177_000.0,
                    help="the ingest path's throughput per core (README: remote_write over HTTP, detection on)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    cfg = TrendConfig()
    n, rng = args.series, np.random.default_rng(args.seed)
    f = fleet(n, args.leaking, rng)
    buf = BlockBuffer(f["direction"], cfg.block_s, cfg.n_blocks)
    slots = np.arange(n)
    per_eval = round(cfg.block_s / args.scrape_s)
    warm = cfg.n_blocks * per_eval
    t = T0
    with Progress(transient=True) as progress:
        task = progress.add_task("filling 4 h of blocks", total=warm + args.evals * per_eval)
        for _ in range(warm):
            buf.add(slots, np.full(n, t), sample(f, t, rng))
            t += args.scrape_s
            progress.advance(task)
        active = np.zeros(n, bool)
        eval_s, add_s, fitted, act = [], 0.0, [], []
        for _ in range(args.evals):
            for _ in range(per_eval):
                v = sample(f, t, rng)
                tt = np.full(n, t)
                t0 = time.perf_counter()
                buf.add(slots, tt, v)
                add_s += time.perf_counter() - t0
                t += args.scrape_s
                progress.advance(task)
            now = t - args.scrape_s
            t0 = time.perf_counter()
            fc = forecast(buf.blocks(now), f["limit"], cfg, active=active)
            eval_s.append(time.perf_counter() - t0)
            active = fc.active
            fitted.append(int(fc.fitted.sum()))
            act.append(int(active.sum()))
        blk = buf.blocks(t - args.scrape_s)
        w = min(args.worst_series, n)
        sub = type(blk)(blk.now, blk.block_s, blk.total[:, :w], blk.ext[:, :w], blk.count[:, :w], blk.t,
                        blk.offset[:w], blk.direction[:w], blk.order)
        t0 = time.perf_counter()
        forecast(sub, f["limit"][:w], TrendConfig(screen=False))
        worst_us = 1e6 * (time.perf_counter() - t0) / w

    med = float(np.median(eval_s))
    samples_per_eval = n * cfg.block_s / args.scrape_s
    ingest_cpu_per_eval = samples_per_eval / args.ingest_samples_per_s
    add_us = 1e6 * add_s / (args.evals * per_eval * n)
    print(json.dumps({
        "bench": "predict_cost",
        "series": n,
        "window": f"{cfg.n_blocks} blocks x {cfg.block_s:.0f} s",
        "evaluations": args.evals,
        "eval_interval_s": cfg.block_s,
        "forecast_s_per_eval_median": round(med, 4),
        "forecast_s_per_eval_max": round(max(eval_s), 4),
        "forecast_us_per_series_eval": round(1e6 * med / n, 3),
        "fitted_per_eval_median": int(np.median(fitted)),
        "fitted_share": round(float(np.median(fitted)) / n, 4),
        "active_predictions": act[-1],
        "full_fit_us_per_series": round(worst_us, 1),
        "worst_case_s_per_eval": round(worst_us * n / 1e6, 2),
        "buffer_add_us_per_sample": round(add_us, 4),
        "buffer_bytes_per_series": int((buf.total.nbytes + buf.ext.nbytes + buf.count.nbytes) / n),
        "ingest_samples_per_s": args.ingest_samples_per_s,
        "ingest_cpu_s_per_eval_interval": round(ingest_cpu_per_eval, 3),
        "forecast_share_of_ingest_cpu": round(med / ingest_cpu_per_eval, 4),
        "buffer_share_of_ingest_cpu": round(add_us * 1e-6 * args.ingest_samples_per_s, 4),
        "target_share": 0.05,
    }))


if __name__ == "__main__":
    main()
