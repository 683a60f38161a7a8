"""The persistent-homology analyzer: determinism, causality, checkpoints, what it sees and what it costs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import persim
import pytest

from aurora.detect.homology import HomologyAnalyzer, HomologyConfig, HomologyRecord, wasserstein

STEP = 15.0
# A small config so the tests need few evaluations; the defaults are exercised by the phase test.
SMALL = HomologyConfig(window=40, eval_every=10, baseline=6, min_baseline=4, warmup=2, min_calib=4, calib=24)


def noise(n: int, seed: int = 0) -> np.ndarray:
    """Stationary: an AR(1) load shared by two metrics plus a third, independent one."""
    rng = np.random.default_rng(seed)
    a = np.zeros(n)
    e = rng.normal(size=n)
    for k in range(1, n):
        a[k] = 0.9 * a[k - 1] + 0.4 * e[k]
    x = np.stack([a + 0.3 * rng.normal(size=n), a + 0.3 * rng.normal(size=n), rng.normal(size=n)], axis=1)
    return 100.0 + 10.0 * x  # units must not matter


def phase_switch(n: int = 1900, switch: int = 1300, seed: int = 3) -> tuple[np.ndarray, int]:
    """Two metrics following the same (slightly jittered) cycle in phase, then in anti-phase from ``switch``:
    each metric's marginal distribution is the same before and after, only how they move together changes."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    s = np.sin(2 * np.pi * t / 24 + 0.015 * np.cumsum(rng.normal(size=n)))
    load = s + 0.15 * rng.normal(size=n)
    cpu = np.where(t < switch, s, -s) + 0.15 * rng.normal(size=n)
    return np.stack([50 + 20 * load, 0.4 + 0.1 * cpu], axis=1), switch


def times(n: int) -> np.ndarray:
    return 1.7e9 + np.arange(n) * STEP


def as_dicts(recs: list[HomologyRecord]) -> list[dict[str, object]]:
    return [r.as_dict() for r in recs]


# --- determinism, causality, checkpoints -------------------------------------------------------------
def test_same_input_same_records() -> None:
    x = noise(400)
    a = HomologyAnalyzer(SMALL).observe("svc", times(400), x)
    b = HomologyAnalyzer(SMALL).observe("svc", times(400), x)
    assert len(a) == (400 - SMALL.window) // SMALL.eval_every + 1
    assert json.dumps(as_dicts(a)) == json.dumps(as_dicts(b))
    assert any(r.status == "scored" for r in a)


def test_causal_prefix_and_chunking() -> None:
    x, t = noise(400, seed=1), times(400)
    whole = HomologyAnalyzer(SMALL).observe("svc", t, x)
    prefix = HomologyAnalyzer(SMALL).observe("svc", t[:255], x[:255])
    assert as_dicts(prefix) == as_dicts([r for r in whole if r.time <= t[254]])
    # a future that differs does not change the past
    x2 = x.copy()
    x2[255:] *= 3.0
    other = HomologyAnalyzer(SMALL).observe("svc", t, x2)
    assert as_dicts(other[: len(prefix)]) == as_dicts(prefix)
    # chunks of any size give the same records as one call
    an = HomologyAnalyzer(SMALL)
    chunked = []
    for a, b in ((0, 1), (1, 37), (37, 38), (38, 250), (250, 400)):
        chunked += an.observe("svc", t[a:b], x[a:b])
    assert as_dicts(chunked) == as_dicts(whole)


def test_update_on_windows_equals_streaming() -> None:
    x, t = noise(300, seed=2), times(300)
    streamed = HomologyAnalyzer(SMALL).observe("svc", t, x, ["a", "b", "c"])
    an = HomologyAnalyzer(SMALL)
    ends = range(SMALL.window, 301, SMALL.eval_every)
    direct = [an.update("svc", float(t[e - 1]), x[e - SMALL.window:e], ["a", "b", "c"]) for e in ends]
    assert as_dicts(direct) == as_dicts(streamed)


def test_state_round_trip_resumes_exactly() -> None:
    x, t = noise(400, seed=4), times(400)
    whole = HomologyAnalyzer(SMALL).observe("svc", t, x)
    an = HomologyAnalyzer(SMALL)
    first = an.observe("svc", t[:223], x[:223])
    an.observe("db", t[:100], x[:100, :2])  # a second group, with another width
    state = json.loads(json.dumps(an.state()))  # plain JSON
    back = HomologyAnalyzer.from_state(state)
    assert json.dumps(back.state()) == json.dumps(state)
    assert back.config == SMALL
    rest = back.observe("svc", t[223:], x[223:])
    assert as_dicts(first + rest) == as_dicts(whole)


# --- what it sees ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def switched() -> tuple[list[HomologyRecord], int]:
    x, switch = phase_switch()
    return HomologyAnalyzer().observe("cart", times(len(x)), x, ["requests", "cpu"]), switch


