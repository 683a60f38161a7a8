"""The live prediction stage and the prediction lifecycle: series with a known limit are forecast once a minute
of event time; a prediction is issued, updated, withdrawn when its trend stops and confirmed at the breach;
it is stored, announced and handed to the incident engine; a restart resumes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine

from aurora.config import PredictionConfig, PredictionLimit, ServiceConfig
from aurora.db.database import create_db_engine, migrate
from aurora.model import SeriesBatch
from aurora.predict.lifecycle import Lifecycle
from aurora.predict.stage import PredictSettings, PredictStage, settings_from_config
from aurora.predict.store import PredictionStore
from aurora.rca.live import ChangeRef

T0 = 1_700_000_000.0 - (1_700_000_000.0 % 3600)
STEP = 15.0
LIMIT = 1000.0e6
MEM = "container_memory_working_set_bytes"
LIM = "container_spec_memory_limit_bytes"
CART = {"service": "cart", "instance": "cart:1"}
WEB = {"service": "web", "instance": "web:1"}


@pytest.fixture
def store(sqlite_engine: Engine) -> PredictionStore:
    return PredictionStore(sqlite_engine)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.signals: list[dict[str, Any]] = []

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def signal(self, recs: list[dict[str, Any]]) -> None:
        self.signals.extend(recs)

    def changes(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.events if k == "prediction" and d["change"] == kind]


def cart_memory(t: np.ndarray, leak_from: float, per_s: float, restart_at: float | None = None) -> np.ndarray:
    """Cart's memory: 400 MB with noise, leaking ``per_s`` bytes/s from ``leak_from``; a restart drops it back."""
    rng = np.random.default_rng(7)
    start = np.full_like(t, leak_from)
    if restart_at is not None:
        start = np.where(t >= restart_at, restart_at, start)
    return 400e6 + rng.normal(0, 2e6, len(t)) + per_s * np.clip(t - start, 0, None)


def batches(t: np.ndarray, series: list[tuple[str, dict[str, str], np.ndarray]], per_batch: int = 1
            ) -> Iterator[tuple[SeriesBatch, np.ndarray]]:
    """Scrapes of every series, ``per_batch`` sample times per batch; series ids are their positions."""
    for i in range(0, len(t), per_batch):
        sl = slice(i, i + per_batch)
        n = len(t[sl])
        ts = np.concatenate([(t[sl] * 1000).astype(np.int64) for _ in series])
        vals = np.concatenate([v[sl] for _, _, v in series])
        offsets = np.arange(len(series) + 1, dtype=np.int64) * n
        yield (SeriesBatch([m for m, _, _ in series], [dict(lab) for _, lab, _ in series], offsets, ts, vals),
               np.arange(len(series), dtype=np.int64))


def run(stage: PredictStage, t: np.ndarray, series: list[tuple[str, dict[str, str], np.ndarray]],
        per_batch: int = 1) -> None:
    for batch, ids in batches(t, series, per_batch):
        stage.process(batch, ids, int(batch.ts_ms.max()))


def make_stage(store: PredictionStore, rec: Recorder, settings: PredictSettings | None = None,
               changes: list[ChangeRef] | None = None) -> PredictStage:
    found = changes or []
    life = Lifecycle(store, rec.publish, rec.signal, lambda a, b: [c for c in found if a <= c.time <= b])
    life.restore()
    return PredictStage(life, settings)


def fleet(t: np.ndarray, mem: np.ndarray) -> list[tuple[str, dict[str, str], np.ndarray]]:
    return [(MEM, CART, mem), (LIM, CART, np.full_like(t, LIMIT)),
            (MEM, WEB, 300e6 + np.random.default_rng(3).normal(0, 2e6, len(t))), (LIM, WEB, np.full_like(t, LIMIT))]


