"""The channel-neutral ``Notification`` and its builders from Aurora's own records.

Builders take records in the API's shapes: an incident as ``GET /api/v1/incidents/{id}`` returns it, a
prediction as ``GET /api/v1/predictions`` does, and a remediation action result::

    {id, incident_id, playbook, action, target, status, dry_run, verified, output,
     approved_by (optional: who approved it; absent or null = nobody, it ran on its own), time (optional)}

with ``status`` one of ``pending_approval | approved | rejected | running | succeeded | failed``; the records
``aurora.remedy`` publishes (``mode``, ``decided_by``, ``reason``, statuses such as ``verified``,
``verification_failed``, ``rolled_back``, ``expired`` and ``change: escalated``) are read as well.

Two keys steer delivery: ``group_key`` names the thing a message is about (an incident, a service's
predictions); messages with the same one are grouped, kept in order, and map to one PagerDuty alert.
``dedup_key`` names the content: an identical key is not sent again within a route's repeat interval.

An incident record may carry ``runbooks`` (``[{name, title, ...}]``, as ``IncidentService.get`` and the API
give them); incident messages and the action messages about one then carry them in ``fields["runbooks"]`` as
``[{name, title, url}]`` (``url`` the dashboard's page of the runbook, None without a dashboard URL), which
every format shows (see ``aurora.notify.formats``).
"""

from __future__ import annotations

import math
import time as _time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aurora.notify.config import EVENT_KINDS

SEVERITIES = ("info", "warning", "critical")
TeamOf = Callable[[str], str | None]
MAX_TEXT = 4000  # characters of body text; receivers cut long messages anyway (Slack sections hold 3000)
MAX_RUNBOOKS = 3


def _none(_: str) -> str | None:
    return None


