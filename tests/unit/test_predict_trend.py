"""The trend forecaster on the traps: daily cycles, sawtooth, spikes, flat-then-ramp, floors; causality.

Every case is streamed the way the live stage and the bench run it: an evaluation every few minutes of
event time, each seeing only the samples up to ``now``, with the previous evaluation's active set.
"""

from __future__ import annotations

import numpy as np
import pytest

from aurora.predict import baseline
from aurora.predict.blocks import BlockBuffer, blocks_from_samples
from aurora.predict.season import daily_profile, profile_at
from aurora.predict.trend import ISSUE, KEEP, NONE, WITHDRAW, TrendConfig, forecast, predict_breaches, records

STEP = 15.0
H = 3600.0
DAY = 86400.0
T0 = 1_700_006_400.0  # 00:00 UTC, so phases of the day are easy to read
CFG = TrendConfig()


def _times(hours: float, step: float = STEP) -> np.ndarray:
    return T0 + step * np.arange(int(hours * H / step))


def _stream(t: np.ndarray, y: np.ndarray, limit: float, direction: int = 1, start: float | None = None,
            stop: float | None = None, every: float = 300.0, profile_of: object = None) -> list[tuple[float, dict]]:
    """(now, record) of every evaluation with a prediction on the one series ``y``."""
    out: list[tuple[float, dict]] = []
    active = np.zeros(1, bool)
    first = t[0] + 1800.0 if start is None else start
    last = t[-1] if stop is None else stop
    for now in np.arange(first, last + 1e-9, every):
        blk = blocks_from_samples(t, y[None, :], float(now), direction, CFG.block_s, CFG.n_blocks)
        prof = profile_of(float(now)) if callable(profile_of) else None
        fc = forecast(blk, limit, CFG, active=active, profile=prof)
        active = fc.active
        out += [(float(now), r) for r in records(fc)]
    return out


def _first_breach(t: np.ndarray, y: np.ndarray, limit: float, after: float) -> float:
    return float(t[(y >= limit) & (t > after)][0])


def _coverage(preds: list[tuple[float, dict]], truth: float) -> float:
    before = [r for now, r in preds if now < truth]
    return sum(r["eta_low"] <= truth <= r["eta_high"] for r in before) / len(before)


