"""The ensemble detector: causal, deterministic, batch-invariant, checkpointable, NaN-safe, and it alarms on a
step and a spike but not on ordinary noise with a daily cycle."""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

import numpy as np
import pytest

from aurora.detect.ensemble import EnsembleDetector, EnsembleResult, concat_results

T0 = 1_700_000_000.0
DAY = 86400.0


def assert_same(a: EnsembleResult, b: EnsembleResult, rows: slice | np.ndarray = slice(None)) -> None:
    """Every field identical, bit for bit (NaN equal to NaN), on ``rows`` of ``a`` against all of ``b``."""
    for f in fields(EnsembleResult):
        x, y = getattr(a, f.name)[rows], getattr(b, f.name)
        assert x.shape == y.shape, f.name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f"{f.name} differs"


def varied(n: int, step_s: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A series that exercises every analyzer: a daily cycle, noise, a slow trend, a spike, a step, a noisy
    stretch, a flat stretch and a few NaNs."""
    rng = np.random.default_rng(seed)
    t = T0 + step_s * np.arange(n)
    x = 50 + 10 * np.sin(2 * np.pi * t / DAY) + 0.01 * np.arange(n) + rng.normal(0, 1, n)
    x[n // 3] += 40
    x[n // 2:] += 15
    x[2 * n // 3: 2 * n // 3 + 30] += rng.normal(0, 8, 30)
    x[3 * n // 4: 3 * n // 4 + 40] = x[3 * n // 4]
    x[[n // 5, n // 5 + 1, n // 2 + 7]] = np.nan
    return x, t


def run_batched(xs: np.ndarray, t: np.ndarray, order_seed: int | None = None) -> list[EnsembleResult]:
    """All series of ``xs`` (series x samples) in one detector, every step one update of all slots (in a
    shuffled order when ``order_seed`` is given). Returns each slot's results over time."""
    det = EnsembleDetector()
    m, n = xs.shape
    rng = np.random.default_rng(order_seed)
    per_slot: list[list[EnsembleResult]] = [[] for _ in range(m)]
    for i in range(n):
        slots = rng.permutation(m) if order_seed is not None else np.arange(m)
        res = det.update(slots, xs[slots, i], np.full(m, t[i]))
        for j, s in enumerate(slots):
            per_slot[s].append(EnsembleResult(*(getattr(res, f.name)[j:j + 1] for f in fields(EnsembleResult))))
    return [concat_results(p) for p in per_slot]


def test_scores_are_causal() -> None:
    """A prefix scores exactly the same whether or not more data follows: every field, every analyzer."""
    x, t = varied(1200, 300.0)
    full = EnsembleDetector().run(x, t)
    for p in (700, 401):
        prefix = EnsembleDetector().run(x[:p], t[:p])
        assert_same(full, prefix, slice(0, p))
    assert full.votes.shape[1] == len(EnsembleDetector().names)
    voted = (full.votes[:700] > 0).any(axis=0)  # the prefix exercises every analyzer
    assert voted.all(), f"never voted: {[n for n, v in zip(EnsembleDetector().names, voted, strict=True) if not v]}"


def test_two_runs_are_identical() -> None:
    x, t = varied(800, 300.0, seed=1)
    assert_same(EnsembleDetector().run(x, t), EnsembleDetector().run(x, t))


def test_a_batch_of_slots_equals_each_slot_alone() -> None:
    n, m = 400, 6
    t = T0 + 300.0 * np.arange(n)
    rng = np.random.default_rng(2)
    xs = np.stack([varied(n, 300.0, seed=s)[0] * scale + offset
                   for s, scale, offset in zip(range(m), 10.0 ** rng.uniform(-3, 6, m), rng.normal(0, 100, m),
                                               strict=True)])
    batched = run_batched(xs, t, order_seed=3)
    for s in range(m):
        assert_same(batched[s], EnsembleDetector().run(xs[s], t))


def test_state_round_trip_mid_stream() -> None:
    n, m, cut = 700, 3, 450
    t = T0 + 300.0 * np.arange(n)
    xs = np.stack([varied(n, 300.0, seed=10 + s)[0] for s in range(m)])
    slots = np.arange(m)
    a = EnsembleDetector()
    for i in range(cut):
        a.update(slots, xs[:, i], np.full(m, t[i]))
    b = EnsembleDetector.from_state(copy.deepcopy(a.state()))
    assert b.names == a.names and b.config == a.config and b.nbytes_per_slot() == a.nbytes_per_slot()
    for i in range(cut, n):
        ra = a.update(slots, xs[:, i], np.full(m, t[i]))
        rb = b.update(slots, xs[:, i], np.full(m, t[i]))
        assert_same(ra, rb)
    sa, sb = a.state(), b.state()
    assert sa["config"] == sb["config"]
    for part in ("likelihood", "gate"):
        for k in sa[part]:
            assert np.array_equal(sa[part][k], sb[part][k], equal_nan=True), (part, k)


def test_non_finite_values_score_zero_and_change_nothing() -> None:
    x, t = varied(600, 300.0, seed=4)
    x = x.copy()
    bad = np.array([50, 51, 52, 300, 301, 450])
    x[bad[:3]] = np.nan
    x[bad[3:5]] = [np.inf, -np.inf]
    x[bad[5]] = np.nan
    ok = np.isfinite(x)
    with_bad = EnsembleDetector().run(x, t)
    without = EnsembleDetector().run(x[ok], t[ok])
    assert_same(with_bad, without, ok)  # the finite samples score as if the others were never there
    bad_rows = ~ok
    assert (with_bad.score[bad_rows] == 0).all() and not with_bad.alarm[bad_rows].any()
    assert (with_bad.votes[bad_rows] == 0).all() and np.isnan(with_bad.expected[bad_rows]).all()
    det = EnsembleDetector(2)
    res = det.update(np.array([0, 1]), np.array([np.nan, np.nan]), np.full(2, T0))
    assert (res.score == 0).all() and not res.alarm.any()


def test_bad_calls_are_refused() -> None:
    det = EnsembleDetector()
    with pytest.raises(ValueError, match="only once"):
        det.update(np.array([0, 0]), np.array([1.0, 2.0]), np.full(2, T0))
    with pytest.raises(ValueError, match="same shape"):
        det.update(np.array([0, 1]), np.array([1.0]), np.full(1, T0))
    empty = det.update(np.array([], np.int64), np.array([]), np.array([]))
    assert len(empty.score) == 0


def test_steps_and_spikes_alarm_but_a_daily_cycle_does_not() -> None:
    """Ten days of 5-minute data: four noisy daily cycles (different seeds and scales) stay silent; a spike
    and a step on day 8 are alarmed at once."""
    n = 10 * 288
    t = T0 + 300.0 * np.arange(n)
    at = 8 * 288 + 40
    rows = []
    for seed, level, noise in ((0, 100, 2.0), (1, 1e6, 1e4), (2, 5, 0.1), (3, 0.02, 0.0005)):
        rng = np.random.default_rng(seed)
        rows.append(level * (1 + 0.2 * np.sin(2 * np.pi * t / DAY)) + rng.normal(0, noise, n))
    rng = np.random.default_rng(9)
    cycle = 100 * (1 + 0.2 * np.sin(2 * np.pi * t / DAY)) + rng.normal(0, 2.0, n)
    spike = cycle.copy()
    spike[at] += 60  # 30 noise sigmas, 3x the daily swing
    step = cycle.copy()
    step[at:] += 60
    rows += [spike, step]
    res = run_batched(np.stack(rows), t)
    for i in range(4):
        assert not res[i].alarm.any(), f"noise series {i} alarmed at {np.flatnonzero(res[i].alarm)}"
    assert np.flatnonzero(res[4].alarm).tolist() == [at]
    alarms = np.flatnonzero(res[5].alarm)
    assert len(alarms) and at <= alarms[0] < at + 6 and (alarms >= at).all()


def test_likelihood_columns_are_independent_and_a_dead_analyzer_is_left_alone() -> None:
    """A column whose analyzer is not ready anywhere (the seasonal one in its first day) takes the fast path
    with the others: its outputs are 0 and its state untouched, and the live columns score exactly as a
    likelihood over them alone would."""
    from aurora.detect.likelihood import Likelihood

    rng = np.random.default_rng(0)
    m = 300
    three, two = Likelihood(3), Likelihood(2)
    three.ensure_slots(m)
    two.ensure_slots(m)
    for k in range(400):
        z = np.abs(rng.normal(size=(m, 3))) * (1 + 6 * (k % 97 == 0))
        ready = np.ones((m, 3), bool)
        ready[:, 1] = k >= 350  # the middle analyzer wakes up late, for every series at once
        before = {f: a[:, 1].copy() for f, a in three.s.arrays.items()}
        slots: Any = [slice(0, m), np.arange(m), np.arange(m)[::-1].copy()][k % 3]  # slices and index arrays
        lp3, s3 = three.update(slots, z, ready)
        lp2, s2 = two.update(slots, z[:, [0, 2]], ready[:, [0, 2]])
        assert np.array_equal(lp3[:, [0, 2]], lp2) and np.array_equal(s3[:, [0, 2]], s2)
        if k < 350:
            assert not s3[:, 1].any()
            assert all(np.array_equal(three.s.arrays[f][:, 1], before[f]) for f in before)
