"""The incident engine over crafted signals (persistence, timeline, lifecycle, operator resolve) and over
the simulated fleet (one incident per fault, the right service first), the code the live server runs."""

from __future__ import annotations

import numpy as np

from aurora.bench.incidents import IncidentBenchConfig, MemoryIncidents, run_case
from aurora.incidents.engine import IncidentEngine
from aurora.incidents.model import Signal


def anomaly(sid: int, t: float, service: str) -> Signal:
    return Signal("anomaly", f"anomaly:{sid}", t, service, "latency", 0.9995, "warning", f"latency of {service} high",
                  {"service": service})


class Related:
    def connected(self, a: str, b: str, max_hops: int) -> bool:
        return {a, b} == {"web", "cart"}

    def downstream(self, service: str, hops: int) -> dict[str, int]:
        return {"cart": 1} if service == "web" else {}

    def upstream(self, service: str, hops: int) -> dict[str, int]:
        return {"web": 1} if service == "cart" else {}

    def edge_count(self) -> int:
        return 1


def test_signals_become_a_stored_incident_that_mitigates_and_resolves() -> None:
    sink = MemoryIncidents()
    published: list[tuple[str, dict[str, object]]] = []
    eng = IncidentEngine(sink, None, Related(), user_facing=["web"], score_of=lambda ids: np.full(len(ids), 0.5),
                         publish=lambda e, d: published.append((e, d)))
    eng.offer([anomaly(1, 100.0, "cart")])
    eng.step(100.0)
    assert sink.items == {}  # one signal: below the bar
    eng.offer([anomaly(2, 130.0, "web"), anomaly(1, 140.0, "cart")])
    eng.step(140.0)
    (inc,) = sink.items.values()
    assert inc["status"] == "open" and inc["services"] == ["cart", "web"] and inc["opened_at"] == 130.0
    assert inc["severity"] == "critical"  # web is user-facing and its latency is hit
    kinds = [e["kind"] for e in inc["timeline"]]
    assert kinds == ["signal", "signal", "opened"]
    assert eng.service_incidents() == {"cart": "critical", "web": "critical"}
    eng.step(140.0 + 301)  # quiet, and the detector no longer scores the series anomalous
    assert inc["status"] == "mitigated" and inc["mitigated_at"] == 441.0
    eng.step(441.0 + 3600)
    assert inc["status"] == "resolved"
    assert [d["change"] for e, d in published if e == "incident"] == ["opened", "mitigated", "resolved"]


def test_operator_resolve_forgets_the_group_so_new_signals_open_a_new_incident() -> None:
    sink = MemoryIncidents()
    eng = IncidentEngine(sink, None, Related(), score_of=lambda ids: np.full(len(ids), 1.0))
    eng.offer([anomaly(1, 0.0, "cart"), anomaly(2, 0.0, "web")])
    eng.step(0.0)
    (iid,) = sink.items
    eng.resolved_by_operator(iid, 10.0)
    assert eng.service_incidents() == {}
    eng.offer([anomaly(1, 20.0, "cart"), anomaly(2, 20.0, "web")])
    eng.step(20.0)
    assert len(sink.items) == 2


def test_bad_deployment_on_the_fleet_is_one_incident_with_cart_first_and_a_rollback() -> None:
    case = run_case("bad_deployment", 3, IncidentBenchConfig())  # development seed
    assert case["incidents_after_onset"] == 1 and case["false_incidents"] == 0
    assert case["first_rank"] == 1 and case["last_rank"] == 1
    assert case["time_to_incident_s"] is not None and case["time_to_incident_s"] < 120
    assert "roll back cart" in case["summary"]
