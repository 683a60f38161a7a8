"""What people do to incidents (list, read, acknowledge, resolve, annotate): the facade the API uses.

Each action is validated whole before anything changes, changes the incident and its timeline in one
transaction (guarded, so a person and the engine cannot both resolve an incident), writes an audit row and
then tells the incident engine through ``on_ack`` / ``on_resolve`` so its in-memory state follows. Times
on the incident and its timeline are event time (``now``); the audit log keeps its own wall-clock time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aurora.errors import AuroraError, BadInput, NotFound
from aurora.incidents.model import STATUSES, TimelineEntry
from aurora.incidents.store import ACTIVE, IncidentStore

log = logging.getLogger(__name__)

MAX_TEXT = 10_000  # characters in a note or a resolve reason
MAX_LIMIT = 1000
MAX_QUERY = 1000  # characters in a search query
SIMILAR = 5

# (actor, action, target, detail): writes one audit_log row.
AuditFn = Callable[[str, str, str, dict[str, Any]], None]
Hook = Callable[[int], None]
Records = list[dict[str, Any]]


def _conflict(message: str) -> AuroraError:
    return AuroraError(message, code="conflict", status=409)


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def _text(name: str, value: str, required: bool) -> str:
    value = value.strip()
    if required and not value:
        raise BadInput(f"{name} is empty: write what you want to record")
    if len(value) > MAX_TEXT:
        raise BadInput(f"{name} has {len(value)} characters; the limit is {MAX_TEXT}")
    return value


class IncidentService:
    def __init__(self, store: IncidentStore, audit: AuditFn, now: Callable[[], float], *,
                 on_resolve: Hook | None = None, on_ack: Hook | None = None) -> None:
        self.store = store
        self._audit = audit
        self._now = now
        self.on_resolve = on_resolve  # set by the incident engine
        self.actions_of: Callable[[int], list[dict[str, Any]]] | None = None  # remediation runs of an incident
        self.runbooks_of: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None  # runbooks that fit it
        self.on_ack = on_ack

    # --- reads -----------------------------------------------------------------------------------
    def list(self, status: str | None = None, service: str | None = None, limit: int = 100,
             full: bool = True) -> Records:
        if status is not None and status not in STATUSES:
            raise BadInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        return self.store.list(status=status, service=service or None, limit=_limit(limit), full=full)

    def get(self, incident_id: int) -> dict[str, Any]:
        """The full record plus ``similar``: the past incidents most like it."""
        rec = self._get(incident_id)
        rec["similar"] = self.store.similar(incident_id, SIMILAR)
        if self.actions_of is not None:
            rec["actions"] = self.actions_of(incident_id)
        if self.runbooks_of is not None:
            rec["runbooks"] = self.runbooks_of(rec)
        return rec

    def search(self, query: str, limit: int = 20) -> Records:
        query = query.strip()
        if not query:
            raise BadInput("missing parameter 'q': give the words to search for")
        if len(query) > MAX_QUERY:
            raise BadInput(f"q has {len(query)} characters; the limit is {MAX_QUERY}")
        return self.store.search(query, _limit(limit))

    def _get(self, incident_id: int) -> dict[str, Any]:
        rec = self.store.get(incident_id)
        if rec is None:
            raise NotFound(f"no incident with id {incident_id}")
        return rec

    # --- actions ---------------------------------------------------------------------------------
    def ack(self, incident_id: int, actor: str) -> dict[str, Any]:
        """Acknowledge: someone is on it. Acknowledging twice changes nothing (and is not an error)."""
        now = self._now()
        entry = TimelineEntry(now, "ack", f"acknowledged by {actor}", actor).as_dict()
        applied = self.store.transition(incident_id, {"acked_at": now, "acked_by": actor, "updated_at": now},
                                        [entry], status_in=ACTIVE, unacked=True)
        if not applied:
            rec = self._get(incident_id)
            if rec["status"] == "resolved":
                raise _conflict(f"incident {incident_id} is resolved; there is nothing to acknowledge")
            return rec
        self._audit(actor, "incident.ack", str(incident_id), {})
        self._notify(self.on_ack, incident_id)
        return self._get(incident_id)

    def resolve(self, incident_id: int, actor: str, reason: str | None = None) -> dict[str, Any]:
        reason = _text("reason", reason or "", required=False) or None
        now = self._now()
        text = f"resolved by {actor}" + (f": {reason}" if reason else "")
        entry = TimelineEntry(now, "resolved", text, actor, {"manual": True, "reason": reason}).as_dict()
        applied = self.store.transition(incident_id, {"status": "resolved", "resolved_at": now, "updated_at": now},
                                        [entry], status_in=ACTIVE)
        if not applied:
            rec = self._get(incident_id)  # NotFound, or it is resolved already
            raise _conflict(f"incident {incident_id} is already resolved (at {rec['resolved_at']}); "
                            "nothing was changed")
        self._audit(actor, "incident.resolve", str(incident_id), {"reason": reason})
        self._notify(self.on_resolve, incident_id)
        return self._get(incident_id)

    def add_note(self, incident_id: int, actor: str, text: str) -> dict[str, Any]:
        """Add a note (any status: notes after resolution are the post-mortem). Returns the timeline entry."""
        text = _text("note text", text, required=True)
        entry = TimelineEntry(self._now(), "note", text, actor).as_dict()
        note_id = self.store.append_timeline(incident_id, [entry])[0]
        self._audit(actor, "incident.note", str(incident_id), {"note_id": note_id, "chars": len(text)})
        return {"id": note_id, "incident_id": incident_id, **entry}

    @staticmethod
    def _notify(hook: Hook | None, incident_id: int) -> None:
        """The change is committed and audited: a failing hook is logged, not reported as a failed request."""
        if hook is None:
            return
        try:
            hook(incident_id)
        except Exception:
            log.exception("incident hook %s failed for incident %d", getattr(hook, "__name__", hook), incident_id)
