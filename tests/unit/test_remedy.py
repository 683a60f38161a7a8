"""Remediation: playbook validation, matching, guardrails, and the engine's decisions, runs, approvals,
verification, rollback and circuit breaker, every decision stored with its reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from aurora.errors import ConfigError, Conflict
from aurora.remedy import guardrails
from aurora.remedy.engine import RemedyEngine
from aurora.remedy.executors import SimExecutor
from aurora.remedy.match import explain_match, target_of
from aurora.remedy.playbook import Playbook, load_playbook_file
from aurora.remedy.store import ActionStore

T0 = 1_700_000_000.0
RESTART = {"name": "restart-leak", "match": {"category": ["memory"]}, "mode": "auto", "dry_run": False,
           "steps": [{"action": "restart"}], "guardrails": {"cooldown_s": 600, "max_per_hour": 2}}
ROLLBACK = {"name": "rollback-deploy", "match": {"category": ["errors"], "change": ["deployment"]},
            "mode": "approve", "dry_run": False, "steps": [{"action": "rollback"}]}


def incident(iid: int, category: str = "memory", service: str = "cart", metric: str = "container_memory_bytes",
             changes: tuple[str, ...] = ()) -> dict[str, Any]:
    evidence = [{"type": "trend", "text": "rising"}] + [{"type": "change", "kind": k} for k in changes]
    return {"id": iid, "status": "open", "severity": "warning", "category": category, "services": [service],
            "root_causes": [{"service": service, "metric": metric, "labels": {"service": service}, "score": 1.0,
                             "evidence": evidence}], "signals": []}


class Fleet:
    """Records the sim executor's calls; ``fail`` makes them raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []
        self.fail = False

    def apply(self, kind: str, service: str, t: float) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("fleet unreachable")
        self.calls.append((kind, service, t))
        return {"note": "ok"}


class Incidents:
    def __init__(self) -> None:
        self.recovered: dict[int, bool] = {}
        self.mitigated: list[int] = []

    def recovery(self, iid: int, now: float, after: float | None = None,
                 service: str | None = None) -> tuple[bool, str]:
        ok = self.recovered.get(iid, False)
        return ok, "memory back to its usual level" if ok else "still high"

    def mitigate(self, iid: int, now: float, reason: str) -> bool:
        self.mitigated.append(iid)
        return True


def make(store: ActionStore, playbooks: list[dict[str, Any]], incidents: dict[int, dict[str, Any]],
         fleet: Fleet, inc: Incidents, **kw: Any) -> tuple[RemedyEngine, list[tuple[str, str, dict[str, Any]]]]:
    audit: list[tuple[str, str, dict[str, Any]]] = []
    eng = RemedyEngine(store, [Playbook.model_validate(p) for p in playbooks],
                       {"sim": SimExecutor(fleet.apply)}, incidents.get, inc,
                       audit=lambda actor, action, target, detail: audit.append((actor, action, detail)), **kw)
    return eng, audit


def ranked(eng: RemedyEngine, iid: int, now: float) -> None:
    eng.offer({"id": iid, "change": "ranked", "status": "open"})
    eng.step(now)


def test_playbooks_are_validated_with_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot run on the shell executor"):
        Playbook.model_validate({"name": "x", "steps": [{"action": "restart", "executor": "shell"}]})
    with pytest.raises(ValidationError, match="needs params: url"):
        Playbook.model_validate({"name": "x", "steps": [{"action": "webhook", "executor": "webhook"}]})
    with pytest.raises(ValidationError, match="timeout_s must be longer"):
        Playbook.model_validate({"name": "x", "steps": [{"action": "restart"}], "verify": {"settle_s": 60,
                                                                                         "timeout_s": 30}})
    pb = Playbook.model_validate({"name": "x", "steps": [{"action": "restart"}]})
    assert pb.dry_run is True and pb.mode == "approve"  # a new playbook starts in dry-run and asks first
    f = tmp_path / "bad.yaml"
    f.write_text("name: leak\nmode: sometimes\nsteps:\n  - action: restart\n")
    with pytest.raises(ConfigError, match=r"mode.*line 2"):
        load_playbook_file(f)


