"""Failure prediction through a real server: 3 h of a leaking service's memory posted as JSON gives one active
prediction on GET /api/v1/predictions with its ETA interval, evidence and cone; GET /api/v1/risk ranks that
service first with the prediction as a factor; /metrics carries the risk and the time to breach; the
prediction opened an incident ahead of the breach; bad queries get a 400 and unknown ids a 404."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.server import ServerProcess
from tests.integration.test_api_anomalies import metric_value

STEP = 15.0
LIMIT = 1.0e9
MEM, LIM = "container_memory_working_set_bytes", "container_spec_memory_limit_bytes"
PER_S = 40e3  # bytes per second from 1 h in: 400 MB + 40 kB/s reaches 1 GB 4 h 10 min after the leak starts
FIELDS = ("id", "created_at", "updated_at", "service", "metric", "labels", "kind", "threshold", "eta", "eta_low",
          "eta_high", "probability", "explanation")


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", None if db_url.startswith("sqlite") else db_url).start()
    yield srv
    srv.stop()


def history(hours: float = 3.0) -> tuple[np.ndarray, float, list[dict]]:
    end = time.time() - 30
    t = np.arange(end - hours * 3600, end, STEP)
    leak_from = t[0] + 3600
    rng = np.random.default_rng(5)
    mem = 400e6 + rng.normal(0, 2e6, len(t)) + PER_S * np.clip(t - leak_from, 0, None)
    flat = 300e6 + rng.normal(0, 2e6, len(t))
    series = [(MEM, "cart", mem), (LIM, "cart", np.full(len(t), LIMIT)), (MEM, "web", flat),
              (LIM, "web", np.full(len(t), LIMIT))]
    out = [{"metric": m, "labels": {"service": s, "instance": f"{s}:1"}, "values": v} for m, s, v in series]
    return t, leak_from + (LIMIT - 400e6) / PER_S, out


def post_history(c: httpx.Client, t: np.ndarray, series: list[dict], chunk: int = 40) -> None:
    for lo in range(0, len(t), chunk):
        part = slice(lo, lo + chunk)
        body = {"series": [{"metric": s["metric"], "labels": s["labels"],
                            "points": [[float(x), float(y)] for x, y in zip(t[part], s["values"][part], strict=True)]}
                           for s in series]}
        r = c.post("/api/v1/ingest", params={"sync": "true"}, json=body)
        assert r.status_code == 200, r.text


def test_a_leak_is_predicted_ranked_by_risk_and_opens_an_incident(server: ServerProcess) -> None:
    t, breach, series = history()
    with server.client() as c:
        post_history(c, t, series)
        r = c.get("/api/v1/predictions")
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert len(preds) == 1
        p = preds[0]
        assert all(k in p for k in FIELDS)
        assert (p["service"], p["metric"], p["kind"], p["state"]) == ("cart", MEM, "memory_exhaustion", "active")
        assert p["threshold"] == LIMIT and p["labels"] == {"service": "cart", "instance": "cart:1"}
        assert p["created_at"] <= p["updated_at"] <= t[-1] + 60
        assert p["eta_low"] <= breach <= p["eta_high"], (p["eta_low"] - breach, p["eta_high"] - breach)
        assert 0 <= p["probability"] <= 1 and set(p["probabilities"]) == {"30m", "1h", "2h", "4h"}
        assert "will reach its limit of" in p["explanation"] and p["evidence"]["slope"] > 0
        assert len(p["cone"]) > 2 and all(lo <= mid <= hi for _, lo, mid, hi in p["cone"])

        assert c.get(f"/api/v1/predictions/{p['id']}").json()["id"] == p["id"]
        assert c.get("/api/v1/predictions", params={"service": "web"}).json()["predictions"] == []
        assert c.get("/api/v1/predictions", params={"active": "false"}).json()["predictions"][0]["id"] == p["id"]
        for params in ({"state": "bogus"}, {"limit": "0"}, {"start": "10", "end": "5"}):
            bad = c.get("/api/v1/predictions", params=params)
            assert bad.status_code == 400 and "error" in bad.json(), params
        assert c.get("/api/v1/predictions/99999").status_code == 404

        risk = c.get("/api/v1/risk").json()["services"]
        assert risk[0]["service"] == "cart" and risk[0]["risk"] >= 25
        assert any(f["kind"] == "prediction" and f["prediction_id"] == p["id"] for f in risk[0]["factors"])
        web = c.get("/api/v1/risk", params={"service": "web"}).json()["services"]
        assert [w["service"] for w in web] == ["web"] and web[0]["risk"] < risk[0]["risk"]

        text = c.get("/metrics").text
        assert metric_value(text, "aurora_risk_score", service="cart") == risk[0]["risk"]
        eta_s = metric_value(text, "aurora_prediction_eta_seconds", service="cart", metric=MEM)
        assert eta_s is not None and 0 < eta_s < 6 * 3600

        incidents = c.get("/api/v1/incidents").json()["incidents"]
        assert len(incidents) == 1 and incidents[0]["services"] == ["cart"]
        kinds = {s["kind"] for s in incidents[0]["signals"]}
        assert "prediction" in kinds
        assert incidents[0]["root_causes"][0]["metric"] == MEM
    with server.client(token=None) as anon:
        assert anon.get("/api/v1/predictions").status_code == 401
        assert anon.get("/api/v1/risk").status_code == 401
