"""Where remediation runs and the kill switch live (tables ``actions`` and ``remedy_state``)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from aurora.db.tables import actions, remedy_state

STATUSES = ("skipped", "notified", "dry_run", "pending_approval", "approved", "rejected", "expired", "running",
            "verifying", "verified", "verification_failed", "failed", "rolled_back", "inconclusive")
# inconclusive: the run ended without a verdict (Aurora stopped while it ran, or a person resolved the incident
# before the fix could be verified); it counts neither as a fix that worked nor as one that failed.
FINAL = ("skipped", "notified", "dry_run", "rejected", "expired", "verified", "verification_failed", "failed",
         "rolled_back", "inconclusive")
SUCCESS = ("verified",)
FAILURE = ("verification_failed", "failed", "rolled_back")


def _decode(row: Any) -> dict[str, Any]:
    rec = dict(row)
    rec["steps"] = json.loads(rec["steps"])
    rec["dry_run"] = bool(rec["dry_run"])
    return rec


class ActionStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._paused: tuple[float, bool] | None = None  # (wall time read, value): a 1 s cache

    def add(self, rec: dict[str, Any]) -> int:
        row = {**rec, "steps": json.dumps(rec["steps"], sort_keys=True, default=str)}
        with self._lock, self._engine.begin() as conn:
            key = conn.execute(insert(actions).values(**row)).inserted_primary_key
        assert key is not None
        return int(key[0])

    def update(self, action_id: int, fields: dict[str, Any]) -> None:
        row = dict(fields)
        if "steps" in row:
            row["steps"] = json.dumps(row["steps"], sort_keys=True, default=str)
        with self._lock, self._engine.begin() as conn:
            conn.execute(update(actions).where(actions.c.id == action_id).values(**row))

    def get(self, action_id: int) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(actions).where(actions.c.id == action_id)).mappings().first()
        return None if row is None else _decode(row)

    def query(self, incident_id: int | None = None, status: str | None = None, playbook: str | None = None,
              since: float | None = None, limit: int = 200) -> list[dict[str, Any]]:
        q = select(actions).order_by(actions.c.id.desc()).limit(limit)
        if incident_id is not None:
            q = q.where(actions.c.incident_id == incident_id)
        if status is not None:
            q = q.where(actions.c.status == status)
        if playbook is not None:
            q = q.where(actions.c.playbook == playbook)
        if since is not None:
            q = q.where(actions.c.requested_at >= since)
        with self._engine.connect() as conn:
            return [_decode(r) for r in conn.execute(q).mappings().all()]

    def count(self, status: str) -> int:
        """Runs in ``status`` (the dashboard's "waiting for approval" badge)."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(actions)
                                    .where(actions.c.status == status)).scalar_one())

    def outcomes(self) -> dict[tuple[str, str], dict[str, int]]:
        """(playbook, incident kind) -> {"verified": n, "failed": n} over every real (not dry) run."""
        q = (select(actions.c.playbook, actions.c.incident_kind, actions.c.status, func.count())
             .where(actions.c.dry_run.is_(False)).group_by(actions.c.playbook, actions.c.incident_kind,
                                                          actions.c.status))
        out: dict[tuple[str, str], dict[str, int]] = {}
        with self._engine.connect() as conn:
            for pb, kind, status, n in conn.execute(q).all():
                d = out.setdefault((pb, kind or ""), {"verified": 0, "failed": 0})
                if status in SUCCESS:
                    d["verified"] += int(n)
                elif status in FAILURE:
                    d["failed"] += int(n)
        return out

    # --- the kill switch -------------------------------------------------------------------------
    def paused(self) -> bool:
        now = time.monotonic()
        if self._paused is not None and now - self._paused[0] < 1.0:
            return self._paused[1]
        with self._engine.connect() as conn:
            v = conn.execute(select(remedy_state.c.value).where(remedy_state.c.key == "paused")).scalar()
        value = v == "true"
        self._paused = (now, value)
        return value

    def set_paused(self, value: bool, by: str) -> None:
        self._put("paused", "true" if value else "false", by)
        self._paused = None

    def _put(self, key: str, value: str, by: str) -> None:
        with self._lock, self._engine.begin() as conn:
            conn.execute(remedy_state.delete().where(remedy_state.c.key == key))
            conn.execute(insert(remedy_state).values(key=key, value=value, updated_at=time.time(), updated_by=by))

    # --- circuit breaker resets ------------------------------------------------------------------
    def breaker_resets(self) -> dict[str, float]:
        """Playbook -> the event time an operator last closed its circuit breaker (failures before it no longer
        count)."""
        with self._engine.connect() as conn:
            v = conn.execute(select(remedy_state.c.value).where(remedy_state.c.key == "breaker_resets")).scalar()
        return {str(k): float(t) for k, t in json.loads(v).items()} if v else {}

    def reset_breaker(self, playbook: str, at: float, by: str) -> None:
        self._put("breaker_resets", json.dumps({**self.breaker_resets(), playbook: at}, sort_keys=True), by)

    def state(self) -> dict[str, Any]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(remedy_state)).mappings().all()
        return {r["key"]: {"value": r["value"], "updated_at": r["updated_at"], "updated_by": r["updated_by"]}
                for r in rows}