def test_anti_phase_scores_high_and_stationary_low(switched: tuple[list[HomologyRecord], int]) -> None:
    recs, switch = switched
    cfg = HomologyConfig()
    t_switch = times(switch + 1)[-1]
    before = [r for r in recs if r.status == "scored" and r.time < t_switch]
    # windows wholly after the switch, within the hour the analyzer keeps a new shape out of its baseline
    hour = cfg.adapt_after * cfg.eval_every * STEP
    after = [r for r in recs if t_switch + cfg.window * STEP <= r.time < t_switch + hour]
    assert len(before) >= 40 and len(after) >= 8
    # the score is 1 - (estimated chance that ordinary variation is this unusual): stationary windows
    # spread over [0, 1) like p-values do, and none reaches the alarm threshold
    assert max(r.score for r in before) < cfg.threshold
    assert np.median([r.z for r in before]) < 1.5
    assert np.mean([r.anomalous for r in after]) >= 0.75
    hit = next(r for r in after if r.anomalous)
    assert hit.pair == ("requests", "cpu")
    assert hit.pair_corr is not None and hit.pair_corr[0] < -0.5 < 0.5 < hit.pair_corr[1]
    assert hit.explanation.startswith("cart's metrics move together differently from the last hour: H")
    assert "requests ~ cpu correlation" in hit.explanation
    assert hit.distance[hit.dim] > hit.baseline_quantiles[hit.dim][2]  # beyond the usual q90
    # a shape that lasts longer than adapt_after evaluations becomes the new normal
    late = [r for r in recs if r.time >= t_switch + 2 * hour]
    assert late and np.mean([r.anomalous for r in late]) < 0.25


def test_marginals_of_the_crafted_case_do_not_change() -> None:
    x, switch = phase_switch()
    for j in (0, 1):
        a, b = np.sort(x[:switch, j]), np.sort(x[switch:, j])
        qa, qb = np.quantile(a, [0.05, 0.5, 0.95]), np.quantile(b, [0.05, 0.5, 0.95])
        assert np.allclose(qa, qb, atol=0.15 * (qa[2] - qa[0]))


def test_records_and_learning() -> None:
    recs = HomologyAnalyzer(SMALL).observe("svc", times(300), noise(300, seed=5))
    learning = [r for r in recs if r.status == "learning"]
    assert learning and all(r.score == 0.0 and not r.anomalous for r in learning)
    assert recs.index(learning[-1]) == len(learning) - 1  # learning comes first, then scoring
    r = recs[-1]
    assert r.status == "scored" and 0.0 <= r.score <= 1.0
    nd = SMALL.maxdim + 1
    assert len(r.distance) == len(r.betti) == len(r.betti_baseline) == nd
    assert all(len(q) == 3 and q[0] <= q[1] <= q[2] for q in r.baseline_quantiles)
    assert r.betti[0] >= 1  # H0 counts the component that never dies
    assert "svc's metrics move together" in r.explanation


# --- cost ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("window", [60, 240, 960])
def test_ripser_never_sees_more_than_max_points(window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = HomologyConfig(window=window, max_points=30, eval_every=window // 2, warmup=1, baseline=3,
                         min_baseline=2, min_calib=2)
    assert cfg.n_points <= 30
    an = HomologyAnalyzer(cfg)
    seen: list[int] = []
    real = an._diagrams

    def spy(pts: np.ndarray) -> list[np.ndarray]:
        seen.append(len(pts))
        out = real(pts)
        assert all(len(d) < 30 for d in out)
        return out

    monkeypatch.setattr(an, "_diagrams", spy)
    n = window * 4
    an.observe("svc", times(n), noise(n, seed=6))
    assert seen and max(seen) <= 30 and max(seen) == cfg.n_points
    assert len(an.groups["svc"].dgms) <= cfg.baseline  # so are the distances computed per evaluation


def test_wasserstein_is_persims() -> None:
    rng = np.random.default_rng(0)
    for k in range(60):
        m, n = rng.integers(0, 25, 2)
        a, b = np.sort(rng.random((m, 2)), axis=1), np.sort(rng.random((n, 2)), axis=1)
        if k % 2:
            a[:, 0] = b[:, 0] = 0.0  # H0-like
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert wasserstein(a, b) == pytest.approx(persim.wasserstein(a, b), abs=1e-9)
    assert wasserstein(np.array([[0.0, 1.0]]), np.zeros((0, 2)), order=2.0) == pytest.approx(2**-0.5)


def test_bottleneck_option_and_validation() -> None:
    recs = HomologyAnalyzer(HomologyConfig(**{**SMALL.__dict__, "distance": "bottleneck"})).observe(
        "svc", times(200), noise(200, seed=7))
    assert recs[-1].status == "scored" and "bottleneck distance" in recs[-1].explanation
    for bad in ({"distance": "l2"}, {"window": 4, "max_points": 4}, {"min_baseline": 1},
                {"hold_off": -1}, {"order": 0.5}):
        with pytest.raises(ValueError):
            HomologyConfig(**bad)
    an = HomologyAnalyzer(SMALL)
    an.observe("svc", times(10), noise(10))
    with pytest.raises(ValueError):
        an.observe("svc", times(10), noise(10)[:, :2])  # a group keeps its metrics
    with pytest.raises(ValueError):
        an.update("svc", 0.0, noise(10))  # shorter than a window
    with pytest.raises(ValueError):
        an.observe("x", times(3), noise(4))
