"""bench detect end to end on a 2-file synthetic NAB-format corpus."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aurora.bench.cli import bench_app
from aurora.bench.detect import run_bench


def _make_corpus(root: Path) -> Path:
    rng = np.random.default_rng(7)
    start = datetime(2020, 1, 1)
    windows: dict[str, list[list[str]]] = {}
    for category, name, n, spike in (("synthA", "one.csv", 1200, 900), ("synthB", "two.csv", 800, None)):
        ts = [(start + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(n)]
        x = 5 + np.sin(np.arange(n) / 20) + rng.normal(0, 0.1, n)
        rel = f"{category}/{name}"
        windows[rel] = []
        if spike is not None:
            x[spike] += 6
            windows[rel].append([ts[spike - 20] + ".000000", ts[spike + 20] + ".000000"])
        path = root / "data" / category / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "value"])
            w.writerows(zip(ts, x.tolist(), strict=True))
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root / "data"


@pytest.mark.parametrize("detectors", [["aurora"], ["aurora", "river_hst", "pyod_knn"]])
def test_bench_detect_end_to_end(tmp_path: Path, detectors: list[str]) -> None:
    data = _make_corpus(tmp_path / "nab")
    out = tmp_path / "out"
    report = run_bench(data, out, detectors=detectors)
    for det in detectors:
        r = report["detectors"][det]
        assert set(r) >= {"standard", "reward_low_FP_rate", "reward_low_FN_rate", "points_per_s"}
        assert r["points_per_s"] > 0
        for name in ("synthA/aurora_one.csv", "synthB/aurora_two.csv"):
            assert (out / "aurora" / name).exists()
        with open(out / det / "synthA" / f"{det}_one.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label"]
        assert len(rows) == 1200
        assert sum(int(r["label"]) for r in rows) == 41
    # A spike of 60 sigma is caught at the window's centre by the baseline.
    assert report["detectors"]["aurora"]["standard"] > 50
    assert report["corpus"]["windows"] == 1
    saved = json.loads((out / "report.json").read_text())
    assert saved["detectors"]["aurora"]["standard"] == report["detectors"]["aurora"]["standard"]
    assert "ARTime" in (out / "report.md").read_text()  # the published scoreboard, for context
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_detect_and_limit(tmp_path: Path) -> None:
    data = _make_corpus(tmp_path / "nab")
    out = tmp_path / "o"
    args = ["detect", "--nab", str(data), "--out", str(out), "--detectors", "aurora", "--limit", "1"]
    result = CliRunner().invoke(bench_app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["corpus"]["files"] == 1 and report["corpus"]["partial"] is True
    bad = CliRunner().invoke(bench_app, ["detect", "--nab", str(data), "--out", str(out), "--detectors", "nope"])
    assert bad.exit_code == 2
