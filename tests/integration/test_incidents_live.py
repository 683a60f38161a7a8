"""Incidents from real data through a real server: a bad deployment streamed as remote_write becomes one
incident with the deployed service ranked first, a rollback suggested, a timeline and a lifecycle over the
API; a critical Alertmanager alert opens an incident on its own, and the same alert again is one signal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from aurora.sim import DEFAULT_START, FaultSpec, Fleet, Scenario
from aurora.sim.runner import HttpSink, SimRunner
from tests.integration.server import ServerProcess

BAD_DEPLOY = Scenario("bad_deploy", "cart ships a bug 3 h in", (
    FaultSpec("bad_deployment", "cart", 3 * 3600, None, {"version": "1.4.3", "error_ratio": 0.15}),), hours=3.25)


@pytest.fixture
def shop_server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    fleet = Fleet(seed=11)
    cfg = {"services": [{"name": t["service"], "depends_on": t["depends_on"], "user_facing": t["service"] == "gateway"}
                        for t in fleet.topology()]}
    path = tmp_path / "aurora.yaml"
    path.write_text(yaml.safe_dump(cfg))
    srv = ServerProcess(tmp_path / "data", None if db_url.startswith("sqlite") else db_url, config=path,
                        clock="data").start()
    yield srv
    srv.stop()


def test_a_bad_deployment_becomes_one_ranked_incident(shop_server: ServerProcess) -> None:
    fleet = Fleet(seed=11, faults=BAD_DEPLOY.at(DEFAULT_START))
    sink = HttpSink(shop_server.url, "test-admin-token-0123456789")
    try:
        SimRunner(fleet, DEFAULT_START + BAD_DEPLOY.hours * 3600, sink, sink.events, chunk_steps=20,
                  progress=False).run()
    finally:
        sink.close()
    onset = DEFAULT_START + 3 * 3600
    with shop_server.client() as c:
        listed = c.get("/api/v1/incidents").json()["incidents"]
        after = [i for i in listed if i["opened_at"] >= onset]
        assert len(after) == 1, [(i["title"], i["opened_at"] - onset) for i in listed]
        inc = c.get(f"/api/v1/incidents/{after[0]['id']}").json()
        assert inc["status"] == "open"
        assert inc["opened_at"] - onset < 600
        assert "cart" in inc["services"]
        top = inc["root_causes"][0]
        assert top["service"] == "cart", inc["root_causes"]
        assert any(e["type"] == "change" and e["kind"] == "deployment" for e in top["evidence"])
        assert inc["confidence"] in ("high", "medium")
        assert "roll back cart" in inc["summary"] and "Most likely cause: cart" in inc["summary"]
        assert inc["title"].startswith("cart:")
        kinds = [e["kind"] for e in inc["timeline"]]
        assert kinds.index("opened") < kinds.index("root_cause")
        assert inc["signals"] and all(s["fingerprint"] for s in inc["signals"])
        assert isinstance(inc["similar"], list)

        topo = c.get("/api/v1/topology").json()
        health = {n["service"]: n["health"] for n in topo["nodes"]}
        assert health["cart"] in ("degraded", "critical")
        assert {"from": "web", "to": "cart"}.items() <= next(e for e in topo["edges"] if e["to"] == "cart").items()

        assert c.post(f"/api/v1/incidents/{inc['id']}/ack").status_code == 200
        assert c.post(f"/api/v1/incidents/{inc['id']}/notes", json={"text": "rolled back by hand"}).status_code == 201
        resolved = c.post(f"/api/v1/incidents/{inc['id']}/resolve", json={"reason": "rollback"}).json()
        assert resolved["status"] == "resolved"
        found = c.get("/api/v1/incidents/search", params={"q": "rolled back"}).json()["incidents"]
        assert [f["id"] for f in found] == [inc["id"]]


def test_a_critical_alert_opens_an_incident_and_repeats_deduplicate(shop_server: ServerProcess) -> None:
    alert = {"labels": {"alertname": "CheckoutDown", "service": "checkout", "severity": "critical"},
             "annotations": {"summary": "checkout answers no request"}, "startsAt": "2026-12-01T10:00:00Z",
             "fingerprint": "abc123"}
    body = {"version": "4", "status": "firing", "receiver": "aurora", "alerts": [{**alert, "status": "firing"}]}
    with shop_server.client() as c:
        assert c.post("/api/v1/alerts/alertmanager", json=body).status_code == 200
        incs = c.get("/api/v1/incidents", params={"status": "open"}).json()["incidents"]
        assert len(incs) == 1 and incs[0]["services"] == ["checkout"] and incs[0]["severity"] == "critical"
        assert incs[0]["signals"][0]["kind"] == "alert"
        # The same alert again is deduplicated: still one incident with one signal.
        assert c.post("/api/v1/alerts/alertmanager", json=body).status_code == 200
        again = c.get("/api/v1/incidents/" + str(incs[0]["id"])).json()
        assert len(again["signals"]) == 1 and again["signals"][0]["count"] == 2
