"""Guardrails: the checks every run must pass, in event time, each refusal with its reason.

A pure function over the recent runs (``history``): the kill switch, one run per target at a time, the
target's cooldown, runs per target and per hour, runs per hour across all targets, the blast radius, and
a circuit breaker that stops a playbook after it failed to fix repeatedly. Dry runs change nothing, so they
count only against "one at a time" (while they are being recorded), not against cooldowns or rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from aurora.remedy.playbook import Playbook
from aurora.remedy.store import FAILURE

HOUR = 3600.0
IN_FLIGHT = ("pending_approval", "approved", "running", "verifying")


@dataclass(frozen=True)
class Limits:
    max_actions_per_hour: int = 20
    breaker_failures: int = 2
    breaker_window_s: float = 6 * HOUR


KINDS = ("paused", "blast radius", "busy", "cooldown", "rate", "breaker")


class Refusal(NamedTuple):
    """Why ``check`` refused a run: its ``kind`` (one of KINDS, stable: the engine records each new kind once)
    and the ``text`` people read (with figures that change at every look)."""

    kind: str
    text: str

    def __str__(self) -> str:
        return self.text


def touched(run: dict[str, Any]) -> set[str]:
    """Every target a run acts on: its steps' (a run of several steps may touch more than its first)."""
    return {run["target"], *(s["target"] for s in run.get("steps") or () if isinstance(s, dict) and "target" in s)}


@dataclass(frozen=True)
class Breaker:
    """A playbook's circuit breaker: open while ``failures`` failed fixes in the window reach the limit."""

    open: bool
    failures: int
    limit: int
    until: float | None  # when it closes on its own (the oldest counted failure leaves the window)

    def as_dict(self) -> dict[str, Any]:
        return {"open": self.open, "failures": self.failures, "limit": self.limit, "until": self.until}


def breaker(name: str, now: float, history: Sequence[dict[str, Any]], limits: Limits,
            reset_at: float | None = None) -> Breaker:
    """The breaker of playbook ``name``: its failed fixes in the last ``breaker_window_s`` (after an operator's
    reset, if any)."""
    ends = sorted(float(h.get("finished_at") or h["requested_at"]) for h in history
                  if h["playbook"] == name and h["status"] in FAILURE)
    counted = [t for t in ends if now - t < limits.breaker_window_s and (reset_at is None or t > reset_at)]
    is_open = len(counted) >= limits.breaker_failures
    # closes when so many have left the window that fewer than the limit remain
    until = counted[len(counted) - limits.breaker_failures] + limits.breaker_window_s if is_open else None
    return Breaker(is_open, len(counted), limits.breaker_failures, until)


def check(pb: Playbook, targets: Sequence[str], now: float, history: Sequence[dict[str, Any]], limits: Limits,
          paused: bool, breaker_reset: float | None = None) -> Refusal | None:
    """None when the run may go ahead; otherwise why not. ``history``: runs as stored (``target``,
    ``playbook``, ``status``, ``dry_run``, ``executed_at``, ``finished_at``, ``requested_at``);
    ``breaker_reset``: when an operator last closed this playbook's circuit breaker."""
    if paused:
        return Refusal("paused", "remediation is paused (kill switch: aurora remedy resume to lift it)")
    if len(set(targets)) > pb.guardrails.max_targets:
        return Refusal("blast radius", f"blast radius: the run touches {len(set(targets))} targets, the playbook "
                                       f"allows {pb.guardrails.max_targets}")
    executed = [h for h in history if not h.get("dry_run") and h.get("executed_at") is not None]
    for target in set(targets):
        busy = [h for h in history if target in touched(h) and h["status"] in IN_FLIGHT]
        if busy:
            return Refusal("busy", f"{target} already has run #{busy[0]['id']} "
                                   f"{busy[0]['status'].replace('_', ' ')} (one at a time)")
        mine = [h for h in executed if target in touched(h)]
        last = max((float(h["executed_at"]) for h in mine), default=None)
        if last is not None and now - last < pb.guardrails.cooldown_s:
            return Refusal("cooldown", f"{target} is cooling down: last run {now - last:.0f} s ago, cooldown "
                                       f"{pb.guardrails.cooldown_s:.0f} s")
        hour = [h for h in mine if now - float(h["executed_at"]) < HOUR]
        if len(hour) >= pb.guardrails.max_per_hour:
            return Refusal("rate", f"{target} had {len(hour)} runs in the last hour (limit "
                                   f"{pb.guardrails.max_per_hour})")
    total = [h for h in executed if now - float(h["executed_at"]) < HOUR]
    if len(total) >= limits.max_actions_per_hour:
        return Refusal("rate", f"{len(total)} runs in the last hour across all targets (limit "
                               f"{limits.max_actions_per_hour})")
    b = breaker(pb.name, now, history, limits, breaker_reset)
    if b.open:
        return Refusal("breaker", f"circuit breaker open: playbook {pb.name} failed to fix {b.failures} times in "
                                  f"the last {limits.breaker_window_s / HOUR:.0f} h (it closes on its own, or: POST "
                                  f"/api/v1/playbooks/{pb.name}/reset-breaker)")
    return None
