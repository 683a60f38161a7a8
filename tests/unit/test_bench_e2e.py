"""bench e2e on a tiny run, the oracle validating the harness, and a wrong remediator failing verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aurora.bench.cli import bench_app
from aurora.bench.e2e import NO_ENGINE_NOTE, Action, IncidentView, OracleRemediator, run_bench, run_case

HEADLINE = ("detected", "time_to_detect_median_s", "root_cause_correct", "time_to_root_cause_median_s",
            "time_to_verified_fix_s", "actions_all_right", "false_alarms_per_day_fault_free")


def test_deterministic() -> None:
    a, b = run_case("dependency_outage", 6, OracleRemediator), run_case("dependency_outage", 6, OracleRemediator)
    a.pop("wall_seconds")
    b.pop("wall_seconds")
    assert a == b


def test_no_engine_reports_null_fix() -> None:
    r = run_case("bad_deployment", 5)
    assert r["detected"] and 0 <= r["time_to_detect_s"] <= 600
    assert r["detected_by"]["service"] == "cart"
    assert r["rca_found"] and r["time_to_root_cause_s"] >= r["time_to_detect_s"]
    assert r["actions"] == [] and r["time_to_verified_fix_s"] is None and r["fix_verified"] is None
    assert r["remediation_note"] == NO_ENGINE_NOTE


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


def test_bench_e2e_cli_tiny(tmp_path: Path) -> None:
    res = CliRunner().invoke(bench_app, ["e2e", "--limit", "2", "--seeds", "1", "--seed-base", "21",
                                         "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "report.json").read_text())
    for key in (*HEADLINE, "by_scenario", "oracle", "case_results", "seeds", "remediation_note"):
        assert key in rep
    assert rep["partial"] and rep["cases"] == 2 and rep["remediator"] == "none"
    assert rep["time_to_verified_fix_s"] is None and rep["fixed"] is None
    o = rep["oracle"]
    assert o["label"].startswith("ORACLE") and o["fixed"] == 1.0 and o["actions_all_right"] is True
    assert o["actions_effective_agrees_with_verification"] is True
    assert "no remediation engine yet" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.png").stat().st_size > 1000


def test_run_bench_counts_fault_free_false_alarms(tmp_path: Path) -> None:
    rep = run_bench(tmp_path, seeds=1, seed_base=22, scenarios=["dependency_outage"], oracle=False)
    assert rep["fault_free_runs"] == 1 and rep["oracle"] is None
    assert rep["false_alarms_per_day_fault_free"] is not None and rep["false_alarms_per_day_fault_free"] >= 0
    assert rep["detected"] == 1.0
