"""Black-box tests of the incident endpoints through a real server, on SQLite and PostgreSQL.

Incidents come from the incident engine, which needs detected data; to test the API on its own, incidents
are seeded into the server's database (migrated first, written with IncidentStore) before it starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from aurora.db.database import create_db_engine, migrate
from aurora.db.tables import audit_log
from aurora.incidents.model import SignalState, TimelineEntry
from aurora.incidents.store import IncidentStore
from tests.integration.server import ServerProcess

CONTRACT = {"id", "title", "status", "severity", "opened_at", "mitigated_at", "resolved_at", "services",
            "root_causes", "signals", "actions", "timeline"}


def seed(url: str) -> dict[str, int]:
    engine = create_db_engine(url)
    migrate(engine)
    store = IncidentStore(engine)
    memory = [{"service": "cart", "metric": "memory_bytes", "score": 0.8,
               "evidence": [{"type": "peak", "text": "memory grew until the OOM kill"}]}]
    ids = {
        "cart": store.create({"title": "cart memory leak OOM restart", "status": "open", "severity": "critical",
                              "opened_at": 3000.0, "services": ["cart"], "root_causes": memory,
                              "confidence": "high", "category": "memory",
                              "summary": "cart leaks memory until the OOM killer restarts it"}),
        "past": store.create({"title": "Cart OOM: memory leak, pods restarted", "status": "resolved",
                              "severity": "warning", "opened_at": 1000.0, "resolved_at": 1500.0,
                              "services": ["cart"], "root_causes": memory,
                              "summary": "memory leak in the cart service"}),
        "payment": store.create({"title": "payment timeout", "status": "mitigated", "severity": "warning",
                                 "opened_at": 2000.0, "mitigated_at": 2100.0, "services": ["payment"],
                                 "summary": "payment calls time out"}),
    }
    sig = SignalState("anomaly", "anomaly:cart:memory_bytes", "cart", "memory_bytes", 3000.0, 3060.0, 3, 0.9,
                      "critical", "memory_bytes 3x usual", {"service": "cart"})
    store.upsert_signals(ids["cart"], [sig.as_dict()])
    store.add_timeline(ids["cart"], [TimelineEntry(3000.0, "opened", "opened: memory_bytes on cart").as_dict()])
    engine.dispose()
    return ids


def start(tmp_path: Path, db_url: str) -> tuple[ServerProcess, dict[str, int]]:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    pg = None if db_url.startswith("sqlite") else db_url
    ids = seed(pg or f"sqlite:///{(data / 'aurora.db').resolve()}")
    return ServerProcess(data, pg).start(), ids


def token(c: httpx.Client, name: str, scopes: list[str]) -> str:
    r = c.post("/api/v1/tokens", json={"name": name, "scopes": scopes})
    assert r.status_code == 201, r.text
    plain: str = r.json()["token"]
    return plain


def incident(c: httpx.Client, iid: int) -> dict[str, Any]:
    r = c.get(f"/api/v1/incidents/{iid}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_read_token_may_read_but_not_act(db_url: str, tmp_path: Path) -> None:
    srv, ids = start(tmp_path, db_url)
    try:
        with srv.client() as admin:
            reader = token(admin, "dashboard", ["read"])
        cart = ids["cart"]
        with srv.client(reader) as c:
            assert c.get("/api/v1/incidents").status_code == 200
            assert incident(c, cart)["status"] == "open"
            for path, body in (("ack", None), ("resolve", {"reason": "x"}), ("notes", {"text": "hi"})):
                r = c.post(f"/api/v1/incidents/{cart}/{path}", json=body)
                assert r.status_code == 403, (path, r.text)
                assert r.json()["error"] == "forbidden" and "operate" in r.json()["message"]
        with srv.client(None) as anon:
            assert anon.get("/api/v1/incidents").status_code == 401
            assert anon.post(f"/api/v1/incidents/{cart}/ack").status_code == 401
        with srv.client() as admin:
            after = incident(admin, cart)
            assert after["acked_at"] is None and after["status"] == "open" and after["notes"] == []
    finally:
        srv.stop()


def test_list_get_ack_note_resolve(db_url: str, tmp_path: Path) -> None:
    srv, ids = start(tmp_path, db_url)
    cart, past, payment = ids["cart"], ids["past"], ids["payment"]
    try:
        with srv.client() as admin:
            operator = token(admin, "alice", ["operate"])
        with srv.client(operator) as c:
            listed = c.get("/api/v1/incidents").json()["incidents"]
            assert [i["id"] for i in listed] == [cart, payment, past]
            assert all(set(i) >= CONTRACT for i in listed)
            assert listed[0]["signal_count"] == 1 and listed[0]["signals"][0]["count"] == 3
            compact = c.get("/api/v1/incidents", params={"compact": "true"}).json()["incidents"]
            assert "signals" not in compact[0] and compact[0]["signal_count"] == 1
            assert [i["id"] for i in c.get("/api/v1/incidents", params={"status": "resolved"}).json()["incidents"]] \
                == [past]
            assert [i["id"] for i in c.get("/api/v1/incidents", params={"service": "payment"}).json()["incidents"]] \
                == [payment]
            assert len(c.get("/api/v1/incidents", params={"limit": 1}).json()["incidents"]) == 1
            for params in ({"status": "closed"}, {"limit": 0}, {"limit": "many"}):
                r = c.get("/api/v1/incidents", params=params)
                assert r.status_code == 400 and r.json()["error"] == "bad_input", (params, r.text)

            rec = incident(c, cart)
            assert set(rec) >= CONTRACT
            assert rec["root_causes"][0] == {"service": "cart", "metric": "memory_bytes", "score": 0.8,
                                             "evidence": [{"type": "peak", "text": "memory grew until the OOM kill"}]}
            assert rec["actions"] == [] and rec["timeline"][0]["kind"] == "opened"
            assert rec["similar"][0]["id"] == past and rec["similar"][0]["root_cause"]["metric"] == "memory_bytes"
            assert c.get("/api/v1/incidents/99999").status_code == 404
            assert c.get("/api/v1/incidents/abc").status_code == 400

            r = c.post(f"/api/v1/incidents/{cart}/ack")
            assert r.status_code == 200, r.text
            assert r.json()["acked_by"] == "alice" and r.json()["timeline"][-1]["kind"] == "ack"
            assert c.post(f"/api/v1/incidents/{cart}/ack").status_code == 200  # again: no change

            for body in ({"text": ""}, {"text": "   "}, {"text": "x" * 10_001}, {}, {"text": "ok", "extra": 1}):
                r = c.post(f"/api/v1/incidents/{cart}/notes", json=body)
                assert r.status_code == 400 and r.json()["error"] == "bad_input", (body, r.text)
            r = c.post(f"/api/v1/incidents/{cart}/notes", content=b"{not json", headers={"content-type":
                                                                                          "application/json"})
            assert r.status_code == 400
            assert incident(c, cart)["notes"] == []  # refused notes changed nothing
            r = c.post(f"/api/v1/incidents/{cart}/notes", json={"text": "Heap dump shows a cache without eviction"})
            assert r.status_code == 201, r.text
            assert r.json()["actor"] == "alice" and r.json()["kind"] == "note"
            assert c.post("/api/v1/incidents/99999/notes", json={"text": "x"}).status_code == 404

            hits = c.get("/api/v1/incidents/search", params={"q": "eviction cache"}).json()["incidents"]
            assert [h["id"] for h in hits] == [cart]
            assert c.get("/api/v1/incidents/search", params={"q": '"foo" OR (NEAR'}).json()["incidents"] == []
            assert c.get("/api/v1/incidents/search").status_code == 400

            r = c.post(f"/api/v1/incidents/{cart}/resolve", json={"reason": "added eviction, rolled out 1.4.3"})
            assert r.status_code == 200, r.text
            done = r.json()
            assert done["status"] == "resolved" and done["resolved_at"] is not None
            assert done["timeline"][-1]["text"] == "resolved by alice: added eviction, rolled out 1.4.3"
            r = c.post(f"/api/v1/incidents/{cart}/resolve")
            assert r.status_code == 409 and "already resolved" in r.json()["message"]
            assert c.post(f"/api/v1/incidents/{cart}/ack").status_code == 409
            assert c.post("/api/v1/incidents/99999/resolve").status_code == 404
            assert c.post(f"/api/v1/incidents/{payment}/resolve").status_code == 200  # no body: no reason
            assert incident(c, cart)["timeline"][-1]["kind"] == "resolved"  # the 409 added nothing
    finally:
        srv.stop()

    engine = create_db_engine(db_url if not db_url.startswith("sqlite")
                              else f"sqlite:///{(tmp_path / 'data' / 'aurora.db').resolve()}")
    with engine.connect() as conn:
        rows = conn.execute(select(audit_log.c.actor, audit_log.c.action, audit_log.c.target)
                            .where(audit_log.c.action.like("incident.%")).order_by(audit_log.c.id)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("alice", "incident.ack", str(cart)), ("alice", "incident.note", str(cart)),
                                        ("alice", "incident.resolve", str(cart)),
                                        ("alice", "incident.resolve", str(payment))]
