"""Incidents in the database: the one place that reads and writes the incident tables.

The incident engine creates and updates incidents through this store, people act on them through
``IncidentService``; both go through the same methods, so the search document (see
``aurora.incidents.search``) is rewritten in the same transaction as every change to the text it covers.
Records come out in the API's shape (JSON columns decoded). SQLAlchemy Core only, so SQLite and
PostgreSQL run the same code; writes are serialized by a lock (SQLite allows one writer at a time and
would otherwise make concurrent writers wait on its busy timeout).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from aurora.db.tables import incident_search, incident_signals, incident_timeline, incidents
from aurora.errors import NotFound
from aurora.incidents.model import SEVERITIES, SEVERITY_RANK, SIGNAL_KINDS, STATUSES
from aurora.incidents.search import TextIndex, description, document, similarity, words

ACTIVE = ("open", "mitigated")
CONFIDENCES = ("high", "medium", "uncertain", "none")
JSON_FIELDS = ("services", "root_causes")
FIELDS = tuple(c.name for c in incidents.columns if c.name != "id")
SEARCHED = frozenset({"title", "summary", "root_causes", "services", "category"})
REQUIRED = ("title", "status", "severity", "opened_at")
MAX_ID = 2**31 - 1  # INTEGER on PostgreSQL; a larger id cannot exist
MAX_FINGERPRINT = 255
RESOLVED_BOOST = 1.5  # similar(): a resolved incident says how it ended, so it ranks above an equally close open one
SIMILAR_POOL = 50  # candidates similar() takes from the full-text index before scoring them
Records = list[dict[str, Any]]
Ids = list[int]
Scored = list[tuple[int, float]]  # (incident id, relevance)
_IN_CHUNK = 500  # ids per IN (...) when loading many incidents' signals and timelines


def _plain(value: Any) -> Any:
    """A JSON-safe copy: NumPy scalars become Python numbers, NaN and infinities become null (the API
    answers strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True)


