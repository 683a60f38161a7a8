"""Signal correlation: from a stream of signals to a few incidents, in event time.

Rules (all thresholds in ``CorrelationSettings``):

* **Grouping.** A signal joins the group it is *related* to and close to in time. Related: its service
  is one of the group's, or within ``max_hops`` in the service graph of one (a host's own signal, node
  metrics, relates to the services running on that host). Close in time: the group's last signal is
  at most ``window_s`` before it, or the group is an open incident one of whose signals is still
  active (a fault still going on spreads). An open or mitigated incident also takes signals of its
  *own* services however late, until it resolves: a fault that goes on, or comes back within the hour,
  is the same incident; a neighbour's new trouble after the incident calmed down is a new one. When several
  qualify, an incident wins over a pending group, then the most recently active; pending groups the
  signal also relates to merge into the winner. Otherwise the signal starts a new pending group.
* **Deduplication.** Signals with the same fingerprint (one series' anomalies, one alert, one
  prediction) are one entry in the group, with a count and first / last times.
* **Evidence bar.** A pending group becomes an incident when its evidence reaches ``open_evidence``:
  each distinct measurement (for anomalies: a metric of a service, whatever its quantiles or status
  codes; otherwise a fingerprint) adds its kind's weight (an anomaly 1, a critical anomaly 1.5, a firing
  warning alert 1, a critical alert or a prediction 2), and a fingerprint seen again ``repeat_after_s``
  or more after its first occurrence adds half its weight once more; one still *active* (see below)
  ``persist_s`` after it began counts double. With the defaults one anomaly, or one series alarming
  twice, does not open an incident; two related series, one series that stays abnormal for eight
  minutes, a critical alert or a prediction do. A pending group that stays below the bar for
  ``window_s`` is dropped (a blip).
* **Lifecycle.** An open incident is *mitigated* once ``quiet_s`` passed since its last signal and none
  of its signals is still active (alerts resolved, predictions withdrawn, anomalous series back to
  normal as the ``active`` callback says); a related signal before it resolves *reopens* it. It is
  *resolved* after ``resolve_after_s`` mitigated without a new signal, or by an operator.

Everything is event time: ``add`` and ``tick`` take the data's time, so a replay at full speed groups
exactly as living through it. Per signal the work is a few set lookups over the open groups, so the
correlator keeps up with thousands of signals per second (``benchmarks/bench_correlate.py``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aurora.incidents.model import Signal, SignalState

Related = Callable[[str, str], bool]  # (service a, service b) -> within max_hops in the service graph
Active = Callable[[SignalState], bool]  # is this signal's condition still present?


@dataclass(frozen=True)
class CorrelationSettings:
    window_s: float = 600.0
    max_hops: int = 2
    open_evidence: float = 2.0
    repeat_after_s: float = 120.0
    persist_s: float = 480.0  # a pending signal still active this long after it started counts double
    quiet_s: float = 300.0
    resolve_after_s: float = 3600.0


def signal_weight(s: SignalState) -> float:
    if s.kind == "prediction":
        base = 2.0
    elif s.kind == "alert":
        base = 2.0 if s.severity == "critical" else 1.0
    else:
        base = 1.5 if s.severity == "critical" else 1.0
    return base


@dataclass
class Group:
    """A pending group of signals or, once ``opened_at`` is set, an incident."""

    key: int  # the correlator's own id for the group
    first_time: float
    last_time: float
    status: str = "pending"  # pending | open | mitigated | resolved (| merged: absorbed by another group)
    signals: dict[str, SignalState] = field(default_factory=dict)
    services: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    persistent: set[str] = field(default_factory=set)  # fingerprints still active persist_s after they began
    active: bool = False  # one of its signals was still active at the last tick
    opened_at: float | None = None
    mitigated_at: float | None = None
    resolved_at: float | None = None
    incident_id: int | None = None  # set by whoever persists the incident
    trend_began: float | None = None  # the earliest start of a trend its predictions saw (slow burns begin
    # long before the first signal: root causes are ranked against the period before the trend)

    def evidence(self, repeat_after_s: float) -> float:
        """The weight of distinct measurements: the series of one metric of one service (the quantiles of a
        latency, the status codes of a request counter) are one measurement, counted by its strongest."""
        best: dict[tuple[str, str | None, str | None], float] = {}
        for fp, s in self.signals.items():
            w = signal_weight(s)
            if fp in self.persistent:
                w *= 2.0
            elif s.count > 1 and s.last_time - s.first_time >= repeat_after_s:
                w *= 1.5
            key = (s.kind, s.service, s.metric) if s.kind == "anomaly" else (s.kind, fp, None)
            best[key] = max(best.get(key, 0.0), w)
        return sum(best.values())



@dataclass(frozen=True)
class Change:
    """What happened to a group: opened, updated (new or repeated signals), mitigated, reopened, resolved."""

    kind: str
    group: Group
    time: float
    signals: tuple[SignalState, ...] = ()


def _host_of(s: Signal) -> str | None:
    return s.labels.get("host") or None


class Correlator:
    def __init__(self, related: Related | None = None, settings: CorrelationSettings | None = None) -> None:
        self.settings = settings or CorrelationSettings()
        self.related: Related = related or (lambda a, b: a == b)
        self.groups: list[Group] = []  # live (pending, open, mitigated) groups, oldest first
        self._keys = itertools.count(1)
        self.signals_seen = 0
        self.blips_dropped = 0

    # --- grouping --------------------------------------------------------------------------------
    def _relates(self, g: Group, s: Signal, neighbours: bool = True) -> bool:
        """Same service; or (``neighbours``) a service within ``max_hops``, or a host-level signal (node
        metrics) of a host the group's services run on, or a service on a host the group holds a host-level
        signal of. Two services merely sharing a host are not related."""
        svc, host = s.service, _host_of(s)
        if svc is not None and svc in g.services:
            return True
        if not neighbours:
            return False
        if host is not None and (svc is None or svc == host):
            return host in g.hosts or host in g.services
        if host is not None and host in g.services:
            return True
        return svc is not None and any(self.related(svc, other) for other in g.services)

    def _find(self, s: Signal, touched: dict[int, dict[str, SignalState]]) -> Group | None:
        """The group ``s`` belongs to: an incident before a pending group, the most recently active first.
        Pending groups it also relates to are merged into that one (the signal shows they are one problem)."""
        matches = []
        for g in self.groups:
            # Only pending groups expire: an open incident takes related signals for as long as it is open,
            # and a mitigated one is reopened by them until it resolves, however quiet it was.
            if g.status == "resolved" or (g.status == "pending" and s.time - g.last_time > self.settings.window_s):
                continue
            # Neighbours join only while the group is active (close in time); an incident that went quiet, or
            # was mitigated, takes signals of its own services only: a neighbour's new trouble then is a
            # new incident (unless it spreads back into this one's services).
            recent = s.time - g.last_time <= self.settings.window_s
            neighbours = g.status == "pending" or (g.status == "open" and (recent or g.active))
            if s.fingerprint in g.signals:
                matches.append(g)
            elif s.kind == "prediction":
                # A prediction is one resource of one service heading for its limit: it joins a group already
                # about that measurement (its anomalies), not whatever else is going on nearby, so that the
                # breach it foresees gets an incident of its own (and its own fix).
                if any(x.service == s.service and x.metric == s.metric for x in g.signals.values()):
                    matches.append(g)
            elif self._relates(g, s, neighbours=neighbours):
                matches.append(g)
        if not matches:
            return None
        best = max(matches, key=lambda g: (g.status != "pending", g.last_time))
        for g in matches:
            if g is not best and g.status == "pending":
                self._merge(best, g)
                if best.status == "open":  # the merged signals are news to the incident
                    touched.setdefault(best.key, {}).update(g.signals)
        return best

    def _merge(self, into: Group, g: Group) -> None:
        for fp, st in g.signals.items():
            have = into.signals.get(fp)
            if have is None:
                into.signals[fp] = st
            else:
                have.first_time = min(have.first_time, st.first_time)
                have.last_time = max(have.last_time, st.last_time)
                have.count += st.count
        into.services |= g.services
        into.hosts |= g.hosts
        into.persistent |= g.persistent
        into.first_time = min(into.first_time, g.first_time)
        into.last_time = max(into.last_time, g.last_time)
        if g.trend_began is not None:
            into.trend_began = min(into.trend_began or math.inf, g.trend_began)
        g.status = "merged"  # gone: a caller still holding it must not open it
        self.groups.remove(g)

    def add(self, signals: Iterable[Signal]) -> list[Change]:
        """Take signals (in any order within a batch; each carries its event time). Returns what changed.

        Signals of one instant are all placed before any group is judged against the evidence bar, so the
        order of series within a scrape cannot split one problem into two incidents."""
        changes: list[Change] = []
        touched: dict[int, dict[str, SignalState]] = {}
        ordered = sorted(signals, key=lambda x: x.time)
        for _, same_time in itertools.groupby(ordered, key=lambda x: x.time):
            placed = [self._place(s, changes, touched) for s in same_time]
            for g in {id(g): g for g in placed if g is not None and g.status == "pending"}.values():
                if g.evidence(self.settings.repeat_after_s) >= self.settings.open_evidence:
                    g.status, g.opened_at = "open", g.last_time
                    changes.append(Change("opened", g, g.last_time, tuple(g.signals.values())))
                    touched.pop(g.key, None)
        by_key = {g.key: g for g in self.groups}
        for key, sts in touched.items():
            if key in by_key and by_key[key].status == "open":
                changes.append(Change("updated", by_key[key], max(x.last_time for x in sts.values()),
                                      tuple(sts.values())))
        return changes

    def _place(self, s: Signal, changes: list[Change], touched: dict[int, dict[str, SignalState]]) -> Group | None:
        """Put one signal in its group (a new one if none relates). Returns the group."""
        self.signals_seen += 1
        g = self._find(s, touched)
        if g is None and s.resolved:
            return None  # the end of something no group holds: nothing to correlate
        if g is None:
            g = Group(next(self._keys), s.time, s.time)
            self.groups.append(g)
        st = g.signals.get(s.fingerprint)
        if st is None:
            st = g.signals[s.fingerprint] = SignalState.of(s)
            since = s.data.get("since") if s.kind == "prediction" else None
            if since is not None and math.isfinite(float(since)):  # as first seen: later updates of a
                # prediction move "since" back as its fit window grows
                g.trend_began = min(g.trend_began or math.inf, float(since))
        else:
            st.merge(s)
        if s.service is not None:
            g.services.add(s.service)
        host = _host_of(s)
        if host is not None:
            g.hosts.add(host)
        g.first_time = min(g.first_time, s.time)
        g.last_time = max(g.last_time, s.time)
        if g.status == "mitigated" and not s.resolved:
            g.status, g.mitigated_at = "open", None
            changes.append(Change("reopened", g, s.time))
        if g.status == "open":
            touched.setdefault(g.key, {})[s.fingerprint] = st
        return g

    # --- lifecycle -------------------------------------------------------------------------------
    def tick(self, now: float, active: Active | None = None) -> list[Change]:
        """Advance event time: mitigate quiet incidents, resolve long-quiet ones, drop stale blips."""
        cfg = self.settings
        changes: list[Change] = []
        keep: list[Group] = []
        for g in self.groups:
            if g.status == "pending":
                if active is not None and now - g.first_time >= cfg.persist_s:
                    g.persistent |= {fp for fp, s in g.signals.items()
                                     if now - s.first_time >= cfg.persist_s and not s.resolved and active(s)}
                    if g.evidence(cfg.repeat_after_s) >= cfg.open_evidence:
                        g.status, g.opened_at = "open", now
                        changes.append(Change("opened", g, now, tuple(g.signals.values())))
                if g.status == "pending" and now - g.last_time > cfg.window_s:
                    self.blips_dropped += 1
                    continue
            elif g.status == "open":
                quiet = now - g.last_time >= cfg.quiet_s
                still = any(not s.resolved and (active(s) if active else False) for s in g.signals.values())
                g.active = still
                if quiet and not still:
                    g.status, g.mitigated_at = "mitigated", now
                    changes.append(Change("mitigated", g, now))
            elif g.status == "mitigated" and g.mitigated_at is not None and now - g.mitigated_at >= cfg.resolve_after_s:
                g.status, g.resolved_at = "resolved", now
                changes.append(Change("resolved", g, now))
            if g.status != "resolved":
                keep.append(g)
        self.groups = keep
        return changes

    def close(self, key: int, now: float) -> None:
        """An operator resolved the incident: forget the group (new signals start a new one)."""
        for g in self.groups:
            if g.key == key or g.incident_id == key:
                g.status, g.resolved_at = "resolved", now
        self.groups = [g for g in self.groups if g.status != "resolved"]

    def incidents(self) -> list[Group]:
        return [g for g in self.groups if g.status in ("open", "mitigated")]
