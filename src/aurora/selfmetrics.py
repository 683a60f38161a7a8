"""Aurora's own Prometheus metrics, served at /metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

SCORE_HELP = ("Last anomaly score (consensus of the detector's analyzers, 0-1) of each scored series; "
              "counters are scored by their per-second rate")
RATE_HELP = ("Share (0-1) of the service's scored series that raised an anomaly alarm (consensus score past "
             "the series' adaptive threshold) within the last detection.cooldown_s seconds of event time")


class ScoreSnapshot(Protocol):
    """What the detection stage reports at scrape time (``aurora.detect.stage.AnomalySnapshot``)."""

    @property
    def series_id(self) -> np.ndarray: ...
    @property
    def metric(self) -> Sequence[str]: ...
    @property
    def service(self) -> Sequence[str]: ...
    @property
    def score(self) -> np.ndarray: ...
    @property
    def rate(self) -> dict[str, float]: ...


class AnomalyScoreCollector(Collector):
    """``aurora_anomaly_score`` per series and ``aurora_anomaly_rate`` per service, read from the detection
    stage's arrays when /metrics is scraped (no gauge child per series to keep up to date on ingest)."""

    def __init__(self, snapshot: Callable[[], ScoreSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        score = GaugeMetricFamily("aurora_anomaly_score", SCORE_HELP, labels=["metric", "series_id", "service"])
        for metric, sid, service, value in zip(snap.metric, snap.series_id.tolist(), snap.service,
                                               snap.score.tolist(), strict=True):
            score.add_metric([metric, str(sid), service], value)
        yield score
        rate = GaugeMetricFamily("aurora_anomaly_rate", RATE_HELP, labels=["service"])
        for service, value in sorted(snap.rate.items()):
            rate.add_metric([service], value)
        yield rate

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("aurora_anomaly_score", SCORE_HELP, labels=["metric", "series_id", "service"])
        yield GaugeMetricFamily("aurora_anomaly_rate", RATE_HELP, labels=["service"])


RISK_HELP = "Risk score (0-100) of each service: predictions, anomalies, open incidents and recent changes combined"
ETA_HELP = "Seconds of event time until the predicted breach, per active prediction"


class RiskCollector(Collector):
    """``aurora_risk_score`` per service and ``aurora_prediction_eta_seconds`` per active prediction, computed
    when /metrics is scraped."""

    def __init__(self, risk: Callable[[], list[dict[str, Any]]],
                 predictions: Callable[[], tuple[float, list[dict[str, Any]]]]) -> None:
        self._risk = risk
        self._predictions = predictions

    def collect(self) -> Iterator[Metric]:
        risk = GaugeMetricFamily("aurora_risk_score", RISK_HELP, labels=["service"])
        for r in self._risk():
            risk.add_metric([r["service"]], float(r["risk"]))
        yield risk
        eta = GaugeMetricFamily("aurora_prediction_eta_seconds", ETA_HELP, labels=["service", "metric", "kind", "id"])
        now, preds = self._predictions()
        for p in preds:
            eta.add_metric([p.get("service") or "", p["metric"], p["kind"], str(p["id"])], float(p["eta"]) - now)
        yield eta

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("aurora_risk_score", RISK_HELP, labels=["service"])
        yield GaugeMetricFamily("aurora_prediction_eta_seconds", ETA_HELP, labels=["service", "metric", "kind", "id"])


class SelfMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.samples_ingested = Counter("aurora_ingested_samples", "Samples accepted and stored", ["source"],
                                        registry=r)
        self.requests_rejected = Counter("aurora_ingest_rejected_requests", "Ingest requests refused",
                                         ["source", "reason"], registry=r)
        self.duplicates = Counter("aurora_ingest_duplicate_samples", "Samples skipped as exact duplicates",
                                  ["source"], registry=r)
        self.http_duration = Histogram("aurora_http_request_duration_seconds", "HTTP request latency",
                                       ["route", "method", "code"], registry=r,
                                       buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
        self.anomalies = Counter("aurora_anomalies", "Anomalies recorded by the detection stage", ["service"],
                                 registry=r)
        self.samples_scored = Gauge("aurora_detection_samples_scored", "Samples scored by the detection stage",
                                    registry=r)
        self.series = Gauge("aurora_series", "Series in the index", registry=r)
        self.head_samples = Gauge("aurora_head_samples", "Samples held in memory", registry=r)
        self.watermark = Gauge("aurora_event_time_seconds", "Event-time watermark (newest sample time)",
                               registry=r)
        self.pipeline_lag = Gauge("aurora_pipeline_queue_batches", "Batches waiting for processing", registry=r)

    def watch_anomaly_scores(self, snapshot: Callable[[], ScoreSnapshot]) -> None:
        """Serve the detection stage's per-series scores and per-service anomaly rates."""
        self.registry.register(AnomalyScoreCollector(snapshot))

    def watch_risk(self, risk: Callable[[], list[dict[str, Any]]],
                   predictions: Callable[[], tuple[float, list[dict[str, Any]]]]) -> None:
        """Serve per-service risk scores and the active predictions' time to breach."""
        self.registry.register(RiskCollector(risk, predictions))
