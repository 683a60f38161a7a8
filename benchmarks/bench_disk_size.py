"""Disk size and speed of the chunk codec (aurora.store.codec) — a measurement script, not a test.

    .venv/bin/python benchmarks/bench_disk_size.py --nab /work/shared/data/nab/data

(a) a synthetic mix modelled on node_exporter + application metrics (15 s scrapes with a few ms of
jitter), per class and mix-weighted; (b) every CSV of the NAB corpus if --nab is given. Prints a table
and one JSON line. "batch enc" is ``encode_chunks`` (the store-flush path, byte-identical to
``encode_chunk``) over each class's chunks; the JSON's ``encode_chunks_samples_per_s`` is one call over all
synthetic chunks together. The "gorilla" column is an estimate of Prometheus' XOR chunk for the same samples
(Prometheus' dod buckets, Gorilla value windows), computed bit by bit in Python.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from aurora.store.codec import decode_chunk, encode_chunk, encode_chunks

CHUNK = 240
STEP_MS = 15_000
T0 = 1_700_000_000_000
Gen = Callable[[np.random.Generator, int], np.ndarray]


def _walk(rng: np.random.Generator, n: int, start: float, sd: float) -> np.ndarray:
    return start + np.cumsum(rng.normal(0, sd, n))


def _diurnal(rng: np.random.Generator, n: int) -> np.ndarray:
    phase = rng.uniform(0, 2 * np.pi)
    return 1 + 0.5 * np.sin(phase + np.arange(n) * 2 * np.pi * STEP_MS / 86_400_000)


# name -> (weight in the mix, generator). Weights roughly follow series counts of a node_exporter +
# instrumented-service fleet: histogram buckets dominate cardinality, then counters.
CLASSES: dict[str, tuple[float, Gen]] = {
    "counter_cpu_seconds": (
        0.12,
        lambda r, n: np.round(
            r.uniform(1e4, 1e6) + np.cumsum(r.uniform(0, 15, n) * _diurnal(r, n) * r.uniform(0.01, 1)), 2
        ),
    ),
    "counter_bytes": (
        0.08,
        lambda r, n: (
            r.integers(1e9, 1e12)
            + np.cumsum(np.round(r.lognormal(np.log(r.uniform(1e3, 1e7)), 0.6, n) * _diurnal(r, n))).astype(np.float64)
        ),
    ),
    "counter_requests": (
        0.10,
        lambda r, n: (r.integers(0, 1e7) + np.cumsum(r.poisson(r.uniform(0.1, 500) * _diurnal(r, n)))).astype(
            np.float64
        ),
    ),
    "gauge_memory_bytes": (
        0.08,
        lambda r, n: 4096.0 * np.round(np.clip(_walk(r, n, r.uniform(1e5, 4e6), r.uniform(1, 300)), 1, None)),
    ),
    "gauge_load_avg": (0.03, lambda r, n: np.round(np.clip(_walk(r, n, r.uniform(0, 8), 0.05), 0, None), 2)),
    "gauge_temperature": (
        0.02,
        lambda r, n: (
            np.round(_walk(r, n, r.uniform(35, 70), 0.3), 0) + r.choice([0.0, 0.5], n)
            if r.random() < 0.5
            else np.round(_walk(r, n, r.uniform(35, 70), 0.2), 3)
        ),
    ),
    "histogram_bucket": (
        0.30,
        lambda r, n: (
            r.integers(0, 1e6) * (r.random() < 0.7)
            + np.cumsum(r.poisson(r.choice([0.0, 0.01, 1, 20, 300]) * _diurnal(r, n)))
        ).astype(np.float64),
    ),
    "histogram_sum_seconds": (
        0.04,
        lambda r, n: r.uniform(0, 1e5) + np.cumsum(r.lognormal(-3, 1, n) * r.poisson(50, n)),
    ),
    "summary_quantile_latency": (0.06, lambda r, n: r.lognormal(np.log(r.uniform(0.001, 0.5)), 0.3, n)),
    "ratio": (0.05, lambda r, n: np.clip(r.normal(r.uniform(0.05, 0.95), 0.02, n), 0, 1)),
    "constant_up": (0.12, lambda r, n: np.ones(n)),
}


def _scrape_ts(rng: np.random.Generator, n: int) -> np.ndarray:
    jitter = int(rng.integers(1, 8))  # real scrapes land a few ms off schedule
    return (
        T0
        + int(rng.integers(0, STEP_MS))
        + np.arange(n, dtype=np.int64) * STEP_MS
        + rng.integers(-jitter, jitter + 1, n)
    )


def gorilla_bits(ts: np.ndarray, v: np.ndarray) -> int:
    """Bits Prometheus' XOR chunk would spend (header: 16-bit count, raw first ts/value)."""
    bits = 16 + 64 + 64
    if len(ts) > 1:
        bits += 14  # first delta as varint, ~2 bytes
    d = np.diff(ts)
    dd = np.diff(d)
    for x in dd.tolist():
        if x == 0:
            bits += 1
        elif -8191 <= x <= 8192:
            bits += 2 + 14
        elif -65535 <= x <= 65536:
            bits += 3 + 17
        elif -524287 <= x <= 524288:
            bits += 4 + 20
        else:
            bits += 4 + 64
    u = v.view(np.uint64).tolist()
    lead, trail = -1, -1
    for a, b in itertools.pairwise(u):
        x = a ^ b
        if x == 0:
            bits += 1
            continue
        lz = min(64 - x.bit_length(), 31)
        tz = (x & -x).bit_length() - 1
        if lead >= 0 and lz >= lead and tz >= trail:
            bits += 2 + (64 - lead - trail)
        else:
            lead, trail = lz, tz
            bits += 2 + 5 + 6 + (64 - lz - tz)
    return bits


