"""The live detection stage: scores every stored sample and records anomalies with their evidence.

It runs the same detector as ``aurora bench detect`` (today the baseline in ``baseline.py``; the ensemble
replaces it behind the same ``update(slots, values)`` interface). Series slots are the store's series ids.
Counters (``*_total``, ``*_count``, ``*_sum``, ``*_bucket``) are skipped: their raw values only grow, and
scoring them needs rates, which this stage does not compute yet.

Detector state lives in memory: after a restart each series warms up again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Engine, insert, select

from aurora.db.tables import anomalies
from aurora.detect.baseline import BaselineDetector
from aurora.model import SeriesBatch

COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_created")


class SeriesLookup(Protocol):
    def get_series(self, series_id: int) -> Any: ...


@dataclass(frozen=True)
class DetectionConfig:
    threshold: float = 0.995  # score at or above which a sample is anomalous
    cooldown_s: float = 300.0  # at most one anomaly record per series in this much event time
    band_sigmas: float = 3.0  # the expected range shown as evidence: mean ± this many std devs
    critical: float = 0.9999  # score from which an anomaly is critical rather than a warning


class DetectStage:
    name = "detect"

    def __init__(self, series: SeriesLookup, sink: Callable[[list[dict[str, Any]]], None],
                 config: DetectionConfig | None = None, detector: BaselineDetector | None = None) -> None:
        self.series = series
        self.sink = sink
        self.config = config or DetectionConfig()
        self.detector = detector or BaselineDetector()
        self._kind = np.zeros(0, np.int8)  # per slot: 0 unknown, 1 scored, 2 skipped (counter)
        self._last_alert_ms = np.zeros(0, np.int64)
        self.samples_scored = 0
        self.anomalies_found = 0

    def _grow(self, n: int) -> None:
        if n > len(self._kind):
            grow = n - len(self._kind)
            self._kind = np.concatenate([self._kind, np.zeros(grow, np.int8)])
            self._last_alert_ms = np.concatenate([self._last_alert_ms, np.full(grow, np.iinfo(np.int64).min // 2)])
            self.detector.ensure_slots(n)

    def _classify(self, ids: np.ndarray, batch: SeriesBatch) -> None:
        for i in np.flatnonzero(self._kind[ids] == 0):  # once per series lifetime
            metric = batch.metrics[int(i)]
            self._kind[ids[i]] = 2 if metric.endswith(COUNTER_SUFFIXES) else 1

    def process(self, batch: SeriesBatch, series_ids: np.ndarray, now_ms: int) -> None:
        ids = np.asarray(series_ids, np.int64)
        if batch.n_samples == 0 or len(ids) == 0:
            return
        self._grow(int(ids.max()) + 1)
        self._classify(ids, batch)
        counts = batch.counts()
        slot = np.repeat(ids, counts)
        keep = (self._kind[slot] == 1) & np.isfinite(batch.values)
        if not keep.any():
            return
        rank = np.arange(batch.n_samples) - np.repeat(batch.offsets[:-1], counts)
        idx = np.flatnonzero(keep)
        idx = idx[np.argsort(rank[idx], kind="stable")]
        bounds = np.flatnonzero(np.diff(rank[idx])) + 1
        found: list[dict[str, Any]] = []
        det, cfg = self.detector, self.config
        for part in np.split(idx, bounds):  # one detector update per sample rank: each slot once per call
            s, x, t = slot[part], batch.values[part], batch.ts_ms[part]
            mean = det.mean[s].copy()
            std = np.sqrt(det.var[s]) + det.config.abs_floor + det.config.rel_floor * np.abs(mean)
            scores = det.update(s, x)
            hit = (scores >= cfg.threshold) & (t - self._last_alert_ms[s] >= int(cfg.cooldown_s * 1000))
            for j in np.flatnonzero(hit):
                found.append(self._record(int(s[j]), int(t[j]), float(x[j]), float(scores[j]), float(mean[j]),
                                          float(std[j])))
            self._last_alert_ms[s[hit]] = t[hit]
        self.samples_scored += len(idx)
        if found:
            self.anomalies_found += len(found)
            self.sink(found)

    def _record(self, sid: int, ts_ms: int, observed: float, score: float, mean: float, std: float) -> dict[str, Any]:
        info = self.series.get_series(sid)
        cfg = self.config
        lo, hi = mean - cfg.band_sigmas * std, mean + cfg.band_sigmas * std
        z = (observed - mean) / std if std > 0 else 0.0
        service = info.labels.get("service") or info.labels.get("job") or info.labels.get("host")
        where = f" of {service}" if service else ""
        direction = "above" if observed > hi else "below" if observed < lo else "at the edge of"
        return {
            "time": ts_ms / 1000, "series_id": sid, "service": service, "metric": info.metric,
            "labels": dict(info.labels), "score": score,
            "severity": "critical" if score >= cfg.critical else "warning",
            "expected": [lo, hi], "observed": observed, "detectors": [self.detector.name],
            "explanation": (f"{info.metric}{where} was {observed:.4g}, {direction} its usual range "
                            f"{lo:.4g} to {hi:.4g} ({z:+.1f} standard deviations); score {score:.4f} says "
                            "this is unusual for this series"),
        }


class AnomalyLog:
    """Anomaly records in the database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    def add(self, records: list[dict[str, Any]]) -> None:
        rows = [{"time": r["time"], "series_id": r["series_id"], "service": r["service"], "metric": r["metric"],
                 "labels": json.dumps(r["labels"], sort_keys=True), "score": r["score"], "severity": r["severity"],
                 "expected_lo": r["expected"][0], "expected_hi": r["expected"][1], "observed": r["observed"],
                 "detectors": json.dumps(r["detectors"]), "explanation": r["explanation"]} for r in records]
        with self._lock, self._engine.begin() as conn:
            conn.execute(insert(anomalies), rows)

    def query(self, start: float | None = None, end: float | None = None, service: str | None = None,
              limit: int = 1000) -> list[dict[str, Any]]:
        q = select(anomalies).order_by(anomalies.c.time.desc(), anomalies.c.id.desc()).limit(limit)
        if start is not None:
            q = q.where(anomalies.c.time >= start)
        if end is not None:
            q = q.where(anomalies.c.time <= end)
        if service:
            q = q.where(anomalies.c.service == service)
        with self._engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [{"id": r["id"], "time": r["time"], "service": r["service"], "metric": r["metric"],
                 "labels": json.loads(r["labels"]), "score": r["score"], "severity": r["severity"],
                 "expected": [r["expected_lo"], r["expected_hi"]], "observed": r["observed"],
                 "detectors": json.loads(r["detectors"]), "explanation": r["explanation"]} for r in rows]
