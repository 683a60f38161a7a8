"""Alertmanager webhook receiver (payload version 4): alerts are upserted by fingerprint."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from aurora.db.tables import alerts
from aurora.errors import BadInput

SERVICE_LABELS = ("service", "app", "job", "namespace")
ZERO_TIME = "0001-01-01T00:00:00Z"


def _parse_time(value: Any, where: str) -> float | None:
    if value in (None, "", ZERO_TIME):
        return None
    if not isinstance(value, str):
        raise BadInput(f"{where} must be an RFC 3339 time string")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise BadInput(f"{where} is not an RFC 3339 time: {value!r}") from exc


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadInput(f"{where} must be an object of string values")
    return value


def parse_alertmanager(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
        raise BadInput("not an Alertmanager webhook payload: expected an object with an 'alerts' list")
    version = str(body.get("version", "4"))
    if version != "4":
        raise BadInput(f"Alertmanager payload version {version} is not supported; version 4 is")
    receiver = body.get("receiver") if isinstance(body.get("receiver"), str) else None
    out = []
    for i, a in enumerate(body["alerts"]):
        where = f"alerts[{i}]"
        if not isinstance(a, dict):
            raise BadInput(f"{where} must be an object")
        labels = _str_map(a.get("labels"), f"{where}.labels")
        if "alertname" not in labels:
            raise BadInput(f"{where}.labels has no alertname")
        status = a.get("status", body.get("status"))
        if status not in ("firing", "resolved"):
            raise BadInput(f"{where}.status must be 'firing' or 'resolved'")
        starts = _parse_time(a.get("startsAt"), f"{where}.startsAt")
        fp = a.get("fingerprint") or hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        out.append({
            "fingerprint": str(fp)[:64],
            "status": status,
            "alertname": labels["alertname"],
            "service": next((labels[k] for k in SERVICE_LABELS if k in labels), None),
            "severity": labels.get("severity"),
            "labels": json.dumps(labels, sort_keys=True),
            "annotations": json.dumps(_str_map(a.get("annotations"), f"{where}.annotations"), sort_keys=True),
            "starts_at": starts if starts is not None else time.time(),
            "ends_at": _parse_time(a.get("endsAt"), f"{where}.endsAt"),
            "generator_url": a.get("generatorURL") if isinstance(a.get("generatorURL"), str) else None,
            "receiver": receiver,
        })
    return out


class AlertLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def upsert(self, items: list[dict[str, Any]]) -> int:
        now = time.time()
        with self._engine.begin() as conn:
            for item in items:
                row = {**item, "updated_at": now}
                existing = conn.execute(
                    select(alerts.c.id).where(alerts.c.fingerprint == item["fingerprint"])).scalar()
                if existing is None:
                    conn.execute(insert(alerts).values(**row))
                else:
                    conn.execute(update(alerts).where(alerts.c.id == existing).values(**row))
        return len(items)

    def query(self, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        q = select(alerts).order_by(alerts.c.starts_at.desc()).limit(limit)
        if status:
            q = q.where(alerts.c.status == status)
        with self._engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [{"fingerprint": r["fingerprint"], "status": r["status"], "alertname": r["alertname"],
                 "service": r["service"], "severity": r["severity"], "labels": json.loads(r["labels"]),
                 "annotations": json.loads(r["annotations"]), "starts_at": r["starts_at"], "ends_at": r["ends_at"],
                 "generator_url": r["generator_url"]} for r in rows]
