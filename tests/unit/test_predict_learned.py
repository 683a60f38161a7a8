"""The learned risk models: causal, deterministic features; labels; thresholds; models that rank a ramp
to the limit above flat series; the CfC for real (when the lnn extra is installed); bench and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import aurora.bench.predict as bench_predict
from aurora.bench.cli import bench_app
from aurora.ingest.events import ChangeEvent
from aurora.predict.blocks import blocks_from_samples
from aurora.predict.learned import cfc as cfc_mod
from aurora.predict.learned.dataset import TrainConfig, labels, load_runs, prepare, run_features, sample
from aurora.predict.learned.features import FEATURES, compute, last_event_times, sequences, stream
from aurora.predict.learned.models import GbmModel, LogRegModel, RiskModel
from aurora.predict.learned.threshold import choose_threshold, episode_starts, score_episodes
from aurora.predict.learned.train import train

T0 = 1_700_006_400.0
STEP = 15.0
COL = {n: i for i, n in enumerate(FEATURES)}
TINY = TrainConfig(fit_seeds=(1,), tune_seeds=(2,), scenarios=("slow_disk_fill",), fault_free=False)


def _fleet_like(hours: float = 6.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three series against a limit of 1000: a ramp from 500 reaching it after 5 h, a flat one, a noisy
    flat one; samples every 15 s."""
    rng = np.random.default_rng(seed)
    t = T0 + STEP * np.arange(int(hours * 3600 / STEP))
    ramp = 500.0 + 500.0 * (t - T0) / (5 * 3600.0) + rng.normal(0, 2, t.size)
    flat = 600.0 + rng.normal(0, 2, t.size)
    noisy = 700.0 + rng.normal(0, 25, t.size)
    return t, np.vstack([ramp, flat, noisy]), np.full(3, 1000.0)


def _evals(t: np.ndarray, first: float = 1800.0) -> np.ndarray:
    return np.arange(t[0] + first, t[-1] + 1e-9, 60.0)


# --- features -----------------------------------------------------------------------------------------
def test_features_read_nothing_after_now() -> None:
    t, y, lim = _fleet_like()
    evals = _evals(t)
    e = 200
    now = evals[e]
    events = [ChangeEvent("deployment", "a", now - 600.0, {}), ChangeEvent("deployment", "a", now + 60.0, {})]
    change = last_event_times(events, ["a", "b", "a"], evals, ("deployment",))
    base = stream(t, y, np.ones(3, np.int64), np.tile(lim, (evals.size, 1)), evals, change)
    # the future changes: values jump, the limit moves, another deployment lands
    y2 = y.copy()
    y2[:, t > now] *= 3.0
    lim2 = np.tile(lim, (evals.size, 1))
    lim2[evals > now] = 1.0
    events2 = [*events, ChangeEvent("deployment", "b", now + 1.0, {})]
    change2 = last_event_times(events2, ["a", "b", "a"], evals, ("deployment",))
    moved = stream(t, y2, np.ones(3, np.int64), lim2, evals, change2)
    np.testing.assert_array_equal(base[:e + 1], moved[:e + 1])
    assert not np.array_equal(base[e + 1:], moved[e + 1:])  # the test can fail: the future did change
    # the deployment 10 min before now is seen, the one after is not
    assert base[e, 0, COL["since_change"]] == pytest.approx(1.0)  # log10(10 min)
    assert base[e, 1, COL["since_change"]] == pytest.approx(np.log10(1440.0))
    # sequences are causal too
    s1 = sequences(base, 8, 2, np.array([e]))
    s2 = sequences(moved, 8, 2, np.array([e]))
    np.testing.assert_array_equal(s1, s2)


def test_features_measure_headroom_and_time_to_limit() -> None:
    t, y, lim = _fleet_like()
    now = T0 + 3 * 3600.0  # the ramp is at 800: 20 % headroom, 2 h from the limit
    blk = blocks_from_samples(t, y, now, 1)
    f = compute(blk, lim)
    assert f.shape == (3, len(FEATURES))
    assert f[0, COL["headroom"]] == pytest.approx(0.2, abs=0.01)
    assert 10 ** f[0, COL["tte_60"]] == pytest.approx(120.0, rel=0.05)
    assert f[0, COL["rate_60"]] == pytest.approx(0.5, rel=0.05)  # 100 per hour of a 200 headroom
    assert f[0, COL["tstat_60"]] == 20.0
    assert f[1, COL["tte_60"]] > np.log10(1000.0) and abs(f[1, COL["rate_60"]]) < 0.01
    assert f[2, COL["volatility"]] > f[1, COL["volatility"]]
    assert abs(f[1, COL["anomaly_z"]]) < 3
    jump = y[1:2].copy()
    jump[0, t > now - 60.0] += 50.0  # the newest block jumps towards the limit
    assert compute(blocks_from_samples(t, jump, now, 1), lim[:1])[0, COL["anomaly_z"]] > 10
    # a falling series against a floor is the same case, mirrored
    fm = compute(blocks_from_samples(t, -y[:1], now, -1), -lim[:1])
    np.testing.assert_allclose(fm[0], f[0], rtol=1e-9, atol=1e-9)


