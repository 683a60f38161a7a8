"""IncidentStore and IncidentService on SQLite and PostgreSQL: writes, reads, filters, full-text similarity
and search (with hostile query text), notes, and the service's rules (404, 409, 400, audit, hooks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from aurora.db.database import create_db_engine, migrate
from aurora.db.tables import incident_search
from aurora.errors import AuroraError, BadInput, NotFound
from aurora.incidents.model import Signal, SignalState, TimelineEntry
from aurora.incidents.search import words
from aurora.incidents.service import IncidentService
from aurora.incidents.store import IncidentStore


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_db_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: Engine) -> IncidentStore:
    return IncidentStore(engine)


def cause(service: str, metric: str, score: float, text: str) -> dict[str, Any]:
    return {"service": service, "metric": metric, "score": score, "evidence": [{"type": "peak", "text": text}]}


def memory_incident(store: IncidentStore, opened: float, status: str = "open", **extra: Any) -> int:
    return store.create({"title": "cart memory leak OOM restart", "status": status, "severity": "critical",
                         "opened_at": opened, "services": ["cart"], "category": "memory", "confidence": "high",
                         "root_causes": [cause("cart", "memory_bytes", 0.8, "memory grew until the OOM kill")],
                         "summary": "cart leaks memory until the OOM killer restarts it", **extra})


def payment_incident(store: IncidentStore, opened: float) -> int:
    return store.create({"title": "payment timeout", "status": "open", "severity": "warning", "opened_at": opened,
                         "services": ["payment", "gateway"],
                         "root_causes": [cause("payment", "request_latency_seconds", 0.6, "latency 4x usual")],
                         "summary": "payment calls to the gateway time out"})


def signal(fp: str, t: float, score: float = 0.5, severity: str = "warning") -> SignalState:
    return SignalState.of(Signal("anomaly", fp, t, "cart", "memory_bytes", score, severity, f"{fp} high",
                                 {"service": "cart"}))


def test_create_get_and_update(store: IncidentStore) -> None:
    iid = memory_incident(store, 1000.0)
    rec = store.get(iid)
    assert rec is not None
    assert {"id", "title", "status", "severity", "opened_at", "mitigated_at", "resolved_at", "services",
            "root_causes", "signals", "actions", "timeline"} <= set(rec)
    assert rec["services"] == ["cart"] and rec["root_causes"][0]["metric"] == "memory_bytes"
    assert rec["updated_at"] == 1000.0 and rec["mitigated_at"] is None and rec["acked_by"] is None
    assert rec["signals"] == [] and rec["timeline"] == [] and rec["notes"] == [] and rec["actions"] == []
    assert (rec["category"], rec["confidence"], rec["signal_count"]) == ("memory", "high", 0)

    store.update(iid, {"status": "mitigated", "mitigated_at": 1100.0, "updated_at": 1100.0,
                       "services": ["cart", "checkout"], "severity": "warning"})
    rec = store.get(iid)
    assert rec is not None
    assert (rec["status"], rec["mitigated_at"], rec["severity"]) == ("mitigated", 1100.0, "warning")
    assert rec["services"] == ["cart", "checkout"]
    assert store.get(iid + 1000) is None and store.get(2**40) is None
    with pytest.raises(NotFound):
        store.update(iid + 1000, {"title": "x"})
    with pytest.raises(ValueError, match="unknown incident fields"):
        store.update(iid, {"colour": "red"})
    with pytest.raises(ValueError, match="status"):
        store.update(iid, {"status": "closed"})
    with pytest.raises(ValueError, match="needs"):
        store.create({"title": "no times"})


def test_signals_upsert_by_fingerprint_and_count(store: IncidentStore) -> None:
    iid = memory_incident(store, 1000.0)
    a, b = signal("fp-a", 1000.0), signal("fp-b", 1010.0)
    store.upsert_signals(iid, [a.as_dict(), b.as_dict()])
    a.merge(Signal("anomaly", "fp-a", 1050.0, "cart", "memory_bytes", 0.9, "critical", "fp-a much higher"))
    store.upsert_signals(iid, [a.as_dict()])
    rec = store.get(iid)
    assert rec is not None
    assert rec["signal_count"] == 2
    sigs = {s["fingerprint"]: s for s in rec["signals"]}
    assert sigs["fp-a"] == {**a.as_dict()}
    assert sigs["fp-a"]["count"] == 2 and sigs["fp-a"]["last_time"] == 1050.0
    assert sigs["fp-a"]["severity"] == "critical" and sigs["fp-a"]["labels"] == {"service": "cart"}
    assert sigs["fp-b"]["resolved"] is False
    with pytest.raises(NotFound):
        store.upsert_signals(iid + 1000, [a.as_dict()])


def test_timeline_oldest_first_and_notes(store: IncidentStore) -> None:
    iid = memory_incident(store, 1000.0)
    store.add_timeline(iid, [TimelineEntry(1020.0, "signal", "second").as_dict(),
                             TimelineEntry(1000.0, "opened", "opened", data={"n": 1}).as_dict()])
    ids = store.append_timeline(iid, [TimelineEntry(1030.0, "note", "rolled back 1.4.2", "alice").as_dict()])
    rec = store.get(iid)
    assert rec is not None
    assert [e["kind"] for e in rec["timeline"]] == ["opened", "signal", "note"]
    assert rec["timeline"][0]["data"] == {"n": 1} and rec["timeline"][0]["actor"] == "aurora"
    assert rec["notes"] == [{"id": ids[0], "time": 1030.0, "kind": "note", "text": "rolled back 1.4.2",
                             "actor": "alice", "data": {}}]
    with pytest.raises(NotFound):
        store.add_timeline(iid + 1000, [TimelineEntry(1.0, "note", "x").as_dict()])


def test_list_filters_newest_first_and_open_incidents(store: IncidentStore) -> None:
    old = memory_incident(store, 1000.0, status="resolved", resolved_at=1500.0)
    pay = payment_incident(store, 2000.0)
    new = memory_incident(store, 3000.0, status="mitigated")
    store.upsert_signals(new, [signal("fp", 3000.0).as_dict()])
    assert [r["id"] for r in store.list()] == [new, pay, old]
    listed = store.list()[0]
    assert listed["signal_count"] == 1 and "signals" not in listed and "timeline" not in listed
    assert [r["id"] for r in store.list(status="resolved")] == [old]
    assert [r["id"] for r in store.list(service="cart")] == [new, old]
    assert [r["id"] for r in store.list(service="gateway")] == [pay]
    assert store.list(service="car") == [] and store.list(service='%"') == []
    assert [r["id"] for r in store.list(since=2000.0)] == [new, pay]
    assert [r["id"] for r in store.list(limit=1)] == [new]
    assert len(store.list(full=True)[0]["signals"]) == 1
    active = store.open_incidents()
    assert [r["id"] for r in active] == [pay, new] and active[1]["signals"][0]["fingerprint"] == "fp"
    assert store.service_severities() == {"payment": "warning", "gateway": "warning", "cart": "critical"}


def test_similar_ranks_the_other_memory_incident_first(store: IncidentStore) -> None:
    first = memory_incident(store, 1000.0)
    payment = payment_incident(store, 1500.0)
    second = store.create({"title": "Cart OOM: memory leak, pods restarted", "status": "resolved",
                           "severity": "warning", "opened_at": 500.0, "resolved_at": 900.0, "services": ["cart"],
                           "root_causes": [cause("cart", "memory_bytes", 0.7, "memory leaked after deploy")],
                           "summary": "memory leak in the cart service; OOM restart loop"})
    found = store.similar(first)
    assert [f["id"] for f in found] == [second]  # the payment incident shares no significant word
    top = found[0]
    assert set(top) >= {"id", "title", "status", "severity", "opened_at", "resolved_at", "root_cause", "score"}
    assert top["root_cause"] == {"service": "cart", "metric": "memory_bytes"}
    assert top["status"] == "resolved" and top["resolved_at"] == 900.0 and 0.3 < top["score"] < 1
    assert store.similar(payment) == []
    assert store.similar(12345) == [] and store.similar(first, limit=0) == []

    # An open incident exactly as close as the resolved one: the resolved one (it says how it ended) first.
    source = store.get(second)
    assert source is not None
    kept = ("title", "severity", "services", "root_causes", "summary")
    twin = store.create({**{k: source[k] for k in kept}, "status": "open", "opened_at": 1200.0})
    found = store.similar(first)
    assert [f["id"] for f in found] == [second, twin] and found[0]["score"] == found[1]["score"]
    assert store.similar(first, limit=1) == found[:1]


def test_search_escapes_hostile_text_and_finds_notes(store: IncidentStore) -> None:
    first = memory_incident(store, 1000.0)
    payment_incident(store, 1500.0)
    for hostile in ['"foo" OR (NEAR', 'memory" OR "', "NEAR(cart memory)", "*", "cart AND", "' OR 1=1 --",
                    "title:cart", "cart^", "-memory", "((", "\\", "ünïcödé ~!@#$%^&*()"]:
        store.search(hostile)  # no syntax error on either database
    assert store.search('"foo" OR (NEAR') == []
    assert [r["id"] for r in store.search('memory" OR "')] == [first]
    assert [r["id"] for r in store.search("leaking memory")] == [first]  # stemmed, every word required
    assert store.search("memory timeout") == []
    assert store.search("the") == [] and store.search("") == []
    assert [r["id"] for r in store.search("gateway timeouts")] == [first + 1]
    assert store.search("rollback") == []
    store.add_timeline(first, [TimelineEntry(1100.0, "note", "Fixed by a rollback of cart 1.4.2", "bob").as_dict()])
    hits = store.search("rollback")
    assert [r["id"] for r in hits] == [first] and hits[0]["score"] == 1.0
    store.update(first, {"title": "checkout saturation"})
    assert [r["id"] for r in store.search("saturation")] == [first]


def test_search_document_follows_every_save(store: IncidentStore, engine: Engine) -> None:
    iid = payment_incident(store, 1000.0)
    store.update(iid, {"root_causes": [cause("db", "connections_in_use", 0.9, "pool exhausted")],
                       "category": "saturation"})
    with engine.connect() as conn:
        doc = conn.execute(select(incident_search).where(incident_search.c.incident_id == iid)).mappings().one()
    assert "connections in use" in doc["causes"] and "saturation" in doc["causes"]
    assert [r["id"] for r in store.search("exhausted pool")] == [iid]
    assert store.search("latency") == []


def test_words_drop_stopwords_and_punctuation() -> None:
    assert words('"foo" OR (NEAR') == ["foo", "near"]
    assert words("The cart's memory_bytes, 4x!", numbers=False) == ["cart", "memory", "bytes"]
    assert len(words(" ".join(f"w{i}" for i in range(100)))) == 32


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, dict[str, Any]]] = []
        self.acked: list[int] = []
        self.resolved: list[int] = []

    def audit(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        self.rows.append((actor, action, target, json.loads(json.dumps(detail))))


def test_service_actions_audit_and_hooks(store: IncidentStore) -> None:
    rec = Recorder()
    now = [5000.0]
    svc = IncidentService(store, rec.audit, lambda: now[0], on_ack=rec.acked.append)
    svc.on_resolve = rec.resolved.append
    iid = memory_incident(store, 1000.0)
    other = memory_incident(store, 900.0, status="resolved", resolved_at=950.0)

    acked = svc.ack(iid, "alice")
    assert (acked["acked_at"], acked["acked_by"], acked["updated_at"]) == (5000.0, "alice", 5000.0)
    assert acked["timeline"][-1]["kind"] == "ack" and acked["timeline"][-1]["actor"] == "alice"
    now[0] = 5100.0
    assert svc.ack(iid, "bob")["acked_by"] == "alice"  # twice: no change, no second audit row
    note = svc.add_note(iid, "bob", "  looking at the heap dump  ")
    assert note["text"] == "looking at the heap dump" and note["kind"] == "note" and note["incident_id"] == iid
    done = svc.resolve(iid, "bob", "rolled back")
    assert (done["status"], done["resolved_at"]) == ("resolved", 5100.0)
    assert done["timeline"][-1]["text"] == "resolved by bob: rolled back"
    assert rec.rows == [("alice", "incident.ack", str(iid), {}),
                        ("bob", "incident.note", str(iid), {"note_id": note["id"], "chars": 24}),
                        ("bob", "incident.resolve", str(iid), {"reason": "rolled back"})]
    assert rec.acked == [iid] and rec.resolved == [iid]

    got = svc.get(iid)
    assert got["similar"][0]["id"] == other and got["notes"][0]["text"] == "looking at the heap dump"
    assert [r["id"] for r in svc.search("heap dump")] == [iid]


def test_service_refuses_bad_requests_and_changes_nothing(store: IncidentStore) -> None:
    rec = Recorder()
    svc = IncidentService(store, rec.audit, lambda: 7000.0)
    iid = memory_incident(store, 1000.0)
    svc.resolve(iid, "alice")
    before = store.get(iid)
    with pytest.raises(AuroraError) as conflict:
        svc.resolve(iid, "bob", "again")
    assert conflict.value.status == 409 and "already resolved" in conflict.value.message
    with pytest.raises(AuroraError) as ack_conflict:
        svc.ack(iid, "bob")
    assert ack_conflict.value.status == 409
    for bad in ("", "   ", "x" * 10_001):
        with pytest.raises(BadInput):
            svc.add_note(iid, "bob", bad)
    with pytest.raises(BadInput):
        svc.resolve(iid, "bob", "x" * 10_001)
    for missing in (iid + 100, 0, -1, 2**40):
        with pytest.raises(NotFound):
            svc.get(missing)
        with pytest.raises(NotFound):
            svc.ack(missing, "bob")
        with pytest.raises(NotFound):
            svc.resolve(missing, "bob")
        with pytest.raises(NotFound):
            svc.add_note(missing, "bob", "hello")
    with pytest.raises(BadInput, match="status"):
        svc.list(status="closed")
    with pytest.raises(BadInput, match="limit"):
        svc.list(limit=0)
    with pytest.raises(BadInput):
        svc.search("  ")
    assert store.get(iid) == before
    assert [r[1] for r in rec.rows] == ["incident.resolve"]
    assert len(svc.add_note(iid, "bob", "y" * 10_000)["text"]) == 10_000  # the limit itself is fine
