"""bench perf: runs each benchmark script, reads its JSON line and checks figures against targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aurora.bench import perf


def test_run_perf_checks_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "fast.py").write_text('print("noise")\nprint(\'{"rate": 2000000, "ms": 30}\')\n')
    (bench / "broken.py").write_text("raise SystemExit('no database')\n")
    monkeypatch.setattr(perf, "BENCH_DIR", bench)
    monkeypatch.setattr(perf, "MEASURES", (
        perf.Measure("fast", "fast.py", (), (), (
            perf.Figure("rate", "rate", 1e6, True, "samples/s"),
            perf.Figure("ms", "latency", 20, False, "ms"),
        )),
        perf.Measure("broken", "broken.py", (), (), (perf.Figure("x", "x", 1, True, "B"),)),
    ))
    report = perf.run_perf(tmp_path / "out")
    figs = {f["figure"]: f for f in report["figures"]}
    assert figs["rate"]["met"] is True and figs["rate"]["value"] == 2000000
    assert figs["latency"]["met"] is False
    assert "error" in report["measures"]["broken"]
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["figures"] == report["figures"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**no**" in md and "broken failed" in md
