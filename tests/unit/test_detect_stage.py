"""The live detection stage: anomalies with evidence, counters as rates, cooldown, the alarm gate, batch
shapes, retries, the /metrics snapshot and checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aurora.config import AuroraConfig, DetectionSettings
from aurora.detect.checkpoint import load_checkpoint, save_checkpoint
from aurora.detect.ensemble import EnsembleConfig, EnsembleDetector, EnsembleResult
from aurora.detect.stage import DetectionConfig, DetectStage, ensemble_config
from aurora.model import BatchBuilder, SeriesBatch

T0 = 1_700_000_000_000
STEP_MS = 15_000
RECORD_KEYS = {"time", "series_id", "service", "metric", "labels", "score", "severity", "expected", "observed",
               "detectors", "explanation"}


@dataclass
class Info:
    id: int
    metric: str
    labels: dict[str, str]


class Series:
    def __init__(self, names: list[str], service: str = "cart") -> None:
        self.infos = [Info(i, n, {"service": service}) for i, n in enumerate(names)]

    def get_series(self, sid: int) -> Info:
        return self.infos[sid]


class SpyDetector(EnsembleDetector):
    """The ensemble, keeping every input and result (to check what the stage fed it and recorded)."""

    def __init__(self, n: int = 0, config: EnsembleConfig | None = None) -> None:
        super().__init__(n, config)
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray, EnsembleResult]] = []

    def update(self, slots: np.ndarray, values: np.ndarray, times: np.ndarray) -> EnsembleResult:
        res = super().update(slots, values, times)
        self.calls.append((slots.copy(), np.asarray(values, float).copy(), np.asarray(times, float).copy(), res))
        return res


def batches(values: dict[str, np.ndarray], per_batch: int = 1, service: str = "cart",
            step_ms: int = STEP_MS) -> list[SeriesBatch]:
    n = len(next(iter(values.values())))
    out = []
    for lo in range(0, n, per_batch):
        b = BatchBuilder()
        for name, x in values.items():
            ts = T0 + step_ms * np.arange(lo, min(lo + per_batch, n))
            b.add(name, {"service": service}, ts, x[lo:lo + per_batch])
        out.append(b.build())
    return out


def make_stage(names: list[str], cooldown_s: float = 300, detector: EnsembleDetector | None = None,
               **cfg: Any) -> tuple[DetectStage, list[dict[str, Any]]]:
    found: list[dict[str, Any]] = []
    stage = DetectStage(Series(names), found.extend, DetectionConfig(cooldown_s=cooldown_s, **cfg), detector)
    return stage, found


def feed(stage: DetectStage, bs: list[SeriesBatch]) -> None:
    ids = np.arange(bs[0].n_series)
    for b in bs:
        stage.process(b, ids, int(b.ts_ms.max()))


def run(values: dict[str, np.ndarray], per_batch: int = 1, cooldown_s: float = 300,
        detector: EnsembleDetector | None = None) -> list[dict[str, Any]]:
    """Feed ``values`` (one array per series) through a fresh stage, ``per_batch`` samples per series per batch."""
    stage, found = make_stage(list(values), cooldown_s, detector)
    feed(stage, batches(values, per_batch))
    return found


def series_with_spike(n: int = 600, at: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 100 + rng.normal(0, 1, n)
    x[at] = 160
    return x


def test_a_spike_is_an_anomaly_with_evidence() -> None:
    det = SpyDetector()
    found = run({"latency_seconds": series_with_spike()}, detector=det)
    assert len(found) == 1
    a = found[0]
    assert set(a) == RECORD_KEYS
    assert a["time"] == (T0 + STEP_MS * 500) / 1000 and a["series_id"] == 0
    assert a["service"] == "cart" and a["metric"] == "latency_seconds" and a["labels"] == {"service": "cart"}
    assert a["observed"] == 160 and a["expected"][0] < 100 < a["expected"][1] < 160
    assert a["severity"] in ("warning", "critical") and 0 < a["score"] <= 1
    # detectors: the analyzers whose vote reached the vote level, strongest first
    (res,) = [r for _, _, t, r in det.calls if t[0] == a["time"]]
    votes = dict(zip(det.names, res.votes[0].tolist(), strict=True))
    assert a["detectors"] == sorted((n for n in det.names if votes[n] >= det.config.vote), key=lambda n: -votes[n])
    assert len(a["detectors"]) >= det.config.quorum and a["score"] == res.score[0]
    # the explanation names the metric, the service, observed vs expected and who agreed, and why
    e = a["explanation"]
    assert e.startswith("latency_seconds of cart was 160, above its usual range ")
    assert f"{len(a['detectors'])} of {len(det.names)} analyzers agree: " in e
    for name in a["detectors"]:
        reason = det.analyzers[det.names.index(name)].reason
        assert f"{name} ({reason})" in e


def test_severity_follows_the_critical_level() -> None:
    stage, found = make_stage(["x"], critical=1.5)  # no score reaches 1.5
    feed(stage, batches({"x": series_with_spike()}))
    assert [a["severity"] for a in found] == ["warning"]
    stage, found = make_stage(["x"], critical=0.5)
    feed(stage, batches({"x": series_with_spike()}))
    assert [a["severity"] for a in found] == ["critical"]


def test_counters_are_scored_by_their_rate() -> None:
    rng = np.random.default_rng(2)
    per_sample = 30 + rng.normal(0, 1, 600)  # ~2 per second at 15 s
    per_sample[500] = 300  # a burst of requests
    counter = np.cumsum(per_sample)
    det = SpyDetector()
    found = run({"requests_total": counter}, detector=det)
    fed = np.concatenate([x for _, x, _, _ in det.calls])
    np.testing.assert_allclose(fed, np.diff(counter) / 15.0)  # the first sample has no rate
    assert len(found) == 1
    a = found[0]
    assert a["time"] == (T0 + STEP_MS * 500) / 1000
    assert a["observed"] == pytest.approx(20.0) and a["expected"][1] < 5
    assert a["explanation"].startswith("requests_total (per-second rate) of cart was 20, above its usual range")


def test_a_counter_reset_gives_no_sample_and_no_anomaly() -> None:
    rng = np.random.default_rng(3)
    counter = np.cumsum(30 + rng.normal(0, 1, 600))
    counter[400:] -= counter[399]  # the process restarted: the counter starts again from ~0
    counter[400:] += 10
    det = SpyDetector()
    stage, found = make_stage(["requests_total"], detector=det)
    feed(stage, batches({"requests_total": counter}))
    assert stage.samples_scored == 600 - 2  # no rate for the first sample, none for the reset
    fed = np.concatenate([x for _, x, _, _ in det.calls])
    assert fed.min() > 1.0  # never the negative "rate" of the reset
    assert (T0 + STEP_MS * 400) / 1000 not in {a["time"] for a in found}
    assert (T0 + STEP_MS * 400) / 1000 not in np.concatenate([t for _, _, t, _ in det.calls])


def test_created_series_are_not_scored() -> None:
    stage, found = make_stage(["requests_created"])
    feed(stage, batches({"requests_created": np.where(np.arange(300) < 200, 1.7e9, 1.8e9)}))
    assert stage.samples_scored == 0 and found == []


def test_batch_shape_does_not_change_the_result() -> None:
    rng = np.random.default_rng(4)
    counter = np.cumsum(np.where(np.arange(600) == 450, 900, 30) + rng.normal(0, 1, 600))
    values = {"x": series_with_spike(), "y_total": counter}
    one = run(values, per_batch=1)
    many = run(values, per_batch=97)
    assert len(one) == 2
    assert one == many


def test_retried_samples_are_not_scored_twice() -> None:
    bs = batches({"x": series_with_spike()}, per_batch=50)
    stage, found = make_stage(["x"])
    ids = np.arange(1)
    for i, b in enumerate(bs):
        stage.process(b, ids, 0)
        if i % 3 == 0:
            stage.process(b, ids, 0)  # the same request again
    ref, ref_found = make_stage(["x"])
    feed(ref, bs)
    assert stage.samples_scored == ref.samples_scored == 600
    assert found == ref_found and len(found) == 1


def test_non_finite_values_are_skipped() -> None:
    x = series_with_spike()
    with_nan = x.copy()
    with_nan[[100, 200, 300]] = [np.nan, np.inf, -np.inf]
    stage, found = make_stage(["x"])
    feed(stage, batches({"x": with_nan}))
    assert stage.samples_scored == 597 and len(found) == 1 and found[0]["observed"] == 160


def test_cooldown_keeps_one_record_per_burst() -> None:
    x = series_with_spike()
    x[501:504] = 160  # a burst of four samples (one minute)
    gate_off = ensemble_config(hold=0)
    assert len(run({"x": x}, cooldown_s=300, detector=EnsembleDetector(0, gate_off))) == 1
    assert len(run({"x": x}, cooldown_s=0, detector=EnsembleDetector(0, gate_off))) >= 2


def test_the_gate_quiets_a_flapping_series() -> None:
    """After a clean history a series starts flapping (a spike every 10 samples, for ever). Without the gate
    (no hold, a threshold that never rises) it alarms again and again until the likelihood layer has
    learnt the new normal; with it, once. No cooldown, so records are alarms."""
    n = 1600
    i = np.arange(n)
    rng = np.random.default_rng(5)
    x = 100 + rng.normal(0, 1, n) + np.where((i >= 1000) & (i % 10 == 0), 100, 0)
    base = EnsembleConfig()
    off = replace(base, gate=replace(base.gate, hold=0, target_rate=1.0))
    gated = run({"x": x}, per_batch=250, cooldown_s=0)
    ungated = run({"x": x}, per_batch=250, cooldown_s=0, detector=EnsembleDetector(0, off))
    assert len(gated) >= 1 and len(gated) * 3 <= len(ungated)
    assert gated[0]["time"] == (T0 + STEP_MS * 1000) / 1000


def test_a_chronically_alarming_series_raises_its_threshold() -> None:
    n = 3000
    i = np.arange(n)
    rng = np.random.default_rng(6)
    x = 100 + rng.normal(0, 1, n) + np.where(i % 10 == 0, 10 ** rng.uniform(1, 10, n), 0)
    stage, found = make_stage(["x", "quiet"], cooldown_s=0)
    feed(stage, batches({"x": x, "quiet": 100 + rng.normal(0, 1, n)}, per_batch=250))
    thr = stage.detector.gate.threshold(np.array([0, 1]))
    assert thr[0] > thr[1] == stage.detector.config.gate.threshold
    assert sum(a["metric"] == "x" for a in found) > 2 * sum(a["metric"] == "quiet" for a in found)


def test_snapshot_has_last_scores_and_the_anomaly_rate() -> None:
    names = ["a", "b", "c", "d_total"]
    rng = np.random.default_rng(7)
    values = {n: 100 + rng.normal(0, 1, 600) for n in names[:3]}
    values["a"][599] = 200  # alarms on the last sample
    values["d_total"] = np.cumsum(30 + rng.normal(0, 1, 600))
    stage, _ = make_stage(names)
    bs = batches(values)
    feed(stage, bs)
    now = int(bs[-1].ts_ms.max())
    snap = stage.snapshot(now)
    assert snap.series_id.tolist() == [0, 1, 2, 3]
    assert snap.metric == names and snap.service == ["cart"] * 4
    assert snap.score[0] > 0.99 and (snap.score[1:] < 0.99).all()
    assert snap.rate == {"cart": 0.25}
    assert stage.snapshot(now + 301_000).rate == {"cart": 0.0}  # older than the cooldown window


def test_ensemble_config_replaces_only_what_is_set() -> None:
    base = EnsembleConfig()
    assert ensemble_config() == base
    cfg = ensemble_config(quorum=3, vote=0.8, threshold=0.95, hold=7)
    assert (cfg.quorum, cfg.vote, cfg.gate.threshold, cfg.gate.hold) == (3, 0.8, 0.95, 7)
    assert cfg.gate.damping == base.gate.damping and cfg.level == base.level and cfg.band == base.band


def test_detection_settings_are_validated() -> None:
    assert DetectionSettings().quorum is None
    AuroraConfig.model_validate({"detection": {"quorum": 3, "vote": 0.5, "threshold": 0.9, "hold": 0}})
    with pytest.raises(ValueError, match="quorum 9 is more than"):
        DetectionSettings(quorum=9)
    with pytest.raises(ValueError, match="must not exceed threshold"):
        DetectionSettings(vote=0.99, threshold=0.9)
    with pytest.raises(ValueError):
        DetectionSettings(checkpoint_s=-1)


def test_checkpoint_round_trip_continues_identically(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    counter = np.cumsum(np.where(np.arange(1200) == 1000, 900, 30) + rng.normal(0, 1, 1200))
    gauge = 100 + rng.normal(0, 1, 1200)
    gauge[[700, 1100]] = 160
    bs = batches({"x": gauge, "y_total": counter}, per_batch=20)
    ref, ref_found = make_stage(["x", "y_total"])
    feed(ref, bs)
    first, _ = make_stage(["x", "y_total"])
    feed(first, bs[:30])  # 600 samples per series
    assert first.dirty
    path = tmp_path / "state.npz"
    save_checkpoint(path, *first.checkpoint())
    assert not first.dirty and list(tmp_path.iterdir()) == [path]  # no temporary file left
    loaded = load_checkpoint(path)
    assert loaded is not None
    second, found = make_stage(["x", "y_total"])
    assert second.restore(*loaded)
    feed(second, bs[30:])
    assert found == [a for a in ref_found if a["time"] >= (T0 + STEP_MS * 600) / 1000] and len(found) == 3
    assert second.samples_scored == ref.samples_scored
    snap, ref_snap = second.snapshot(0), ref.snapshot(0)
    assert snap.metric == ref_snap.metric and np.array_equal(snap.score, ref_snap.score)


def test_an_incompatible_checkpoint_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stage, _ = make_stage(["x"])
    feed(stage, batches({"x": series_with_spike()}))
    path = tmp_path / "state.npz"
    save_checkpoint(path, *stage.checkpoint())
    loaded = load_checkpoint(path)
    assert loaded is not None
    other, _ = make_stage(["x"], detector=EnsembleDetector(0, ensemble_config(quorum=3)))
    assert not other.restore(*loaded)
    assert "config differ" in caplog.text
    assert other.samples_scored == 0 and other.detector.config.quorum == 3
    path.write_bytes(b"not a checkpoint")
    assert load_checkpoint(path) is None
    assert load_checkpoint(tmp_path / "missing.npz") is None
