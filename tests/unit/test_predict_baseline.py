"""The baseline time-to-breach predictor on crafted series."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import theilslopes

from aurora.predict.baseline import PredictConfig, limit_columns, predict_breaches, theil_sen

STEP = 15.0
T0 = 1_700_000_000.0


def _times(n: int) -> np.ndarray:
    return T0 + STEP * np.arange(n)


def test_linear_ramp_eta_within_a_step_of_the_truth() -> None:
    t = _times(2 * 240)  # 2 h of samples
    rng = np.random.default_rng(1)
    breach = T0 + 5 * 3600.0
    y = 100.0 + (900.0 / (breach - T0)) * (t - T0) + rng.normal(0, 0.5, t.size)
    now = float(t[-1])
    [rec] = predict_breaches(t, y[None, :], 1000.0, now)
    assert abs(rec["eta"] - breach) <= STEP
    assert rec["eta_low"] <= breach <= rec["eta_high"]
    assert rec["eta_low"] <= rec["eta"] <= rec["eta_high"]
    assert rec["since"] > now - 3600.0 and rec["limit"] == 1000.0 and rec["slope"] > 0
    assert rec["current"] == pytest.approx(y[-1], abs=2.0)


def test_noise_free_ramp_is_exact() -> None:
    t = _times(241)
    y = 10.0 + 0.01 * (t - T0)
    [rec] = predict_breaches(t, y[None, :], 200.0, float(t[-1]))
    assert rec["eta"] == pytest.approx(T0 + 19000.0, abs=1e-3)


def test_flat_series_gives_no_prediction() -> None:
    t = _times(480)
    rng = np.random.default_rng(2)
    flat = np.vstack([np.full(t.size, 500.0), 500.0 + rng.normal(0, 5, t.size)])
    assert predict_breaches(t, flat, 1000.0, float(t[-1])) == []


def test_single_spike_gives_no_prediction() -> None:
    t = _times(480)
    y = np.full(t.size, 500.0) + np.random.default_rng(3).normal(0, 1, t.size)
    for k in (t.size - 1, t.size - 30, t.size - 200):
        spiked = y.copy()
        spiked[k] = 999.0  # one sample just under the limit
        assert predict_breaches(t, spiked[None, :], 1000.0, float(t[-1])) == []


def test_far_breach_is_beyond_the_horizon() -> None:
    t = _times(480)
    y = 100.0 + 1e-3 * (t - T0)  # limit reached after ~250 h
    assert predict_breaches(t, y[None, :], 1000.0, float(t[-1])) == []
    assert predict_breaches(t, y[None, :], 1000.0, float(t[-1]), config=PredictConfig(horizon_s=1e7))


def test_falling_series_towards_a_floor() -> None:
    t = _times(480)
    y = 0.92 - (0.07 / 14400.0) * (t - T0)  # reaches 0.85 after 4 h
    [rec] = predict_breaches(t, y[None, :], 0.85, float(t[-1]), direction=-1)
    assert abs(rec["eta"] - (T0 + 14400.0)) <= STEP
    assert rec["direction"] == -1
    assert predict_breaches(t, y[None, :], 0.85, float(t[-1]), direction=1) == []


def test_causal_prediction_at_t_ignores_later_data() -> None:
    t = _times(600)
    rng = np.random.default_rng(4)
    y = np.vstack([50 + 0.05 * (t - T0) + rng.normal(0, 2, t.size), 80 + rng.normal(0, 1, t.size)])
    now = float(t[400])
    head = predict_breaches(t[:401], y[:, :401], np.array([1000.0, 100.0]), now)
    later = y.copy()
    later[:, 401:] = 1e9  # wildly different future
    full = predict_breaches(t, later, np.array([1000.0, 100.0]), now)
    assert head and head == full


def test_vectorised_rows_match_scipy_theilslopes() -> None:
    rng = np.random.default_rng(5)
    t = _times(61)
    y = rng.normal(0, 1, (4, t.size)) + np.array([[0.0], [0.01], [-0.02], [0.05]]) * (t - T0)
    y[2, 10] = np.nan  # a missing sample in one row only
    fit = theil_sen(t, y, float(t[-1]))
    for r in range(4):
        ok = np.isfinite(y[r])
        ref = theilslopes(y[r, ok], t[ok], 0.95)
        assert fit.slope[r] == pytest.approx(ref.slope)
        assert fit.slope_low[r] == pytest.approx(ref.low_slope)
        assert fit.slope_high[r] == pytest.approx(ref.high_slope)


def test_limit_columns_pairs_series_with_their_limits() -> None:
    series = [
        ("container_memory_working_set_bytes", {"service": "a"}),
        ("container_spec_memory_limit_bytes", {"service": "a"}),
        ("container_memory_working_set_bytes", {"service": "b"}),  # no limit series: skipped
        ("model_accuracy_ratio", {"service": "m"}),
    ]
    out = limit_columns(series)
    assert [(c.column, c.limit_column, c.direction) for c in out[:1]] == [(0, 1, 1)]
    assert out[1].column == 3 and out[1].limit_value == 0.85 and out[1].direction == -1
    assert len(out) == 2
