"""Remediation when things go wrong around it: a typo in a playbook, a crash mid-run, the kill switch pulled
during verification, refusals that change their reason, a person resolving the incident first."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from aurora.remedy import guardrails
from aurora.remedy.playbook import Playbook
from aurora.remedy.store import ActionStore
from tests.unit.test_remedy import RESTART, T0, Fleet, Incidents, incident, make, ranked


@pytest.mark.parametrize(("step", "message"), [
    ({"action": "restart", "target": "{servic}"}, r"target '\{servic\}' names \{servic\}.*\{service\}"),
    ({"action": "restart", "target": "{service"}, "not a valid template"),
    ({"action": "shell", "executor": "shell", "params": {"command": "systemctl restart {svc}"}},
     r"params.command .*names \{svc\}"),
    ({"action": "scale", "executor": "kubernetes", "params": {"deployment": "{service}-{incident}"}},
     r"params.deployment .*names \{incident\}"),
])
def test_a_template_typo_is_a_configuration_error(step: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Playbook.model_validate({"name": "x", "steps": [step]})
    with pytest.raises(ValidationError, match=message):  # the rollback step too: it runs when things are bad
        Playbook.model_validate({"name": "x", "steps": [{"action": "restart"}], "rollback": step})
    assert Playbook.model_validate({"name": "x", "steps": [{"action": "restart", "target": "{service}-{incident}"}]})


def test_a_run_interrupted_by_a_stop_ends_inconclusive_and_frees_its_target(store: ActionStore) -> None:
    fleet, inc = Fleet(), Incidents()
    eng, _ = make(store, [RESTART], {1: incident(1)}, fleet, inc)
    ranked(eng, 1, T0)
    (a,) = store.query()
    store.update(a["id"], {"status": "running"})  # as a process killed mid-step leaves it
    events: list[tuple[str, dict[str, Any]]] = []
    eng2, _ = make(store, [{**RESTART, "guardrails": {"cooldown_s": 0, "max_per_hour": 5}}],
                       {1: incident(1), 2: incident(2)}, fleet, inc, publish=lambda k, d: events.append((k, d)))
    assert events == []  # told at the first step, once the notifier listens, not while the server is built
    eng2.step(T0 + 100)
    got = store.get(a["id"])
    assert got is not None and got["status"] == "inconclusive" and "interrupted" in got["reason"]
    assert any(d.get("change") == "escalated" and "check cart" in d["why"] for _, d in events)
    assert store.outcomes().get(("restart-leak", "memory"), {}).get("failed", 0) == 0  # not held against it
    ranked(eng2, 2, T0 + 120)
    assert [r["status"] for r in store.query(incident_id=2)] == ["verifying"]  # cart is no longer busy


def test_the_kill_switch_stops_a_failed_fixs_rollback_too(store: ActionStore) -> None:
    fleet, inc = Fleet(), Incidents()
    events: list[tuple[str, dict[str, Any]]] = []
    pb = {**RESTART, "rollback": {"action": "failover"}, "verify": {"settle_s": 30, "timeout_s": 120}}
    eng, _ = make(store, [pb], {1: incident(1)}, fleet, inc, publish=lambda k, d: events.append((k, d)))
    ranked(eng, 1, T0)
    store.set_paused(True, "alice")
    eng.step(T0 + 130)  # not recovered by timeout_s
    assert fleet.calls == [("restart", "cart", T0)]  # no failover
    assert store.query()[0]["status"] == "verification_failed"
    (why,) = [d["why"] for _, d in events if d.get("change") == "escalated"]
    assert "rollback was not run because remediation is paused" in why


def test_each_new_kind_of_refusal_is_recorded(store: ActionStore) -> None:
    fleet, inc = Fleet(), Incidents()
    pb = {**RESTART, "guardrails": {"cooldown_s": 3600, "max_per_hour": 5}}
    eng, _ = make(store, [pb], {1: incident(1), 2: incident(2)}, fleet, inc)
    ranked(eng, 1, T0)
    inc.recovered[1] = True
    eng.step(T0 + 60)  # verified
    store.set_paused(True, "alice")
    ranked(eng, 2, T0 + 100)
    ranked(eng, 2, T0 + 200)  # paused again: not recorded twice
    store.set_paused(False, "alice")
    ranked(eng, 2, T0 + 300)  # now the cooldown refuses it
    reasons = [r["reason"] for r in reversed(store.query(incident_id=2))]
    assert len(reasons) == 2, reasons
    assert reasons[0].startswith("guardrail (paused): remediation is paused")
    assert reasons[1].startswith("guardrail (cooldown): cart is cooling down")


def test_a_fix_not_yet_verified_when_a_person_resolves_the_incident_counts_neither_way(store: ActionStore) -> None:
    fleet, inc = Fleet(), Incidents()
    incidents = {1: incident(1)}
    eng, _ = make(store, [RESTART], incidents, fleet, inc)
    ranked(eng, 1, T0)
    incidents[1] = {**incidents[1], "status": "resolved"}
    inc.recovered[1] = True  # the incident engine no longer tracks it, so it would say "recovered"
    eng.step(T0 + 60)
    (a,) = store.query()
    assert a["status"] == "inconclusive" and "resolved" in a["reason"]
    assert store.outcomes().get(("restart-leak", "memory"), {"verified": 0})["verified"] == 0


def test_one_incidents_failure_to_decide_does_not_stop_the_others_verification(store: ActionStore) -> None:
    fleet, inc = Fleet(), Incidents()
    eng, audit = make(store, [RESTART], {1: incident(1), 2: incident(2, service="web")}, fleet, inc)
    ranked(eng, 1, T0)
    real = eng.decide

    def decide(i: dict[str, Any], now: float) -> dict[str, Any] | None:
        if i["id"] == 2:
            raise RuntimeError("boom")
        return real(i, now)

    eng.decide = decide  # type: ignore[method-assign]
    inc.recovered[1] = True
    ranked(eng, 2, T0 + 60)
    assert store.query(incident_id=1)[0]["status"] == "verified"
    assert any(a == "remedy.error" and "boom" in d["error"] for _, a, d in audit)


def test_every_target_a_run_touches_is_busy_and_cools_down_not_only_its_first() -> None:
    pb = Playbook.model_validate({**RESTART, "guardrails": {"cooldown_s": 600, "max_per_hour": 5, "max_targets": 2}})
    lim = guardrails.Limits()
    run = {"id": 7, "target": "cart", "playbook": "restart-leak", "status": "verifying", "dry_run": False,
           "requested_at": T0, "executed_at": T0, "finished_at": None,
           "steps": [{"action": "restart", "target": "cart"}, {"action": "restart", "target": "web"}]}
    assert guardrails.check(pb, ["web"], T0 + 10, [run], lim, paused=False) == (
        "busy", "web already has run #7 verifying (one at a time)")
    done = {**run, "status": "verified", "finished_at": T0 + 60}
    assert "web is cooling down" in str(guardrails.check(pb, ["web"], T0 + 100, [done], lim, paused=False))


def test_an_open_circuit_breaker_is_visible_and_an_operator_can_close_it(store: ActionStore) -> None:
    fleet, inc = Fleet(), Incidents()
    pb = {**RESTART, "verify": {"settle_s": 30, "timeout_s": 120}, "guardrails": {"cooldown_s": 0, "max_per_hour": 10}}
    incidents = {i: incident(i, service=f"svc{i}") for i in (1, 2, 3)}
    eng, audit = make(store, [pb], incidents, fleet, inc)
    for i, t in ((1, T0), (2, T0 + 1000)):
        ranked(eng, i, t)
        eng.step(t + 130)  # not recovered by timeout_s: failed
        incidents[i] = {**incidents[i], "status": "resolved"}  # a person took over: no retry
    b = eng.breaker("restart-leak")
    assert (b.open, b.failures, b.limit) == (True, 2, 2)
    assert b.until == T0 + 130 + 6 * 3600  # when the first failure leaves the 6 h window
    ranked(eng, 3, T0 + 2000)
    (refused,) = store.query(incident_id=3)
    assert refused["status"] == "skipped" and "reset-breaker" in refused["reason"]
    assert not eng.reset_breaker("restart-leak", "alice").open
    assert any(actor == "alice" and action == "remedy.breaker_reset" for actor, action, _ in audit)
    eng2, _ = make(store, [pb], incidents, fleet, inc)  # the reset is stored, not only remembered
    assert not eng2.breaker("restart-leak").open
    ranked(eng2, 3, T0 + 2100)
    assert store.query(incident_id=3)[0]["status"] == "verifying"


def test_the_verified_announcement_says_whether_the_incident_is_mitigated(store: ActionStore) -> None:
    class OneOfTwoCauses(Incidents):
        def recovery(self, iid: int, now: float, after: float | None = None,
                     service: str | None = None) -> tuple[bool, str]:
            return (True, "cart back") if service == "cart" else (False, "web still failing")

    fleet, inc = Fleet(), OneOfTwoCauses()
    events: list[dict[str, Any]] = []
    eng, _ = make(store, [RESTART], {1: incident(1)}, fleet, inc, publish=lambda k, d: events.append(d))
    ranked(eng, 1, T0)
    eng.step(T0 + 60)
    (verified,) = [d for d in events if d["change"] == "verified"]
    assert verified["mitigates"] is False and inc.mitigated == []
