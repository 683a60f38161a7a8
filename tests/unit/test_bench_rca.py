"""bench rca on a tiny synthetic RCAEval-layout case set, and the ranker itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from aurora.bench.cli import bench_app
from aurora.bench.rca import accuracy, injection_row, load_case, run_bench
from aurora.rca.baseline import rank_root_causes, rank_services

SERVICES = ("carts", "orders", "user")
METRICS = ("cpu", "mem", "lat_50")


def _write_case(root: Path, service: str, fault: str, run: int, seed: int, normal_after: bool = False) -> None:
    rng = np.random.default_rng(seed)
    cols = [f"{s}_{m}" for s in SERVICES for m in METRICS] + ["front-end_cpu"]
    n_normal, n_anom = 120, 60
    data = rng.normal(50, 2, size=(n_normal + n_anom, len(cols)))
    data[:, cols.index("front-end_cpu")] = 7.0  # constant: carries no evidence
    data[n_normal:, cols.index(f"{service}_{fault}")] += 30  # the injected fault
    data[n_normal:, cols.index(f"{service}_lat_50")] += 6  # a milder symptom on the same service
    t0, inject = 1_700_000_000, 1_700_010_000  # time jumps at the injection, as in RCAEval
    if normal_after:  # the normal block stamped after the anomalous one, as in RCAEval sockshop orders_mem_5
        t0 = inject + 600
    times = np.concatenate([t0 + np.arange(n_normal), inject + np.arange(n_anom)])
    case = root / f"{service}_{fault}_{run}"
    case.mkdir(parents=True)
    lines = ["time," + ",".join(cols)]
    lines += [f"{int(t)}," + ",".join(f"{v:.4f}" for v in row) for t, row in zip(times, data, strict=True)]
    (case / "data.csv").write_text("\n".join(lines) + "\n")
    (case / "inject_time.txt").write_text(f"{inject}\n")


def test_ranker_puts_the_shifted_column_first() -> None:
    rng = np.random.default_rng(0)
    normal = rng.normal(0, 1, (100, 3))
    anomalous = rng.normal(0, 1, (50, 3))
    anomalous[:, 2] += 10
    ranked = rank_root_causes(["a_cpu", "b_cpu", "c_mem"], normal, anomalous)
    assert ranked[0][0] == "c_mem"
    assert rank_services(ranked)[0][0] == "c"


def test_accuracy_definitions() -> None:
    acc = accuracy([1, 2, None, 6])
    assert acc["AC@1"] == 0.25 and acc["AC@2"] == 0.5 and acc["AC@5"] == 0.5
    assert acc["Avg@5"] == (0.25 + 0.5 * 4) / 5


def test_bench_rca_ranks_injected_root_cause_first(tmp_path: Path) -> None:
    data = tmp_path / "cases"
    seed = 0
    for service in SERVICES:
        for fault in ("cpu", "mem"):
            seed += 1
            _write_case(data, service, fault, 1, seed)
    report = run_bench(data, tmp_path / "out")
    assert report["AC@1"] == 1.0 and report["Avg@5"] == 1.0
    assert report["overall"]["metric"]["AC@1"] == 1.0
    assert set(report["by_fault"]) == {"cpu", "mem"}
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(saved["cases"]) == 6
    first = saved["cases"][0]
    assert first["ranked_metrics"][0]["metric"] == first["root_cause_metric"]
    assert first["ranked_metrics"][-1]["metric"] == "front-end_cpu"  # constant column ranked last
    assert "AC@3" in (tmp_path / "out" / "report.md").read_text()


def test_cli_rca(tmp_path: Path) -> None:
    _write_case(tmp_path / "cases", "orders", "mem", 1, 3)
    result = CliRunner().invoke(bench_app, ["rca", "--data", str(tmp_path / "cases"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "report.json").read_text())["AC@1"] == 1.0


def test_injection_row_is_the_time_split_for_a_file_in_time_order() -> None:
    times = np.concatenate([100 + np.arange(10), 5000 + np.arange(5)]).astype(float)
    for inject in (50.0, 105.0, 109.5, 5000.0, 5002.0, 9999.0):
        assert injection_row(times, inject) == int((times < inject).sum())


def test_normal_block_stamped_after_the_anomalous_one_is_still_normal(tmp_path: Path) -> None:
    _write_case(tmp_path, "orders", "mem", 5, 7, normal_after=True)
    case = load_case(tmp_path / "orders_mem_5")
    assert (len(case.normal), len(case.anomalous)) == (120, 60)  # time < inject would give (0, 180)
    assert case.normal_rows_stamped_after_injection == 120
    report = run_bench(tmp_path, tmp_path / "out")
    assert report["AC@1"] == 1.0
    assert report["cases"][0]["normal_rows_stamped_after_injection"] == 120