def test_matching_says_why_a_playbook_does_not_fit() -> None:
    t = target_of(incident(1, "errors", changes=("deployment",)))
    assert t is not None and t.changes == ("deployment",)
    assert explain_match(Playbook.model_validate(ROLLBACK), t) is None
    assert "category errors" in str(explain_match(Playbook.model_validate(RESTART), t))
    t2 = target_of(incident(2, "errors"))
    assert t2 is not None and "no deployment" in str(explain_match(Playbook.model_validate(ROLLBACK), t2))
    assert target_of({**incident(3), "root_causes": []}) is None


def test_guardrails_refuse_with_reasons() -> None:
    pb = Playbook.model_validate(RESTART)
    lim = guardrails.Limits(max_actions_per_hour=3, breaker_failures=2)
    ran = {"id": 1, "target": "cart", "playbook": pb.name, "status": "verified", "dry_run": False,
           "executed_at": T0, "requested_at": T0, "finished_at": T0 + 60}

    def refused(targets: list[str], now: float, history: list[dict[str, Any]], paused: bool = False
                ) -> tuple[str, str] | None:
        r = guardrails.check(pb, targets, now, history, lim, paused)
        return None if r is None else (r.kind, r.text)

    assert refused(["cart"], T0, [], paused=True) == (
        "paused", "remediation is paused (kill switch: aurora remedy resume to lift it)")
    assert refused(["cart"], T0 + 300, [ran]) == (
        "cooldown", "cart is cooling down: last run 300 s ago, cooldown 600 s")
    assert refused(["cart"], T0 + 700, [ran]) is None
    assert refused(["cart"], T0 + 1300, [ran, {**ran, "id": 2, "executed_at": T0 + 650}]) == (
        "rate", "cart had 2 runs in the last hour (limit 2)")
    busy = {**ran, "status": "verifying"}
    assert refused(["cart"], T0 + 5000, [busy]) == ("busy", "cart already has run #1 verifying (one at a time)")
    assert refused(["cart", "web"], T0, []) == (
        "blast radius", "blast radius: the run touches 2 targets, the playbook allows 1")
    failed = [{**ran, "id": i, "target": f"s{i}", "status": "verification_failed"} for i in (3, 4)]
    kind, text = refused(["cart"], T0 + 5000, failed) or ("", "")
    assert kind == "breaker" and text.startswith(f"circuit breaker open: playbook {pb.name} failed to fix 2 times")
    dry = {**ran, "dry_run": True}
    assert refused(["cart"], T0 + 10, [dry]) is None  # a dry run changes nothing
    everywhere = [{**ran, "id": i, "target": f"x{i}", "executed_at": T0 + i} for i in range(3)]
    assert refused(["cart"], T0 + 100, everywhere) == ("rate", "3 runs in the last hour across all targets (limit 3)")


def test_an_auto_playbook_runs_is_verified_and_mitigates(store: ActionStore) -> None:
    fleet, inc = Fleet(), Incidents()
    eng, audit = make(store, [RESTART], {1: incident(1)}, fleet, inc)
    ranked(eng, 1, T0)
    assert fleet.calls == [("restart", "cart", T0)]
    (a,) = store.query()
    assert a["status"] == "verifying" and a["executed_at"] == T0 and "matched restart-leak" in a["reason"]
    eng.step(T0 + 10)  # before settle_s (30 s): not judged
    assert store.get(a["id"])["status"] == "verifying"  # type: ignore[index]
    inc.recovered[1] = True
    eng.step(T0 + 45)
    done = store.get(a["id"])
    assert done is not None and done["status"] == "verified" and done["finished_at"] == T0 + 45
    assert "verified 45 s after it ran: memory back" in done["reason"]
    assert inc.mitigated == [1]
    assert [x[1] for x in audit] == ["remedy.running", "remedy.verifying", "remedy.verified"]
    ranked(eng, 1, T0 + 60)  # a new ranking of a fixed incident does nothing
    assert len(store.query()) == 1 and store.outcomes() == {("restart-leak", "memory"): {"verified": 1, "failed": 0}}


