"""bench predict on a tiny run: reports written, keys present, values sane."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aurora.bench.cli import bench_app
from aurora.bench.predict import run_bench, run_case

HEADLINE = ("recall", "precision", "false_predictions_per_1000_series_days", "lead_time_median_s", "lead_time_p10_s",
            "eta_interval_coverage", "eta_interval_coverage_first", "forecast_us_per_series_eval")


def test_slow_leak_is_predicted_hours_ahead_on_the_right_series() -> None:
    r = run_case("slow_memory_leak", 7)
    assert r["predicted"] and r["false_predictions"] == 0
    assert r["target"] == {"metric": "container_memory_working_set_bytes", "service": "cart"}
    assert r["breach_time"] == r["breach_time_ground_truth"]
    assert 3 * 3600 < r["lead_time_s"] <= r["breach_time"] - r["onset"]
    first = next(p for p in r["predictions"] if p["correct"])
    assert first["service"] == "cart" and first["created_at"] >= r["onset"]
    assert first["first"]["eta_low"] <= first["first"]["eta"] <= first["first"]["eta_high"]
    assert r["model"] == "trend" and first["first_covers_breach"]
    assert set(first["first"]["probabilities"]) == {"30m", "1h", "2h", "4h"}
    # the baseline ran on the same evaluations: it predicts too, but its first interval misses the breach
    base = r["models"]["baseline"]
    assert base["predicted"] and base["false_predictions"] == 0
    assert not next(p for p in base["predictions"] if p["correct"])["first_covers_breach"]
    assert r["eta_updates_covering"] / r["eta_updates"] > base["eta_updates_covering"] / base["eta_updates"]


def test_run_bench_tiny_with_fault_free(tmp_path: Path) -> None:
    report = run_bench(tmp_path, seeds=1, seed_base=11, scenarios=["slow_disk_fill", "model_drift"])
    for key in (*HEADLINE, "by_scenario", "cases", "seeds", "seed_base", "predictor_config"):
        assert key in report
    assert report["faulty_runs"] == 2 and report["fault_free_runs"] == 1
    assert report["recall"] == 1.0 and report["precision"] == 1.0
    assert report["false_predictions_per_1000_series_days"] == 0.0
    assert 0.0 <= report["eta_interval_coverage"] <= 1.0
    assert report["lead_time_p10_s"] <= report["lead_time_median_s"] <= 4 * 3600
    assert report["model"] == "trend" and set(report["models"]) == {"trend", "baseline"}
    for m in ("trend", "baseline"):
        ms = report["models"][m]
        for key in (*HEADLINE, "by_scenario", "slow_burn", "description"):
            assert key in ms, (m, key)
        assert ms["forecast_us_per_series_eval"] > 0
    assert report["recall"] == report["models"]["trend"]["recall"]
    assert report["eta_interval_coverage"] >= 0.8 and report["eta_interval_coverage_first"] == 1.0
    assert report["models"]["baseline"]["eta_interval_coverage_first"] == 0.0
    assert 0 < report["fitted_share"] < 0.2  # the screen: most series-evaluations need no full fit
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["recall"] == report["recall"]
    assert "| all |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.png").stat().st_size > 1000


def test_cli_limit_is_deterministic(tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        res = CliRunner().invoke(bench_app, ["predict", "--limit", "1", "--seeds", "1", "--seed-base", "12",
                                             "--scenarios", "slow_pool_leak", "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        rep = json.loads((tmp_path / name / "report.json").read_text())
        assert rep["partial"] and rep["runs"] == 1
        outs.append([(c["predictions"], c["lead_time_s"], c["models"]["baseline"]["predictions"])
                     for c in rep["cases"]])
    assert outs[0] == outs[1]


def test_cli_runs_one_model_and_rejects_unknown_ones(tmp_path: Path) -> None:
    res = CliRunner().invoke(bench_app, ["predict", "--limit", "1", "--seeds", "1", "--seed-base", "12",
                                         "--scenarios", "pool_exhaustion", "--models", "baseline",
                                         "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep["model"] == "baseline" and list(rep["models"]) == ["baseline"]
    res = CliRunner().invoke(bench_app, ["predict", "--models", "prophet", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2


def test_cli_rejects_a_scenario_without_a_breach(tmp_path: Path) -> None:
    res = CliRunner().invoke(bench_app, ["predict", "--scenarios", "cpu_saturation", "--out", str(tmp_path)])
    assert res.exit_code == 2
