"""Turning the engine's records (anomalies, Alertmanager alerts, predictions) into ``Signal``s.

Fingerprints say what is "the same problem": one series' anomalies (``anomaly:<series id>``), one
Alertmanager alert (its own fingerprint), one prediction (``prediction:<service>:<metric>:<kind>``).
"""

from __future__ import annotations

import json
from typing import Any

from aurora.incidents.model import Signal

ALERT_SEVERITY = {"critical": "critical", "page": "critical", "error": "critical", "high": "critical",
                  "warning": "warning", "warn": "warning", "medium": "warning"}


def from_anomaly(rec: dict[str, Any]) -> Signal:
    return Signal("anomaly", f"anomaly:{rec['series_id']}", float(rec["time"]), rec.get("service"), rec["metric"],
                  float(rec["score"]), "critical" if rec.get("severity") == "critical" else "warning",
                  rec.get("explanation") or f"{rec['metric']} anomalous", dict(rec.get("labels") or {}),
                  data={"series_id": rec["series_id"], "expected": rec.get("expected"),
                        "observed": rec.get("observed"), "detectors": rec.get("detectors")})


def from_alert(item: dict[str, Any]) -> Signal:
    """An Alertmanager alert as parsed by ``aurora.ingest.alertmanager`` (labels and annotations as JSON text)."""
    labels = item["labels"] if isinstance(item["labels"], dict) else json.loads(item["labels"])
    ann = item.get("annotations") or {}
    ann = ann if isinstance(ann, dict) else json.loads(ann)
    resolved = item["status"] == "resolved"
    t = item["ends_at"] if resolved and item.get("ends_at") else item["starts_at"]
    sev = ALERT_SEVERITY.get(str(item.get("severity") or "").lower(), "warning")
    text = ann.get("summary") or ann.get("description") or item["alertname"]
    return Signal("alert", f"alert:{item['fingerprint']}", float(t), item.get("service"), item["alertname"],
                  1.0, sev, f"alert {item['alertname']}: {text}", labels, resolved=resolved,
                  data={"alertname": item["alertname"], "annotations": ann})


def from_prediction(pred: dict[str, Any]) -> Signal:
    """A prediction record as in the API (``service, metric, kind, eta, probability, explanation``). The
    nearer the breach, the more severe: under 1 h critical, else warning."""
    now = float(pred.get("updated_at") or pred.get("created_at") or 0.0)
    eta = pred.get("eta")
    sev = "critical" if eta is not None and float(eta) - now < 3600 else "warning"
    resolved = (pred.get("state") or pred.get("status")) in ("withdrawn", "confirmed", "expired")
    return Signal("prediction", f"prediction:{pred.get('service')}:{pred['metric']}:{pred.get('kind', 'breach')}",
                  now, pred.get("service"), pred["metric"], float(pred.get("probability") or 0.5), sev,
                  pred.get("explanation") or f"{pred['metric']} predicted to breach", dict(pred.get("labels") or {}),
                  resolved=resolved,
                  data={"eta": eta, "eta_low": pred.get("eta_low"), "eta_high": pred.get("eta_high"),
                        "since": (pred.get("evidence") or {}).get("since"), "prediction_id": pred.get("id")})