def test_a_leak_is_predicted_hours_ahead_updated_and_confirmed_at_the_breach(store: PredictionStore) -> None:
    leak_from, per_s = T0 + 3600, 50e3  # breach 12,000 s (3 h 20 min) after the leak starts
    breach = leak_from + (LIMIT - 400e6) / per_s
    t = np.arange(T0, breach + 600, STEP)
    rec = Recorder()
    deploy = ChangeRef("deployment", "cart", leak_from - 120, {"version": "1.4.2"})
    stage = make_stage(store, rec, changes=[deploy])
    run(stage, t, fleet(t, np.minimum(cart_memory(t, leak_from, per_s), LIMIT * 0.998)))

    issued = rec.changes("issued")
    assert len(issued) == 1 and issued[0]["service"] == "cart" and issued[0]["metric"] == MEM
    first = issued[0]
    assert first["kind"] == "memory_exhaustion" and first["threshold"] == LIMIT
    assert breach - first["created_at"] >= 2 * 3600  # hours ahead
    assert first["eta_low"] <= breach <= first["eta_high"]
    assert "deployment of cart (1.4.2)" in first["explanation"] and "1000 MiB" not in first["explanation"]
    assert first["evidence"]["change"]["kind"] == "deployment"
    assert abs(first["evidence"]["slope"] - per_s) < 0.1 * per_s
    assert first["cone"][0][0] == first["updated_at"] and first["cone"][-1][0] >= first["eta_high"]
    assert rec.changes("updated"), "an active prediction is updated every evaluation"
    confirmed = rec.changes("confirmed")
    assert len(confirmed) == 1 and confirmed[0]["id"] == first["id"]
    assert abs(confirmed[0]["breach_at"] - breach) <= 120
    assert abs(confirmed[0]["eta_error_s"]) < 1800
    assert not rec.changes("withdrawn")
    # stored, with its whole life; the web series got nothing
    rows = store.query(active=False)
    assert [r["state"] for r in rows] == ["confirmed"] and rows[0]["updates"] > 60
    assert store.get(first["id"])["close_reason"].startswith("breach observed")  # type: ignore[index]
    assert not store.query(active=True)
    # the incident engine heard of it when issued and when it ended, not every minute
    assert rec.signals[0]["id"] == first["id"] and rec.signals[-1]["state"] == "confirmed"
    assert len(rec.signals) < rec.changes("updated").__len__() / 3


def test_a_trend_that_stops_is_withdrawn_and_a_breach_needs_the_value_back_down(store: PredictionStore) -> None:
    leak_from, per_s = T0 + 3600, 50e3
    stop = leak_from + 5400  # the leak stops at 670 MB, far from the limit
    t = np.arange(T0, stop + 3 * 3600, STEP)
    mem = cart_memory(t, leak_from, per_s)
    mem = np.where(t > stop, cart_memory(np.array([stop]), leak_from, per_s)[0]
                   + np.random.default_rng(1).normal(0, 2e6, len(t)), mem)
    rec = Recorder()
    stage = make_stage(store, rec)
    run(stage, t, fleet(t, mem))
    assert len(rec.changes("issued")) == 1
    withdrawn = rec.changes("withdrawn")
    assert len(withdrawn) == 1 and stop < withdrawn[0]["closed_at"] < stop + 3600
    assert "trend stopped" in withdrawn[0]["close_reason"] or "horizon" in withdrawn[0]["close_reason"]
    assert rec.signals[-1]["state"] == "withdrawn"


def test_batch_sizes_do_not_change_the_predictions(store: PredictionStore, tmp_path: Path) -> None:
    """A forecast at a block boundary sees the blocks that ended by then, however the samples were batched."""
    leak_from, per_s = T0 + 3600, 50e3
    t = np.arange(T0, leak_from + 3 * 3600, STEP)
    series = fleet(t, cart_memory(t, leak_from, per_s))
    outs = []
    for i, per_batch in enumerate((1, 3, 8)):
        engine = create_db_engine(f"sqlite:///{tmp_path / f'b{i}.db'}")
        migrate(engine)
        rec = Recorder()
        run(make_stage(PredictionStore(engine), rec), t, series, per_batch)
        outs.append([(d["change"], d["updated_at"], round(d["eta"], 3)) for k, d in rec.events if k == "prediction"])
        engine.dispose()
    assert outs[0] and outs[0] == outs[1] == outs[2]