def test_labels_mark_the_root_cause_series_within_four_hours_of_the_breach() -> None:
    run = prepare("slow_disk_fill", 5)
    y, valid = labels(run)
    assert run.gt is not None and run.breach is not None and run.target >= 0
    assert y.sum(axis=0)[run.target] == y.sum() > 0  # no other series is positive
    pos = run.evals[y[:, run.target]]
    assert pos.min() >= run.gt["onset"] and pos.min() >= run.breach - 4 * 3600.0 and pos.max() < run.breach
    assert not valid[run.evals >= run.breach, run.target].any() and valid[:, run.target != np.arange(y.shape[1])].all()
    feats = run_features(run)
    np.testing.assert_array_equal(feats, run_features(prepare("slow_disk_fill", 5)))  # deterministic


# --- thresholds -----------------------------------------------------------------------------------------
def test_threshold_is_the_lowest_that_keeps_precision_at_every_higher_one() -> None:
    evals = T0 + 60.0 * np.arange(300)
    onset, breach = evals[100], evals[280]
    p = np.zeros((300, 3))
    p[150:280, 0] = 0.8  # the target, after the onset
    p[[40, 41, 200], 1] = 0.3  # false spikes on another series: two episodes
    p[90, 0] = 0.25  # before the onset: false
    valid = np.ones_like(p, bool)
    runs = [(p, valid, evals, 0, float(onset), float(breach))]
    assert episode_starts(p >= 0.3, evals, 600.0) == [(150, 0), (40, 1), (200, 1)]
    sc = score_episodes(runs, 0.2)
    assert (sc.episodes, sc.correct, sc.recall) == (4, 1, 1.0)
    assert sc.lead_times_s == (float(breach - evals[150]),)
    thr, curve = choose_threshold(runs, 0.9)
    assert thr == pytest.approx(0.32)  # the first grid value above the false spikes
    assert score_episodes(runs, thr).precision == 1.0
    assert all(c["precision"] in (None, 1.0) for c in curve if c["threshold"] >= thr)
    # nothing clears the bar: the highest grid value
    bad = [(np.full((300, 1), 0.99), np.ones((300, 1), bool), evals, -1, None, None)]
    assert choose_threshold(bad, 0.9)[0] == pytest.approx(0.98)


# --- tabular models ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_runs() -> list:
    return load_runs(TINY.fit_seeds, TINY)


def _ramp_vs_flat(model: RiskModel) -> np.ndarray:
    t, y, lim = _fleet_like(seed=3)
    evals = _evals(t)
    feats = stream(t, y, np.ones(3, np.int64), np.tile(lim, (evals.size, 1)), evals)
    return model.predict_run(feats)


@pytest.mark.parametrize("cls", [LogRegModel, GbmModel])
def test_tabular_models_rank_a_ramp_to_the_limit_above_flat_series_and_are_deterministic(cls: type,
                                                                                           tiny_runs: list) -> None:
    data = sample(tiny_runs, TINY)
    assert 0 < data.y.sum() < data.y.size and (data.weight >= 1).all()
    m1, m2 = cls().fit(data), cls().fit(sample(tiny_runs, TINY))
    np.testing.assert_array_equal(m1.predict_run(tiny_runs[0].feats), m2.predict_run(tiny_runs[0].feats))
    p = _ramp_vs_flat(m1)
    late = slice(-60, None)  # the last hour: the ramp is within 1 h 30 of its limit
    assert p[late, 0].min() > 0.5
    assert p[:, 1:].max() < p[late, 0].min()


def test_train_sets_thresholds_on_the_tune_seeds_and_predictions_explain_themselves() -> None:
    tr = train(["logreg"], TINY)
    m = tr.models["logreg"]
    assert 0.02 <= m.threshold <= 0.98 and tr.samples["tune_runs"] == 1 and tr.samples["fit_runs"] == 1
    assert {c["threshold"] for c in tr.tuning["logreg"]} >= {m.threshold}
    summary = tr.summary()
    assert summary["models"]["logreg"]["threshold"] == m.threshold and summary["features"] == list(FEATURES)
    with pytest.raises(ValueError, match="below 1000"):
        TrainConfig(fit_seeds=(1000,))


