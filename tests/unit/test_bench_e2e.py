"""bench e2e on tiny runs: the ensemble detector finds faults after their onset, fault-free runs count false
alarms per 1,000 series-hours, the oracle validates the harness, a wrong remediator fails verification."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aurora.bench.cli import bench_app
from aurora.bench.e2e import (
    MAX_LISTED,
    NO_ENGINE_NOTE,
    Action,
    E2eConfig,
    IncidentView,
    OracleRemediator,
    run_bench,
    run_case,
    run_cases,
    summarize,
)
from aurora.detect.consensus import GateConfig
from aurora.detect.ensemble import EnsembleConfig, EnsembleDetector
from aurora.sim import DEFAULT_START

HEADLINE = ("detected", "time_to_detect_median_s", "time_to_detect_p90_s", "root_cause_correct",
            "time_to_root_cause_median_s", "time_to_verified_fix_s", "actions_all_right",
            "false_alarms_per_day_fault_free", "false_alarms_per_1000_series_hours_fault_free",
            "false_alarms_per_1000_series_hours_faulty", "first_alarm_votes", "false_alarm_votes")
PER_FAULT = ("cases", "detected", "time_to_detect_median_s", "time_to_detect_p90_s", "root_cause_correct",
             "false_alarms_per_1000_series_hours_faulty", "false_alarms_per_1000_series_hours_before_onset",
             "first_alarm_votes")
SHORT = E2eConfig(fault_free_hours=3.0)


def test_deterministic() -> None:
    a, b = run_case("dependency_outage", 6, OracleRemediator), run_case("dependency_outage", 6, OracleRemediator)
    a.pop("wall_seconds")
    b.pop("wall_seconds")
    assert a == b


@pytest.mark.parametrize(("scenario", "services"), [("bad_deployment", {"cart"}), ("slow_database", {"postgres"})])
def test_fault_detected_after_onset(scenario: str, services: set[str]) -> None:
    r = run_case(scenario, 5)
    onset = r["onset"]
    assert r["detected"] and onset <= r["detected_at"] <= onset + 600
    by = r["detected_by"]
    assert by["service"] in services and by["time"] == r["detected_at"]
    # the evidence: which analyzers voted, the range the detector expected and what it saw
    assert by["analyzers"] and set(by["analyzers"]) <= set(EnsembleDetector().names)
    assert by["expected"][0] <= by["expected"][1] and math.isfinite(by["observed"])
    assert all(a["time"] < onset for a in r["false_alarms_listed"])
    assert r["false_alarms"] == r["false_alarms_before_onset"] + r["false_alarms_off_fault"]
    assert r["scored_hours"] == pytest.approx(2.0)  # the onset is 3 h in; the first hour is warm-up
    assert r["false_alarm_series_hours"] == pytest.approx(
        r["series"] * r["scored_hours"] + r["series_off_fault"] * r["hours_after_onset"])


def test_alarms_before_onset_are_false_not_detection() -> None:
    # a hair-trigger detector alarms on the fault's own service before the fault begins: those alarms are
    # false alarms, and detection is still only an alarm after the onset
    touchy = E2eConfig(detector=EnsembleConfig(gate=GateConfig(threshold=0.5)))
    r = run_case("bad_deployment", 5, config=touchy)
    onset = r["onset"]
    early = [a for a in r["false_alarms_listed"] if a["service"] == "cart"]
    assert early and all(a["time"] < onset for a in early)
    assert r["false_alarms_before_onset"] >= len(r["false_alarms_listed"]) >= len(early)
    assert r["detected"] and r["detected_at"] >= onset and r["detected_by"]["service"] == "cart"
    assert r["time_to_detect_s"] == r["detected_at"] - onset >= 0


def test_no_engine_reports_null_fix() -> None:
    r = run_case("bad_deployment", 5)
    assert r["rca_found"] and r["time_to_root_cause_s"] >= r["time_to_detect_s"]
    assert r["actions"] == [] and r["time_to_verified_fix_s"] is None and r["fix_verified"] is None
    assert r["remediation_note"] == NO_ENGINE_NOTE


def test_fault_free_counts_false_alarms_per_series_hour() -> None:
    quiet = run_case("fault_free", 4, config=SHORT)
    assert not quiet["faulty"] and quiet["onset"] is None and not quiet["detected"]
    assert quiet["scored_hours"] == pytest.approx(2.0)  # 3 h, the first is warm-up
    assert quiet["false_alarm_series_hours"] == pytest.approx(quiet["series"] * 2.0)
    # a hair-trigger alarm threshold: the same fleet now raises false alarms, all of them counted
    det = EnsembleConfig(vote=0.5, gate=GateConfig(threshold=0.5))  # vote level = alarm threshold
    touchy = E2eConfig(fault_free_hours=3.0, detector=det)
    r = run_case("fault_free", 4, config=touchy)
    assert r["false_alarms"] > quiet["false_alarms"]
    assert r["false_alarms"] == r["false_alarms_before_onset"]
    assert len(r["false_alarms_listed"]) == min(r["false_alarms"], MAX_LISTED)
    assert r["false_alarms_off_fault"] == 0
    assert all(a["time"] >= DEFAULT_START + 3600.0 for a in r["false_alarms_listed"])  # none in the warm-up
    s = summarize([r, quiet])
    assert s["fault_free_runs"] == 2 and s["cases"] == 0 and s["detected"] is None
    assert s["false_alarms_fault_free"] == r["false_alarms"] + quiet["false_alarms"]
    assert s["false_alarms_per_1000_series_hours_fault_free"] == pytest.approx(
        1000 * s["false_alarms_fault_free"] / (4.0 * r["series"]))
    assert s["false_alarms_per_day_fault_free"] == pytest.approx(24 * s["false_alarms_fault_free"] / 4.0)
    # an alarm's consensus score passed the threshold, so its strongest analyzer did: at least one voter each
    assert all(a["analyzers"] for a in r["false_alarms_listed"])
    assert sum(r["false_alarm_votes"].values()) >= r["false_alarms"]
    if r["false_alarms"] <= MAX_LISTED:
        assert r["false_alarm_votes"] == {n: sum(n in a["analyzers"] for a in r["false_alarms_listed"])
                                          for n in r["false_alarm_votes"]}


def test_forked_remediators_match_their_own_runs() -> None:
    main, oracle = run_cases("memory_leak", 5, [None, OracleRemediator])
    alone = [run_case("memory_leak", 5), run_case("memory_leak", 5, OracleRemediator)]
    for a, b in zip([main, oracle], alone, strict=True):
        a.pop("wall_seconds")
        b.pop("wall_seconds")
        assert a == b
    assert main["remediator"] == "none" and oracle["remediator"] == "oracle" and oracle["fix_verified"]


@pytest.mark.parametrize("scenario", ["memory_leak", "slow_database", "traffic_surge"])
def test_oracle_fix_verifies(scenario: str) -> None:
    r = run_case(scenario, 5, OracleRemediator)
    assert r["remediator"] == "oracle"
    [a] = r["actions"]
    assert a["right"] and a["effective"] and a["verification"] == "verified"
    assert r["fix_verified"] and r["actions_all_right"]
    assert r["time_to_verified_fix_s"] >= r["time_to_detect_s"]


class _Wrong:
    name = "wrong"

    def decide(self, view: IncidentView) -> Action | None:
        return None if view.actions else Action("restart", "web")


def test_wrong_action_fails_verification() -> None:
    r = run_case("bad_deployment", 5, lambda truth: _Wrong())
    [a] = r["actions"]
    assert not a["right"] and not a["effective"] and a["verification"] == "failed"
    assert r["fix_verified"] is False and r["actions_all_right"] is False and r["time_to_verified_fix_s"] is None


def test_remediator_sees_the_engine_view_not_the_truth() -> None:
    seen: list[IncidentView] = []

    class Spy:
        name = "spy"

        def decide(self, view: IncidentView) -> Action | None:
            seen.append(view)
            return None

    run_case("pool_exhaustion", 5, lambda truth: Spy())
    assert seen and all(v.now >= v.detected_at for v in seen)
    assert any(v.root_causes for v in seen) and seen[0].topology and seen[0].alerts
    assert all(a.analyzers for a in seen[0].alerts)


def test_bench_e2e_cli_tiny(tmp_path: Path) -> None:
    res = CliRunner().invoke(bench_app, ["e2e", "--limit", "2", "--seeds", "1", "--seed-base", "21",
                                         "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "report.json").read_text())
    for key in (*HEADLINE, "by_fault", "by_scenario", "oracle", "case_results", "seeds", "remediation_note",
                "analyzers"):
        assert key in rep
    assert rep["partial"] and rep["cases"] == 2 and rep["remediator"] == "none"
    assert rep["time_to_verified_fix_s"] is None and rep["fixed"] is None
    assert list(rep["by_fault"]) == ["memory_leak", "cpu_saturation"]
    for s in rep["by_fault"].values():
        for key in PER_FAULT:
            assert key in s
        assert set(s["first_alarm_votes"]) == set(rep["analyzers"])
    o = rep["oracle"]
    assert o["label"].startswith("ORACLE") and o["fixed"] == 1.0 and o["actions_all_right"] is True
    assert o["actions_effective_agrees_with_verification"] is True
    md = (tmp_path / "report.md").read_text()
    assert "bench e2e --engine" in md and "per 1,000 series-hours" in md and "| memory_leak |" in md
    assert (tmp_path / "report.png").stat().st_size > 1000


def test_run_bench_counts_fault_free_false_alarms(tmp_path: Path) -> None:
    rep = run_bench(tmp_path, seeds=1, seed_base=22, scenarios=["dependency_outage"], oracle=False, config=SHORT)
    assert rep["fault_free_runs"] == 1 and rep["oracle"] is None
    [free] = [c for c in rep["case_results"] if not c["faulty"]]
    assert rep["fault_free_series_hours"] == pytest.approx(free["series"] * 2.0)
    assert rep["false_alarms_per_1000_series_hours_fault_free"] == pytest.approx(
        1000 * free["false_alarms"] / rep["fault_free_series_hours"])
    assert rep["detected"] == 1.0 and rep["by_fault"]["dependency_outage"]["detected_cases"] == 1
    assert sum(rep["first_alarm_votes"].values()) >= 1
