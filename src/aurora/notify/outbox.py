"""The durable outbox and the delivery log in the database (SQLAlchemy Core: SQLite and PostgreSQL alike).

Writes are serialized by a lock (SQLite has one writer at a time). Every time here is wall-clock unix
seconds except the outbox's ``time``, the notification's event time (deduplication compares those).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, Table, and_, bindparam, delete, func, select, update

from aurora.errors import BadInput, NotFound
from aurora.notify.message import Notification
from aurora.notify.tables import notification_deliveries as deliveries_t
from aurora.notify.tables import notification_outbox as outbox_t

STATUSES = ("pending", "sent", "failed")
MAX_LIMIT = 1000
HISTORY = 20  # attempts kept per delivery
_IN_CHUNK = 500
_KEY = 255


def _key(s: str) -> str:
    return s[:_KEY]


def _delivery(r: RowMapping) -> dict[str, Any]:
    rec = dict(r)
    rec["notification_ids"] = json.loads(rec["notification_ids"])
    rec["history"] = json.loads(rec["history"])
    return rec


class NotificationStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    # --- outbox ----------------------------------------------------------------------------------------
    def accept(self, items: Sequence[tuple[Notification, str]], now: float) -> list[int | None]:
        """Store (notification, channel) pairs; returns each row's id, or None for a pair already stored (the
        same notification offered twice is sent once)."""
        if not items:
            return []
        with self._lock, self._engine.begin() as conn:
            nids = sorted({n.id for n, _ in items})
            have: set[tuple[str, str]] = set()
            for i in range(0, len(nids), _IN_CHUNK):
                q = select(outbox_t.c.notification_id, outbox_t.c.channel).where(
                    outbox_t.c.notification_id.in_(nids[i : i + _IN_CHUNK]))
                have.update((str(a), str(b)) for a, b in conn.execute(q))
            out: list[int | None] = []
            rows: list[dict[str, Any]] = []
            for n, channel in items:
                if (n.id, channel) in have:
                    out.append(None)
                    continue
                have.add((n.id, channel))
                out.append(len(rows))  # replaced by the row's id below
                rows.append({"notification_id": n.id, "channel": channel, "event": n.event,
                             "group_key": _key(n.group_key), "dedup_key": _key(n.dedup_key), "time": n.time,
                             "body": json.dumps(n.as_dict(), default=str), "created_at": now, "delivery_id": None})
            ids = self._insert_many(conn, outbox_t, rows)
        return [None if k is None else ids[k] for k in out]

    @staticmethod
    def _insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
        """Insert rows in one statement execution (executemany with RETURNING); their ids in order."""
        if not rows:
            return []
        res = conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows)
        return [int(r[0]) for r in res]

    def last_times(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """``last_time`` of many (channel, dedup key) pairs in a few queries; pairs never seen are absent."""
        out: dict[tuple[str, str], float] = {}
        wanted = set(keys)
        dedup = sorted({_key(k) for _, k in wanted})
        by_stored = {(c, _key(k)): (c, k) for c, k in wanted}
        with self._engine.connect() as conn:
            for i in range(0, len(dedup), _IN_CHUNK):
                q = (select(outbox_t.c.channel, outbox_t.c.dedup_key, func.max(outbox_t.c.time))
                     .where(outbox_t.c.dedup_key.in_(dedup[i : i + _IN_CHUNK]))
                     .group_by(outbox_t.c.channel, outbox_t.c.dedup_key))
                for channel, key, t in conn.execute(q):
                    pair = by_stored.get((str(channel), str(key)))
                    if pair is not None and t is not None:
                        out[pair] = float(t)
        return out

    def last_time(self, channel: str, dedup_key: str) -> float | None:
        """The latest event time of an accepted notification with this dedup key for this channel."""
        with self._engine.connect() as conn:
            v = conn.execute(select(func.max(outbox_t.c.time)).where(
                and_(outbox_t.c.channel == channel, outbox_t.c.dedup_key == _key(dedup_key)))).scalar()
        return None if v is None else float(v)

    def ungrouped(self) -> list[tuple[int, str, Notification]]:
        """Outbox rows not yet in a delivery (they were waiting for their group when Aurora stopped)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(outbox_t.c.id, outbox_t.c.channel, outbox_t.c.body)
                                .where(outbox_t.c.delivery_id.is_(None)).order_by(outbox_t.c.id)).all()
        return [(int(r.id), str(r.channel), Notification.from_dict(json.loads(r.body))) for r in rows]

    # --- deliveries ------------------------------------------------------------------------------------
    def create_deliveries(self, groups: Sequence[tuple[dict[str, Any], Sequence[int]]]) -> list[int]:
        """One delivery per (fields, outbox row ids), each claiming its outbox rows, in one transaction."""
        ids: list[int] = []
        if not groups:
            return ids
        with self._lock, self._engine.begin() as conn:
            ids = self._insert_many(conn, deliveries_t, [
                {**fields, "group_key": _key(fields["group_key"]),
                 "notification_ids": json.dumps(fields["notification_ids"]),
                 "history": json.dumps(fields.get("history") or [])} for fields, _ in groups])
            claims = [{"row": rid, "did": did} for did, (_, rows) in zip(ids, groups, strict=True) for rid in rows]
            if claims:
                conn.execute(update(outbox_t).where(outbox_t.c.id == bindparam("row"))
                             .values(delivery_id=bindparam("did")), claims)
        return ids

    def record(self, delivery_id: int, fields: dict[str, Any]) -> None:
        """Write an attempt's result (status, attempts, last_error, http_status, latency_ms, history, ...)."""
        self.record_many([(delivery_id, fields)])

    def record_many(self, results: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Write attempts' results in one transaction, in order (a later result of a delivery wins)."""
        with self._lock, self._engine.begin() as conn:
            for delivery_id, fields in results:
                row = dict(fields)
                if "history" in row:
                    row["history"] = json.dumps(row["history"][-HISTORY:])
                conn.execute(update(deliveries_t).where(deliveries_t.c.id == delivery_id).values(**row))

    def pending(self) -> list[tuple[dict[str, Any], list[Notification]]]:
        """Every pending delivery with its notifications (oldest first): what to resume after a restart."""
        with self._engine.connect() as conn:
            recs = [_delivery(r) for r in conn.execute(
                select(deliveries_t).where(deliveries_t.c.status == "pending").order_by(deliveries_t.c.id)).mappings()]
            by_delivery: dict[int, list[Notification]] = {}
            ids = [r["id"] for r in recs]
            for i in range(0, len(ids), _IN_CHUNK):
                q = (select(outbox_t.c.delivery_id, outbox_t.c.body)
                     .where(outbox_t.c.delivery_id.in_(ids[i : i + _IN_CHUNK])).order_by(outbox_t.c.id))
                for did, body in conn.execute(q):
                    by_delivery.setdefault(int(did), []).append(Notification.from_dict(json.loads(body)))
        return [(r, by_delivery.get(r["id"], [])) for r in recs]

    def notifications_of(self, delivery_id: int) -> list[tuple[int, Notification]]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(outbox_t.c.id, outbox_t.c.body).where(outbox_t.c.delivery_id == delivery_id)
                                .order_by(outbox_t.c.id)).all()
        return [(int(r.id), Notification.from_dict(json.loads(r.body))) for r in rows]

    def get(self, delivery_id: int) -> dict[str, Any]:
        with self._engine.connect() as conn:
            r = conn.execute(select(deliveries_t).where(deliveries_t.c.id == delivery_id)).mappings().first()
        if r is None:
            raise NotFound(f"no notification delivery with id {delivery_id}")
        return _delivery(r)

    def deliveries(self, limit: int = 100, channel: str | None = None, status: str | None = None,
                   group_key: str | None = None) -> list[dict[str, Any]]:
        """The delivery log, newest first."""
        if not 1 <= limit <= MAX_LIMIT:
            raise BadInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
        if status is not None and status not in STATUSES:
            raise BadInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        q = select(deliveries_t)
        if channel is not None:
            q = q.where(deliveries_t.c.channel == channel)
        if status is not None:
            q = q.where(deliveries_t.c.status == status)
        if group_key is not None:
            q = q.where(deliveries_t.c.group_key == _key(group_key))
        with self._engine.connect() as conn:
            return [_delivery(r) for r in conn.execute(q.order_by(deliveries_t.c.id.desc()).limit(limit)).mappings()]

    def counts(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(deliveries_t.c.status, func.count()).group_by(deliveries_t.c.status)).all()
        return {str(s): int(c) for s, c in rows}

    def prune(self, before: float) -> int:
        """Forget sent and failed deliveries made before ``before`` and their outbox rows; returns how many."""
        with self._lock, self._engine.begin() as conn:
            old = select(deliveries_t.c.id).where(and_(deliveries_t.c.status.in_(("sent", "failed")),
                                                       deliveries_t.c.created_at < before))
            ids = [int(i) for i in conn.execute(old).scalars()]
            for i in range(0, len(ids), _IN_CHUNK):
                chunk = ids[i : i + _IN_CHUNK]
                conn.execute(delete(outbox_t).where(outbox_t.c.delivery_id.in_(chunk)))
                conn.execute(delete(deliveries_t).where(deliveries_t.c.id.in_(chunk)))
        return len(ids)
