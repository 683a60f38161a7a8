"""bench e2e --engine: the closed loop through the whole engine, and the policy re-check it reports."""

from __future__ import annotations

from typing import Any

from aurora.bench.loop import _playbooks, _violations, run_loop_case
from aurora.remedy import guardrails

T0 = 1_700_000_000.0


def run(i: int, target: str, executed: float, status: str = "verified", decided_by: str = "aurora",
        playbook: str = "restart-on-connection-leak") -> dict[str, Any]:
    return {"id": i, "playbook": playbook, "target": target, "status": status, "dry_run": False,
            "executed_at": executed, "requested_at": executed, "finished_at": executed + 60, "decided_by": decided_by,
            "steps": [{"target": target}]}


def test_a_bad_deployment_is_detected_rolled_back_and_verified_within_policy() -> None:
    c = run_loop_case("bad_deployment", 5)
    assert c["detection_delay_scrapes"] is not None and c["detection_delay_scrapes"] <= 2
    assert c["fix"] is not None and c["right_fix"] and c["fix_effective"]
    assert c["fix"]["action"] == "rollback" and c["fix"]["target"] == "cart"
    assert c["detect_to_verified_s"] is not None and 0 < c["detect_to_verified_s"] < 600
    assert c["outside_policy"] == 0 and c["violations"] == []
    assert c["executed_per_target"] == {"cart": 1}  # the callers' symptoms are the same incident, not runs of their own


def test_a_cache_failure_is_one_incident_with_the_database_and_the_cache_is_flushed() -> None:
    # Without the fleet's service graph redis's hit ratio and postgres's extra load were two incidents, and the
    # cache's opened only when its one series had stayed abnormal for eight minutes.
    c = run_loop_case("cache_failure", 5)
    assert c["fix"] is not None and c["fix"]["action"] == "cache_flush" and c["fix"]["target"] == "redis"
    assert c["detect_to_action_s"] is not None and c["detect_to_action_s"] <= 30
    assert c["executed_per_target"] == {"redis": 1}


def test_an_oscillating_metric_gets_few_runs_then_the_breaker_within_policy() -> None:
    # redis's hit ratio collapses for 2 minutes every 6 for 90 minutes: it alarms again and again, the flush
    # never verifies (the next collapse comes before the cache has warmed), the cooldown spaces the runs and
    # the circuit breaker stops them.
    c = run_loop_case("oscillating", 1000)
    assert c["outside_policy"] == 0 and c["violations"] == []
    assert c["executed_per_target"] == {"redis": 2}
    assert c["statuses"] == {"verification_failed": 2, "skipped": 1}


def test_the_policy_recheck_finds_runs_the_guardrails_or_modes_should_have_stopped() -> None:
    pbs = _playbooks("bad_deployment")
    limits = guardrails.Limits()
    ok = [run(1, "checkout", T0), run(2, "checkout", T0 + 2000)]
    assert _violations(ok, pbs, limits) == []
    too_soon = [run(1, "checkout", T0), run(2, "checkout", T0 + 100)]  # the cooldown is 900 s
    assert any("cooling down" in v for v in _violations(too_soon, pbs, limits))
    still_running = {**run(1, "checkout", T0), "finished_at": None, "status": "verifying"}
    overlapping = [still_running, run(2, "checkout", T0 + 1000)]
    assert any("one at a time" in v for v in _violations(overlapping, pbs, limits))
    unapproved = [run(1, "cart", T0, playbook="rollback-bad-deployment")]  # auto in the bench: fine
    assert _violations(unapproved, pbs, limits) == []
    demo = [p.model_copy(update={"mode": "approve"}) for p in pbs]
    assert any("approval" in v for v in _violations(unapproved, demo, limits))
    assert _violations([run(1, "cart", T0, decided_by="alice", playbook="rollback-bad-deployment")], demo, limits) == []