@dataclass(frozen=True)
class Notification:
    event: str  # one of aurora.notify.config.EVENT_KINDS, or "test"
    severity: str  # info | warning | critical
    title: str
    text: str
    group_key: str
    dedup_key: str
    time: float  # event time, unix seconds
    services: tuple[str, ...] = ()
    team: str | None = None
    url: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.event not in (*EVENT_KINDS, "test"):
            raise ValueError(f"event {self.event!r} is not one of {', '.join(EVENT_KINDS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        if not math.isfinite(self.time):
            raise ValueError(f"time must be a finite unix time, not {self.time!r}")

    @property
    def service(self) -> str | None:
        return self.services[0] if self.services else None

    def as_dict(self) -> dict[str, Any]:
        # shallow (dataclasses.asdict deep-copies every field: a sixth of the sender's time in a burst)
        d = {name: getattr(self, name) for name in self.__dataclass_fields__}
        d["services"] = list(self.services)
        d["fields"] = dict(self.fields)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Notification:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known["services"] = tuple(known.get("services") or ())
        known["fields"] = dict(known.get("fields") or {})
        return cls(**known)


def _link(base_url: str | None, path: str) -> str | None:
    return f"{base_url.rstrip('/')}{path}" if base_url else None


def _team(services: list[str], team_of: TeamOf) -> str | None:
    return next((t for t in (team_of(s) for s in services) if t), None)


def _cause_line(c: Mapping[str, Any]) -> str:
    why = next((e.get("text") for e in c.get("evidence") or [] if isinstance(e, dict) and e.get("text")), None)
    line = f"{c.get('service')} {c.get('metric')} (score {float(c.get('score') or 0):.2f})"
    return f"{line}: {why}" if why else line


def runbook_path(name: str) -> str:
    """The dashboard's read-only page of a runbook (``aurora.web``)."""
    return f"/ui/runbooks/{quote(name, safe='')}"


def _runbooks(inc: Mapping[str, Any] | None, base_url: str | None) -> list[dict[str, Any]]:
    """The incident's linked runbooks (best first) as ``{name, title, url}``."""
    out = []
    for rb in list((inc or {}).get("runbooks") or [])[:MAX_RUNBOOKS]:
        if isinstance(rb, Mapping) and rb.get("name"):
            name = str(rb["name"])
            out.append({"name": name, "title": str(rb.get("title") or name),
                        "url": _link(base_url, runbook_path(name))})
    return out


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


INCIDENT_EVENTS = {"open": "incident_opened", "mitigated": "incident_mitigated", "resolved": "incident_resolved"}


def from_incident(inc: Mapping[str, Any], event: str | None = None, *, base_url: str | None = None,
                  team_of: TeamOf = _none, change: str | None = None) -> Notification:
    """A message about an incident. ``event`` defaults from its status (open → incident_opened, ...);
    ``change`` is what happened (the incident engine's ``opened | reopened | ranked | mitigated | resolved``,
    or ``acked`` when a person acknowledged it) and goes into the dedup key."""
    iid = int(inc["id"])
    status = str(inc.get("status") or "open")
    event = event or INCIDENT_EVENTS.get(status, "incident_updated")
    services = [str(s) for s in inc.get("services") or []]
    causes = list(inc.get("root_causes") or [])
    top = causes[0] if causes else None
    ordered = ([top["service"]] if top and top.get("service") else []) + services
    when = {"incident_opened": "opened_at", "incident_mitigated": "mitigated_at", "incident_resolved": "resolved_at"}
    t = inc.get(when.get(event, "updated_at")) or inc.get("updated_at") or inc.get("opened_at") or _time.time()
    verb = {"incident_opened": "Incident", "incident_updated": "Incident updated", "incident_mitigated": "Mitigated",
            "incident_resolved": "Resolved"}.get(event, "Incident")
    title = f"{verb}: {inc.get('title') or f'incident {iid}'}"
    lines = [str(inc["summary"])] if inc.get("summary") else []
    if causes:
        lines.append("Likely root causes:")
        lines += [f"{i}. {_cause_line(c)}" for i, c in enumerate(causes[:3], 1)]
    if inc.get("acked_by"):
        lines.append(f"Acknowledged by {inc['acked_by']}.")
    if not lines:
        lines.append(f"{inc.get('signal_count') or len(inc.get('signals') or [])} related signals on "
                     f"{', '.join(services) or 'unknown services'}.")
    key_part = change or event
    if event == "incident_updated":  # a new ranking: send again only when what a person reads changed
        key_part = (f"{change or 'updated'}:{inc.get('severity')}:{top.get('service') if top else ''}:"
                    f"{top.get('metric') if top else ''}:{inc.get('confidence')}")
    fields = {"incident_id": iid, "status": status, "confidence": inc.get("confidence"),
              "category": inc.get("category"), "opened_at": inc.get("opened_at"), "acked_by": inc.get("acked_by"),
              "root_cause": None if top is None else {"service": top.get("service"), "metric": top.get("metric"),
                                                      "score": top.get("score")}}
    if change:
        fields["change"] = change
    runbooks = _runbooks(inc, base_url)
    if runbooks:
        fields["runbooks"] = runbooks
    return Notification(event=event, severity=str(inc.get("severity") or "warning"), title=title,
                        text=_cut("\n".join(lines)), services=tuple(dict.fromkeys(ordered)),
                        team=_team(ordered, team_of), url=_link(base_url, f"/ui/incidents/{iid}"),
                        group_key=f"incident:{iid}", dedup_key=f"incident:{iid}:{key_part}", time=float(t),
                        fields=fields)


def prediction_severity(rec: Mapping[str, Any]) -> str:
    """Under 1 h to the breach critical, else warning (as the incident engine weighs it); closed ones info."""
    if (rec.get("state") or "active") != "active":
        return "info"
    now = float(rec.get("updated_at") or rec.get("created_at") or 0.0)
    eta = rec.get("eta")
    return "critical" if eta is not None and float(eta) - now < 3600 else "warning"


def _eta(rec: Mapping[str, Any]) -> str:
    eta = rec.get("eta")
    if eta is None:
        return "unknown"
    s = _time.strftime("%Y-%m-%d %H:%M UTC", _time.gmtime(float(eta)))
    lo, hi = rec.get("eta_low"), rec.get("eta_high")
    if lo is not None and hi is not None:
        s += (f" (between {_time.strftime('%H:%M', _time.gmtime(float(lo)))} and "
              f"{_time.strftime('%H:%M', _time.gmtime(float(hi)))})")
    return s


def from_prediction(rec: Mapping[str, Any], change: str = "issued", *, base_url: str | None = None,
                    team_of: TeamOf = _none) -> Notification:
    """A message about a predicted breach (``change``: issued | updated | withdrawn | confirmed). The dedup key
    holds the state and the severity, so the minutely updates of an unchanged prediction are not re-sent."""
    service = rec.get("service")
    services = [str(service)] if service else []
    sev = prediction_severity(rec)
    state = str(rec.get("state") or "active")
    kind = str(rec.get("kind") or "limit_breach").replace("_", " ")
    metric = rec.get("metric")
    if state == "active":
        title = f"Predicted {kind}: {service or 'unknown service'} {metric} at {_eta(rec)}"
    else:
        title = f"Prediction {state}: {service or 'unknown service'} {metric} {kind}"
    text = str(rec.get("explanation") or "")
    if rec.get("close_reason"):
        text = f"{text}\n{rec['close_reason']}".strip()
    pid = rec.get("id")
    t = rec.get("closed_at") or rec.get("updated_at") or rec.get("created_at") or _time.time()
    fields = {"prediction_id": pid, "metric": metric, "kind": rec.get("kind"), "state": state, "change": change,
              "eta": rec.get("eta"), "eta_low": rec.get("eta_low"), "eta_high": rec.get("eta_high"),
              "threshold": rec.get("threshold"), "probability": rec.get("probability")}
    return Notification(event="prediction", severity=sev, title=title, text=_cut(text or title),
                        services=tuple(services), team=_team(services, team_of),
                        url=_link(base_url, f"/ui/services/{service}" if service else "/ui"),
                        group_key=f"prediction:{service or ''}:{metric}", dedup_key=f"prediction:{pid}:{state}:{sev}",
                        time=float(t), fields=fields)


# status -> (event, severity, title prefix). Interim statuses (approved, running, verifying, skipped) send
# nothing: the final one follows, and a skip is explained on the incident's timeline.
ACTION_MESSAGES: dict[str, tuple[str, str, str]] = {
    "pending_approval": ("action_pending_approval", "warning", "Approval needed"),
    "notified": ("action_done", "warning", "Suggested action (run it by hand)"),
    "dry_run": ("action_done", "info", "Dry run, nothing changed"),
    "verified": ("action_done", "info", "Fixed and verified"),
    "succeeded": ("action_done", "info", "Action succeeded"),
    "verification_failed": ("action_done", "warning", "Action ran but did not fix it"),
    "failed": ("action_done", "warning", "Action failed"),
    "rolled_back": ("action_done", "warning", "Action rolled back"),
    "rejected": ("action_done", "info", "Action rejected"),
    "expired": ("action_done", "info", "Approval expired"),
    "escalated": ("action_done", "critical", "Aurora could not fix it: a person is needed"),
}


def verified_ok(action: Mapping[str, Any]) -> bool:
    """The action ran and its verification passed (remedy status ``verified``, or ``succeeded`` + verified)."""
    status = action.get("status")
    return status == "verified" or (status == "succeeded" and action.get("verified") is True)


def automatic(action: Mapping[str, Any]) -> bool:
    """Nobody decided: no approver (``approved_by`` / ``decided_by`` empty or "aurora") and not an approve mode."""
    who = action.get("approved_by") or action.get("decided_by")
    return who in (None, "", "aurora") and action.get("mode") in (None, "auto")


def from_action(action: Mapping[str, Any], incident: Mapping[str, Any] | None = None, *,
                base_url: str | None = None, team_of: TeamOf = _none) -> Notification | None:
    """A message about a remediation action waiting for approval or finished; None for an interim status.
    ``change: escalated`` (the remediation engine gave up) is its own message, whatever the status."""
    status = str(action.get("status"))
    key = "escalated" if action.get("change") == "escalated" else status
    if key not in ACTION_MESSAGES:
        return None
    event, sev, verb = ACTION_MESSAGES[key]
    if key == "succeeded" and action.get("verified") is True:
        verb = ACTION_MESSAGES["verified"][2]
    elif key == "succeeded" and action.get("verified") is False:
        sev, verb = ACTION_MESSAGES["verification_failed"][1:]
    what = f"{action.get('playbook')}: {action.get('action')} {action.get('target') or ''}".strip()
    dry = " (dry run)" if action.get("dry_run") and key != "dry_run" else ""
    services = [str(s) for s in (incident or {}).get("services") or []]
    target = action.get("target")
    if isinstance(target, str) and target in services:
        services.remove(target)
        services.insert(0, target)
    lines = []
    if event == "action_pending_approval":
        lines.append("Aurora wants to run this action and waits for an operator to approve or reject it "
                     f"(POST /api/v1/actions/{action.get('id')}/approve or /reject).")
    for k in ("why", "reason", "output"):
        if action.get(k):
            lines.append(f"{k.capitalize()}: {action[k]}")
    iid = action.get("incident_id")
    if incident is not None:
        lines.append(f"Incident {incident.get('id')}: {incident.get('title')}")
    fields = {k: action.get(k) for k in ("incident_id", "playbook", "action", "target", "status", "dry_run",
                                         "verified", "mode", "executor")}
    fields.update(action_id=action.get("id"), approved_by=action.get("approved_by") or action.get("decided_by"))
    runbooks = _runbooks(incident, base_url)
    if runbooks:
        fields["runbooks"] = runbooks
    t = (action.get("time") or action.get("finished_at") or action.get("executed_at") or action.get("requested_at")
         or (incident or {}).get("updated_at") or _time.time())
    return Notification(event=event, severity=sev, title=f"{verb}: {what}{dry}", text=_cut("\n".join(lines) or what),
                        services=tuple(services), team=_team(services, team_of),
                        url=_link(base_url, f"/ui/incidents/{iid}" if iid is not None else "/ui"),
                        group_key=f"incident:{iid}" if iid is not None else f"action:{action.get('id')}",
                        dedup_key=f"action:{action.get('id')}:{key}", time=float(t), fields=fields)


def fixed_alone(incident: Mapping[str, Any], action: Mapping[str, Any]) -> bool:
    """Aurora fixed it alone: a real (not dry-run) action that nobody approved ran, its verification passed,
    and the incident is mitigated or resolved without anyone having acknowledged it."""
    return (verified_ok(action) and not action.get("dry_run") and automatic(action)
            and incident.get("status") in ("mitigated", "resolved") and not incident.get("acked_by")
            and action.get("incident_id") == incident.get("id"))


def fixed_fyi(incident: Mapping[str, Any], action: Mapping[str, Any], *, base_url: str | None = None,
              team_of: TeamOf = _none) -> Notification | None:
    """The "FYI: detected and fixed" message, or None when Aurora did not fix it alone (see ``fixed_alone``)."""
    if not fixed_alone(incident, action):
        return None
    base = from_incident(incident, "incident_mitigated", base_url=base_url, team_of=team_of)
    what = f"{action.get('action')} {action.get('target') or ''}".strip()
    text = (f"Aurora detected this and fixed it on its own: playbook {action.get('playbook')} ran {what}, and the "
            f"verification passed. Nobody needs to act.\n{base.text}")
    if action.get("output"):
        text += f"\nAction output: {action['output']}"
    fields = {**base.fields, "action_id": action.get("id"), "playbook": action.get("playbook"),
              "action": action.get("action"), "target": action.get("target"), "verified": True}
    name = incident.get("title") or f"incident {incident.get('id')}"
    # the fix in the title: an incident's title names its top cause, which may not be what was fixed
    return Notification(event="fixed_fyi", severity="info", title=f"FYI: detected and fixed: {name} ({what})",
                        text=_cut(text), services=base.services, team=base.team, url=base.url,
                        group_key=base.group_key, dedup_key=f"incident:{incident.get('id')}:fixed_fyi",
                        time=base.time, fields=fields)


def channel_test_message(channel: str, now: float | None = None) -> Notification:
    """What ``Notifier.test_channel`` sends."""
    t = _time.time() if now is None else now
    return Notification(event="test", severity="info", title=f"Aurora test message to channel {channel}",
                        text="If you can read this, Aurora can reach this channel. Nothing needs to be done.",
                        group_key=f"test:{channel}", dedup_key=f"test:{channel}:{t}", time=t)
