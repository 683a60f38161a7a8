"""`aurora demo`: a live simulated fleet streams into the server, faults arrive on schedule."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.server import ServerProcess


def test_demo_streams_the_fleet(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", command=["demo", "--speed", "60x", "--backfill-hours", "0.5"])
    srv.start()
    try:
        with srv.client() as c:
            deadline = time.monotonic() + 30
            services: set[str] = set()
            while time.monotonic() < deadline:
                r = c.get("/api/v1/label/service/values")
                services = set(r.json()["data"])
                if len(services) >= 12:
                    break
                time.sleep(0.5)
            assert {"gateway", "cart", "checkout", "postgres", "recommender"} <= services
            # The first scheduled fault is a bad deployment of cart: its deployment event arrives.
            deadline = time.monotonic() + 40
            kinds: set[tuple[str, str]] = set()
            while time.monotonic() < deadline:
                evs = c.get("/api/v1/events").json()["events"]
                kinds = {(e["kind"], e["service"]) for e in evs}
                if ("deployment", "cart") in kinds:
                    break
                time.sleep(0.5)
            assert ("deployment", "cart") in kinds
            data_time = c.get("/api/v1/status").json()["data_time"]  # faster than real time, data lags the clock
            r = c.get("/api/v1/query", params={"query": 'http_request_error_ratio{service="gateway"}',
                                               "time": data_time})
            assert r.json()["data"]["result"], "no live gateway error ratio"
            # The bad deployment becomes an incident whose ranked causes start with cart, printed on the console.
            deadline = time.monotonic() + 60
            found: list[dict[str, object]] = []
            while time.monotonic() < deadline and not found:
                incs = c.get("/api/v1/incidents").json()["incidents"]
                found = [i for i in incs if i["root_causes"] and i["root_causes"][0]["service"] == "cart"]
                time.sleep(0.5)
            assert found, [(i["title"], i["root_causes"][:1]) for i in incs]
            assert "Most likely cause: cart" in str(found[0]["summary"])
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and "ranked causes: cart" not in srv.log.read_text():
                time.sleep(0.2)
            assert "ranked causes: cart" in srv.log.read_text()
            # Its rollback waits for an operator (the demo's rollback playbook is in approve mode): approve it
            # through the API; the fleet rolls back and the fix is verified.
            iid = found[0]["id"]
            linked = c.get(f"/api/v1/incidents/{iid}").json()["runbooks"]  # the demo's runbooks, linked
            assert linked and linked[0]["name"] == "bad-deployment.md", linked
            assert len(c.get("/api/v1/runbooks").json()["runbooks"]) == 3
            deadline = time.monotonic() + 30
            waiting: list[dict[str, object]] = []
            while time.monotonic() < deadline and not waiting:
                waiting = [a for a in c.get("/api/v1/actions", params={"incident": iid}).json()["actions"]
                           if a["status"] == "pending_approval"]
                time.sleep(0.5)
            assert waiting and waiting[0]["playbook"] == "rollback-bad-deployment", waiting
            reader = c.post("/api/v1/tokens", json={"name": "viewer", "scopes": ["read"]}).json()["token"]
            with srv.client(token=reader) as viewer:  # approving needs the operate scope
                assert viewer.post(f"/api/v1/actions/{waiting[0]['id']}/approve").status_code == 403
            assert c.get("/api/v1/actions", params={"status": "bogus"}).status_code == 400
            assert c.post("/api/v1/actions/999999/approve").status_code == 404
            r = c.post(f"/api/v1/actions/{waiting[0]['id']}/approve")
            assert r.status_code == 200, r.text
            assert c.post(f"/api/v1/actions/{waiting[0]['id']}/approve").status_code == 409  # only once
            deadline = time.monotonic() + 30
            action: dict[str, object] = {}
            while time.monotonic() < deadline and action.get("status") != "verified":
                action = c.get(f"/api/v1/actions/{waiting[0]['id']}").json()
                time.sleep(0.5)
            assert action["status"] == "verified", action
            assert action["decided_by"] not in (None, "aurora")  # the approver, in the audit log too
            assert c.get(f"/api/v1/incidents/{iid}").json()["status"] in ("mitigated", "resolved")
            # The second fault, catalog's memory leak, is predicted ahead of its OOM kill, and printed.
            deadline = time.monotonic() + 90
            preds: list[dict[str, object]] = []
            while time.monotonic() < deadline and not preds:
                preds = c.get("/api/v1/predictions", params={"service": "catalog", "active": "false"}).json()[
                    "predictions"]
                time.sleep(0.5)
            assert preds and preds[-1]["kind"] == "memory_exhaustion", preds
            assert preds[-1]["cone"] and "will reach its limit" in str(preds[-1]["explanation"])
            assert f"prediction #{preds[-1]['id']}" in srv.log.read_text()
            # ... and Aurora restarts catalog on its own before the OOM kill, and verifies the fix.
            deadline = time.monotonic() + 60
            fixes: list[dict[str, object]] = []
            while time.monotonic() < deadline and not fixes:
                fixes = [a for a in c.get("/api/v1/actions").json()["actions"]
                         if a["playbook"] == "restart-leaking-service" and a["status"] == "verified"]
                time.sleep(0.5)
            assert fixes and fixes[0]["target"] == "catalog", c.get("/api/v1/actions").json()
            # ... and says so: the "FYI: detected and fixed" message reaches the demo's webhook receiver, signed.
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "FYI: detected and fixed" not in srv.log.read_text():
                time.sleep(0.3)
            fyi = [ln for ln in srv.log.read_text().splitlines() if "FYI: detected and fixed" in ln]
            assert fyi and "signature ok" in fyi[0], srv.log.read_text()[-3000:]
    finally:
        srv.stop()