def test_dry_run_notify_only_and_pause_change_nothing_but_are_recorded(store: ActionStore) -> None:
    fleet, inc = Fleet(), Incidents()
    pbs = [{**RESTART, "dry_run": True}]
    eng, _ = make(store, pbs, {1: incident(1), 2: incident(2, service="web")}, fleet, inc)
    ranked(eng, 1, T0)
    (a,) = store.query()
    assert a["status"] == "dry_run" and "would run restart cart (sim)" in a["reason"] and fleet.calls == []
    eng2, _ = make(store, [{**RESTART, "name": "tell", "mode": "notify-only"}], {2: incident(2, service="web")},
                   fleet, inc)
    ranked(eng2, 2, T0)
    assert store.query(incident_id=2)[0]["status"] == "notified" and fleet.calls == []
    store.set_paused(True, "test")
    eng3, _ = make(store, [RESTART], {3: incident(3, service="queue")}, fleet, inc)
    ranked(eng3, 3, T0)
    (s,) = store.query(incident_id=3)
    assert s["status"] == "skipped" and "paused" in s["reason"] and fleet.calls == []


def test_approval_runs_after_the_guardrails_are_checked_again_and_only_once(store: ActionStore) -> None:
    fleet, inc = Fleet(), Incidents()
    eng, _ = make(store, [ROLLBACK], {1: incident(1, "errors", changes=("deployment",))}, fleet, inc)
    ranked(eng, 1, T0)
    (a,) = store.query()
    assert a["status"] == "pending_approval" and fleet.calls == []
    eng.step(T0 + 20)
    eng.approve(a["id"], "alice")
    assert fleet.calls == [("rollback", "cart", T0 + 20)]
    got = store.get(a["id"])
    assert got is not None and got["decided_by"] == "alice" and got["status"] == "verifying"
    with pytest.raises(Conflict):
        eng.approve(a["id"], "bob")


def test_a_fix_that_does_not_work_is_rolled_back_escalated_and_opens_the_breaker(store: ActionStore) -> None:
    fleet, inc = Fleet(), Incidents()
    pb = {**RESTART, "rollback": {"action": "failover"}, "verify": {"settle_s": 30, "timeout_s": 120},
          "guardrails": {"cooldown_s": 0, "max_per_hour": 10}}
    incidents = {i: incident(i, service=f"svc{i}") for i in (1, 2, 3)}
    events: list[tuple[str, dict[str, Any]]] = []
    eng, audit = make(store, [pb], incidents, fleet, inc, publish=lambda k, d: events.append((k, d)))
    for i, t in ((1, T0), (2, T0 + 1000)):
        ranked(eng, i, t)
        eng.step(t + 60)
        eng.step(t + 130)  # not recovered by timeout_s: the rollback step runs
    # incident 1 is retried when it comes up again (cooldown 0 here), alongside incident 2: three failed fixes,
    # each decided while fewer than two had failed
    statuses = [a["status"] for a in store.query()]
    assert statuses == ["rolled_back"] * 3
    assert ("failover", "svc1", T0 + 130) in fleet.calls
    assert sum(1 for k, d in events if k == "action" and d["change"] == "escalated") == 3
    assert sum(1 for _, action, _ in audit if action == "remedy.escalated") == 3  # in the audit log too
    ranked(eng, 3, T0 + 3000)  # two failed fixes: the breaker refuses the third
    third = store.query(incident_id=3)[0]
    assert third["status"] == "skipped" and "circuit breaker open" in third["reason"]
    assert ("restart", "svc3", T0 + 3000) not in fleet.calls