# --- daily cycles -----------------------------------------------------------------------------------
def _daily(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # peaks at 18:00 at 950 against a limit of 1000: every morning the rise looks like a trend
    return 800.0 + 150.0 * np.sin(2 * np.pi * ((t - T0) / DAY - 0.5)) + rng.normal(0, 3, t.size)


def test_daily_cycle_without_trend_gives_no_prediction_once_its_profile_is_known() -> None:
    rng = np.random.default_rng(10)
    t = _times(72, step=60.0)
    y = _daily(t, rng)

    def prof(now: float) -> np.ndarray:  # from history before the fit window, as the live stage would
        keep = t <= now - CFG.window_s
        return daily_profile(t[keep], y[None, keep])

    day3 = T0 + 2 * DAY
    assert _stream(t, y, 1000.0, start=day3, stop=day3 + DAY - 60, profile_of=prof) == []
    # the trap is real: without the profile the same data looks like a trend on the way up
    naive = _stream(t, y, 1000.0, start=day3, stop=day3 + DAY - 60)
    assert naive and all(r["seasonality"] == "unknown" for _, r in naive)
    keep = (t <= day3 + 12 * H) & (t > day3 + 11 * H)
    assert baseline.predict_breaches(t[keep], y[None, keep], 1000.0, day3 + 12 * H)


def test_daily_cycle_with_a_leak_is_predicted_with_the_cycle_added_back() -> None:
    rng = np.random.default_rng(11)
    t = _times(72, step=60.0)
    onset = T0 + 2 * DAY + 8 * H
    leak = np.where(t > onset, (t - onset) * 250.0 / (6 * H), 0.0)
    y = _daily(t, rng) + leak
    clean = 800.0 + 150.0 * np.sin(2 * np.pi * ((t - T0) / DAY - 0.5)) + leak
    truth = _first_breach(t, clean, 1000.0, onset)  # ~4.3 h after onset, the cycle helping

    def prof(now: float) -> np.ndarray:
        keep = t <= now - CFG.window_s
        return daily_profile(t[keep], y[None, keep])

    preds = _stream(t, y, 1000.0, start=onset, stop=truth, profile_of=prof)
    assert preds and preds[0][1]["seasonality"] == "profile"
    assert preds[0][0] - onset <= 1.5 * H
    assert _coverage(preds, truth) >= 0.8


def test_daily_profile_recovers_a_cycle_and_is_flat_for_noise() -> None:
    rng = np.random.default_rng(12)
    t = _times(50, step=60.0)
    cyc = 40.0 * np.sin(2 * np.pi * (t - T0) / DAY)
    y = np.vstack([500 + cyc + 0.002 * (t - T0) + rng.normal(0, 2, t.size), 500 + rng.normal(0, 2, t.size)])
    prof = daily_profile(t, y)
    at = profile_at(prof, t[:1440])
    assert np.abs(at[0] - cyc[:1440]).max() < 4.0  # the leak (0.002/s) is not in the profile
    assert np.all(prof[1] == 0.0)
    assert np.isnan(daily_profile(t[:1200], y[:, :1200])).all()  # 20 h: too short, unknown


# --- sawtooth -----------------------------------------------------------------------------------------
def _saw(t: np.ndarray, period: float, floor_rate: float, rng: np.random.Generator) -> np.ndarray:
    return 600.0 + 200.0 * (((t - T0) % period) / period) + floor_rate * (t - T0) + rng.normal(0, 2, t.size)


@pytest.mark.parametrize("period", [300.0, 1800.0])  # GC every 5 min; log rotation every 30 min
def test_sawtooth_without_net_growth_gives_no_prediction(period: float) -> None:
    rng = np.random.default_rng(20)
    t = _times(10)
    y = _saw(t, period, 0.0, rng)  # peaks just under 800, limit 850: every rise looks steep
    assert _stream(t, y, 850.0, start=T0 + 1.5 * H, every=60.0) == []
    if period > 600:  # the baseline's 1-h Theil-Sen is fooled by the rising phase of a slow sawtooth
        fooled = [now for now in np.arange(T0 + 2 * H, T0 + 4 * H, 60.0)
                  if baseline.predict_breaches(t[(t <= now) & (t > now - H)], y[None, (t <= now) & (t > now - H)],
                                               850.0, now)]
        assert fooled


def test_sawtooth_with_net_growth_is_predicted_from_its_peaks() -> None:
    rng = np.random.default_rng(21)
    t = _times(14)
    y = _saw(t, 300.0, 40.0 / H, rng)  # the floor rises 40 per hour; the peaks reach 1100 after ~7.5 h
    truth = _first_breach(t, y, 1100.0, T0)
    preds = _stream(t, y, 1100.0, every=300.0, stop=truth)
    assert preds
    first_at, first = preds[0]
    assert first["sawtooth"] and first["period_s"] == pytest.approx(300.0, rel=0.1)
    assert truth - first_at >= 2 * H
    assert abs(first["eta"] - truth) <= 0.15 * (truth - first_at)
    assert _coverage(preds, truth) >= 0.8


# --- spikes and steps ---------------------------------------------------------------------------------
def test_single_spikes_near_or_over_the_limit_give_no_prediction() -> None:
    rng = np.random.default_rng(30)
    t = _times(6)
    y = 500.0 + rng.normal(0, 2, t.size)
    for k, height, width in ((t.size - 1, 999.0, 1), (t.size - 20, 1200.0, 1), (t.size - 200, 995.0, 1),
                             (t.size - 12, 990.0, 8)):
        spiked = y.copy()
        spiked[k:k + width] = height
        blk = blocks_from_samples(t, spiked[None, :], float(t[-1]), 1, CFG.block_s, CFG.n_blocks)
        for cfg in (CFG, TrendConfig(screen=False)):  # not even the full fit is fooled
            assert forecast(blk, 1000.0, cfg).state[0] == NONE, (k, height, width)


def test_a_step_up_that_stays_flat_gives_no_prediction() -> None:
    rng = np.random.default_rng(31)
    t = _times(8)
    y = 600.0 + np.where(t > T0 + 4 * H, 300.0, 0.0) + rng.normal(0, 3, t.size)
    assert _stream(t, y, 1000.0, start=T0 + 3 * H, every=120.0) == []


# --- flat, then a ramp --------------------------------------------------------------------------------
def test_flat_then_ramp_is_predicted_soon_with_the_truth_in_its_interval() -> None:
    rng = np.random.default_rng(40)
    t = _times(10)
    onset, truth = T0 + 3 * H, T0 + 7 * H
    y = 300.0 + np.where(t > onset, (t - onset) * 700.0 / (truth - onset), 0.0) + rng.normal(0, 5, t.size)
    preds = _stream(t, y, 1000.0, start=T0 + 2 * H, stop=truth - 60, every=120.0)
    assert preds and preds[0][0] > onset  # nothing before the ramp
    first_at, first = preds[0]
    assert first_at - onset <= 60 * 60  # within the hour of a 4 h ramp (lead >= 3 h)
    assert first["eta_low"] <= truth <= first["eta_high"]
    assert abs(first["since"] - onset) <= 20 * 60
    assert first["state"] == "issue" and all(r["state"] == "keep" for _, r in preds[1:])
    assert _coverage(preds, truth) >= 0.9
    p = first["probabilities"]
    assert list(p) == ["30m", "1h", "2h", "4h"] and p["30m"] <= p["1h"] <= p["2h"] <= p["4h"]
    assert p["1h"] < 0.05 and p["4h"] > 0.5  # the breach is ~3 h away
    for key in ("eta", "eta_low", "eta_high", "probability", "slope", "slope_low", "slope_high", "current",
                "observed", "limit", "since", "window_s", "n_points", "envelope", "sawtooth", "seasonality",
                "direction", "explanation"):
        assert key in first
    assert first["slope_low"] <= first["slope"] <= first["slope_high"] and first["limit"] == 1000.0


def test_fast_staircase_pool_exhaustion_is_predicted_before_the_breach() -> None:
    t = _times(4)
    onset = T0 + 3 * H
    y = np.minimum(np.floor(2 + np.where(t > onset, (t - onset) * 18 / 1200.0, 0.0)), 20.0)  # 20 min to 20
    truth = _first_breach(t, y, 20.0, onset)
    preds = _stream(t, y, 20.0, start=onset, stop=truth - 1, every=60.0)
    assert preds and truth - preds[0][0] >= 5 * 60
    assert _coverage(preds, truth) >= 0.8


def test_a_trend_that_stops_is_withdrawn() -> None:
    rng = np.random.default_rng(41)
    t = _times(9)
    onset, stop = T0 + 3 * H, T0 + 5 * H
    ramp = np.clip(t - onset, 0.0, stop - onset) * 500.0 / (4 * H)
    y = 300.0 + ramp + rng.normal(0, 3, t.size)
    active = np.zeros(1, bool)
    states = []
    for now in np.arange(T0 + 2 * H, t[-1], 300.0):
        fc = forecast(blocks_from_samples(t, y[None, :], float(now), 1, 60.0, 240), 1000.0, CFG, active=active)
        active = fc.active
        states.append(int(fc.state[0]))
    assert ISSUE in states and KEEP in states and WITHDRAW in states
    assert states.index(WITHDRAW) > states.index(ISSUE)
    assert states[-1] == NONE  # flat again: nothing


# --- a falling metric to a floor -------------------------------------------------------------------------
def test_model_accuracy_falling_to_its_floor() -> None:
    onset, truth = T0 + 2 * H, T0 + 6 * H
    t = _times(9)
    covs = []
    for seed in range(50, 55):  # coverage is a statistical property: over a few noise draws
        rng = np.random.default_rng(seed)
        y = 0.92 - np.where(t > onset, (t - onset) * 0.07 / (truth - onset), 0.0) + rng.normal(0, 0.004, t.size)
        preds = _stream(t, y, 0.85, direction=-1, start=onset, stop=truth - 60)
        assert preds and preds[0][1]["direction"] == -1 and preds[0][1]["slope"] < 0
        assert truth - preds[0][0] >= 2 * H
        assert preds[0][1]["eta_low"] <= truth <= preds[0][1]["eta_high"]
        assert "falling" in preds[0][1]["explanation"]
        covs.append(_coverage(preds, truth))
    assert np.mean(covs) >= 0.85 and min(covs) >= 0.6
    assert _stream(t, y, 0.99, direction=1, start=onset, stop=truth - 60) == []  # falling away from a ceiling


# --- determinism, causality, the screen, the live buffer ---------------------------------------------
def _mixed(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    n = 40
    rows = [500 + rng.normal(0, 5, t.size) for _ in range(n // 2)]
    for i in range(n // 2):
        rate = (i + 1) * 0.002
        rows.append(200 + rate * (t - t[0]) + rng.normal(0, 5, t.size))
    return np.vstack(rows)


def test_deterministic_and_causal() -> None:
    rng = np.random.default_rng(60)
    t = _times(6)
    y = _mixed(rng, t)
    now = float(t[900])
    a = predict_breaches(t, y, 1000.0, now)
    b = predict_breaches(t, y.copy(), 1000.0, now)
    assert a and a == b
    future = y.copy()
    future[:, 901:] = 1e9  # a wildly different future
    assert predict_breaches(t, future, 1000.0, now) == a
    assert predict_breaches(t[:901], y[:, :901], 1000.0, now) == a


def test_screen_keeps_every_series_the_full_fit_would_predict() -> None:
    rng = np.random.default_rng(61)
    t = _times(6)
    y = _mixed(rng, t)
    for now in (t[300], t[600], t[-1]):
        blk = blocks_from_samples(t, y, float(now), 1, 60.0, 240)
        screened = forecast(blk, 1000.0, TrendConfig(refit_every=1))
        full = forecast(blk, 1000.0, TrendConfig(screen=False))
        assert np.array_equal(screened.state, full.state)
        assert full.fitted.sum() > screened.fitted.sum()


def test_staggered_refits_issue_within_refit_every_evaluations() -> None:
    rng = np.random.default_rng(63)
    t = _times(6)
    y = _mixed(rng, t)
    now = float(t[-1]) - float(t[-1]) % 60.0
    full = forecast(blocks_from_samples(t, y, now, 1, 60.0, 240), 1000.0, TrendConfig(screen=False))
    assert (full.state == ISSUE).sum() > 3
    issued = np.zeros(y.shape[0], bool)
    for i in range(CFG.refit_every):  # consecutive one-minute evaluations, nobody active yet
        fc = forecast(blocks_from_samples(t, y, now - 60.0 * i, 1, 60.0, 240), 1000.0, CFG)
        assert fc.fitted.sum() < (full.state == ISSUE).sum()  # each evaluation fits only its share
        issued |= fc.state == ISSUE
    assert np.array_equal(issued, full.state == ISSUE)  # yet all are issued within refit_every evaluations


def test_block_buffer_gives_the_same_forecast_as_blocks_from_samples() -> None:
    rng = np.random.default_rng(62)
    t = _times(5)  # starts on a minute boundary, so the buffer's blocks are the samples' blocks
    y = _mixed(rng, t)
    direction = np.ones(y.shape[0], dtype=np.int64)
    buf = BlockBuffer(direction, 60.0, 240)
    for k in range(0, t.size, 4):  # one scrape round after another, columnar
        slots = np.repeat(np.arange(y.shape[0]), 4)
        buf.add(slots, np.tile(t[k:k + 4], y.shape[0]), y[:, k:k + 4].reshape(-1))
    now = float(t[-1])
    live = forecast(buf.blocks(now), 1000.0, CFG)
    ref = forecast(blocks_from_samples(t, y, now, 1, 60.0, 240), 1000.0, CFG)
    assert np.array_equal(live.state, ref.state)
    issued = live.state == ISSUE
    assert issued.any()
    np.testing.assert_allclose(live.eta[issued], ref.eta[issued], rtol=0, atol=120.0)
    np.testing.assert_allclose(live.slope[issued], ref.slope[issued], rtol=1e-3)
