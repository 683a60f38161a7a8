"""Black-box tests of live detection through a real server: a spike ingested after a normal history is
reported by GET /api/v1/anomalies with its evidence, /metrics carries the anomaly scores and rates, and the
detector's checkpoint carries its state over a restart (graceful, or kill -9 after a periodic checkpoint),
so a spike right after the restart is still detected, with no new warm-up."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import numpy as np

from tests.integration.server import ServerProcess

STEP = 15
HISTORY = 600  # normal samples before the first spike
QUIET = 150  # normal samples between the spikes (more than the hold and the cooldown)
METRIC, SERVICE = "request_latency_seconds", "checkout"
# Short hold so the second spike is not held after the first, whatever the detector's tuned default.
ENV = {"AURORA_DETECTION__HOLD": "20", "AURORA_DETECTION__COOLDOWN_S": "300"}


class Timeline:
    """One series: HISTORY normal samples, a spike, QUIET normal samples, a second spike a minute ago."""

    def __init__(self) -> None:
        n = HISTORY + 1 + QUIET + 1
        self.t0 = int(time.time()) - 60 - STEP * (n - 1)
        rng = np.random.default_rng(11)
        self.values = 0.2 + rng.normal(0, 0.01, n)
        self.spike1, self.spike2 = HISTORY, n - 1
        self.values[[self.spike1, self.spike2]] = 0.9

    def time(self, i: int) -> float:
        return float(self.t0 + STEP * i)

    def body(self, lo: int, hi: int) -> dict:
        pts = [[self.time(i), float(self.values[i])] for i in range(lo, hi)]
        return {"series": [{"metric": METRIC, "labels": {"service": SERVICE}, "points": pts}]}


def ingest(c: httpx.Client, body: dict) -> None:
    r = c.post("/api/v1/ingest", params={"sync": "true"}, json=body)
    assert r.status_code == 200, r.text


def anomalies(c: httpx.Client) -> list[dict]:
    r = c.get("/api/v1/anomalies", params={"service": SERVICE})
    assert r.status_code == 200, r.text
    found: list[dict] = r.json()["anomalies"]
    return found


def metric_value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return None


def start(tmp_path: Path, db_url: str, **env: str) -> ServerProcess:
    pg = None if db_url.startswith("sqlite") else db_url
    return ServerProcess(tmp_path / "data", pg, extra_env={**ENV, **env}).start()


def test_spike_is_reported_with_evidence_and_survives_a_restart(db_url: str, tmp_path: Path) -> None:
    tl = Timeline()
    srv = start(tmp_path, db_url)
    try:
        with srv.client() as c:
            ingest(c, tl.body(0, HISTORY))
            assert anomalies(c) == []
            ingest(c, tl.body(HISTORY, HISTORY + 1))
            found = anomalies(c)
            assert len(found) == 1
            a = found[0]
            assert set(a) == {"id", "time", "service", "metric", "labels", "score", "severity", "expected",
                              "observed", "detectors", "explanation"}
            assert a["time"] == tl.time(tl.spike1) and a["observed"] == 0.9
            assert a["metric"] == METRIC and a["service"] == SERVICE and a["labels"] == {"service": SERVICE}
            lo, hi = a["expected"]
            assert lo < 0.2 < hi < 0.9 and a["severity"] in ("warning", "critical")
            assert a["detectors"] and all(isinstance(d, str) for d in a["detectors"])
            assert a["explanation"].startswith(f"{METRIC} of {SERVICE} was 0.9, above its usual range")
            assert f"analyzers agree: {a['detectors'][0]} (" in a["explanation"]
            text = c.get("/metrics").text
            sid = re.search(rf'aurora_anomaly_score{{metric="{METRIC}",series_id="(\d+)"', text)
            assert sid, text
            score = metric_value(text, "aurora_anomaly_score", metric=METRIC, series_id=sid.group(1),
                                 service=SERVICE)
            assert score == a["score"]
            assert metric_value(text, "aurora_anomaly_rate", service=SERVICE) == 0.0  # 40 minutes ago
            assert 'aurora_anomalies_total{service="checkout"} 1.0' in text
            ingest(c, tl.body(HISTORY + 1, tl.spike2))
    finally:
        srv.stop()
    assert (tmp_path / "data" / "detector-state.npz").exists()  # saved on shutdown

    srv = start(tmp_path, db_url)
    try:
        with srv.client() as c:
            ingest(c, tl.body(tl.spike2, tl.spike2 + 1))  # the first sample after the restart
            found = anomalies(c)
            assert [x["time"] for x in found] == [tl.time(tl.spike2), tl.time(tl.spike1)]
            assert found[0]["observed"] == 0.9 and found[0]["detectors"]
            text = c.get("/metrics").text
            assert metric_value(text, "aurora_anomaly_rate", service=SERVICE) == 1.0  # a minute ago
            score = metric_value(text, "aurora_anomaly_score", metric=METRIC, service=SERVICE)
            assert score == found[0]["score"]
        assert "detector state restored" in srv.log.read_text()
    finally:
        srv.stop()


def test_a_periodic_checkpoint_survives_kill9(db_url: str, tmp_path: Path) -> None:
    tl = Timeline()
    state = tmp_path / "data" / "detector-state.npz"
    srv = start(tmp_path, db_url, AURORA_DETECTION__CHECKPOINT_S="0.5")
    try:
        after = time.time() - 0.05  # file times may lag time.time() by a clock tick
        with srv.client() as c:
            ingest(c, tl.body(0, tl.spike2))
            assert len(anomalies(c)) == 1
        # Wait for a save that ended after the ingest began, then until saving stops: the stage has not
        # changed since the last save, so that save holds everything.
        last, stable_since = 0.0, time.monotonic()
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "no periodic checkpoint"
            mtime = state.stat().st_mtime if state.exists() else 0.0
            if mtime != last:
                last, stable_since = mtime, time.monotonic()
            elif last > after and time.monotonic() - stable_since > 2.0:
                break
            time.sleep(0.1)
        srv.kill9()
    finally:
        srv.stop()

    srv = start(tmp_path, db_url)
    try:
        with srv.client() as c:
            ingest(c, tl.body(tl.spike2, tl.spike2 + 1))
            assert [x["time"] for x in anomalies(c)] == [tl.time(tl.spike2), tl.time(tl.spike1)]
    finally:
        srv.stop()
