"""The live homology stage: services' gauges from the store's window, evaluated on an event-time cadence;
an anomalous shape becomes an anomaly record about the whole service."""

from __future__ import annotations

from typing import Any

import numpy as np

from aurora.detect.homology_stage import NO_SERIES, HomologyStage
from aurora.model import BatchBuilder
from tests.unit.test_detect_homology import STEP, phase_switch


class Store:
    """The store's head window over arrays that grow as the test feeds them."""

    def __init__(self, data: dict[int, np.ndarray]) -> None:
        self.data, self.upto = data, 0

    def window(self, series_id: int) -> tuple[np.ndarray, np.ndarray]:
        v = self.data[series_id][max(0, self.upto - 720) : self.upto]
        return np.arange(len(v), dtype=np.int64), v


def feed(stage: HomologyStage, store: Store, series: list[tuple[str, dict[str, str]]], x: np.ndarray,
         t0_ms: int = 1_700_000_000_000) -> None:
    ids = np.arange(len(series))
    for k in range(len(x)):
        store.upto = k + 1
        b = BatchBuilder()
        for (metric, labels), v in zip(series, x[k], strict=True):
            b.add(metric, labels, [t0_ms + int(k * STEP * 1000)], [float(v)])
        stage.process(b.build(), ids, t0_ms + int(k * STEP * 1000))


def test_phase_switch_becomes_a_service_level_anomaly() -> None:
    x2, switch = phase_switch()
    requests_total = np.cumsum(np.full(len(x2), 10.0))  # a counter of the same service: left out
    x = np.column_stack([x2, requests_total])
    series = [("load", {"service": "cart"}), ("cpu", {"service": "cart"}), ("requests_total", {"service": "cart"})]
    store = Store({i: x[:, i] for i in range(3)})
    found: list[dict[str, Any]] = []
    stage = HomologyStage(store, found.extend, eval_every_s=20 * STEP)
    feed(stage, store, series, x)

    assert stage._columns["cart"] == [(0, "load"), (1, "cpu")]
    assert stage.evaluations >= (len(x) - 60) // 20 - 1  # one per 20 samples once a window is full
    t_switch = 1_700_000_000 + switch * STEP
    assert found, "the anti-phase switch was not reported"
    assert all(r["time"] >= t_switch for r in found)  # nothing before the switch
    r = found[0]
    assert r["series_id"] == NO_SERIES and r["service"] == "cart" and r["detectors"] == ["homology"]
    assert r["explanation"].startswith("cart's metrics move together differently")
    assert r["observed"] > r["expected"][1]  # the distance to the baseline is beyond its usual range


def test_no_service_label_or_a_single_gauge_is_never_evaluated() -> None:
    x = np.random.default_rng(0).normal(size=(200, 2))
    store = Store({0: x[:, 0], 1: x[:, 1]})
    stage = HomologyStage(store, lambda recs: None, eval_every_s=STEP)
    feed(stage, store, [("a", {}), ("b", {"service": "solo"})], x)
    assert stage.evaluations == 0