def test_limits_come_from_the_service_configuration_or_the_prediction_section(store: PredictionStore) -> None:
    services = [ServiceConfig(name="cart", limits={"memory_bytes": LIMIT}), ServiceConfig(name="queue")]
    cfg = PredictionConfig(limits={"queue_depth": PredictionLimit(limit=5000.0, kind="queue_full")})
    rec = Recorder()
    stage = make_stage(store, rec, settings_from_config(cfg, services))
    t = np.arange(T0, T0 + 4 * 3600, STEP)
    depth = np.clip(100 + 0.5 * (t - (T0 + 3600)), 100, None) + np.random.default_rng(2).normal(0, 5, len(t))
    run(stage, t, [(MEM, CART, cart_memory(t, T0 + 3600, 40e3)), ("queue_depth", {"service": "queue"}, depth)])
    by_metric = {d["metric"]: d for d in rec.changes("issued")}
    assert set(by_metric) == {MEM, "queue_depth"}
    assert by_metric[MEM]["threshold"] == LIMIT and by_metric[MEM]["limit_source"].endswith("(else config)")
    assert by_metric["queue_depth"]["kind"] == "queue_full" and by_metric["queue_depth"]["threshold"] == 5000.0


def test_a_falling_accuracy_is_predicted_against_its_floor(store: PredictionStore) -> None:
    t = np.arange(T0, T0 + 6.5 * 3600, STEP)  # 95% falling 2 points an hour from 1 h in: 85% at 6 h
    acc = 0.95 - 0.02 / 3600 * np.clip(t - (T0 + 3600), 0, None) + np.random.default_rng(4).normal(0, 0.002, len(t))
    rec = Recorder()
    run(make_stage(store, rec), t, [("model_accuracy_ratio", {"service": "recommender"}, acc)])
    issued = rec.changes("issued")
    assert len(issued) == 1 and issued[0]["direction"] == -1 and issued[0]["threshold"] == 0.85
    assert "fall to its limit of 85%" in issued[0]["explanation"]
    confirmed = rec.changes("confirmed")
    assert len(confirmed) == 1 and T0 + 5.5 * 3600 <= confirmed[0]["breach_at"] <= T0 + 6 * 3600 + 60


