"""Encode/decode throughput of the chunk codec on a store-flush-sized batch — a measurement script, not a test.

    .venv/bin/python benchmarks/bench_codec_speed.py [--series 2000] [--samples 240] [--repeat 5]

Builds ``--series`` chunks of the realistic synthetic mix of ``bench_disk_size.py`` (each series draws its
class by the mix weights, so bytes/sample here is the sample-weighted mix, comparable to the weighted figure
there), then times ``encode_chunks`` on the whole batch (what a store flush does), the single-chunk
``encode_chunk`` loop, and ``decode_chunks``. Best of ``--repeat`` runs; checks that batch and single
encodings are byte-identical and round-trip bit-exactly. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_disk_size import CLASSES, _scrape_ts

from aurora.store.codec import decode_chunks, encode_chunk, encode_chunks


def _best(fn: object, repeat: int) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=240)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    names = list(CLASSES)
    weights = np.array([CLASSES[c][0] for c in names])
    picks = rng.choice(len(names), args.series, p=weights / weights.sum())
    batch = [
        (_scrape_ts(rng, args.samples), np.asarray(CLASSES[names[i]][1](rng, args.samples), dtype=np.float64))
        for i in picks
    ]
    samples = args.series * args.samples

    blobs = encode_chunks(batch)
    single = [encode_chunk(ts, v) for ts, v in batch]
    identical = sum(a == b for a, b in zip(blobs, single, strict=True))
    for (ts, v), (ts2, v2) in zip(batch, decode_chunks(blobs), strict=True):
        assert np.array_equal(ts, ts2) and np.array_equal(v.view(np.uint64), v2.view(np.uint64))

    t_batch = _best(lambda: encode_chunks(batch), args.repeat)
    t_single = _best(lambda: [encode_chunk(ts, v) for ts, v in batch], max(1, args.repeat // 2))
    t_dec = _best(lambda: decode_chunks(blobs), max(1, args.repeat // 2))
    print(
        json.dumps(
            {
                "series": args.series,
                "samples_per_chunk": args.samples,
                "bytes_per_sample_batch": round(sum(map(len, blobs)) / samples, 4),
                "bytes_per_sample_single": round(sum(map(len, single)) / samples, 4),
                "identical_rows": identical,
                "encode_chunks_samples_per_s": round(samples / t_batch),
                "encode_chunk_loop_samples_per_s": round(samples / t_single),
                "decode_chunks_samples_per_s": round(samples / t_dec),
                "encode_chunks_us_per_chunk": round(t_batch / args.series * 1e6, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