# --- the CfC (needs the lnn extra; `make test` installs it) ------------------------------------------------
def _synthetic_sequences(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequences whose headroom shrinks (positives) or wanders (negatives)."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    x = rng.normal(0, 0.3, (n, length, len(FEATURES)))
    trend = np.linspace(0, 1, length)[None, :]
    x[:, :, COL["headroom"]] += np.where(y[:, None], 0.5 - 0.4 * trend, 0.5)
    x[:, :, COL["rate_60"]] += np.where(y[:, None], 1.0, 0.0)
    return x, y


def test_cfc_learns_a_shrinking_headroom_deterministically() -> None:
    pytest.importorskip("ncps", reason="the cfc model needs the lnn extra (make setup-lnn); make test installs it")
    from sklearn.metrics import roc_auc_score

    x, y = _synthetic_sequences(768, 12, 0)
    xt, yt = _synthetic_sequences(256, 12, 1)
    w = np.ones(y.size)
    kw = {"units": 8, "length": 12, "stride": 1, "epochs": 3, "batch": 64}
    m1 = cfc_mod.CfcModel(**kw).fit_sequences(x, y, w)
    m2 = cfc_mod.CfcModel(**kw).fit_sequences(x, y, w)
    p1, p2 = m1.predict_sequences(xt), m2.predict_sequences(xt)
    np.testing.assert_array_equal(p1, p2)
    assert roc_auc_score(yt, p1) > 0.95
    assert m1.losses[-1] < m1.losses[0]
    # on a run's feature tensor: evaluations x series, causal
    feats = np.random.default_rng(2).normal(0, 1, (40, 3, len(FEATURES)))
    pr = m1.predict_run(feats)
    assert pr.shape == (40, 3) and ((pr > 0) & (pr < 1)).all()
    later = feats.copy()
    later[30:] += 5.0
    np.testing.assert_allclose(m1.predict_run(later)[:30], pr[:30], rtol=0, atol=1e-6)


def test_cfc_without_the_extra_fails_with_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cfc_mod, "available", lambda: False)
    res = CliRunner().invoke(bench_app, ["predict", "--models", "trend,cfc", "--limit", "1", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "pip install 'aurora-aiops[lnn]'" in res.output and "make setup-lnn" in res.output
    with pytest.raises(cfc_mod.MissingExtra, match=r"aurora-aiops\[lnn\]"):
        cfc_mod.CfcModel()
    with pytest.raises(ValueError, match="lnn"):
        bench_predict.run_bench(tmp_path, seeds=1, models=["cfc"], limit=1)


# --- bench and CLI --------------------------------------------------------------------------------------------
def test_bench_and_cli_compare_learned_models_with_trend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bench_predict, "TRAIN", TINY)
    res = CliRunner().invoke(bench_app, ["predict", "--models", "trend,logreg,gbm", "--seeds", "1",
                                         "--seed-base", "12", "--scenarios", "slow_pool_leak", "--no-fault-free",
                                         "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["model"] == "trend" and list(rep["models"]) == ["trend", "logreg", "gbm"]
    assert rep["runs"] == 1 and rep["recall"] == 1.0
    assert rep["learned"]["train_config"]["fit_seeds"] == [1]
    for m in ("trend", "logreg", "gbm"):
        c = rep["models"][m]["classification"]
        assert c["positives"] > 0 and 0.5 < c["roc_auc"] <= 1.0 and 0 < c["average_precision"] <= 1.0
        assert 0 <= c["brier"] < 0.25
    assert rep["classification"] == rep["models"]["trend"]["classification"]  # top level: the default model
    for m in ("logreg", "gbm"):
        ms = rep["models"][m]
        assert ms["eta_interval_coverage"] is None and ms["eta_interval_coverage_first"] is None
        assert ms["gives_eta"] is False and 0 < ms["threshold"] < 1 and ms["fit_seconds"] > 0
        assert ms["forecast_us_per_series_eval"] > ms["features_us_per_series_eval"] > 0
        case = rep["cases"][0]["models"][m]
        for p in case["predictions"]:
            assert p["first"]["eta"] is None and p["first"]["probability"] >= ms["threshold"]
            assert "headroom" in p["first"]["explanation"]
    assert rep["models"]["trend"]["gives_eta"] is True and rep["eta_interval_coverage"] is not None
    md = (tmp_path / "report.md").read_text()
    assert "| logreg |" in md and "ROC AUC" in md
    assert "ROC AUC" in res.output
