"""The remediation engine: from a ranked incident to a verified fix, under policy, in event time.

It runs as the last pipeline stage. When the incident engine announces a ranking (``offer``), the next
``step`` decides: the incident's top root cause is the target (``match.target_of``); the playbooks that
match it are ordered by how well they worked before (on similar incidents first, then on incidents of the
same kind); each is checked against the guardrails and the first one allowed goes ahead in its mode:
``notify-only`` records what it would do, ``approve`` waits for an operator, ``auto`` runs (or, in dry-run,
records what it would have run). Every decision is stored, with its reason, including the ones not taken.

A run executes its steps in order (in a worker thread, except on the simulated fleet) and then is watched:
from ``verify.settle_s`` after it ran, the incident engine is asked at every step whether the incident's
cause is gone (``IncidentEngine.recovery``); the first yes verifies the fix and marks the incident mitigated;
no yes by ``verify.timeout_s`` fails it, runs the playbook's rollback step, if any, and escalates. Failed fixes
open the playbook's circuit breaker (``guardrails``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from aurora.errors import Conflict, NotFound
from aurora.model import SeriesBatch
from aurora.remedy import guardrails
from aurora.remedy.executors import ExecRequest, ExecResult, Executor, render
from aurora.remedy.match import Target, explain_match, targets_of
from aurora.remedy.playbook import Playbook, Step
from aurora.remedy.store import FAILURE, FINAL, SUCCESS, ActionStore

log = logging.getLogger(__name__)
HISTORY_S = 24 * 3600.0  # runs kept in memory for the guardrails (longer than any of their windows)


class Incidents(Protocol):
    def recovery(self, incident_id: int, now: float, after: float | None = None,
                 service: str | None = None) -> tuple[bool, str]: ...

    def mitigate(self, incident_id: int, now: float, reason: str) -> bool: ...


AuditFn = Callable[[str, str, str, dict[str, Any]], None]


@dataclass
class _Running:
    action_id: int
    future: Future[list[dict[str, Any]]]
    rollback: bool


def success_rate(stats: dict[str, int] | None) -> float:
    """Laplace-smoothed share of verified fixes: 0.5 with no history."""
    v, f = (stats or {}).get("verified", 0), (stats or {}).get("failed", 0)
    return (v + 1) / (v + f + 2)


class RemedyEngine:
    name = "remedy"

    def __init__(self, store: ActionStore, playbooks: Sequence[Playbook], executors: dict[str, Executor],
                 get_incident: Callable[[int], dict[str, Any] | None], incidents: Incidents | None = None,
                 limits: guardrails.Limits | None = None, approval_timeout_s: float = 3600.0,
                 audit: AuditFn | None = None, publish: Callable[[str, dict[str, Any]], None] | None = None,
                 timeline: Callable[[int, list[dict[str, Any]]], None] | None = None,
                 similar: Callable[[int], list[dict[str, Any]]] | None = None, inline: Sequence[str] = ("sim",)
                 ) -> None:
        self.store = store
        self.playbooks = list(playbooks)
        self.executors = executors
        self.get_incident = get_incident
        self.incidents = incidents
        self.limits = limits or guardrails.Limits()
        self.approval_timeout_s = approval_timeout_s
        self.audit = audit
        self.publish = publish
        self.timeline = timeline
        self.similar = similar
        self.inline = set(inline)
        self._queue: list[int] = []
        self._watch: dict[int, float] = {}  # open incidents decided without a run -> when to look again
        self._no_match: dict[int, set[tuple[int, str, str | None]]] = {}
        self.recheck_s = 60.0  # ... (a prediction may join, a cooldown end, the kill switch be lifted)
        self._qlock = threading.Lock()
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aurora-remedy")
        self._running: dict[int, _Running] = {}
        self.now: float | None = None
        self.history: list[dict[str, Any]] = store.query(limit=1000)  # newest first; the guardrails' memory
        self.decisions = 0
        self.breaker_resets = store.breaker_resets()  # playbook -> when an operator last closed its breaker
        # closed at the first step, not here: its escalation must reach the notifier, which subscribes later
        self._interrupted_pending = True

    def _close_interrupted(self) -> None:
        """A run stored as running belongs to a process that stopped while its steps ran (this one has not
        started any): what they did is unknown, so it ends inconclusive and a person is told to look. Left as
        it was, its target would stay busy forever (one run per target at a time)."""
        for rec in [h for h in self.history if h["status"] == "running"]:
            when = float(rec["executed_at"] or rec["requested_at"])
            self._set(rec, {"status": "inconclusive", "finished_at": when,
                            "reason": rec["reason"] + "; interrupted: Aurora stopped while it ran, so whether its "
                                                      "steps took effect is unknown"})
            self._escalate(rec, f"Aurora stopped while {rec['action']} {rec['target']} ran: check {rec['target']}")

    # --- input -----------------------------------------------------------------------------------
    def offer(self, event: dict[str, Any]) -> None:
        """An incident event from the incident engine; a ranking is a reason to decide."""
        if event.get("change") == "ranked" and event.get("status") == "open":
            with self._qlock:
                self._queue.append(int(event["id"]))

    def process(self, batch: SeriesBatch, series_ids: np.ndarray, now_ms: int) -> None:
        if batch.n_samples:
            self.step(float(batch.ts_ms.max()) / 1000.0)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    # --- the step --------------------------------------------------------------------------------
    def step(self, now: float) -> None:
        with self._qlock:
            queued, self._queue = list(dict.fromkeys(self._queue)), []
        with self._lock:
            now = now if self.now is None else max(now, self.now)
            self.now = now
            if self._interrupted_pending:
                self._interrupted_pending = False
                self._close_interrupted()
            due = [iid for iid, at in self._watch.items() if at <= now and iid not in queued]
            for iid in queued + due:
                inc = self.get_incident(iid)
                status = None if inc is None else inc.get("status")
                if inc is None or status == "resolved":
                    self._watch.pop(iid, None)
                    self._no_match.pop(iid, None)
                    continue
                # Watched until resolved: a mitigated incident may come back, a failed fix may be retried.
                self._watch[iid] = now + self.recheck_s
                if status == "open":
                    try:
                        self.decide(inc, now)
                    except Exception as exc:  # one incident's trouble must not stop verification of the others
                        log.exception("remediation decision for incident %s failed", iid)
                        self._audit("aurora", "remedy.error", iid, {"error": f"{type(exc).__name__}: {exc}"})
            self._collect(now)
            self._verify(now)
            self._expire(now)
            cut = now - HISTORY_S
            self.history = [h for h in self.history if float(h["requested_at"]) >= cut or h["status"] not in FINAL]

    # --- deciding --------------------------------------------------------------------------------
    def ranked(self, inc: dict[str, Any], t: Target) -> list[tuple[Playbook, float, str]]:
        """Matching playbooks, best first: success on similar incidents, then on incidents of this kind."""
        outcomes = self.store.outcomes()
        sim_stats: dict[str, dict[str, int]] = {}
        if self.similar is not None:
            for other in self.similar(int(inc["id"])):
                for a in self.store.query(incident_id=int(other["id"]), limit=20):
                    d = sim_stats.setdefault(a["playbook"], {"verified": 0, "failed": 0})
                    if a["status"] in SUCCESS:
                        d["verified"] += 1
                    elif a["status"] in FAILURE:
                        d["failed"] += 1
        out = []
        for pb in self.playbooks:
            if explain_match(pb, t) is None:
                on_similar = success_rate(sim_stats.get(pb.name))
                on_kind = success_rate(outcomes.get((pb.name, t.category or "")))
                why = (f"worked {sim_stats.get(pb.name, {}).get('verified', 0)} of "
                       f"{sum(sim_stats.get(pb.name, {}).values())} times on similar incidents, "
                       f"{on_kind:.0%} smoothed success on {t.category or 'this kind'}")
                out.append((pb, on_similar * 10 + on_kind, why))
        out.sort(key=lambda x: -x[1])
        return out

    def decide(self, inc: dict[str, Any], now: float) -> dict[str, Any] | None:
        """Decide for one ranked incident: its top root cause, then each breach it predicts elsewhere (a leak
        foreseen on a neighbour is its own fix). Returns the first run that goes ahead (or None)."""
        chosen = None
        for t in targets_of(inc):
            run = self._decide_for(inc, t, now)
            chosen = chosen or run
        return chosen

    def _decide_for(self, inc: dict[str, Any], t: Target, now: float) -> dict[str, Any] | None:
        iid = int(inc["id"])
        mine = [h for h in self.history if h["incident_id"] == iid]
        if any(h["status"] not in FINAL and h["target"] == t.service for h in mine):
            return None  # a run on this target is under way or waiting
        # After a run ended, the incident is open again only if it came back (a verified fix mitigates it) or
        # the fix failed: a new run may follow, within the guardrails (cooldown, hourly limits, breaker).
        candidates = self.ranked(inc, t)
        if not candidates:
            reasons = {pb.name: explain_match(pb, t) for pb in self.playbooks}
            key = (iid, t.service, t.metric)
            if key not in self._no_match.setdefault(iid, set()):  # once per incident and cause, not every recheck
                self._no_match[iid].add(key)
                self._audit("aurora", "remedy.no_match", iid, {"target": t.service, "metric": t.metric,
                                                                "why": reasons})
            return None
        chosen = None
        for pb, _, why in candidates:
            before = [h for h in mine if h["playbook"] == pb.name and h["target"] == t.service]
            if any(h["status"] in ("notified", "dry_run", "rejected", "expired") for h in before):
                continue  # said once what it would do, or a person said no: not again for this incident
            ended = [float(h["finished_at"] or h["requested_at"]) for h in before if h["status"] != "skipped"]
            if ended and now - max(ended) < self.recheck_s:
                continue  # just ran for this incident and target
            steps = self._render(pb.steps, t)
            targets = [s["target"] for s in steps]
            reason = None
            if chosen is not None:
                reason = f"not chosen: {chosen['playbook']} ranks higher ({why})"
            else:
                refused = guardrails.check(pb, targets, now, self.history, self.limits, self.store.paused(),
                                           self.breaker_resets.get(pb.name))
                reason = None if refused is None else f"guardrail ({refused.kind}): {refused.text}"
            if reason is not None:
                # recorded once per kind of refusal in a row (paused, then cooling down, then paused again: 3)
                if not before or before[0]["reason"].split(":")[0] != reason.split(":")[0]:
                    self._record(inc, t, pb, steps, "skipped", reason, now)
                continue
            matched = f"matched {pb.name} on {t.category or '?'} / {t.service} / {t.metric}; {why}"
            if pb.mode == "notify-only":
                chosen = self._record(inc, t, pb, steps, "notified", f"{matched}; notify-only: would run "
                                      f"{self._describe(steps)}", now)
            elif pb.mode == "approve":
                chosen = self._record(inc, t, pb, steps, "pending_approval", f"{matched}; waiting for approval", now)
            elif pb.dry_run:
                chosen = self._record(inc, t, pb, steps, "dry_run", f"{matched}; dry-run: would run "
                                      f"{self._describe(steps)}", now, finished=True)
            else:
                chosen = self._record(inc, t, pb, steps, "running", matched, now)
                self._execute(chosen, pb, now)
        return chosen

    @staticmethod
    def _render(steps: Sequence[Step], t: Target) -> list[dict[str, Any]]:
        values = {"service": t.service, "metric": t.metric or "", "incident": str(t.incident_id)}
        return [{"action": s.action, "executor": s.executor, "target": render(s.target, values),
                 "params": s.params, "timeout_s": s.timeout_s} for s in steps]

    @staticmethod
    def _describe(steps: Sequence[dict[str, Any]]) -> str:
        return ", then ".join(f"{s['action']} {s['target']} ({s['executor']})" for s in steps)

    def _record(self, inc: dict[str, Any], t: Target, pb: Playbook, steps: list[dict[str, Any]], status: str,
                reason: str, now: float, finished: bool = False) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "incident_id": int(inc["id"]), "playbook": pb.name, "incident_kind": t.category, "mode": pb.mode,
            "dry_run": pb.dry_run, "action": steps[0]["action"], "executor": steps[0]["executor"],
            "target": steps[0]["target"], "steps": steps, "status": status, "reason": reason,
            "requested_at": now, "decided_at": now if status != "pending_approval" else None,
            "decided_by": "aurora" if status != "pending_approval" else None, "executed_at": None,
            "finished_at": now if finished or status in ("skipped", "notified") else None, "output": ""}
        rec["id"] = self.store.add(rec)
        self.history.insert(0, rec)
        self.decisions += 1
        self._announce(rec, status)
        return rec

    # --- operators -------------------------------------------------------------------------------
    def approve(self, action_id: int, who: str) -> dict[str, Any]:
        """An operator's go-ahead: the guardrails are checked again (things may have changed while it waited)."""
        with self._lock:
            rec = self._pending(action_id)
            now = self.now if self.now is not None else float(rec["requested_at"])
            pb = self._playbook(rec["playbook"])
            refusal = None if pb is None else guardrails.check(
                pb, [s["target"] for s in rec["steps"]], now, [h for h in self.history if h["id"] != action_id],
                self.limits, self.store.paused(), self.breaker_resets.get(pb.name))
            refused = f"playbook {rec['playbook']} no longer exists" if pb is None else (
                None if refusal is None else refusal.text)
            fields: dict[str, Any] = {"decided_at": now, "decided_by": who}
            if refused is not None:
                self._set(rec, {**fields, "status": "skipped", "finished_at": now,
                                "reason": rec["reason"] + f"; approved by {who} but refused: {refused}"}, who)
                return rec
            assert pb is not None
            if pb.dry_run:
                self._set(rec, {**fields, "status": "dry_run", "finished_at": now,
                                "reason": rec["reason"] + f"; approved by {who}; dry-run: would run "
                                          f"{self._describe(rec['steps'])}"}, who)
                return rec
            self._set(rec, {**fields, "status": "running", "reason": rec["reason"] + f"; approved by {who}"}, who)
            self._execute(rec, pb, now)
            return rec

    def reject(self, action_id: int, who: str, why: str | None = None) -> dict[str, Any]:
        with self._lock:
            rec = self._pending(action_id)
            now = self.now if self.now is not None else float(rec["requested_at"])
            self._set(rec, {"status": "rejected", "decided_at": now, "decided_by": who, "finished_at": now,
                            "reason": rec["reason"] + f"; rejected by {who}" + (f": {why}" if why else "")}, who)
            return rec

    def breaker(self, name: str) -> guardrails.Breaker:
        with self._lock:
            now = self.now if self.now is not None else max(
                (float(h.get("finished_at") or h["requested_at"]) for h in self.history), default=0.0)
            return guardrails.breaker(name, now, self.history, self.limits, self.breaker_resets.get(name))

    def reset_breaker(self, name: str, who: str) -> guardrails.Breaker:
        """An operator closes a playbook's circuit breaker: the failures so far no longer count."""
        with self._lock:
            if self._playbook(name) is None:
                raise NotFound(f"no playbook named {name!r}")
            before = self.breaker(name)
            at = self.now if self.now is not None else 0.0
            self.store.reset_breaker(name, at, who)
            self.breaker_resets[name] = at
            if self.audit is not None:
                try:
                    self.audit(who, "remedy.breaker_reset", f"playbook:{name}",
                               {"was_open": before.open, "failures": before.failures})
                except Exception:
                    log.exception("audit of the breaker reset failed")
            return self.breaker(name)

    def _pending(self, action_id: int) -> dict[str, Any]:
        rec = next((h for h in self.history if h["id"] == action_id), None) or self.store.get(action_id)
        if rec is None:
            raise NotFound(f"no action with id {action_id}")
        if rec["status"] != "pending_approval":
            raise Conflict(f"action {action_id} is {rec['status'].replace('_', ' ')}, not waiting for approval")
        return rec

    def _playbook(self, name: str) -> Playbook | None:
        return next((p for p in self.playbooks if p.name == name), None)

    # --- running ---------------------------------------------------------------------------------
    def _execute(self, rec: dict[str, Any], pb: Playbook, now: float, rollback: bool = False) -> None:
        steps = [self._render_rollback(pb, rec)] if rollback else rec["steps"]
        if not rollback:
            self._set(rec, {"executed_at": now, **({} if rec["status"] == "running" else {"status": "running"})})

        def work() -> list[dict[str, Any]]:
            done = []
            for s in steps:
                ex = self.executors.get(s["executor"])
                res = ExecResult(False, f"no {s['executor']} executor is configured") if ex is None else ex.run(
                    ExecRequest(int(rec["id"]), int(rec["incident_id"]), rec["playbook"], s["action"], s["target"],
                                dict(s["params"]), float(s["timeout_s"]), now))
                done.append({**s, "ok": res.ok, "output": res.output, "detail": res.detail})
                if not res.ok:
                    break
            return done

        if all(s["executor"] in self.inline for s in steps):
            fut: Future[list[dict[str, Any]]] = Future()
            try:
                fut.set_result(work())
            except Exception as exc:  # an executor must not raise; if one does, the run failed
                fut.set_exception(exc)
            self._running[int(rec["id"])] = _Running(int(rec["id"]), fut, rollback)
            self._collect(now)
        else:
            self._running[int(rec["id"])] = _Running(int(rec["id"]), self._pool.submit(work), rollback)

    def _render_rollback(self, pb: Playbook, rec: dict[str, Any]) -> dict[str, Any]:
        assert pb.rollback is not None
        values = {"service": rec["target"], "metric": "", "incident": str(rec["incident_id"])}
        s = pb.rollback
        return {"action": s.action, "executor": s.executor, "target": render(s.target, values), "params": s.params,
                "timeout_s": s.timeout_s}

    def _collect(self, now: float) -> None:
        for aid, run in list(self._running.items()):
            if not run.future.done():
                continue
            del self._running[aid]
            rec = next((h for h in self.history if h["id"] == aid), None) or self.store.get(aid)
            if rec is None:
                continue
            try:
                done = run.future.result()
            except Exception as exc:
                done = [{"ok": False, "output": f"executor error: {exc}"}]
            ok = bool(done) and all(d["ok"] for d in done)
            output = "\n".join(str(d["output"]) for d in done)
            if run.rollback:
                self._set(rec, {"status": "rolled_back" if ok else "verification_failed", "finished_at": now,
                                "output": rec["output"] + f"\nrollback: {output}",
                                "reason": rec["reason"] + ("; rolled back" if ok else "; rollback failed too")})
                self._escalate(rec, "the fix did not work" + ("; rolled back" if ok else "; its rollback failed"))
            elif ok:
                self._set(rec, {"status": "verifying", "steps": done, "output": output})
            else:
                self._set(rec, {"status": "failed", "steps": done, "output": output, "finished_at": now})
                self._after_failure(rec, now, "a step failed")

    def _verify(self, now: float) -> None:
        for rec in [h for h in self.history if h["status"] == "verifying"]:
            pb = self._playbook(rec["playbook"])
            settle, timeout = (pb.verify.settle_s, pb.verify.timeout_s) if pb else (30.0, 300.0)
            age = now - float(rec["executed_at"])
            if age < settle:
                continue
            iid = int(rec["incident_id"])
            inc = self.get_incident(iid)
            if inc is not None and inc.get("status") == "resolved":
                # a person closed it first: whether the fix worked is not known, so it does not count either way
                self._set(rec, {"status": "inconclusive", "finished_at": now,
                                "reason": rec["reason"] + f"; not verified: the incident was resolved {age:.0f} s "
                                                          "after it ran, before its signals were judged"})
                continue
            ok, why = (True, "no incident engine to ask") if self.incidents is None else self.incidents.recovery(
                iid, now, float(rec["executed_at"]), rec["target"])
            if ok:
                # the incident is mitigated only when all of it recovered (the fix may be of one of its causes);
                # the announcement says which, so a notifier waiting for the mitigation knows whether one follows
                whole = self.incidents is None or self.incidents.recovery(iid, now, float(rec["executed_at"]))[0]
                self._set(rec, {"status": "verified", "finished_at": now,
                                "reason": rec["reason"] + f"; verified {age:.0f} s after it ran: {why}"},
                          event={"mitigates": whole})
                if whole and self.incidents is not None:
                    self.incidents.mitigate(iid, now,
                                            f"{rec['playbook']} fixed it ({rec['action']} {rec['target']}), verified")
            elif age >= timeout:
                self._set(rec, {"status": "verification_failed", "finished_at": now,
                                "reason": rec["reason"] + f"; not recovered {age:.0f} s after it ran: {why}"})
                self._after_failure(rec, now, why)

    def _after_failure(self, rec: dict[str, Any], now: float, why: str) -> None:
        pb = self._playbook(rec["playbook"])
        if pb is not None and pb.rollback is not None and self.store.paused():
            # the kill switch means no further changes, a rollback included: a person has taken over
            self._escalate(rec, f"the fix did not work: {why}; its rollback was not run because remediation "
                                "is paused")
        elif pb is not None and pb.rollback is not None:
            try:
                self._execute(rec, pb, now, rollback=True)
            except ValueError as exc:  # its target could not be filled in
                self._escalate(rec, f"the fix did not work: {why}; its rollback could not run: {exc}")
        else:
            self._escalate(rec, f"the fix did not work: {why}")

    def _escalate(self, rec: dict[str, Any], why: str) -> None:
        self._audit("aurora", "remedy.escalated", int(rec["incident_id"]), {"action_id": rec["id"], "why": why})
        if self.publish is not None:
            self.publish("action", {**self._public(rec), "change": "escalated", "why": why})

    def _expire(self, now: float) -> None:
        for rec in [h for h in self.history if h["status"] == "pending_approval"]:
            if now - float(rec["requested_at"]) >= self.approval_timeout_s:
                self._set(rec, {"status": "expired", "finished_at": now,
                                "reason": rec["reason"] + f"; no approval within {self.approval_timeout_s:.0f} s"})

    # --- bookkeeping -----------------------------------------------------------------------------
    def _set(self, rec: dict[str, Any], fields: dict[str, Any], actor: str = "aurora",
             event: dict[str, Any] | None = None) -> None:
        rec.update(fields)
        self.store.update(int(rec["id"]), fields)
        if "status" in fields:
            self._announce(rec, str(fields["status"]), actor, event)

    def _announce(self, rec: dict[str, Any], status: str, actor: str = "aurora",
                  event: dict[str, Any] | None = None) -> None:
        """Audit, timeline and the live ``action`` event (with ``event``'s extra keys, e.g. ``mitigates``)."""
        self._audit(actor, f"remedy.{status}", int(rec["incident_id"]),
                    {"action_id": rec["id"], "playbook": rec["playbook"], "target": rec["target"],
                     "dry_run": rec["dry_run"], "reason": rec["reason"]})
        if self.timeline is not None:
            text = {"skipped": "not run", "pending_approval": "waiting for approval"}.get(
                status, status.replace("_", " "))
            last = rec["reason"].split("; ")[-1]
            self.timeline(int(rec["incident_id"]), [{
                "time": self.now if self.now is not None else rec["requested_at"], "kind": "action",
                "text": f"{rec['playbook']} ({rec['action']} {rec['target']}): {text} ({last})",
                "actor": actor, "data": {"action_id": rec["id"], "status": status}}])
        if self.publish is not None:
            self.publish("action", {**self._public(rec), "change": status, **(event or {})})

    def _audit(self, actor: str, action: str, incident_id: int, detail: dict[str, Any]) -> None:
        if self.audit is not None:
            try:
                self.audit(actor, action, f"incident:{incident_id}", detail)
            except Exception:
                log.exception("audit of %s failed", action)

    @staticmethod
    def _public(rec: dict[str, Any]) -> dict[str, Any]:
        return {k: rec.get(k) for k in ("id", "incident_id", "playbook", "mode", "dry_run", "action", "executor",
                                        "target", "status", "reason", "requested_at", "executed_at", "finished_at",
                                        "decided_by", "output")}

