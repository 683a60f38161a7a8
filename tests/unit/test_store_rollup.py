"""Rollup arrays: encodings, exact merging of split buckets, coarsening 60 s buckets to 3600 s."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from aurora.store import rollup

T0 = 1_700_000_000_000


def _same(a: rollup.RollupArrays, b: rollup.RollupArrays) -> bool:
    return all(
        np.array_equal(np.asarray(getattr(a, f)).view(np.uint64), np.asarray(getattr(b, f)).view(np.uint64))
        for f in ("ts", "min", "max", "sum", "count", "last")
    )


def _data(n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = T0 + np.cumsum(rng.integers(1_000, 30_000, size=n))
    vals = rng.integers(-1000, 1000, size=n) / 8.0
    vals[rng.integers(0, n, 50)] = np.nan
    return ts, vals


@pytest.mark.parametrize("n", [0, 1, 2, 5000])
def test_encodings_round_trip(n: int) -> None:
    ts, vals = _data()
    agg, _ = rollup.compute(ts, vals, np.zeros(len(ts), np.int64), 60)
    agg = agg.slice(0, n)
    assert _same(rollup.decode(rollup.encode(agg)), agg)
    assert _same(rollup.decode(rollup.encode_rows_v1(agg, [0], [len(agg)])[0]), agg)
    if n > 100:
        assert len(rollup.encode(agg)) < len(rollup.encode_rows_v1(agg, [0], [len(agg)])[0])
    with pytest.raises(ValueError):
        rollup.decode(b"\x07" + rollup.encode(agg)[1:])


def test_split_buckets_merge_and_coarsen_exactly() -> None:
    ts, vals = _data()
    zeros = np.zeros(len(ts), np.int64)
    whole60, _ = rollup.compute(ts, vals, zeros, 60)
    whole3600, _ = rollup.compute(ts, vals, zeros, 3600)
    cuts = [0, 7, 1000, 1001, 2500, 4999, len(ts)]
    parts = [rollup.compute(ts[a:b], vals[a:b], zeros[a:b], 60)[0] for a, b in itertools.pairwise(cuts)]
    assert _same(rollup.merge(parts), whole60)
    assert _same(rollup.coarsen(whole60, 3600), whole3600)
    assert _same(rollup.merge([rollup.coarsen(p, 3600) for p in parts]), whole3600)
    assert _same(rollup.concat(parts), rollup.concat([rollup.concat(parts[:3]), rollup.concat(parts[3:])]))
    assert len(rollup.coarsen(rollup.RollupArrays.empty(), 3600)) == 0
