"""Glue between the composition root and the notifier: ``attach(aurora)`` builds the ``Notifier`` from
``cfg.notifications``, runs it alongside the server, and turns Aurora's bus events into notifications.

Events read (``aurora.bus``): ``incident`` ``{id, change: opened|reopened|ranked|mitigated|resolved}``,
``prediction`` ``{change, **api record}`` and ``action`` (a remediation action result, see
``aurora.notify.message``); people's acknowledgements and resolutions arrive through the incident
service's ``on_ack`` / ``on_resolve`` hooks, which the incident engine does not announce on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aurora.notify.message import (
    Notification,
    TeamOf,
    automatic,
    fixed_alone,
    fixed_fyi,
    from_action,
    from_incident,
    from_prediction,
    verified_ok,
)

if TYPE_CHECKING:
    from aurora.app import Aurora
    from aurora.bus import EventBus
    from aurora.notify.dispatcher import Notifier
    from aurora.remedy.store import ActionStore

log = logging.getLogger(__name__)
INCIDENT_EVENTS = {"opened": "incident_opened", "reopened": "incident_opened", "ranked": "incident_updated",
                   "acked": "incident_updated", "mitigated": "incident_mitigated", "resolved": "incident_resolved"}
MAX_FIXED = 10_000  # incidents remembered as fixed by an automatic action


class Bridge:
    """Translates bus events into notifications (``translate`` is pure but for reading the incident)."""

    def __init__(self, notify: Callable[[Notification], None], get_incident: Callable[[int], dict[str, Any] | None],
                 base_url: str | None = None, team_of: TeamOf | None = None,
                 fixed_by: Callable[[int], dict[str, Any] | None] | None = None) -> None:
        self.notify = notify
        self.get_incident = get_incident
        self.base_url = base_url
        self.team_of: TeamOf = team_of or (lambda _: None)
        self._fixed: dict[int, dict[str, Any]] = {}  # incident id -> the automatic action that fixed it
        # ... and where to look when this process did not see the fix (Aurora restarted in between)
        self.fixed_by = fixed_by

    def _fix_of(self, incident_id: int) -> dict[str, Any] | None:
        action = self._fixed.get(incident_id)
        if action is None and self.fixed_by is not None:
            action = self.fixed_by(incident_id)
        return action

    def translate(self, kind: str, data: dict[str, Any]) -> list[Notification]:
        kw: dict[str, Any] = {"base_url": self.base_url, "team_of": self.team_of}
        if kind == "incident":
            change = str(data.get("change") or "")
            event = INCIDENT_EVENTS.get(change)
            inc = self.get_incident(int(data["id"])) if event else None
            if inc is None or event is None:
                return []
            action = self._fix_of(int(inc["id"])) if event == "incident_mitigated" else None
            if action is not None:
                fyi = fixed_fyi(inc, action, **kw)
                if fyi is not None:
                    return [fyi]
            return [from_incident(inc, event, change=change, **kw)]
        if kind == "prediction":
            return [from_prediction(data, str(data.get("change") or "issued"), **kw)]
        if kind == "action":
            iid = data.get("incident_id")
            inc = self.get_incident(int(iid)) if iid is not None else None
            msg = from_action(data, inc, **kw)
            out = [] if msg is None else [msg]
            if inc is not None and verified_ok(data):
                self._fixed[int(iid)] = dict(data)  # type: ignore[arg-type]
                while len(self._fixed) > MAX_FIXED:
                    self._fixed.pop(next(iter(self._fixed)))
                if (automatic(data) and not data.get("dry_run") and not inc.get("acked_by")
                        and data.get("mitigates", True)):
                    out = []  # the FYI says it: now if the incident calmed down already, else when it does
                # (a fix of one of several causes does not mitigate the incident: its own message goes now)
                if fixed_alone(inc, data):  # the incident already calmed down before the verification finished
                    fyi = fixed_fyi(inc, data, **kw)
                    if fyi is not None:
                        out.append(fyi)
            return out
        return []

    def handle(self, kind: str, data: dict[str, Any]) -> None:
        try:
            for n in self.translate(kind, data):
                self.notify(n)
        except Exception:  # one malformed event must not stop notifications
            log.exception("no notification for %s event %r", kind, data.get("id"))

    async def run(self, bus: EventBus, notifier: Notifier) -> None:
        """Start the notifier, feed it bus events until cancelled, then stop it (a background task)."""
        await asyncio.to_thread(notifier.start)
        q = bus.subscribe()
        try:
            while True:
                msg = await q.get()
                if msg.get("event") in ("incident", "prediction", "action"):
                    await asyncio.to_thread(self.handle, msg["event"], dict(msg.get("data") or {}))
        finally:
            bus.unsubscribe(q)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(notifier.stop)


def _chain(first: Callable[[int], None] | None, then: Callable[[int], None]) -> Callable[[int], None]:
    def hook(incident_id: int) -> None:
        if first is not None:
            first(incident_id)
        then(incident_id)

    return hook


def with_runbooks(inc: dict[str, Any] | None, runbooks_of: Callable[[dict[str, Any]], list[dict[str, Any]]] | None
                  ) -> dict[str, Any] | None:
    """The incident with ``runbooks`` as ``GET /api/v1/incidents/{id}`` gives them (the incident service's own
    lookup); a failing lookup costs the message its runbook links, never the message."""
    if inc is None or runbooks_of is None:
        return inc
    try:
        inc["runbooks"] = runbooks_of(inc)
    except Exception:
        log.exception("no runbooks for incident %s", inc.get("id"))
    return inc


def verified_fix(actions: ActionStore, incident_id: int) -> dict[str, Any] | None:
    """The newest verified remediation run of the incident, from the action store (None when there is none)."""
    runs = actions.query(incident_id=incident_id, status="verified", limit=1)
    return runs[0] if runs else None


def attach(aurora: Aurora) -> Notifier | None:
    """Build the notifier for ``aurora`` and register it to run with the server; None when no channel is
    configured. Call at the end of ``Aurora.__init__`` (after the incident service's hooks are set)."""
    from aurora.notify.dispatcher import Notifier

    cfg = getattr(aurora.cfg, "notifications", None)
    if cfg is None or not cfg.enabled or not cfg.channels:
        return None
    server = aurora.cfg.server
    base_url = cfg.dashboard_url or f"http://{server.host}:{server.port}"
    owners = {s.name: s.owner for s in aurora.cfg.services if s.owner}
    notifier = Notifier(cfg, aurora.engine, client_url=base_url)
    service = aurora.incidents

    def get_incident(iid: int) -> dict[str, Any] | None:  # with the runbooks the incident's API record lists
        return with_runbooks(aurora.incident_store.get(iid), getattr(service, "runbooks_of", None))

    bridge = Bridge(notifier.notify, get_incident, base_url, owners.get,
                    fixed_by=lambda iid: verified_fix(aurora.actions, iid))
    service.on_ack = _chain(service.on_ack, lambda iid: bridge.handle("incident", {"id": iid, "change": "acked"}))
    service.on_resolve = _chain(service.on_resolve,
                                lambda iid: bridge.handle("incident", {"id": iid, "change": "resolved"}))
    aurora.add_background(lambda: bridge.run(aurora.bus, notifier))
    return notifier
