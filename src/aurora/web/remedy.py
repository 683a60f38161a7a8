"""What the dashboard shows of remediation: runs of an incident, the last day's decisions, the playbooks.

``aurora.remedy`` is None when remediation is disabled (``remediation.enabled: false``); every function here
then answers "disabled" (None) rather than an empty list, so the pages can say why nothing is there.
"""

from __future__ import annotations

from typing import Any

from aurora.remedy.engine import success_rate
from aurora.remedy.store import FAILURE, FINAL, STATUSES, SUCCESS
from aurora.web.queries import TTLCache

DAY = 86_400.0
WAITING = "pending_approval"
# How the pages group a run's status: what it means for the person looking.
GOOD = SUCCESS
BAD = (*FAILURE, "expired")
REFUSED = ("skipped", "rejected")
LIVE = tuple(s for s in STATUSES if s not in FINAL)  # waiting, approved, running, verifying
DISABLED = "remediation is disabled in this Aurora (remediation.enabled: false), so no playbook runs or waits."
_pending_cache = TTLCache(1.0)  # the nav badge is on every page: one COUNT a second is plenty


def tone(status: str) -> str:
    """A CSS class for a run's status pill."""
    if status in GOOD:
        return "ok"
    if status in BAD:
        return "critical"
    if status in LIVE:
        return "degraded"
    return "unknown"


def label(status: str) -> str:
    return {"pending_approval": "waiting for approval", "skipped": "not run", "dry_run": "dry-run"}.get(
        status, status.replace("_", " "))


def engine(aurora: Any) -> Any:
    return getattr(aurora, "remedy", None)


def pending_count(aurora: Any) -> int | None:
    """Runs waiting for an operator, or None when remediation is disabled."""
    eng = engine(aurora)
    if eng is None:
        return None

    return int(_pending_cache.get(str(id(aurora)), lambda: eng.store.count(WAITING)))


def forget_pending(aurora: Any) -> None:
    """After an approve or reject the badge must not show the old count for another second."""
    _pending_cache.drop(str(id(aurora)))


def incident_actions(aurora: Any, incident_id: int) -> list[dict[str, Any]] | None:
    eng = engine(aurora)
    if eng is None:
        return None
    return list(eng.store.query(incident_id=incident_id, limit=200))


def last_day(aurora: Any, now: float) -> dict[str, Any] | None:
    """The last 24 h (event time) of decisions, grouped: fixes verified, waiting, refused, failed, the rest."""
    eng = engine(aurora)
    if eng is None:
        return None
    runs = eng.store.query(since=now - DAY, limit=500)
    groups: dict[str, list[dict[str, Any]]] = {"verified": [], "waiting": [], "refused": [], "failed": [],
                                               "other": []}
    for a in runs:
        s = a["status"]
        key = ("verified" if s in GOOD else "waiting" if s == WAITING else "refused" if s in REFUSED
               else "failed" if s in BAD else "other")
        groups[key].append(a)
    return {"runs": runs[:15], "counts": {k: len(v) for k, v in groups.items()}, "waiting": groups["waiting"],
            "paused": eng.store.paused()}


def playbooks(aurora: Any, recent: int = 5) -> dict[str, Any] | None:
    """Every playbook with its success by incident kind (real runs only) and its latest runs."""
    eng = engine(aurora)
    if eng is None:
        return None
    outcomes = eng.store.outcomes()
    out = []
    for pb in eng.playbooks:
        kinds = []
        for (name, kind), o in sorted(outcomes.items()):
            if name != pb.name:
                continue
            n = o["verified"] + o["failed"]
            kinds.append({"kind": kind or "unknown", "verified": o["verified"], "failed": o["failed"],
                          "rate": o["verified"] / n if n else None, "smoothed": success_rate(o)})
        out.append({"pb": pb, "summary": pb.summary(), "kinds": kinds, "breaker": eng.breaker(pb.name),
                    "runs": eng.store.query(playbook=pb.name, limit=recent)})
    state = eng.store.state().get("paused")
    return {"playbooks": out, "paused": eng.store.paused(), "paused_by": state["updated_by"] if state else None,
            "paused_at": state["updated_at"] if state else None}