def test_the_best_playbook_on_past_outcomes_is_proposed_first(store: ActionStore) -> None:
    fleet, inc = Fleet(), Incidents()
    a = {**RESTART, "name": "a-restart"}
    b = {**RESTART, "name": "b-scale", "steps": [{"action": "scale_out"}]}
    for i, (name, status) in enumerate([("b-scale", "verified"), ("b-scale", "verified"),
                                        ("a-restart", "verification_failed")]):
        store.add({"incident_id": 100 + i, "playbook": name, "incident_kind": "memory", "mode": "auto",
                   "dry_run": False, "action": "x", "executor": "sim", "target": f"old{i}", "steps": [],
                   "status": status, "reason": "", "requested_at": T0 - 86400 * 2, "decided_at": None,
                   "decided_by": None, "executed_at": T0 - 86400 * 2, "finished_at": T0 - 86400 * 2, "output": ""})
    eng, _ = make(store, [a, b], {1: incident(1)}, fleet, inc)
    ranked(eng, 1, T0)
    assert fleet.calls == [("scale_out", "cart", T0)]
    skipped = [x for x in store.query(incident_id=1) if x["status"] == "skipped"]
    assert len(skipped) == 1 and skipped[0]["playbook"] == "a-restart" and "b-scale ranks higher" in skipped[0][
        "reason"]


def test_runbooks_are_indexed_and_the_best_fitting_ones_linked(tmp_path: Path) -> None:
    from aurora.remedy.runbooks import RunbookIndex

    (tmp_path / "leak.md").write_text("tags: memory, leak, restart\n# Memory leak\nRestart the service.\n")
    (tmp_path / "deploy.md").write_text("# Bad deployment\nRoll back the deployment when errors rise.\n")
    (tmp_path / "notes.txt").write_text("not a runbook")
    index = RunbookIndex.from_folder(tmp_path)
    assert sorted(r.name for r in index.runbooks) == ["deploy.md", "leak.md"]
    inc = {**incident(1, "memory"), "title": "cart: memory use up", "summary": "memory of cart grows"}
    found = index.for_incident(inc)
    assert [r["name"] for r in found] == ["leak.md"] and found[0]["title"] == "Memory leak"
    errors = {**incident(2, "errors"), "title": "cart: errors up after a deployment", "summary": ""}
    assert index.for_incident(errors)[0]["name"] == "deploy.md"
    named = index.for_incident(errors, named=["leak.md"])  # a matching playbook names it: first
    assert [r["name"] for r in named][:1] == ["leak.md"] and named[0]["why"] == "named by a matching playbook"
    assert RunbookIndex.from_folder(None).for_incident(inc) == []


def test_a_breach_predicted_on_a_neighbour_gets_its_own_fix(store: ActionStore) -> None:
    """An incident about cart's errors that also holds a prediction for catalog's memory: the leak playbook
    restarts catalog, while cart's own cause gets nothing (no playbook for it here)."""
    fleet, inc = Fleet(), Incidents()
    leak = {**RESTART, "match": {"category": ["memory"], "source": ["prediction"]}}
    both = {**incident(1, "errors"), "signals": [
        {"kind": "prediction", "service": "catalog", "metric": "container_memory_working_set_bytes",
         "labels": {"service": "catalog"}, "resolved": False},
        {"kind": "prediction", "service": "queue", "metric": "disk_used_bytes", "labels": {}, "resolved": True}]}
    eng, _ = make(store, [leak], {1: both}, fleet, inc)
    ranked(eng, 1, T0)
    assert fleet.calls == [("restart", "catalog", T0)]
    (a,) = store.query()
    assert a["target"] == "catalog" and a["incident_kind"] == "memory" and "memory / catalog" in a["reason"]