def _finite(name: str, value: Any) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return v


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    """Check incident fields and turn them into column values (programming errors raise ValueError)."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown incident fields {sorted(unknown)}; known: {', '.join(FIELDS)}")
    row = dict(fields)
    if "status" in row and row["status"] not in STATUSES:
        raise ValueError(f"status {row['status']!r} is not one of {STATUSES}")
    if "severity" in row and row["severity"] not in SEVERITIES:
        raise ValueError(f"severity {row['severity']!r} is not one of {SEVERITIES}")
    if row.get("confidence") is not None and row["confidence"] not in CONFIDENCES:
        raise ValueError(f"confidence {row['confidence']!r} is not one of {CONFIDENCES} or None")
    for name in ("opened_at", "updated_at"):
        if name in row:
            row[name] = _finite(name, row[name])
    for name in ("mitigated_at", "resolved_at", "acked_at"):
        if row.get(name) is not None:
            row[name] = _finite(name, row[name])
    for name in JSON_FIELDS:
        if name in row:
            if not isinstance(row[name], list | tuple):
                raise ValueError(f"{name} must be a list, not {type(row[name]).__name__}")
            row[name] = _dumps(list(row[name]))
    if "signal_count" in row:
        row["signal_count"] = int(row["signal_count"])
    return row


def _signal_row(incident_id: int, s: dict[str, Any]) -> dict[str, Any]:
    if s["kind"] not in SIGNAL_KINDS or s["severity"] not in SEVERITIES:
        raise ValueError(f"signal {s['fingerprint']!r}: kind {s['kind']!r} or severity {s['severity']!r} unknown")
    if not s["fingerprint"] or len(s["fingerprint"]) > MAX_FINGERPRINT:
        raise ValueError(f"signal fingerprint must have 1 to {MAX_FINGERPRINT} characters: {s['fingerprint']!r}")
    return {"incident_id": incident_id, "fingerprint": s["fingerprint"], "kind": s["kind"],
            "service": s.get("service"), "metric": s.get("metric"),
            "first_time": _finite("first_time", s["first_time"]), "last_time": _finite("last_time", s["last_time"]),
            "count": int(s["count"]), "score": _finite("score", s["score"]), "severity": s["severity"],
            "summary": s.get("summary") or "", "labels": _dumps(s.get("labels") or {}),
            "resolved": bool(s.get("resolved", False))}


def _timeline_row(incident_id: int, e: dict[str, Any]) -> dict[str, Any]:
    return {"incident_id": incident_id, "time": _finite("time", e["time"]), "kind": str(e["kind"]),
            "text": str(e.get("text", "")), "actor": str(e.get("actor") or "aurora"),
            "data": _dumps(e.get("data") or {})}


def _incident(r: RowMapping) -> dict[str, Any]:
    rec = dict(r)
    for name in JSON_FIELDS:
        rec[name] = json.loads(rec[name])
    return rec


def _signal(r: RowMapping) -> dict[str, Any]:
    rec = {k: v for k, v in r.items() if k != "incident_id"}
    rec["labels"] = json.loads(rec["labels"])
    rec["resolved"] = bool(rec["resolved"])
    return rec


def _entry(r: RowMapping) -> dict[str, Any]:
    return {"id": r["id"], "time": r["time"], "kind": r["kind"], "text": r["text"], "actor": r["actor"],
            "data": json.loads(r["data"])}


def _brief(rec: dict[str, Any], score: float) -> dict[str, Any]:
    """An incident as a search or similarity hit."""
    rc = rec["root_causes"][0] if rec["root_causes"] else None
    return {"id": rec["id"], "title": rec["title"], "status": rec["status"], "severity": rec["severity"],
            "opened_at": rec["opened_at"], "resolved_at": rec["resolved_at"], "services": rec["services"],
            "category": rec["category"],
            "root_cause": None if rc is None else {"service": rc.get("service"), "metric": rc.get("metric")},
            "score": round(score, 6)}


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _IN_CHUNK):
        yield ids[i:i + _IN_CHUNK]


class IncidentStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._index = TextIndex(engine.dialect.name)
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._write = threading.Lock()

    # --- writes ----------------------------------------------------------------------------------
    def create(self, fields: dict[str, Any]) -> int:
        """Insert an incident; returns its id. ``fields`` are the ``incidents`` columns (lists for the JSON
        ones); title, status, severity and opened_at are required, the rest default (updated_at to
        opened_at)."""
        missing = [f for f in REQUIRED if f not in fields]
        if missing:
            raise ValueError(f"a new incident needs {missing}")
        full = {"updated_at": fields["opened_at"], "services": [], "root_causes": [], "summary": "",
                "signal_count": 0, **fields}
        row = _encode(full)
        with self._write, self._engine.begin() as conn:
            pk = conn.execute(insert(incidents).values(**row)).inserted_primary_key
            assert pk is not None
            incident_id = int(pk[0])
            self._reindex(conn, incident_id)
        return incident_id

    def update(self, incident_id: int, fields: dict[str, Any]) -> None:
        """Change some columns of an incident (NotFound if there is none)."""
        if not self.transition(incident_id, fields, []) and not self.exists(incident_id):
            raise NotFound(f"no incident with id {incident_id}")

    def transition(self, incident_id: int, fields: dict[str, Any], entries: Records, *,
                   status_in: Collection[str] | None = None, unacked: bool = False) -> bool:
        """Atomically change columns and append timeline entries, only if the incident exists and (when
        given) its status is in ``status_in`` and it was not acknowledged yet (``unacked``). Returns whether
        it applied, so a person's resolve cannot race the engine's own into two resolutions."""
        row = _encode(fields)
        rows = [_timeline_row(incident_id, e) for e in entries]
        if not 1 <= incident_id <= MAX_ID:
            return False
        cond = [incidents.c.id == incident_id]
        if status_in is not None:
            cond.append(incidents.c.status.in_(list(status_in)))
        if unacked:
            cond.append(incidents.c.acked_at.is_(None))
        with self._write, self._engine.begin() as conn:
            if row:
                n = conn.execute(update(incidents).where(and_(*cond)).values(**row)).rowcount
            else:
                n = len(conn.execute(select(incidents.c.id).where(and_(*cond))).all())
            if n == 0:
                return False
            if rows:
                conn.execute(insert(incident_timeline), rows)
            if SEARCHED & set(row) or any(r["kind"] == "note" for r in rows):
                self._reindex(conn, incident_id)
        return True

    def upsert_signals(self, incident_id: int, signals: Records) -> None:
        """Insert or replace signals (``SignalState.as_dict()``) by fingerprint (the last of a repeated one
        wins), and set the incident's signal_count to its number of distinct signals."""
        rows = list({r["fingerprint"]: r for r in (_signal_row(incident_id, s) for s in signals)}.values())
        with self._write, self._engine.begin() as conn:
            self._require(conn, incident_id)
            if rows:
                stmt = self._insert(incident_signals)
                keys = [c for c in rows[0] if c not in ("incident_id", "fingerprint")]
                conn.execute(stmt.on_conflict_do_update(index_elements=["incident_id", "fingerprint"],
                                                        set_={k: stmt.excluded[k] for k in keys}), rows)
            n = conn.execute(select(func.count()).select_from(incident_signals)
                             .where(incident_signals.c.incident_id == incident_id)).scalar_one()
            conn.execute(update(incidents).where(incidents.c.id == incident_id).values(signal_count=int(n)))

    def add_timeline(self, incident_id: int, entries: Records) -> None:
        """Append timeline entries (``TimelineEntry.as_dict()``). Entries of kind ``note`` join the search
        document."""
        self.append_timeline(incident_id, entries)

    def append_timeline(self, incident_id: int, entries: Records) -> Ids:
        """``add_timeline`` that returns the new entries' ids."""
        rows = [_timeline_row(incident_id, e) for e in entries]
        ids: Ids = []
        with self._write, self._engine.begin() as conn:
            self._require(conn, incident_id)
            for r in rows:
                pk = conn.execute(insert(incident_timeline).values(**r)).inserted_primary_key
                assert pk is not None
                ids.append(int(pk[0]))
            if any(r["kind"] == "note" for r in rows):
                self._reindex(conn, incident_id)
        return ids

    def _require(self, conn: Connection, incident_id: int) -> None:
        if not 1 <= incident_id <= MAX_ID or conn.execute(
                select(incidents.c.id).where(incidents.c.id == incident_id)).first() is None:
            raise NotFound(f"no incident with id {incident_id}")

    def _reindex(self, conn: Connection, incident_id: int) -> None:
        """Rewrite the incident's search document from its stored row and notes."""
        row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).mappings().one()
        notes = conn.execute(select(incident_timeline.c.text).where(
            incident_timeline.c.incident_id == incident_id, incident_timeline.c.kind == "note")
            .order_by(incident_timeline.c.id)).scalars().all()
        conn.execute(delete(incident_search).where(incident_search.c.incident_id == incident_id))
        conn.execute(insert(incident_search).values(incident_id=incident_id, **document(_incident(row), list(notes))))

    # --- reads -----------------------------------------------------------------------------------
    def exists(self, incident_id: int) -> bool:
        if not 1 <= incident_id <= MAX_ID:
            return False
        with self._engine.connect() as conn:
            return conn.execute(select(incidents.c.id).where(incidents.c.id == incident_id)).first() is not None

    def get(self, incident_id: int) -> dict[str, Any] | None:
        """The full record: every column, ``signals``, ``timeline`` (oldest first), ``notes`` and ``actions``."""
        if not 1 <= incident_id <= MAX_ID:
            return None
        with self._engine.connect() as conn:
            row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).mappings().first()
            if row is None:
                return None
            return self._complete(conn, [_incident(row)])[0]

    def list(self, status: str | None = None, service: str | None = None, since: float | None = None,
             limit: int = 100, full: bool = False) -> Records:
        """Incidents newest first (by opened_at), optionally with one status, involving one service, or
        opened at or after ``since``. Without signals and timeline unless ``full``."""
        q = select(incidents).order_by(incidents.c.opened_at.desc(), incidents.c.id.desc()).limit(limit)
        if status is not None:
            q = q.where(incidents.c.status == status)
        if service is not None:
            q = q.where(incidents.c.services.contains(json.dumps(service), autoescape=True))
        if since is not None:
            q = q.where(incidents.c.opened_at >= since)
        return self._query(q, full)

    def open_incidents(self) -> Records:
        """Every open or mitigated incident, full records, oldest first (the engine reloads these on start)."""
        q = select(incidents).where(incidents.c.status.in_(ACTIVE)).order_by(incidents.c.opened_at, incidents.c.id)
        return self._query(q, True)

    def service_severities(self) -> dict[str, str]:
        """Service -> highest severity among the open or mitigated incidents that involve it."""
        q = select(incidents.c.services, incidents.c.severity).where(incidents.c.status.in_(ACTIVE))
        out: dict[str, str] = {}
        with self._engine.connect() as conn:
            for services, severity in conn.execute(q).all():
                for s in json.loads(services):
                    if s not in out or SEVERITY_RANK.get(severity, -1) > SEVERITY_RANK.get(out[s], -1):
                        out[s] = severity
        return out

    def similar(self, incident_id: int, limit: int = 5) -> Records:
        """Other incidents most like this one. The full-text index finds candidates sharing any significant
        word of its title, root causes and summary (best SIMILAR_POOL by the database's relevance); they
        are then scored the same way on both databases: ``score`` is the Jaccard similarity of the two
        descriptions' words (1 = the same words), ordered with resolved incidents boosted by
        RESOLVED_BOOST, then by the database's relevance."""
        if not 1 <= incident_id <= MAX_ID or limit < 1:
            return []
        with self._engine.connect() as conn:
            row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).mappings().first()
            if row is None:
                return []
            mine = description(_incident(row))
            ranked = self._index.rank(conn, words(mine, numbers=False), "any", max(SIMILAR_POOL, limit * 4) + 1)
            relevance = {i: r for i, r in ranked if i != incident_id}
            recs = self._records(conn, list(relevance))
        hits = [_brief(rec, similarity(mine, description(rec))) for rec in recs]

        def order(h: dict[str, Any]) -> tuple[float, float]:
            return (-h["score"] * (RESOLVED_BOOST if h["status"] == "resolved" else 1.0), -relevance[h["id"]])

        return sorted(hits, key=order)[:limit]

    def search(self, query: str, limit: int = 20) -> Records:
        """Incidents whose title, summary, root causes or notes contain every significant word of ``query``
        (stemmed), most relevant first; ``score`` is relative to the best hit."""
        terms = words(query)
        with self._engine.connect() as conn:
            ranked = self._index.rank(conn, terms, "all", limit)
            best = max((r for _, r in ranked), default=1.0)
            return self._briefs(conn, [(i, r / best) for i, r in ranked])

    # --- loading ---------------------------------------------------------------------------------
    def _query(self, q: Any, full: bool) -> Records:
        with self._engine.connect() as conn:
            recs = [_incident(r) for r in conn.execute(q).mappings().all()]
            return self._complete(conn, recs) if full else recs

    def _records(self, conn: Connection, ids: Ids) -> Records:
        """Incident rows by id, in the order of ``ids`` (ids that do not exist are left out)."""
        found: dict[int, dict[str, Any]] = {}
        for part in _chunks(ids):
            for r in conn.execute(select(incidents).where(incidents.c.id.in_(part))).mappings():
                found[r["id"]] = _incident(r)
        return [found[i] for i in ids if i in found]

    def _briefs(self, conn: Connection, scored: Scored) -> Records:
        score = dict(scored)
        return [_brief(rec, score[rec["id"]]) for rec in self._records(conn, [i for i, _ in scored])]

    def _complete(self, conn: Connection, recs: Records) -> Records:
        """Attach signals, timeline, notes and actions to records, a few queries for all of them."""
        ids = [r["id"] for r in recs]
        signals: dict[int, Records] = {i: [] for i in ids}
        timeline: dict[int, Records] = {i: [] for i in ids}
        for part in _chunks(ids):
            sq = (select(incident_signals).where(incident_signals.c.incident_id.in_(part))
                  .order_by(incident_signals.c.first_time, incident_signals.c.fingerprint))
            for r in conn.execute(sq).mappings():
                signals[r["incident_id"]].append(_signal(r))
            tq = (select(incident_timeline).where(incident_timeline.c.incident_id.in_(part))
                  .order_by(incident_timeline.c.time, incident_timeline.c.id))
            for r in conn.execute(tq).mappings():
                timeline[r["incident_id"]].append(_entry(r))
        for rec in recs:
            rec["signals"] = signals[rec["id"]]
            rec["timeline"] = timeline[rec["id"]]
            rec["notes"] = [e for e in rec["timeline"] if e["kind"] == "note"]
            rec["actions"] = []
        return recs