def _read_nab(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=[("t", "U32"), ("v", "f8")])
    ts = np.array(raw["t"], dtype="datetime64[ms]").astype(np.int64)
    return ts, np.asarray(raw["v"], dtype=np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks-per-class", type=int, default=400)
    ap.add_argument("--nab", type=Path, help="NAB corpus data directory (read in place)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    console = Console()
    rng = np.random.default_rng(args.seed)

    per_class: dict[str, dict[str, float]] = {}
    enc_s = dec_s = 0.0
    samples = 0
    everything: list[tuple[np.ndarray, np.ndarray]] = []
    all_blobs: list[bytes] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("synthetic", total=len(CLASSES) * args.chunks_per_class)
        for name, (_, gen) in CLASSES.items():
            nbytes = gbits = 0
            chunks: list[tuple[np.ndarray, np.ndarray]] = []
            blobs: list[bytes] = []
            for _ in range(args.chunks_per_class):
                ts, v = _scrape_ts(rng, CHUNK), np.asarray(gen(rng, CHUNK), dtype=np.float64)
                t0 = time.perf_counter()
                blob = encode_chunk(ts, v)
                t1 = time.perf_counter()
                ts2, v2 = decode_chunk(blob)
                t2 = time.perf_counter()
                assert np.array_equal(ts2, ts) and np.array_equal(v2.view(np.uint64), v.view(np.uint64))
                enc_s += t1 - t0
                dec_s += t2 - t1
                samples += CHUNK
                nbytes += len(blob)
                gbits += gorilla_bits(ts, v)
                chunks.append((ts, v))
                blobs.append(blob)
                progress.advance(task)
            n = args.chunks_per_class * CHUNK
            t0 = time.perf_counter()
            batch = encode_chunks(chunks)
            batch_s = time.perf_counter() - t0
            assert batch == blobs
            everything += chunks
            all_blobs += blobs
            per_class[name] = {
                "bytes_per_sample": nbytes / n,
                "gorilla_bytes_per_sample": gbits / 8 / n,
                "batch_encode_samples_per_s": n / batch_s,
            }
        t0 = time.perf_counter()
        assert encode_chunks(everything) == all_blobs
        batch_all_s = time.perf_counter() - t0

        nab: dict[str, dict[str, float]] = {}
        if args.nab:
            files = sorted(args.nab.rglob("*.csv"))
            task = progress.add_task("NAB", total=len(files))
            for f in files:
                ts, v = _read_nab(f)
                group = f.parent.name
                g = nab.setdefault(group, {"samples": 0, "bytes": 0, "gorilla_bits": 0, "files": 0})
                g["files"] += 1
                for i in range(0, len(ts), CHUNK):
                    t, x = ts[i : i + CHUNK], v[i : i + CHUNK]
                    blob = encode_chunk(t, x)
                    t2, x2 = decode_chunk(blob)
                    assert np.array_equal(t2, t) and np.array_equal(x2.view(np.uint64), x.view(np.uint64))
                    g["samples"] += len(t)
                    g["bytes"] += len(blob)
                    g["gorilla_bits"] += gorilla_bits(t, x)
                progress.advance(task)

    total_w = sum(w for w, _ in CLASSES.values())
    mix = sum(CLASSES[c][0] * r["bytes_per_sample"] for c, r in per_class.items()) / total_w
    mix_g = sum(CLASSES[c][0] * r["gorilla_bytes_per_sample"] for c, r in per_class.items()) / total_w

    table = Table(title=f"aurora chunk codec — bytes/sample, {CHUNK}-sample chunks")
    for col in ("series class", "mix weight", "aurora", "gorilla est.", "≤ 2 B?", "batch enc M/s"):
        table.add_column(col, justify="left" if col == "series class" else "right")
    for c, r in per_class.items():
        b = r["bytes_per_sample"]
        table.add_row(
            c,
            f"{CLASSES[c][0]:.2f}",
            f"{b:.3f}",
            f"{r['gorilla_bytes_per_sample']:.3f}",
            "yes" if b <= 2 else "[red]no[/red]",
            f"{r['batch_encode_samples_per_s'] / 1e6:.1f}",
        )
    table.add_row(
        "[b]synthetic mix (weighted)[/b]",
        "1.00",
        f"[b]{mix:.3f}[/b]",
        f"{mix_g:.3f}",
        "yes" if mix <= 2 else "[red]no[/red]",
        f"{samples / batch_all_s / 1e6:.1f} (all)",
    )
    nab_total = None
    if nab:
        s = sum(g["samples"] for g in nab.values())
        b = sum(g["bytes"] for g in nab.values())
        gb = sum(g["gorilla_bits"] for g in nab.values())
        for grp, g in nab.items():
            table.add_row(
                f"NAB {grp} ({int(g['files'])} files)",
                "",
                f"{g['bytes'] / g['samples']:.3f}",
                f"{g['gorilla_bits'] / 8 / g['samples']:.3f}",
                "yes" if g["bytes"] / g["samples"] <= 2 else "[red]no[/red]",
            )
        nab_total = {"samples": s, "bytes_per_sample": b / s, "gorilla_bytes_per_sample": gb / 8 / s}
        table.add_row(
            "[b]NAB all[/b]", "", f"[b]{b / s:.3f}[/b]", f"{gb / 8 / s:.3f}", "yes" if b / s <= 2 else "[red]no[/red]"
        )
    console.print(table)
    speed = {
        "encode_chunks_samples_per_s": samples / batch_all_s,
        "encode_samples_per_s": samples / enc_s,
        "decode_samples_per_s": samples / dec_s,
        "encode_us_per_chunk": enc_s / (samples / CHUNK) * 1e6,
        "decode_us_per_chunk": dec_s / (samples / CHUNK) * 1e6,
    }
    console.print(
        f"speed over the synthetic mix: encode_chunks {speed['encode_chunks_samples_per_s'] / 1e6:.2f} M samples/s, "
        f"encode_chunk {speed['encode_samples_per_s'] / 1e6:.2f} M samples/s "
        f"({speed['encode_us_per_chunk']:.0f} µs/chunk), decode {speed['decode_samples_per_s'] / 1e6:.2f} "
        f"M samples/s ({speed['decode_us_per_chunk']:.0f} µs/chunk)"
    )
    print(
        json.dumps(
            {
                "chunk": CHUNK,
                "synthetic_mix_bytes_per_sample": round(mix, 4),
                "synthetic_mix_gorilla_bytes_per_sample": round(mix_g, 4),
                "per_class": {c: {k: round(x, 4) for k, x in r.items()} for c, r in per_class.items()},
                "nab": {k: round(x, 4) for k, x in nab_total.items()} if nab_total else None,
                "nab_groups": {g: round(r["bytes"] / r["samples"], 4) for g, r in nab.items()},
                **{k: round(x, 1) for k, x in speed.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
