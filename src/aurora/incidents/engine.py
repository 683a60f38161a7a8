"""The incident stage: correlates signals into incidents, ranks their root causes, keeps them stored.

Signals arrive from detection (anomaly records), from Alertmanager and from prediction through
``offer``; ``step(now)`` (run by the pipeline after every batch, and after an alert) correlates them in
event time (``correlate.py``), persists what changed (``store.py``), and re-ranks the root causes of
incidents that got new evidence, at most every ``rca_every_s`` of event time each (``aurora.rca.live``
over the store's data, ``summary.py`` for the words).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from aurora.incidents.correlate import Change, CorrelationSettings, Correlator, Group
from aurora.incidents.model import SEVERITY_RANK, Signal, SignalState, TimelineEntry
from aurora.incidents.severity import incident_severity
from aurora.incidents.summary import categorize, summarize, title
from aurora.model import SeriesBatch, is_counter
from aurora.rca.live import ChangeRef, RcaResult, RcaSettings, column_slopes, rank_incident
from aurora.rca.window import SeriesSource, counter_rates, read_window

log = logging.getLogger(__name__)
MAX_SIGNAL_ENTRIES = 50  # timeline entries for new signals per incident; the rest are counted
VERIFY_RECENT_S = 30.0  # a fix is judged on the level of its latest two scrapes


class IncidentSink(Protocol):
    def create(self, fields: dict[str, Any]) -> int: ...

    def update(self, incident_id: int, fields: dict[str, Any]) -> None: ...

    def upsert_signals(self, incident_id: int, signals: list[dict[str, Any]]) -> None: ...

    def add_timeline(self, incident_id: int, entries: list[dict[str, Any]]) -> None: ...


class Topology(Protocol):
    def connected(self, a: str, b: str, max_hops: int) -> bool: ...

    def downstream(self, service: str, hops: int) -> Mapping[str, int]: ...

    def upstream(self, service: str, hops: int) -> Mapping[str, int]: ...

    def edge_count(self) -> int: ...


ChangesFn = Callable[[float, float], list[ChangeRef]]  # (start, end) -> change events in that event time


@dataclass(frozen=True)
class IncidentSettings:
    correlation: CorrelationSettings = field(default_factory=CorrelationSettings)
    rca: RcaSettings = field(default_factory=RcaSettings)
    rca_every_s: float = 60.0  # re-rank an incident with new evidence at most this often (event time)
    baseline_s: float = 3600.0  # the normal period before the onset the ranking compares against
    span_s: float = 1200.0  # ... and how much after the onset it looks at: the cause shows early; later come
    # the cascade, the daily cycle moving every series away from the hour before, and people's fixes
    step_s: float = 15.0  # the grid the ranking reads the store on
    active_score: float = 0.99  # an anomalous series is still active while its consensus score is at least this
    recent_s: float = 120.0  # ... or while its median over this much is still away from its earlier level
    trend_s: float = 600.0  # ... or its slope over this much is unlike its usual slopes
    rerank_for_s: float = 1800.0  # re-rank every rca_every_s for this long after opening, new evidence or not


def settings_from_config(cfg: Any) -> IncidentSettings:
    """``IncidentSettings`` from the ``incidents:`` configuration section (``aurora.config.IncidentConfig``)."""
    return IncidentSettings(
        correlation=CorrelationSettings(window_s=cfg.window_s, max_hops=cfg.max_hops, open_evidence=cfg.open_evidence,
                                        persist_s=cfg.persist_s, quiet_s=cfg.quiet_s,
                                        resolve_after_s=cfg.resolve_after_s),
        rca_every_s=cfg.rca_every_s, baseline_s=cfg.baseline_s)


def _slope(t: np.ndarray, v: np.ndarray) -> float | None:
    """The ranking's robust slope (per second; halves' medians) of one series; None if unknown."""
    ok = np.isfinite(v)
    if ok.sum() < 4:
        return None
    s = float(column_slopes(t[ok], v[ok][:, None])[0])
    return s if np.isfinite(s) else None


@dataclass(frozen=True)
class Baseline:
    """A series' normal hour: median and robust scale of its values, median and spread of its slopes over
    windows of ``trend_s``."""

    median: float
    scale: float
    slope: float
    slope_scale: float
    low: float = -np.inf  # the normal hour's 1st and 99th percentiles: a level inside them is not "away",
    high: float = np.inf  # however small the scale (a rate that is usually 0 with occasional blips)

    @classmethod
    def of(cls, t: np.ndarray, v: np.ndarray, trend_s: float, span_s: float) -> Baseline:
        med = float(np.nanmedian(v))
        q75, q25, q99, q01 = np.nanpercentile(v, [75, 25, 99, 1])
        # A floor of 1 % of the level: a gauge that barely moved (a disk, a pool) still has a scale.
        scale = max(float(q75 - q25), float(np.nanstd(v)) * 0.5, abs(med) * 0.01, 1e-9)
        edges = np.arange(t[0], t[-1] + 1e-9, trend_s / 2)  # half-overlapping windows
        slopes = [s for a in edges if (s := _slope(t[(t >= a) & (t < a + trend_s)],
                                                   v[(t >= a) & (t < a + trend_s)])) is not None]
        if slopes:
            sm = float(np.median(slopes))
            spread = float(np.median(np.abs(np.asarray(slopes) - sm))) * 1.4826
        else:
            sm, spread = 0.0, 0.0
        # The slope floor: one level scale over the whole normal period (a steady series has no slope spread).
        return cls(med, scale, sm, max(spread, scale / span_s), float(q01), float(q99))


@dataclass
class _Tracked:
    group: Group
    ranked_at: float | None = None
    dirty: bool = True  # new evidence since the last ranking
    top: str | None = None
    signal_entries: int = 0
    severity: str = "warning"


class IncidentEngine:
    name = "incidents"

    def __init__(self, sink: IncidentSink, series: SeriesSource | None = None, topology: Topology | None = None,
                 changes: ChangesFn | None = None, settings: IncidentSettings | None = None,
                 user_facing: Iterable[str] = (), score_of: Callable[[np.ndarray], np.ndarray] | None = None,
                 publish: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.settings = settings or IncidentSettings()
        self.sink = sink
        self.series = series
        self.topology = topology
        self.changes = changes
        self.user_facing = set(user_facing)
        self.score_of = score_of
        self.publish = publish
        self.correlator = Correlator(self._related, self.settings.correlation)
        self._pending: list[Signal] = []
        self._pending_lock = threading.Lock()
        self._lock = threading.RLock()
        self._tracked: dict[int, _Tracked] = {}  # by group key
        self._baselines: dict[tuple[int, float], Baseline] = {}  # by (series, since)
        self._now: float | None = None
        self.rankings = 0

    # --- input -----------------------------------------------------------------------------------
    def offer(self, signals: Iterable[Signal]) -> None:
        with self._pending_lock:
            self._pending.extend(signals)

    def process(self, batch: SeriesBatch, series_ids: np.ndarray, now_ms: int) -> None:
        """After each stored batch: the batch's newest sample is "now" (its event time, even when the data
        lags the wall clock, as in a backfill or a demo faster than real time)."""
        if batch.n_samples:
            self.step(float(batch.ts_ms.max()) / 1000.0)

    def _related(self, a: str, b: str) -> bool:
        if a == b:
            return True
        topo = self.topology
        return topo is not None and topo.connected(a, b, self.settings.correlation.max_hops)

    def _active(self, s: SignalState) -> bool:
        """Whether a signal's condition is still present: an alert still firing, a prediction not withdrawn,
        an anomalous series still scored anomalous *or* still away from its level before the signal (a
        detector adapts to a new level; a leak that goes on is not mitigated because it became usual)."""
        if s.kind != "anomaly":
            return not s.resolved
        sid = _series_of(s)
        if sid is None:
            return False
        if self.score_of is not None:
            score = self.score_of(np.array([sid], np.int64))
            if len(score) and np.isfinite(score[0]) and score[0] >= self.settings.active_score:
                return True
        return self._away_from_baseline(sid, s.first_time, s.metric)

    def _away_from_baseline(self, sid: int, since: float, metric: str | None, after: float | None = None) -> bool:
        """Whether the series is still unlike the hour before ``since`` (counters by their rate): its median
        over the last ``recent_s`` is ``onset_z`` robust deviations from that hour's, or its slope over the
        last ``trend_s`` is that far from the hour's usual slopes (a disk still filling, a leak still leaking,
        even while the level is not yet far from where it was)."""
        if self.series is None or self._now is None:
            return False
        cfg = self.settings
        counter = is_counter(metric or "")
        base = self._baselines.get((sid, since))
        if base is None:
            ts, vs = self._read(sid, since - cfg.baseline_s, since - cfg.rca.guard_s, counter)
            if len(vs) < 4:
                return False
            base = self._baselines[(sid, since)] = Baseline.of(ts, vs, cfg.trend_s, cfg.baseline_s)
        start = self._now - max(cfg.recent_s, cfg.trend_s)
        if after is not None:  # judging a fix: only what came after it (the fix itself moves the series)
            start = max(start, after)
        ts, vs = self._read(sid, start, self._now, counter)
        if after is not None and np.isfinite(vs).sum() < 2:
            return True  # too little data since the fix to tell
        if len(vs) == 0 or not np.isfinite(vs).any():
            return False
        # judging a fix, the level is that of its latest samples (a rollout or a warm-up moves it gradually)
        recent = vs[ts >= self._now - (VERIFY_RECENT_S if after is not None else cfg.recent_s)]
        level = float(np.nanmedian(recent)) if len(recent) else np.nan
        if (np.isfinite(level) and abs(level - base.median) / base.scale >= cfg.rca.onset_z
                and not base.low <= level <= base.high):
            return True
        if after is not None:
            return False  # a few samples since a fix tell its level, not its slope
        slope = _slope(ts, vs)
        return slope is not None and abs(slope - base.slope) / base.slope_scale >= cfg.rca.onset_z

    def _read(self, sid: int, start: float, end: float, counter: bool) -> tuple[np.ndarray, np.ndarray]:
        assert self.series is not None
        ts, vs = self.series.read(sid, int(start * 1000), int(end * 1000))
        t, v = ts.astype(np.float64) / 1000.0, vs.astype(np.float64)
        return counter_rates(t, v) if counter else (t, v)

    # --- the step --------------------------------------------------------------------------------
    def step(self, now: float) -> None:
        with self._pending_lock:
            sigs, self._pending = self._pending, []
        with self._lock:
            now = now if self._now is None else max(now, self._now)  # event time never moves back
            self._now = now
            changes = self.correlator.add(sigs) if sigs else []
            changes += self.correlator.tick(now, self._active)
            for ch in changes:
                self._apply(ch)
            for tr in list(self._tracked.values()):
                self._maybe_rank(tr, now)
            for key in [k for k, tr in self._tracked.items() if tr.group.status == "resolved"]:
                del self._tracked[key]
            if len(self._baselines) > 10_000:
                self._baselines.clear()

    def _apply(self, ch: Change) -> None:
        g = ch.group
        if ch.kind == "opened":
            severity = incident_severity(ch.signals, g.services, self.user_facing)[0]
            fields: dict[str, Any] = {
                "title": title(sorted(g.services), list(g.signals.values()), None), "status": "open",
                "severity": severity, "opened_at": g.opened_at, "updated_at": ch.time, "services": sorted(g.services),
                "root_causes": [], "confidence": None, "summary": "", "category": None, "signal_count": len(g.signals)}
            g.incident_id = self.sink.create(fields)
            tr = self._tracked[g.key] = _Tracked(g, severity=severity)
            self.sink.upsert_signals(g.incident_id, [s.as_dict() for s in g.signals.values()])
            tr.dirty = True
            first = sorted(ch.signals, key=lambda s: s.first_time)  # those that opened it; later ones follow
            entries = [TimelineEntry(s.first_time, "signal", f"{s.kind}: {s.summary}",
                                     data={"fingerprint": s.fingerprint, "service": s.service}) for s in first]
            entries = entries[:MAX_SIGNAL_ENTRIES]
            tr.signal_entries = len(entries)
            entries.append(TimelineEntry(ch.time, "opened", f"incident opened: {len(g.signals)} related signals on "
                                         f"{', '.join(sorted(g.services)) or 'unknown services'}"))
            self.sink.add_timeline(g.incident_id, [e.as_dict() for e in entries])
            self._announce(g, "opened")
            return
        tr0 = self._tracked.get(g.key)
        if tr0 is None or g.incident_id is None:
            return
        tr = tr0
        iid = g.incident_id
        if ch.kind == "updated":
            self.sink.upsert_signals(iid, [s.as_dict() for s in ch.signals])
            new = [s for s in ch.signals if s.count == 1]
            entries = []
            for s in new:
                if tr.signal_entries < MAX_SIGNAL_ENTRIES:
                    entries.append(TimelineEntry(s.first_time, "signal", f"{s.kind}: {s.summary}",
                                                 data={"fingerprint": s.fingerprint, "service": s.service}))
                    tr.signal_entries += 1
            if entries:
                self.sink.add_timeline(iid, [e.as_dict() for e in entries])
            self.sink.update(iid, {"updated_at": ch.time, "services": sorted(g.services),
                                   "signal_count": len(g.signals)})
            tr.dirty = True
        elif ch.kind == "mitigated":
            self.sink.update(iid, {"status": "mitigated", "mitigated_at": ch.time, "updated_at": ch.time})
            self.sink.add_timeline(iid, [TimelineEntry(ch.time, "mitigated",
                                                       "mitigated: no signal is active any more").as_dict()])
            self._announce(g, "mitigated")
        elif ch.kind == "reopened":
            self.sink.update(iid, {"status": "open", "mitigated_at": None, "updated_at": ch.time})
            entry = TimelineEntry(ch.time, "reopened", "reopened: a related signal arrived")
            self.sink.add_timeline(iid, [entry.as_dict()])
            tr.dirty = True
            self._announce(g, "reopened")
        elif ch.kind == "resolved":
            self.sink.update(iid, {"status": "resolved", "resolved_at": ch.time, "updated_at": ch.time})
            self.sink.add_timeline(iid, [TimelineEntry(
                ch.time, "resolved",
                f"resolved: quiet for {self.settings.correlation.resolve_after_s / 60:.0f} min").as_dict()])
            self._announce(g, "resolved")

    def _announce(self, g: Group, what: str) -> None:
        if self.publish is not None and g.incident_id is not None:
            self.publish("incident", {"id": g.incident_id, "change": what, "status": g.status,
                                      "services": sorted(g.services)})

    # --- ranking ---------------------------------------------------------------------------------
    def _candidates(self, g: Group) -> set[str]:
        out = set(g.services)
        topo = self.topology
        if topo is not None:
            for s in list(g.services):
                out |= set(topo.downstream(s, 2)) | set(topo.upstream(s, 1))
        return out

    def rank(self, g: Group, now: float) -> RcaResult | None:
        if self.series is None:
            return None
        cfg = self.settings
        # a prediction-led incident is ranked against the period before its trend began (by the time of the
        # prediction a leak is hours old), falling back to its first signal when that has too little data
        trend = g.trend_began
        result = None
        for onset in ([trend] if trend is not None and trend < g.first_time else []) + [g.first_time]:
            start = onset - cfg.baseline_s - cfg.rca.guard_s
            end = min(now, onset + cfg.span_s)
            times, values, cols = read_window(self.series, self._candidates(g), start, end, cfg.step_s)
            changes = self.changes(onset - cfg.rca.change_window_s, end) if self.changes else []
            topo = self.topology if self.topology is not None and self.topology.edge_count() else None
            result = rank_incident(times, values, cols, onset, topo, changes, cfg.rca)
            if result.candidates:
                break
        return result

    def _maybe_rank(self, tr: _Tracked, now: float) -> None:
        g = tr.group
        young = g.opened_at is not None and now - g.opened_at <= self.settings.rerank_for_s
        if g.incident_id is None or g.status != "open" or not (tr.dirty or young):
            return
        # Until a first cause is named, retry every scrape (a fix waits on it); then every rca_every_s.
        every = self.settings.rca_every_s if tr.top is not None else min(15.0, self.settings.rca_every_s)
        if tr.ranked_at is not None and now - tr.ranked_at < every:
            return
        try:
            result = self.rank(g, now)
        except Exception:
            log.exception("root-cause ranking of incident %s failed", g.incident_id)
            result = None
        tr.ranked_at, tr.dirty = now, False
        self.rankings += 1
        roots = [c.as_dict() for c in result.candidates] if result is not None else []
        confidence = result.confidence if result is not None and roots else None
        if not roots:
            roots = _predicted_causes(g)
            confidence = "medium" if roots else None
        root = roots[0] if roots else None
        sev, reasons = incident_severity(g.signals.values(), g.services, self.user_facing)
        cat = categorize(root["metric"], root.get("labels")) if root else None
        fields: dict[str, Any] = {
            "title": title(sorted(g.services), list(g.signals.values()), root),
            "severity": sev, "root_causes": roots,
            "confidence": confidence,
            "summary": summarize(sorted(g.services), list(g.signals.values()), g.first_time, now, roots,
                                 confidence, reasons),
            "category": cat[0] if cat else None, "updated_at": now,
        }
        assert g.incident_id is not None
        self.sink.update(g.incident_id, fields)
        entries = []
        if root is not None and root["service"] != tr.top:
            entries.append(TimelineEntry(now, "root_cause",
                                         f"most likely cause: {root['service']} ({root['metric']}), "
                                         f"{root['score']:.0%}, {fields['confidence']}",
                                         data={"service": root["service"], "metric": root["metric"]}))
            tr.top = root["service"]
        if sev != tr.severity:
            entries.append(TimelineEntry(now, "severity", f"severity {sev}: {'; '.join(reasons)}"))
            tr.severity = sev
        if entries:
            self.sink.add_timeline(g.incident_id, [e.as_dict() for e in entries])
        if self.publish is not None and any(e.kind == "root_cause" for e in entries):
            self.publish("incident", {"id": g.incident_id, "change": "ranked", "status": g.status,
                                      "services": sorted(g.services), "title": fields["title"], "severity": sev,
                                      "confidence": fields["confidence"], "summary": fields["summary"],
                                      "root_causes": [{"service": c["service"], "metric": c["metric"],
                                                       "score": c["score"]} for c in roots[:3]]})

    # --- remediation -----------------------------------------------------------------------------
    def recovery(self, incident_id: int, now: float, after: float | None = None,
                 service: str | None = None) -> tuple[bool, str]:
        """Whether the incident's cause is gone: its predictions withdrawn, and the series of its ranked root
        cause back to how they were before the incident (not merely no longer anomalous: a fix itself moves a
        series, and the detector may flag that move). Used to verify a fix."""
        with self._lock:
            tr = next((t for t in self._tracked.values() if t.group.incident_id == incident_id), None)
            if tr is None:
                return True, "the incident is no longer tracked (resolved)"
            g = tr.group
            self._now = max(now, self._now or now)
            who = service or tr.top  # the fixed service, or the incident's top cause
            pending = [s for s in g.signals.values() if s.kind == "prediction" and not s.resolved
                       and (service is None or s.service == service)]
            if pending:
                return False, f"a breach is still predicted: {pending[0].summary}"
            since = min(g.first_time, g.trend_began or g.first_time)
            cause = [s for s in g.signals.values() if s.kind == "anomaly" and s.service == who]
            away = [s for s in cause if (sid := _series_of(s)) is not None
                    and self._away_from_baseline(sid, since, s.metric, after)]
            if away:
                return False, f"{away[0].metric} of {away[0].service} is not back to its level before the incident"
            alerts = [s for s in g.signals.values() if s.kind == "alert" and not s.resolved
                      and (service is None or s.service == service)]
            if alerts:
                return False, f"alert {alerts[0].metric} still firing"
            return True, (f"{len(cause)} series of {who} back to their level before the incident"
                          if cause else "no prediction or alert of the incident is active")

    def mitigate(self, incident_id: int, now: float, reason: str) -> bool:
        """Mark an open incident mitigated (a verified fix). Returns whether it was open."""
        with self._lock:
            tr = next((t for t in self._tracked.values() if t.group.incident_id == incident_id), None)
            if tr is None or tr.group.status != "open":
                return False
            g = tr.group
            g.status, g.mitigated_at = "mitigated", now
            self.sink.update(incident_id, {"status": "mitigated", "mitigated_at": now, "updated_at": now})
            self.sink.add_timeline(incident_id, [TimelineEntry(now, "mitigated", f"mitigated: {reason}").as_dict()])
            self._announce(g, "mitigated")
            return True

    # --- operators -------------------------------------------------------------------------------
    def resolved_by_operator(self, incident_id: int, now: float) -> None:
        with self._lock:
            self.correlator.close(incident_id, now)
            for key in [k for k, tr in self._tracked.items() if tr.group.incident_id == incident_id]:
                del self._tracked[key]

    def service_incidents(self) -> dict[str, str]:
        """Service -> the highest severity among its open incidents."""
        out: dict[str, str] = {}
        with self._lock:
            for tr in self._tracked.values():
                if tr.group.status != "open":
                    continue
                for s in tr.group.services:
                    if SEVERITY_RANK[tr.severity] >= SEVERITY_RANK.get(out.get(s, "info"), 0):
                        out[s] = tr.severity
        return out


def _predicted_causes(g: Group) -> list[dict[str, Any]]:
    """When the ranking finds nothing (a trend too slow to stand out in its window), the series predicted to
    breach are the causes: their forecast is the evidence."""
    preds = [st for st in g.signals.values() if st.kind == "prediction"]  # confirmed ones too: still the cause
    preds.sort(key=lambda st: (st.resolved, -SEVERITY_RANK.get(st.severity, 0), st.first_time))
    share = 1.0 / len(preds) if preds else 0.0
    return [{"service": st.service, "metric": st.metric, "labels": dict(st.labels), "score": share, "z": None,
             "onset": g.trend_began, "evidence": [{"type": "prediction", "metric": st.metric, "text": st.summary}]}
            for st in preds]


def _series_of(s: SignalState) -> int | None:
    """The series id of an anomaly signal (its fingerprint is ``anomaly:<series id>``)."""
    try:
        return int(s.fingerprint.split(":", 1)[1])
    except (IndexError, ValueError):
        return None
