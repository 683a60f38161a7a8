"""SimRunner pacing and delivery, the HTTP sink (mock transport) and the `sim` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from aurora.ingest.events import ChangeEvent
from aurora.model import SeriesBatch
from aurora.sim import CATALOGUE, DEFAULT_START, Fleet
from aurora.sim import runner as runner_mod
from aurora.sim.cli import sim_app
from aurora.sim.runner import HttpSink, SimRunner, anchored_start, batch_to_json, parse_speed


def test_parse_speed() -> None:
    assert parse_speed("max") is None and parse_speed(None) is None
    assert parse_speed("realtime") == 1.0
    assert parse_speed("10x") == 10.0 and parse_speed("2.5") == 2.5 and parse_speed(60) == 60.0
    for bad in ("fast", "0x", "-3", "nanx"):
        with pytest.raises(ValueError):
            parse_speed(bad)


def test_anchored_start_never_runs_ahead_of_the_wall_clock() -> None:
    now = 1_800_000_007.0
    assert anchored_start(2, None, now, 15) == pytest.approx(now - 7200, abs=15)
    assert anchored_start(2, 1.0, now, 15) == pytest.approx(now, abs=15)
    s = anchored_start(2, 10.0, now, 15)
    # the last sample (s + 2 h) is delivered 2 h / 10 after the start: at wall-clock now
    assert s + 7200 == pytest.approx(now + 720, abs=15)


def collect(fleet: Fleet, end: float, **kw: object) -> tuple[list[SeriesBatch], list[tuple[int, list[ChangeEvent]]]]:
    batches: list[SeriesBatch] = []
    events: list[tuple[int, list[ChangeEvent]]] = []
    r = SimRunner(fleet, end, batches.append, lambda evs: events.append((len(batches), evs)), progress=False,
                  **kw)  # type: ignore[arg-type]
    stats = r.run()
    assert stats.samples == sum(b.n_samples for b in batches)
    return batches, events


def test_max_speed_delivers_everything_in_chunks_with_events_first() -> None:
    sc = CATALOGUE["bad_deployment"]
    fleet = Fleet(seed=1, faults=sc.at(DEFAULT_START))
    end = DEFAULT_START + 4 * 3600
    batches, events = collect(fleet, end, chunk_steps=40)
    assert sum(b.n_samples for b in batches) == 960 * len(fleet.series())
    assert all(b.n_samples == 40 * b.n_series for b in batches)
    ts = np.concatenate([b.ts_ms[: b.counts()[0]] for b in batches])
    assert np.all(np.diff(ts) == 15_000) and ts[-1] < end * 1000
    onset = sc.ground_truth(DEFAULT_START)[0]["onset"]
    deploy = [(k, e) for k, evs in events for e in evs if e.kind == "deployment" and e.service == "cart"]
    assert deploy
    k, ev = deploy[-1]
    assert ev.time == onset
    # delivered before the batch that contains its time
    assert batches[k].ts_ms[0] <= ev.time * 1000 <= batches[k].ts_ms[batches[k].counts()[0] - 1]
    # same data as generating directly
    direct = Fleet(seed=1, faults=sc.at(DEFAULT_START)).generate(960)
    got = np.concatenate([b.values.reshape(b.n_series, -1) for b in batches], axis=1)
    assert got.tobytes() == direct.values.reshape(direct.n_series, -1).tobytes()


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def wall(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def test_paced_speed_sleeps_by_event_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(runner_mod.time, "sleep", clock.sleep)
    fleet = Fleet(seed=1)
    batches, _ = collect(fleet, DEFAULT_START + 20 * 15, speed="10x", wall=clock.wall)
    assert len(batches) == 20 and all(b.counts()[0] == 1 for b in batches)
    assert clock.t - 1000.0 == pytest.approx(19 * 1.5)

    # a backfill before pace_from goes at full speed, then real time
    clock2 = FakeClock()
    monkeypatch.setattr(runner_mod.time, "sleep", clock2.sleep)
    fleet = Fleet(seed=1, start=DEFAULT_START - 3600)
    batches, _ = collect(fleet, DEFAULT_START + 10 * 15, speed="realtime", wall=clock2.wall, chunk_steps=60,
                         pace_from=DEFAULT_START)
    assert sum(b.counts()[0] for b in batches) == 240 + 10
    assert [b.counts()[0] for b in batches[:4]] == [60, 60, 60, 60]
    assert clock2.t - 1000.0 == pytest.approx(9 * 15)


def test_http_sink_posts_remote_write_and_events() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(204 if req.url.path == "/api/v1/write" else 200, json=None)

    sink = HttpSink("http://aurora.test/", "tok", transport=httpx.MockTransport(handler))
    fleet = Fleet(seed=1)
    batch = fleet.generate(4)
    sink(batch)
    sink.events([ChangeEvent("deployment", "cart", DEFAULT_START, {"version": "1.4.3"})])
    sink.close()
    assert seen[0].url.path == "/api/v1/write" and seen[0].headers["authorization"] == "Bearer tok"
    assert seen[0].headers["content-encoding"] == "snappy"
    from aurora.ingest.remote_write import decode_remote_write

    decoded = decode_remote_write(seen[0].content)
    assert decoded.n_samples == batch.n_samples
    body = json.loads(seen[1].content)
    assert body["events"][0]["service"] == "cart" and body["events"][0]["attributes"]["version"] == "1.4.3"

    bad = HttpSink("http://aurora.test", "tok", remote_write=False,
                   transport=httpx.MockTransport(lambda r: httpx.Response(400, text="nope")))
    with pytest.raises(RuntimeError, match="400"):
        bad(batch)


def test_batch_to_json() -> None:
    batch = Fleet(seed=1).generate(3)
    body = batch_to_json(batch)
    assert len(body["series"]) == batch.n_series
    s0 = body["series"][0]
    assert s0["metric"] == batch.metrics[0] and len(s0["points"]) == 3
    assert s0["points"][0][0] == DEFAULT_START


def test_cli_list_and_dry_run(tmp_path: Path) -> None:
    cli = CliRunner()
    res = cli.invoke(sim_app, ["list"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for name in CATALOGUE:
        assert name in res.output
    truth = tmp_path / "truth.json"
    res = cli.invoke(sim_app, ["run", "--scenario", "memory_leak", "--hours", "4", "--start", "default", "-q",
                               "--truth", str(truth)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    data = json.loads(truth.read_text())
    assert data["start"] == DEFAULT_START and data["scenario"] == "memory_leak"
    gt = data["ground_truth"][0]
    assert gt["root_cause_service"] == "catalog" and gt["fix"] == "restart"
    assert data["observed_breaches"][0] == pytest.approx(gt["breach_time"], abs=15)
    assert data["stats"]["samples"] == 960 * len(Fleet().series())
    res = cli.invoke(sim_app, ["run", "--scenario", "nope"])
    assert res.exit_code == 2
    res = cli.invoke(sim_app, ["run", "--speed", "warp"])
    assert res.exit_code == 2
