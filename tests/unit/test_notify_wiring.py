"""Bus events to notifications (``aurora.notify.wiring.Bridge``), including "FYI: detected and fixed"."""

from __future__ import annotations

from typing import Any

from aurora.notify.message import Notification
from aurora.notify.wiring import Bridge, verified_fix
from aurora.remedy.store import ActionStore

INC: dict[str, Any] = {"id": 5, "title": "cart memory up", "status": "open", "severity": "critical",
                       "opened_at": 100.0, "updated_at": 160.0, "services": ["cart"], "root_causes": [],
                       "summary": "s", "acked_by": None}


class World:
    def __init__(self) -> None:
        self.incidents = {5: dict(INC)}
        self.sent: list[Notification] = []
        self.bridge = Bridge(self.sent.append, self.incidents.get, "http://aurora.test", {"cart": "shop"}.get)

    def events(self) -> list[str]:
        return [n.event for n in self.sent]


def test_incident_lifecycle_events() -> None:
    w = World()
    w.bridge.handle("incident", {"id": 5, "change": "opened"})
    w.bridge.handle("incident", {"id": 5, "change": "ranked"})
    w.incidents[5].update(status="mitigated", mitigated_at=400.0)
    w.bridge.handle("incident", {"id": 5, "change": "mitigated"})
    w.incidents[5].update(status="resolved", resolved_at=900.0)
    w.bridge.handle("incident", {"id": 5, "change": "resolved"})
    w.bridge.handle("incident", {"id": 99, "change": "opened"})  # gone: nothing
    w.bridge.handle("anomaly", {"id": 1})  # not a notification
    assert w.events() == ["incident_opened", "incident_updated", "incident_mitigated", "incident_resolved"]
    assert w.sent[0].team == "shop" and w.sent[0].url == "http://aurora.test/ui/incidents/5"


def test_fixed_alone_becomes_one_fyi() -> None:
    w = World()
    w.bridge.handle("incident", {"id": 5, "change": "opened"})
    # the remediation engine's records: ran on its own, verified; then it mitigates the incident
    action = {"id": 2, "incident_id": 5, "playbook": "restart-leaky", "mode": "auto", "dry_run": False,
              "action": "restart", "target": "cart", "status": "verified", "decided_by": "aurora", "output": "ok"}
    w.bridge.handle("action", {**action, "status": "running", "change": "running"})
    w.bridge.handle("action", {**action, "change": "verified"})
    w.incidents[5].update(status="mitigated", mitigated_at=400.0)
    w.bridge.handle("incident", {"id": 5, "change": "mitigated"})
    assert w.events() == ["incident_opened", "fixed_fyi"]
    assert w.sent[-1].title == "FYI: detected and fixed: cart memory up (restart cart)"


def test_the_fyi_survives_a_restart_between_the_fix_and_the_mitigation(store: ActionStore) -> None:
    """The fix was verified by the process before a restart; the new process's bridge never saw its event and
    finds it in the action store when the incident calms down."""
    run = {"incident_id": 5, "playbook": "restart-leaky", "incident_kind": "memory", "mode": "auto",
           "dry_run": False, "action": "restart", "executor": "sim", "target": "cart", "steps": [],
           "status": "verified", "reason": "", "requested_at": 150.0, "decided_at": 150.0, "decided_by": "aurora",
           "executed_at": 150.0, "finished_at": 200.0, "output": "restarted"}
    store.add({**run, "status": "verification_failed", "target": "db"})
    store.add(run)
    store.add({**run, "incident_id": 6, "target": "other"})
    w = World()
    w.bridge = Bridge(w.sent.append, w.incidents.get, "http://aurora.test",
                      fixed_by=lambda iid: verified_fix(store, iid))
    w.incidents[5].update(status="mitigated", mitigated_at=400.0)
    w.bridge.handle("incident", {"id": 5, "change": "mitigated"})
    assert w.events() == ["fixed_fyi"]
    assert w.sent[0].title == "FYI: detected and fixed: cart memory up (restart cart)"
    assert "Action output: restarted" in w.sent[0].text
    # an incident no automatic fix verified gets the plain mitigation message
    w.incidents[7] = {**INC, "id": 7, "status": "mitigated"}
    w.bridge.handle("incident", {"id": 7, "change": "mitigated"})
    assert w.events() == ["fixed_fyi", "incident_mitigated"]


def test_a_fix_of_one_of_several_causes_is_told_at_once() -> None:
    """The incident stays open (another cause remains), so no mitigation would carry the news: the fix's own
    message goes when it is verified."""
    w = World()
    action = {"id": 4, "incident_id": 5, "playbook": "restart-leaky", "mode": "auto", "dry_run": False,
              "action": "restart", "target": "cart", "status": "verified", "decided_by": "aurora"}
    w.bridge.handle("action", {**action, "change": "verified", "mitigates": False})
    assert w.events() == ["action_done"] and w.sent[0].title.startswith("Fixed and verified")


def test_a_person_involved_means_no_fyi() -> None:
    w = World()
    w.incidents[5]["acked_by"] = "ann"
    action = {"id": 3, "incident_id": 5, "playbook": "p", "mode": "auto", "dry_run": False, "action": "restart",
              "target": "cart", "status": "verified", "decided_by": "aurora"}
    w.bridge.handle("action", action)
    w.incidents[5].update(status="mitigated", mitigated_at=400.0)
    w.bridge.handle("incident", {"id": 5, "change": "mitigated"})
    assert w.events() == ["action_done", "incident_mitigated"]


def test_approval_prediction_and_bad_event() -> None:
    w = World()
    w.bridge.handle("action", {"id": 4, "incident_id": 5, "playbook": "p", "mode": "approve", "action": "scale",
                               "target": "cart", "status": "pending_approval", "dry_run": False})
    w.bridge.handle("prediction", {"change": "issued", "id": 8, "service": "cart", "metric": "disk",
                                   "kind": "disk_full", "eta": 5000.0, "created_at": 100.0, "updated_at": 100.0,
                                   "state": "active"})
    w.bridge.handle("incident", {"change": "opened"})  # malformed: logged, not raised
    assert w.events() == ["action_pending_approval", "prediction"]
