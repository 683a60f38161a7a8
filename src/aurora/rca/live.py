"""Root-cause ranking for a live incident: which service (and metric) most likely started it, and why.

Pure: aligned arrays in, ranked candidates with evidence out. ``aurora.incidents.engine`` reads the
incident's series from the store and calls ``rank_incident``; the simulator bench calls it on the fleet's
own arrays, so both measure the same code.

Four kinds of evidence, each kept on the candidate so a person can check it:

* **Magnitude on a robust scale.** Every series is standardised against its normal period (the hour
  before the incident's onset) with the median and the inter-quartile range, at least 0.1 % of its
  level, so ``up`` going from 1 to 0 counts. A series' magnitude is the
  largest |z| *held for two consecutive samples* after the onset, so one spike is not evidence.
  Configuration-like series (limits, capacities, maxima, replica counts) are not evidence: they change
  because someone acted.
* **Trend.** A slow burn (a disk filling, a leak) shows in its slope before its level is far off: the
  slope since the onset (the difference of the halves' medians, so one spike cannot fake it) against the
  series' slopes over 10-minute windows of the normal period (for a whole-number count, a slope is known to
  half a unit over that period). A series' magnitude is the larger of the two.
* **Onset.** The first time a series' |z| passes ``onset_z`` for two samples. The cause starts first.
* **Topology.** Failures travel up the call graph: a slow or failing callee makes its callers slow or
  failing, not the reverse. Load travels down: more requests at the entry mean more requests below. So a
  candidate *explains* another anomalous service when it is downstream of it (for fault evidence:
  latency, errors, saturation, memory...) or upstream of it (for load evidence: a rise in request
  rate), and started no later. Candidates that explain many others rise; a candidate whose own symptoms
  are explained by an earlier one is marked down.
* **Changes.** A deployment or configuration change on a candidate shortly before the onset raises it.
* **Direction.** A used resource (memory, CPU, connections, disk, a queue's depth) is fault evidence only
  when it rises: one that falls (a cache giving memory back, a restart, less work) does not make callers
  fail, so its fall is not counted.

Scores are turned into shares that sum to 1 over the candidates (a softmax), and confidence is stated
honestly: ``uncertain`` when the top two are close or the leader holds under half the mass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from aurora.rca.baseline import REL_RESOLUTION

CONFIG_LIKE = re.compile(r"(_limit(_bytes)?|_capacity(_bytes)?|_max|_replicas|_total_bytes|_info|_created)$")
LOAD_METRICS = re.compile(r"(requests?_total|requests?_per_second|_rps|throughput)")
CHANGE_KINDS = ("deployment", "config_change", "rollback")
COUNT_RESOLUTION = 0.5  # the trend's scale floor for a whole-number count: half a unit
RESOURCE_USED = re.compile(r"(memory_(working_set|used|usage|rss)|cpu_(utilization|usage|seconds)"
                           r"|connections_(open|active|in_use|used)|disk_used|queue_depth|backlog|open_fds)")


class Graph(Protocol):
    """Services ``service`` calls (downstream) or that call it (upstream), within ``hops``."""

    def downstream(self, service: str, hops: int) -> Iterable[str]: ...

    def upstream(self, service: str, hops: int) -> Iterable[str]: ...


@dataclass(frozen=True)
class Column:
    service: str
    metric: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def is_load(self) -> bool:
        """A request-rate series (success or total), where a rise travels from caller to callee."""
        if not LOAD_METRICS.search(self.metric):
            return False
        code = self.labels.get("code") or self.labels.get("status") or self.labels.get("status_code") or ""
        return not code.startswith(("4", "5"))

    @property
    def is_resource(self) -> bool:
        """A used resource, which causes trouble by rising (see "Direction" above)."""
        return bool(RESOURCE_USED.search(self.metric))

    def describe(self) -> str:
        extra = {k: v for k, v in self.labels.items() if k not in ("service", "host", "instance", "job")}
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(extra.items()))
        return f"{self.metric}{{{inner}}}" if inner else self.metric


@dataclass(frozen=True)
class ChangeRef:
    kind: str
    service: str
    time: float
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RcaSettings:
    guard_s: float = 60.0  # the normal period ends this long before the onset (the onset is an estimate)
    onset_z: float = 4.0  # |z| from which a series counts as anomalous
    min_z: float = 6.0  # a service is a candidate when one of its series reaches this (170 series x 80 samples
    # of noise reach 4-6 by chance within 20 min; 6 was chosen on development seeds, see bench incidents)
    trend_window_s: float = 600.0  # slopes are compared over windows this long
    onset_tolerance_s: float = 45.0  # "started no later" allows this much (about three scrapes)
    change_window_s: float = 1800.0  # a change this long before the onset (or just after) can be the cause
    w_magnitude: float = 1.0
    w_unexplained: float = 2.0
    w_explains: float = 1.0
    w_explained: float = 1.0
    w_change: float = 2.0
    w_first: float = 0.5
    uncertain_gap: float = 0.15


@dataclass
class Candidate:
    service: str
    metric: str
    labels: dict[str, str]
    score: float  # share of the ranking's mass, 0..1
    raw: float
    z: float
    onset: float | None
    evidence: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "metric": self.metric, "labels": self.labels, "score": self.score,
                "z": self.z, "onset": self.onset, "evidence": self.evidence}


@dataclass
class RcaResult:
    candidates: list[Candidate]
    confidence: str  # high | medium | uncertain | none
    onset: float | None
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"confidence": self.confidence, "onset": self.onset, "why": self.why,
                "candidates": [c.as_dict() for c in self.candidates]}


def robust_z(times: np.ndarray, values: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: z over all rows against the ``normal`` rows' median and scale, and (median, scale)."""
    n = values[normal]
    with np.errstate(invalid="ignore", all="ignore"):
        med = np.nanmedian(n, axis=0) if len(n) else np.full(values.shape[1], np.nan)
        q75, q25 = (np.nanpercentile(n, [75, 25], axis=0) if len(n) else (med, med))
        scale = q75 - q25
        std = np.nanstd(n, axis=0) if len(n) else np.full(values.shape[1], np.nan)
        scale = np.where(scale > 0, scale, std)
        # At least 0.1 % of the level (as the offline ranker, ``baseline.REL_RESOLUTION``), or 1e-9 for a
        # zero level: a change from a constant (up 1 -> 0, errors 0 -> some) is large but finite, and a
        # quantity that moves in coarse steps (memory pages) is not judged by its quiet spells.
        floor = np.maximum(np.abs(med) * REL_RESOLUTION, 1e-9)
        scale = np.where(np.isfinite(scale) & (scale > floor), scale, floor)
        z = (values - med) / scale
    return z, med, scale