def test_a_restart_resumes_active_predictions(store: PredictionStore) -> None:
    leak_from, per_s = T0 + 3600, 50e3
    t = np.arange(T0, leak_from + 3 * 3600, STEP)
    series = fleet(t, cart_memory(t, leak_from, per_s))
    half = len(t) // 2
    rec = Recorder()
    run(make_stage(store, rec), t[:half], [(m, lab, v[:half]) for m, lab, v in series])
    (pid,) = [d["id"] for d in rec.changes("issued")]

    class Reader:  # the store's history of cart's memory, for the warm start
        def read(self, sid: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
            ts = (t * 1000).astype(np.int64)
            keep = (ts >= start_ms) & (ts <= end_ms)
            return ts[keep], series[sid][2][keep]

    rec2 = Recorder()
    life = Lifecycle(store, rec2.publish, rec2.signal)
    life.restore()
    assert set(life.active) == {0}
    stage = PredictStage(life, store=Reader())
    run(stage, t[half:], [(m, lab, v[half:]) for m, lab, v in series])
    assert not rec2.changes("issued"), "the stored prediction continues"
    assert {d["id"] for d in rec2.changes("updated")} == {pid}
    assert store.get(pid)["updates"] > 100  # type: ignore[index]


def test_a_prediction_for_a_series_that_went_away_is_withdrawn_as_stale(store: PredictionStore) -> None:
    leak_from, per_s = T0 + 3600, 50e3
    t = np.arange(T0, leak_from + 2 * 3600, STEP)
    rec = Recorder()
    stage = make_stage(store, rec)
    run(stage, t, fleet(t, cart_memory(t, leak_from, per_s)))
    assert len(stage.lifecycle.active) == 1
    later = np.arange(t[-1] + STEP, t[-1] + 3600, STEP)  # only web reports from now on
    run(stage, later, fleet(later, np.zeros_like(later))[2:])
    assert not stage.lifecycle.active
    assert rec.changes("withdrawn")[0]["close_reason"] in ("the series stopped reporting",
                                                           "not enough recent data to fit a trend")


def test_an_slo_burning_fast_predicts_its_error_budget_running_out(store: PredictionStore) -> None:
    from aurora.config import PredictionConfig, SloConfig

    slo = SloConfig(name="checkout-availability", service="checkout", objective=0.99, window_days=1.0)
    rec = Recorder()
    stage = make_stage(store, rec, settings_from_config(PredictionConfig(), [], [slo]))
    t = np.arange(T0, T0 + 5 * 3600, STEP)
    # 0.1 % errors (a tenth of the budget's pace), then 5 % from 1 h in: the 1 % budget of a day goes in ~4.5 h
    err = np.where(t < T0 + 3600, 0.001, 0.05) + np.random.default_rng(8).normal(0, 0.0005, len(t))
    labels = {"service": "checkout", "instance": "checkout:1"}
    run(stage, t, [("http_request_error_ratio", labels, err), ("http_request_error_ratio", {"service": "web"},
                                                                np.full_like(t, 0.2))])
    issued = rec.changes("issued")
    assert len(issued) == 1, [d["metric"] for d in issued]
    p = issued[0]
    assert p["metric"] == "slo_error_budget_used_ratio" and p["kind"] == "error_budget_exhausted"
    assert p["labels"] == {"slo": "checkout-availability", "service": "checkout"} and p["threshold"] == 1.0
    assert "error budget of SLO checkout-availability (checkout)" in p["explanation"]
    # budget used: 1 h at 0.1 % + the rest at 5 %, against 1 % of a day (864 s of errors)
    truth = T0 + 3600 + (864 - 3600 * 0.001) / 0.05
    assert p["created_at"] < truth and p["eta_low"] <= truth <= p["eta_high"], (p["eta_low"] - truth,
                                                                                 p["eta_high"] - truth)
    used = stage.slos.used(float(t[-1]))
    assert abs(used[0] - (3.6 + 0.05 * (t[-1] - T0 - 3600)) / 864) < 0.05


def test_a_daily_cycle_near_the_limit_is_not_predicted_once_its_profile_is_known(store: PredictionStore,
                                                                                 tmp_path: Path) -> None:
    """Memory that climbs to 95 % of its limit every afternoon and falls back at night: on day 3 the stage
    knows the series' daily profile from stored history and predicts nothing; without the history (no
    store to read) each morning's climb looks like a leak."""
    day = 86400.0
    t = np.arange(T0, T0 + 3 * day, 60.0)
    cycle = 0.80 + 0.15 * np.sin(2 * np.pi * ((t - T0) / day - 0.5))
    mem = LIMIT * cycle + np.random.default_rng(9).normal(0, 3e6, len(t))

    class Reader:  # the store's history of the series
        def read(self, sid: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
            ts = (t * 1000).astype(np.int64)
            keep = (ts >= start_ms) & (ts <= end_ms)
            return ts[keep], (mem if sid == 0 else np.full_like(t, LIMIT))[keep]

    series = [(MEM, CART, mem), (LIM, CART, np.full_like(t, LIMIT))]
    with_history, without = Recorder(), Recorder()
    stage = PredictStage(Lifecycle(store, with_history.publish, with_history.signal), store=Reader())
    run(stage, t, series)
    day3 = T0 + 2 * day
    late = [d for d in with_history.changes("issued") if d["created_at"] >= day3]
    assert late == [], [(d["created_at"] - day3) / 3600 for d in late]
    assert np.isfinite(stage._profile[0]).all()  # the profile was learned
    engine = create_db_engine(f"sqlite:///{tmp_path / 'naive.db'}")
    migrate(engine)
    naive = PredictStage(Lifecycle(PredictionStore(engine), without.publish, without.signal))
    run(naive, t, series)
    assert [d for d in without.changes("issued") if d["created_at"] >= day3], "the trap is real without a profile"
    engine.dispose()
