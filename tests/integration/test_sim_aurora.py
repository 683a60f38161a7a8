"""A short scenario through a real, in-process Aurora: the store holds exactly what the fleet generated."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aurora.app import Aurora
from aurora.config import load_config
from aurora.sim import DEFAULT_START, FaultSpec, Fleet, Scenario
from aurora.sim.runner import SimRunner, inprocess_sinks, run_live


@pytest.fixture
def aurora(tmp_path: Path) -> Iterator[Aurora]:
    cfg = load_config(None, {"AURORA_DATA_DIR": str(tmp_path), "AURORA_CLOCK": "data",
                             "AURORA_HOST_AGENT__ENABLED": "false"})
    a = Aurora(cfg)
    a.open()
    yield a
    a.close()


SHORT = Scenario("short_bad_deploy", "cart ships a bug 20 min in", (
    FaultSpec("bad_deployment", "cart", 20 * 60, None, {"version": "1.4.3", "error_ratio": 0.2}),), hours=1.0)


def test_short_scenario_lands_in_the_store(aurora: Aurora) -> None:
    fleet = Fleet(seed=5, faults=SHORT.at(DEFAULT_START))
    sink, event_sink = inprocess_sinks(aurora)
    stats = SimRunner(fleet, DEFAULT_START + 3600, sink, event_sink, chunk_steps=20, progress=False).run()
    n_series = len(fleet.series())
    assert stats.samples == 240 * n_series
    assert aurora.counters["samples"] == stats.samples

    infos = {i.key: i for i in aurora.tsdb.all_series()}
    assert len(infos) == n_series
    expected = Fleet(seed=5, faults=SHORT.at(DEFAULT_START)).generate(240)
    start_ms, end_ms = int(DEFAULT_START * 1000), int((DEFAULT_START + 3600) * 1000)
    for k, key in enumerate(expected.keys()):
        ts, vals = aurora.tsdb.read(infos[key].id, start_ms, end_ms)
        sl = expected.series_slice(k)
        assert np.array_equal(ts, expected.ts_ms[sl]), key
        assert np.array_equal(vals, expected.values[sl]), key

    err_key = 'http_request_error_ratio{host="host-b",instance="host-b:8003",service="cart"}'
    ts, vals = aurora.tsdb.read(infos[err_key].id, start_ms, end_ms)
    onset_ms = (DEFAULT_START + 20 * 60) * 1000
    assert vals[ts < onset_ms].max() < 0.02 and vals[ts > onset_ms + 120_000].mean() > 0.15
    deploys = aurora.events.query(service="cart", kind="deployment")
    assert any(d["time"] == DEFAULT_START + 20 * 60 and d["attributes"]["version"] == "1.4.3" for d in deploys)
    assert aurora.clock.watermark_ms == int(expected.ts_ms[239])


def test_run_live_backfills_then_feeds_in_time(aurora: Aurora) -> None:
    sched = Scenario("live", "an outage 1 min after going live", (FaultSpec("dependency_outage", "payment", 60, 120),),
                     hours=0.05)
    seen: list[SimRunner] = []
    stats = asyncio.run(run_live(aurora, sched, speed=300, seed=1, backfill_hours=0.25, on_start=seen.append))
    runner = seen[0]
    assert stats.steps == 60 + 12
    assert aurora.counters["samples"] == stats.samples
    gt = runner.fleet.ground_truth()[0]
    assert gt["root_cause_service"] == "payment" and gt["fix"] == "failover"
    assert gt["onset"] == pytest.approx(runner.pace_from + 60)
    assert runner.fleet.start == pytest.approx(runner.pace_from - 900)


def test_homology_stage_runs_live_when_enabled(tmp_path: Path) -> None:
    """detection.homology.enabled wires the stage into the pipeline; it evaluates every service's gauges
    from the real store's window on its event-time cadence."""
    from aurora.detect.homology_stage import HomologyStage

    cfg = load_config(None, {"AURORA_DATA_DIR": str(tmp_path), "AURORA_CLOCK": "data",
                             "AURORA_HOST_AGENT__ENABLED": "false", "AURORA_DETECTION__HOMOLOGY__ENABLED": "true"})
    a = Aurora(cfg)
    a.open()
    try:
        stage = next(s for s in a.pipeline.stages if isinstance(s, HomologyStage))
        fleet = Fleet(seed=5, faults=SHORT.at(DEFAULT_START))
        sink, event_sink = inprocess_sinks(a)
        SimRunner(fleet, DEFAULT_START + 3600, sink, event_sink, chunk_steps=20, progress=False).run()
        # an hour at 15 s: windows of 60 samples are full after 15 min, then one evaluation per 5 min
        assert stage.evaluations >= 8 * len(stage._columns) > 0
        assert all(len(cols) >= 2 for cols in stage._columns.values())
    finally:
        a.close()