def whole_counts(values: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Per column: a count that moves by whole units in the normal period (connections, queue depth), not a
    0/1 state such as ``up``."""
    n = values[normal]
    whole = np.all(np.isnan(n) | (n == np.round(n)), axis=0) & np.isfinite(n).any(axis=0)
    state = np.all(np.isnan(n) | (n == 0) | (n == 1), axis=0)
    return np.asarray(whole & ~state)


def column_slopes(t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A robust slope per column (per second): the median of the second half minus the median of the first,
    over the time between the halves' middles. One spike cannot fake a trend; NaN with fewer than four."""
    h = len(t) // 2
    if h < 2:
        return np.full(values.shape[1], np.nan)
    with np.errstate(invalid="ignore", all="ignore"):
        a = np.nanmedian(values[:h], axis=0) if np.isfinite(values[:h]).any() else np.full(values.shape[1], np.nan)
        b = np.nanmedian(values[h:], axis=0) if np.isfinite(values[h:]).any() else np.full(values.shape[1], np.nan)
    dt = float(np.median(t[h:]) - np.median(t[:h]))
    return (b - a) / dt if dt > 0 else np.full(values.shape[1], np.nan)


def trend_z(times: np.ndarray, values: np.ndarray, normal: np.ndarray, after: np.ndarray, scale: np.ndarray,
            window_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How unusual each column's slope since the onset is: against its slopes over half-overlapping windows
    of the normal period (median, MAD), the spread floored at one robust scale over the normal period.
    Returns (z, slope after, usual slope); z is 0 until the anomalous period spans half a window."""
    k = values.shape[1]
    tn, ta = times[normal], times[after]
    zero = np.zeros(k)
    if len(ta) < 4 or ta[-1] - ta[0] < window_s / 2 or len(tn) < 8:
        return zero, np.full(k, np.nan), np.full(k, np.nan)
    starts = np.arange(tn[0], tn[-1] - window_s + 1e-9, window_s / 2)
    vn = values[normal]
    slopes = np.array([column_slopes(tn[(tn >= a) & (tn < a + window_s)], vn[(tn >= a) & (tn < a + window_s)])
                       for a in starts]) if len(starts) else np.full((1, k), np.nan)
    with np.errstate(invalid="ignore", all="ignore"):
        usual = np.nanmedian(slopes, axis=0) if np.isfinite(slopes).any() else np.zeros(k)
        usual = np.nan_to_num(usual)
        spread = np.nan_to_num(np.nanmedian(np.abs(slopes - usual), axis=0) * 1.4826)
    span = max(tn[-1] - tn[0], window_s)
    spread = np.maximum(spread, scale / span)
    s_after = column_slopes(ta, values[after])
    z = np.nan_to_num(np.abs(s_after - usual) / spread)
    return z, s_after, usual


def _held(absz: np.ndarray) -> np.ndarray:
    """|z| reached by two consecutive samples (the smaller of each pair), per row; NaN-safe."""
    a = np.nan_to_num(absz, nan=0.0)
    out = np.zeros_like(a)
    if len(a) > 1:
        out[:-1] = np.minimum(a[:-1], a[1:])
    return out


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def rank_incident(times: np.ndarray, values: np.ndarray, columns: Sequence[Column], onset: float,
                  graph: Graph | None = None, changes: Sequence[ChangeRef] = (),
                  settings: RcaSettings | None = None, max_candidates: int = 5) -> RcaResult:
    """Rank the services of ``columns`` as the incident's root cause.

    ``times`` (rows, seconds), ``values`` (rows x columns, NaN where missing, counters already as rates),
    ``onset``: the incident's first signal (event time). Rows before ``onset - guard_s`` are the normal
    period, the rest the anomalous one.
    """
    cfg = settings or RcaSettings()
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64).reshape(len(times), len(columns))
    keep = [i for i, c in enumerate(columns) if not CONFIG_LIKE.search(c.metric)]
    cols = [columns[i] for i in keep]
    values = values[:, keep]
    normal = times < onset - cfg.guard_s
    after = ~normal
    if normal.sum() < 4 or after.sum() < 2 or not cols:
        return RcaResult([], "none", onset, "not enough data around the onset to rank causes")
    z, med, scale = robust_z(times, values, normal)
    rises_only = np.array([c.is_resource for c in cols], dtype=bool)
    az = np.abs(np.where(rises_only[None, :], np.maximum(z, 0.0), z))
    held = _held(np.where(after[:, None], az, 0.0))
    mag = held.max(axis=0)
    peak_row = held.argmax(axis=0)
    crossing = held >= cfg.onset_z
    first_row = np.where(crossing.any(axis=0), crossing.argmax(axis=0), -1)
    col_onset = np.where(first_row >= 0, times[np.maximum(first_row, 0)], np.nan)
    # A slow burn (a disk filling, a leak) shows in its slope long before its level is far from usual.
    # A slope read off whole-number steps is known to about half a unit over the normal period, not to the
    # level's 0.1 % (a pool going from 2 to 5 connections was 20,000 deviations of trend).
    trend_scale = np.where(whole_counts(values, normal), np.maximum(scale, COUNT_RESOLUTION), scale)
    tz, slope_after, slope_usual = trend_z(times, values, normal, after, trend_scale, cfg.trend_window_s)
    tz = np.where(rises_only & ~(slope_after > slope_usual), 0.0, tz)
    by_trend = tz > mag
    mag = np.where(by_trend, tz, mag)
    first_after = times[after][0]
    col_onset = np.where(by_trend & ~np.isfinite(col_onset) & (tz >= cfg.onset_z), first_after, col_onset)

    # Per service: the strongest fault series and the strongest load series, and the earliest onset.
    services = sorted({c.service for c in cols})
    per: dict[str, dict[str, Any]] = {}
    for s in services:
        idx = [i for i, c in enumerate(cols) if c.service == s]
        fault = [i for i in idx if not cols[i].is_load]
        rising = [bool(slope_after[i] > slope_usual[i]) if by_trend[i] else bool(z[peak_row[i], i] > 0) for i in idx]
        load = [i for i, up in zip(idx, rising, strict=True) if cols[i].is_load and up]
        best = max(idx, key=lambda i: mag[i])
        bf = max(fault, key=lambda i: mag[i]) if fault else None
        bl = max(load, key=lambda i: mag[i]) if load else None
        ons = [col_onset[i] for i in idx if mag[i] >= cfg.onset_z and np.isfinite(col_onset[i])]
        per[s] = {"best": best, "fault": bf, "load": bl, "mag": float(mag[best]),
                  "fault_mag": float(mag[bf]) if bf is not None else 0.0,
                  "load_mag": float(mag[bl]) if bl is not None else 0.0,
                  "onset": min(ons) if ons else None,
                  "fault_onset": (float(col_onset[bf]) if bf is not None and mag[bf] >= cfg.onset_z else None),
                  "load_onset": (float(col_onset[bl]) if bl is not None and mag[bl] >= cfg.onset_z else None)}
    cands = [s for s in services if per[s]["mag"] >= cfg.min_z]
    if not cands:
        return RcaResult([], "none", onset, f"no series moved beyond {cfg.onset_z:g} robust deviations after the onset")
    earliest = min(per[s]["onset"] for s in cands if per[s]["onset"] is not None)

    def no_later(a: float | None, b: float | None) -> bool:
        return a is not None and b is not None and a <= b + cfg.onset_tolerance_s

    cand_set = set(cands)
    down = {s: (set(graph.downstream(s, 6)) & cand_set if graph else set()) for s in cands}
    up = {s: (set(graph.upstream(s, 6)) & cand_set if graph else set()) for s in cands}
    callers = {s: (set(graph.upstream(s, 1)) if graph else set()) for s in cands}
    callees = {s: (set(graph.downstream(s, 1)) if graph else set()) for s in services}

    def has(s: str, what: str) -> bool:
        return s in per and per[s][f"{what}_mag"] >= cfg.min_z

    # Why each candidate's anomaly may not be its own: (class, explaining service, reason).
    because: dict[str, list[tuple[str, str, str]]] = {s: [] for s in cands}
    for s in cands:
        p = per[s]
        if has(s, "load"):
            for c in up[s]:
                if has(c, "load") and no_later(per[c]["load_onset"], p["load_onset"]):
                    because[s].append(("load", c, f"more requests from {c}, whose load rose first"))
            # A caller sends more to one dependency when another fails: cache misses fall through to
            # the database, failed calls are retried or rerouted.
            for c in callers[s]:
                for x in callees.get(c, set()) - {s}:
                    if has(x, "fault") and no_later(per[x]["fault_onset"], p["load_onset"]):
                        because[s].append(("load", x, f"{c} sends it more since {x} failed"))
        if has(s, "fault"):
            for x in down[s]:
                if has(x, "fault") and no_later(per[x]["fault_onset"], p["fault_onset"]):
                    because[s].append(("fault", x, f"its dependency {x} failed first"))
            if has(s, "load") and no_later(p["load_onset"], p["fault_onset"]):
                because[s].append(("fault", s, "its own load rose first"))

    def unexplained(s: str) -> list[str]:
        classes = [k for k in ("load", "fault") if has(s, k)]
        covered = {k for k, _, _ in because[s]}
        # A fault explained only by the service's own load is as explained as that load.
        if "fault" in covered and all(x == s for k, x, _ in because[s] if k == "fault") and "load" in classes \
                and "load" not in covered:
            covered.discard("fault")
        return [k for k in classes if k not in covered]

    explains: dict[str, list[str]] = {s: sorted({b for b in cands if b != s and any(x == s for _, x, _ in because[b])})
                                      for s in cands}
    n_other = max(1, len(cands) - 1)
    raws: dict[str, float] = {}
    evidences: dict[str, list[dict[str, Any]]] = {}
    for s in cands:
        p = per[s]
        i = p["best"]
        c = cols[i]
        raw = cfg.w_magnitude * math.log1p(p["mag"])
        if by_trend[i]:
            ev: list[dict[str, Any]] = [{
                "type": "trend", "metric": c.metric, "series": c.describe(), "z": float(tz[i]),
                "slope_per_s": float(slope_after[i]), "usual_slope_per_s": float(slope_usual[i]),
                "text": (f"{c.describe()} has been {'rising' if slope_after[i] > slope_usual[i] else 'falling'} "
                         f"by {_fmt(abs(float(slope_after[i])) * 60)}/min since the onset against a usual "
                         f"{_fmt(float(slope_usual[i]) * 60)}/min: {float(tz[i]):.1f} robust deviations"),
            }]
        else:
            ev = [{
                "type": "magnitude", "metric": c.metric, "series": c.describe(), "z": float(z[peak_row[i], i]),
                "baseline_median": float(med[i]), "baseline_scale": float(scale[i]),
                "observed": float(values[peak_row[i], i]), "at": float(times[peak_row[i]]),
                "text": (f"{c.describe()} reached {_fmt(float(values[peak_row[i], i]))} against a usual "
                         f"{_fmt(float(med[i]))} (±{_fmt(float(scale[i]))}): {abs(float(z[peak_row[i], i])):.1f} "
                         "robust deviations"),
            }]
        if p["onset"] is not None:
            lag = p["onset"] - earliest
            text = "started first" if lag <= 0 else f"started {lag:.0f} s after the first anomalous service"
            ev.append({"type": "onset", "at": p["onset"], "lag_s": lag, "text": text})
            if lag <= 0:
                raw += cfg.w_first
        if graph is not None:
            own = unexplained(s)
            if own:
                raw += cfg.w_unexplained
                ev.append({"type": "topology", "unexplained": own,
                           "text": f"nothing upstream of the failure explains its {' and '.join(own)} anomaly"})
            else:
                raw -= cfg.w_explained
                reasons = sorted({r for _, _, r in because[s]})
                ev.append({"type": "topology", "explained_by": sorted({x for _, x, _ in because[s] if x != s}),
                           "text": "a symptom: " + "; ".join(reasons)})
            if explains[s]:
                raw += cfg.w_explains * len(explains[s]) / n_other
                ev.append({"type": "topology", "explains": explains[s],
                           "text": f"can explain {len(explains[s])} other anomalous service(s) "
                                   f"({', '.join(explains[s])}) through the service graph"})
        best_change = None
        for ch in changes:
            if ch.service != s or ch.kind not in CHANGE_KINDS or p["onset"] is None:
                continue
            before = p["onset"] - ch.time
            if -120.0 <= before <= cfg.change_window_s and (best_change is None or ch.time > best_change.time):
                best_change = ch
        if best_change is not None and p["onset"] is not None:
            before = p["onset"] - best_change.time
            raw += cfg.w_change * math.exp(-max(before, 0.0) / cfg.change_window_s)
            version = best_change.attributes.get("version")
            what = f"{best_change.kind}{f' {version}' if version else ''}"
            when = f"{abs(before) / 60:.0f} min {'before' if before >= 0 else 'after'} the onset"
            ev.append({"type": "change", "kind": best_change.kind, "at": best_change.time,
                       "attributes": best_change.attributes, "text": f"{what} on {s} {when}"})
        raws[s] = raw
        evidences[s] = ev
    order = sorted(cands, key=lambda s: (-raws[s], s))
    mx = max(raws.values())
    w = {s: math.exp(raws[s] - mx) for s in cands}
    total = sum(w.values())
    out = []
    for s in order[:max_candidates]:
        p = per[s]
        i = p["best"]
        out.append(Candidate(s, cols[i].metric, dict(cols[i].labels), w[s] / total, raws[s], float(mag[i]),
                             p["onset"], evidences[s]))
    top = out[0]
    second = out[1].score if len(out) > 1 else 0.0
    if top.score - second < cfg.uncertain_gap or top.score < 0.5:
        confidence = "uncertain"
    elif top.score >= 0.75 and top.score >= 2.5 * second:
        confidence = "high"
    else:
        confidence = "medium"
    why = "; ".join(e["text"] for e in top.evidence)
    return RcaResult(out, confidence, onset, why)
