"""Correlation: grouping by topology and time, dedup, the evidence bar, the lifecycle."""

from __future__ import annotations

from aurora.incidents.correlate import CorrelationSettings, Correlator
from aurora.incidents.model import Signal, SignalState

EDGES = {("web", "cart"), ("cart", "postgres"), ("web", "catalog")}


def related(a: str, b: str) -> bool:
    return (a, b) in EDGES or (b, a) in EDGES


def sig(fp: str, t: float, service: str, kind: str = "anomaly", severity: str = "warning", resolved: bool = False,
        host: str | None = None) -> Signal:
    labels = {"host": host} if host else {}
    return Signal(kind, fp, t, service, f"m_{fp}", 0.999, severity, f"{fp} odd", labels, resolved=resolved)


def test_one_blip_opens_nothing_and_is_dropped() -> None:
    c = Correlator(related)
    assert c.add([sig("a", 0, "cart")]) == []
    assert c.tick(100, lambda s: False) == []
    assert c.tick(700, lambda s: False) == []
    assert c.groups == [] and c.blips_dropped == 1


def test_two_related_signals_open_one_incident_unrelated_ones_do_not_join() -> None:
    c = Correlator(related)
    ch = c.add([sig("a", 0, "cart"), sig("b", 30, "web"), sig("x", 40, "payment")])
    opened = [x for x in ch if x.kind == "opened"]
    assert len(opened) == 1
    assert opened[0].group.services == {"cart", "web"}
    assert {g.status for g in c.groups} == {"open", "pending"}  # payment waits alone


def test_signals_far_apart_in_time_do_not_group() -> None:
    c = Correlator(related)
    c.add([sig("a", 0, "cart")])
    c.tick(700)
    ch = c.add([sig("b", 700, "web")])
    assert not [x for x in ch if x.kind == "opened"]


def test_dedup_by_fingerprint_counts_instead_of_adding() -> None:
    c = Correlator(related)
    c.add([sig("a", 0, "cart"), sig("b", 10, "cart")])
    ch = c.add([sig("a", 200, "cart"), sig("a", 260, "cart")])
    g = c.incidents()[0]
    assert len(g.signals) == 2 and g.signals["a"].count == 3
    assert g.signals["a"].first_time == 0 and g.signals["a"].last_time == 260
    assert [x.kind for x in ch] == ["updated"]


def test_critical_alert_or_prediction_opens_alone() -> None:
    for kind, severity in (("alert", "critical"), ("prediction", "warning")):
        c = Correlator(related)
        ch = c.add([sig("p", 0, "cart", kind=kind, severity=severity)])
        assert [x.kind for x in ch] == ["opened"], kind


def test_a_series_that_stays_abnormal_opens_after_persist_s() -> None:
    c = Correlator(related, CorrelationSettings(persist_s=480))
    c.add([sig("a", 0, "cart")])
    assert c.tick(300, lambda s: True) == []
    ch = c.tick(480, lambda s: True)
    assert [x.kind for x in ch] == ["opened"]
    c2 = Correlator(related, CorrelationSettings(persist_s=480))
    c2.add([sig("a", 0, "cart")])
    assert c2.tick(480, lambda s: False) == []  # came back: a blip


def test_host_signal_joins_the_services_on_that_host() -> None:
    c = Correlator(related)
    c.add([sig("a", 0, "catalog", host="host-b")])
    ch = c.add([sig("n", 60, "host-b", host="host-b")])
    assert [x.kind for x in ch] == ["opened"]


def test_lifecycle_mitigate_reopen_resolve() -> None:
    c = Correlator(related, CorrelationSettings(quiet_s=300, resolve_after_s=3600))
    c.add([sig("a", 0, "cart"), sig("b", 0, "web")])
    active = {"on": True}
    assert c.tick(400, lambda s: active["on"]) == []  # quiet, but a signal is still active
    active["on"] = False
    assert [x.kind for x in c.tick(401, lambda s: False)] == ["mitigated"]
    # A neighbour's trouble after it calmed down is not this incident: it waits in a group of its own.
    assert c.add([sig("p", 1500, "postgres")]) == []
    assert [g.status for g in c.groups] == ["mitigated", "pending"]
    # A signal on one of its own services long after the window reopens it (the same incident until it resolves).
    ch = c.add([sig("c", 2000, "cart")])
    assert [x.kind for x in ch] == ["reopened", "updated"]
    assert [x.kind for x in c.tick(2400, lambda s: False)] == ["mitigated"]
    assert [x.kind for x in c.tick(2400 + 3600, lambda s: False)] == ["resolved"]
    assert c.groups == []


def test_open_incident_wins_over_a_pending_group_and_absorbs_it() -> None:
    c = Correlator(related)
    c.add([sig("a", 0, "cart"), sig("b", 500, "postgres")])  # opens on {cart, postgres}
    c.add([sig("g", 900, "catalog")])  # not related to cart/postgres within 1 hop: a pending group
    assert len(c.groups) == 2
    ch = c.add([sig("w", 905, "web")])  # relates to both: joins the incident and merges the pending group
    assert len(c.groups) == 1
    assert c.groups[0].services == {"cart", "postgres", "catalog", "web"}
    assert "updated" in [x.kind for x in ch]


def test_an_ongoing_incident_takes_a_neighbours_late_signals_a_quiet_one_does_not() -> None:
    c = Correlator(related, CorrelationSettings(quiet_s=2000))
    c.add([sig("a", 0, "cart"), sig("b", 0, "web")])
    c.tick(900, lambda s: False)  # quiet for 900 s, nothing active (not yet mitigated: quiet_s is 2000)
    assert c.add([sig("x", 1000, "postgres")]) == []  # a neighbour, 1000 s later: a new pending group
    ch = c.add([sig("y", 1010, "cart")])  # its own service: joins it (and the neighbour's group merges)
    assert [x.kind for x in ch] == ["updated"]
    assert len(c.groups) == 1 and c.groups[0].services == {"cart", "web", "postgres"}
    c2 = Correlator(related, CorrelationSettings(quiet_s=2000))
    c2.add([sig("a", 0, "cart"), sig("b", 0, "web")])
    c2.tick(900, lambda s: True)  # the fault goes on: its spread to a neighbour joins it
    assert [x.kind for x in c2.add([sig("x", 1000, "postgres")])] == ["updated"]


def test_resolved_signal_without_a_group_is_ignored_and_operator_close_forgets() -> None:
    c = Correlator(related)
    assert c.add([sig("a", 0, "cart", kind="alert", resolved=True)]) == []
    assert c.groups == []
    c.add([sig("a", 0, "cart"), sig("b", 0, "web")])
    g = c.incidents()[0]
    g.incident_id = 7
    c.close(7, 10)
    assert c.groups == []


def test_evidence_weights() -> None:
    st = SignalState.of(sig("a", 0, "cart", severity="critical"))
    from aurora.incidents.correlate import signal_weight

    assert signal_weight(st) == 1.5


def test_quantiles_of_one_latency_are_one_measurement() -> None:
    c = Correlator(related)
    same = [Signal("anomaly", f"anomaly:{i}", 0, "worker", "http_request_duration_seconds", 0.999, "warning",
                   "slow", {"quantile": q}) for i, q in enumerate(("0.5", "0.9", "0.99"))]
    assert c.add(same) == []  # three series, one measurement: below the bar
    assert len(c.groups) == 1 and len(c.groups[0].signals) == 3
