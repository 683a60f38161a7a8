"""Aurora's own Prometheus metrics, served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
