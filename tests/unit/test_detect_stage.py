"""The live detection stage: anomalies with evidence, counters skipped, cooldown, batch shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aurora.detect.stage import DetectionConfig, DetectStage
from aurora.model import BatchBuilder, SeriesBatch

T0 = 1_700_000_000_000


@dataclass
class Info:
    id: int
    metric: str
    labels: dict[str, str]


class Series:
    def __init__(self, infos: list[Info]) -> None:
        self.infos = infos

    def get_series(self, sid: int) -> Info:
        return self.infos[sid]


def run(values: dict[str, np.ndarray], per_batch: int = 1, cooldown_s: float = 300) -> list[dict[str, Any]]:
    names = list(values)
    infos = [Info(i, n, {"service": "cart"}) for i, n in enumerate(names)]
    found: list[dict[str, Any]] = []
    stage = DetectStage(Series(infos), found.extend, DetectionConfig(cooldown_s=cooldown_s))
    n = len(next(iter(values.values())))
    for lo in range(0, n, per_batch):
        b = BatchBuilder()
        for name in names:
            ts = T0 + 15_000 * np.arange(lo, min(lo + per_batch, n))
            b.add(name, {"service": "cart"}, ts, values[name][lo:lo + per_batch])
        batch: SeriesBatch = b.build()
        stage.process(batch, np.arange(len(names)), int(batch.ts_ms.max()))
    return found


def series_with_spike(n: int = 600, at: int = 500) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = 100 + rng.normal(0, 1, n)
    x[at] = 160
    return x


def test_a_spike_is_an_anomaly_with_evidence() -> None:
    found = run({"latency_seconds": series_with_spike()})
    assert len(found) == 1
    a = found[0]
    assert a["time"] == (T0 + 15_000 * 500) / 1000
    assert a["observed"] == 160 and a["expected"][0] < 100 < a["expected"][1] < 160
    assert a["service"] == "cart" and a["metric"] == "latency_seconds" and a["detectors"]
    assert "above its usual range" in a["explanation"]


def test_quiet_series_and_counters_give_nothing() -> None:
    rng = np.random.default_rng(1)
    quiet = 100 + rng.normal(0, 1, 600)
    counter = np.cumsum(np.where(np.arange(600) == 500, 10_000, 5)).astype(float)
    assert run({"quiet_gauge": quiet, "requests_total": counter}) == []


def test_batch_shape_does_not_change_the_result() -> None:
    one = run({"x": series_with_spike()}, per_batch=1)
    many = run({"x": series_with_spike()}, per_batch=97)
    assert [(a["time"], a["score"]) for a in one] == [(a["time"], a["score"]) for a in many]


def test_cooldown_keeps_one_record_per_burst() -> None:
    x = series_with_spike()
    x[501:504] = 160  # a burst of four samples (one minute)
    assert len(run({"x": x}, cooldown_s=300)) == 1
    assert len(run({"x": x}, cooldown_s=0)) >= 2
