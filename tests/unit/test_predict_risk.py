"""The per-service risk score: its factors, how they combine, and its order."""

from __future__ import annotations

from aurora.predict.risk import combine, risk_scores

NOW = 1_700_000_000.0


def pred(pid: int, service: str, eta_in: float, metric: str = "disk_used_bytes") -> dict[str, object]:
    return {"id": pid, "service": service, "metric": metric, "eta": NOW + eta_in}


def test_factors_combine_as_independent_chances_and_never_pass_100() -> None:
    assert combine([]) == 0.0
    assert combine([60.0]) == 60.0
    assert 60.0 < combine([60.0, 30.0]) < 90.0
    assert combine([100.0, 50.0]) == 100.0 and combine([99.0] * 10) <= 100.0


def test_a_near_breach_outranks_a_far_one_and_an_idle_service_scores_zero() -> None:
    out = risk_scores(NOW, ["cart", "web", "idle"], [pred(1, "cart", 20 * 60), pred(2, "web", 5 * 3600)], {}, [], [])
    by = {r["service"]: r for r in out}
    assert [r["service"] for r in out] == ["cart", "web", "idle"]
    assert by["cart"]["risk"] == 70 and by["web"]["risk"] == 25 and by["idle"] == {
        "service": "idle", "risk": 0, "factors": []}
    assert by["cart"]["factors"][0]["kind"] == "prediction" and "20 min" in by["cart"]["factors"][0]["detail"]


def test_anomalies_incidents_and_recent_changes_add_up_with_their_reasons() -> None:
    incidents = [{"id": 7, "services": ["cart", "web"], "severity": "critical", "status": "open", "title": "cart down"},
                 {"id": 8, "services": ["web"], "severity": "warning", "status": "mitigated", "title": "slow"}]
    changes = [{"kind": "deployment", "service": "cart", "time": NOW - 600, "attributes": {"version": "1.4.2"}},
               {"kind": "deployment", "service": "web", "time": NOW - 3 * 3600, "attributes": {}},  # faded out
               {"kind": "restart", "service": "web", "time": NOW - 60, "attributes": {}}]  # not a change of code
    out = {r["service"]: r for r in risk_scores(NOW, ["cart", "web"], [pred(1, "cart", 3 * 3600)],
                                                 {"cart": 0.05, "web": 0.0}, incidents, changes)}
    kinds = [f["kind"] for f in out["cart"]["factors"]]
    assert kinds == ["prediction", "incident", "anomaly", "change"]  # strongest first
    assert out["cart"]["factors"][3]["detail"].startswith("deployment 1.4.2 10 min ago")
    assert out["cart"]["risk"] == round(combine(f["points"] for f in out["cart"]["factors"]))
    assert [f["kind"] for f in out["web"]["factors"]] == ["incident", "incident"]
    assert out["web"]["factors"][1]["points"] == 10.0  # a mitigated warning counts half
    assert out["cart"]["risk"] > out["web"]["risk"]
