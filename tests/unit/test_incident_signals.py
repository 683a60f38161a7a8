"""Records from detection, Alertmanager and prediction as incident signals: fingerprints and severities."""

from __future__ import annotations

from aurora.incidents.signals import from_alert, from_anomaly, from_prediction


def test_anomaly_fingerprint_is_its_series() -> None:
    rec = {"series_id": 7, "time": 10.0, "service": "cart", "metric": "m", "score": 0.99999, "severity": "critical",
           "labels": {"service": "cart"}, "explanation": "m odd"}
    s = from_anomaly(rec)
    assert (s.fingerprint, s.severity, s.service, s.summary) == ("anomaly:7", "critical", "cart", "m odd")


def test_alert_maps_severity_and_uses_its_end_time_when_resolved() -> None:
    item = {"fingerprint": "f1", "status": "resolved", "alertname": "Down", "service": "web", "severity": "page",
            "labels": '{"alertname": "Down"}', "annotations": '{"summary": "web is down"}', "starts_at": 5.0,
            "ends_at": 9.0}
    s = from_alert(item)
    assert (s.fingerprint, s.severity, s.time, s.resolved) == ("alert:f1", "critical", 9.0, True)
    assert "web is down" in s.summary


def test_prediction_is_critical_when_the_breach_is_within_the_hour() -> None:
    base = {"service": "db", "metric": "disk_used_bytes", "kind": "breach", "updated_at": 1000.0, "probability": 0.8}
    assert from_prediction({**base, "eta": 1000.0 + 1800}).severity == "critical"
    assert from_prediction({**base, "eta": 1000.0 + 7200}).severity == "warning"
    assert from_prediction({**base, "eta": 2000.0, "status": "withdrawn"}).resolved
