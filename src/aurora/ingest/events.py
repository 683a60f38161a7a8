"""Change events (deployments, config changes, restarts, scaling): validated whole, then stored."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select

from aurora.clock import EventClock
from aurora.db.tables import events
from aurora.errors import BadInput, LimitExceeded

KNOWN_KINDS = ("deployment", "config_change", "restart", "scale", "rollback", "feature_flag", "maintenance")
KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_EVENTS = 1000
MAX_ATTRIBUTES_BYTES = 16_384


@dataclass(frozen=True)
class ChangeEvent:
    kind: str
    service: str
    time: float
    attributes: dict[str, Any]


def parse_events(body: Any, clock: EventClock, max_future_s: float, min_time_s: float = 0.0) -> list[ChangeEvent]:
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise BadInput('body must be a JSON object {"events": [{"kind", "service", "time", "attributes"}, ...]}')
    items = body["events"]
    if len(items) > MAX_EVENTS:
        raise LimitExceeded(f"request has {len(items)} events; the limit is {MAX_EVENTS}")
    out = []
    for i, ev in enumerate(items):
        where = f"events[{i}]"
        if not isinstance(ev, dict):
            raise BadInput(f"{where} must be an object")
        unknown = set(ev) - {"kind", "service", "time", "attributes"}
        if unknown:
            raise BadInput(f"{where} has unknown fields {sorted(unknown)}")
        kind = ev.get("kind")
        if not isinstance(kind, str) or not KIND_RE.match(kind):
            raise BadInput(f"{where}.kind must be a lower-case word such as {', '.join(KNOWN_KINDS)}")
        service = ev.get("service")
        if not isinstance(service, str) or not service.strip() or len(service) > 255:
            raise BadInput(f"{where}.service must be a non-empty string of at most 255 characters")
        t = ev.get("time", clock.now())
        if isinstance(t, bool) or not isinstance(t, int | float) or not (0 <= t < 1e11):
            raise BadInput(f"{where}.time must be unix seconds (a number), got {t!r}")
        if t > clock.wall_ms() / 1000 + max_future_s:  # on the data clock too (see ingest.validate)
            raise BadInput(f"{where}.time {t} is more than {max_future_s:.0f} s in the future")
        if t < min_time_s:
            raise BadInput(f"{where}.time {t} is before {min_time_s:.0f} (limits.min_time_s); times are unix seconds")
        attrs = ev.get("attributes", {})
        if not isinstance(attrs, dict):
            raise BadInput(f"{where}.attributes must be an object")
        if len(json.dumps(attrs)) > MAX_ATTRIBUTES_BYTES:
            raise LimitExceeded(f"{where}.attributes is larger than {MAX_ATTRIBUTES_BYTES} bytes")
        out.append(ChangeEvent(kind, service.strip(), float(t), attrs))
    return out


class EventLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, evs: list[ChangeEvent]) -> list[int]:
        now = time.time()
        ids = []
        with self._engine.begin() as conn:
            for ev in evs:
                res = conn.execute(insert(events).values(kind=ev.kind, service=ev.service, time=ev.time,
                                                         attributes=json.dumps(ev.attributes, sort_keys=True),
                                                         received_at=now))
                assert res.inserted_primary_key is not None
                ids.append(int(res.inserted_primary_key[0]))
        return ids

    def query(self, service: str | None = None, kind: str | None = None, start: float | None = None,
              end: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        q = select(events).order_by(events.c.time.desc(), events.c.id.desc()).limit(limit)
        if service:
            q = q.where(events.c.service == service)
        if kind:
            q = q.where(events.c.kind == kind)
        if start is not None:
            q = q.where(events.c.time >= start)
        if end is not None:
            q = q.where(events.c.time <= end)
        with self._engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [{"id": r["id"], "kind": r["kind"], "service": r["service"], "time": r["time"],
                 "attributes": json.loads(r["attributes"])} for r in rows]
