"""The baseline streaming detector: causal, deterministic, vectorised over slots."""

from __future__ import annotations

import numpy as np
import pytest

from aurora.detect.baseline import BaselineDetector


def _series(n: int = 1500, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 10 + np.sin(np.arange(n) / 30) + rng.normal(0, 0.2, n)
    if n > 1200:
        x[1000] += 8  # a spike
        x[1200:] += 3  # a level shift
    return x


def test_prefix_scores_do_not_change_when_more_data_follows() -> None:
    x = _series()
    full = BaselineDetector().run(x)
    for cut in (1, 60, 999, 1001, 1300):
        assert np.array_equal(BaselineDetector().run(x[:cut]), full[:cut])
    # The future cannot leak in: changing later rows leaves earlier scores untouched.
    y = x.copy()
    y[1100:] = 1e6
    assert np.array_equal(BaselineDetector().run(y)[:1100], full[:1100])


def test_deterministic_and_bounded() -> None:
    x = _series()
    a, b = BaselineDetector().run(x), BaselineDetector().run(x)
    assert np.array_equal(a, b)
    assert np.all((a >= 0) & (a <= 1))
    assert np.all(a[:50] == 0)  # warm-up


def test_spike_and_shift_score_high() -> None:
    s = BaselineDetector().run(_series())
    normal = np.quantile(s[100:990], 0.99)
    assert s[1000] > normal
    assert s[1200] > normal


def test_batched_slots_equal_one_series_at_a_time() -> None:
    xs = [_series(800, seed) for seed in range(3)]
    xs[1] = xs[1][:500]  # slots may have different lengths
    det = BaselineDetector(3)
    out: list[list[float]] = [[], [], []]
    for t in range(800):
        slots = np.array([i for i in range(3) if t < len(xs[i])])
        scores = det.update(slots, np.array([xs[i][t] for i in slots]))
        for i, s in zip(slots, scores, strict=True):
            out[i].append(float(s))
    for i in range(3):
        assert np.array_equal(np.array(out[i]), BaselineDetector().run(xs[i]))


def test_nan_is_skipped_and_state_round_trips() -> None:
    x = _series(300)
    det = BaselineDetector(1)
    for v in x[:200]:
        det.update(np.array([0]), np.array([v]))
    assert det.update(np.array([0]), np.array([np.nan]))[0] == 0.0
    clone = BaselineDetector.from_state(det.state())
    rest_a = [det.update(np.array([0]), np.array([v]))[0] for v in x[200:]]
    rest_b = [clone.update(np.array([0]), np.array([v]))[0] for v in x[200:]]
    assert rest_a == rest_b


def test_duplicate_slots_rejected() -> None:
    with pytest.raises(ValueError):
        BaselineDetector(2).update(np.array([1, 1]), np.array([1.0, 2.0]))
