"""``aurora bench e2e``: the closed loop on the simulated fleet: detect, find the root cause, fix, verify.

Per scenario and seed the fleet runs step by step in event time (one scrape = 15 s) and every stage
sees only what has happened so far:

* **detect**: Aurora's ensemble detector (``aurora.detect.ensemble.EnsembleDetector``, the code the live
  engine runs) is updated with every series each step, with the sample's event time in unix seconds
  (counters ``*_total`` as per-second rates). An alert is a sample whose ``alarm`` is set (the consensus
  score passed the series' adaptive threshold outside the flap-suppression hold), as in the live engine:
  no extra persistence rule of the bench's own (one was measured and dropped, see *Seeds* below).
  *Detected* = the first alert after the fault's onset on a series *of the fault's services*: its root
  cause, where it was injected, where it is fixed (``on_fault``: the series' ``service`` label is one of
  them). The first ``warmup_s`` of a run (the detector learning a fresh fleet) count for nothing.
* **false alarms**: every alert of a fault-free run; on a faulty run, an alert before the onset, or one
  after it on a series not ``on_fault`` (some of these are the fault's cascade, e.g. the gateway's errors
  during a payment outage; they are counted apart as ``false_alarms_off_fault`` so both readings are
  possible). Rates are per 1,000 series-hours of exposure (series x scored hours: after the warm-up and
  before the onset for every series, after the onset for the series not on the fault) and, as before,
  per day of the whole fleet.
* **evidence**: each alert carries the analyzers that voted in it (calibrated score >= the ensemble's
  ``vote``), its expected range and the observed value; the report counts, per fault type, which
  analyzers voted in the alert that detected each fault, and which voted in the false alarms before an
  onset (all of a fault-free run's).
* **root cause**: from detection on, every ``eval_s`` the ranker orders the services' metrics (normal
  = the hour before detection, anomalous = since detection); *time to a correct root cause* is the
  first evaluation that puts the ground truth's root-cause service first.
* **remediation**: a pluggable ``Remediator`` (``decide(view) -> Action | None``) is asked every
  evaluation after detection. An action is applied to the fleet (``Fleet.apply_action``) and then
  *verified*: the fault's verification metric (below) must be back inside its normal band (from the
  hour before onset) for ``hold_s`` within ``verify_s``. This loop runs its own detector, not the engine, so
  its reported remediator is ``none`` and time to verified fix is ``null``; Aurora's remediation engine is
  measured by ``aurora bench e2e --engine`` (``aurora.bench.loop``), through the whole engine. The ``oracle`` remediator
  (applies the ground truth's fix at detection) only validates this harness; its figures are labelled
  as the oracle's and are not Aurora's.

Seeds: reported runs use ``seed_base = 1000`` onwards; development used seeds below 1000. On seeds 1 and 2
(8 faults + 24 h fault-free each) the detector's own alarm (detected 16/16, time to detect median 45 s, p90
11 min; 5.1 false alarms per 1,000 series-hours fault-free) was kept over requiring the alarm to be
confirmed by the next sample (15/16, p90 40 min, memory leaks found 45 min later instead of 75 s; no
false alarms): the live engine alerts on the alarm, and the fault-free false alarms were single errors on
quiet services at night, which is the detector's to fix, not the bench's to hide.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from aurora.bench.report import write_report
from aurora.detect.ensemble import EnsembleConfig, EnsembleDetector
from aurora.ingest.events import ChangeEvent
from aurora.rca.baseline import rank_root_causes, rank_services
from aurora.sim import DEFAULT_START, Fleet, get_scenario

# Faults whose fix is an action the fleet obeys (disk_fill and model_drift need "none": no action fixes them).
DEFAULT_SCENARIOS = ("memory_leak", "cpu_saturation", "slow_database", "bad_deployment", "dependency_outage",
                     "pool_exhaustion", "traffic_surge", "cache_failure")
SEED_BASE = 1000
MAX_LISTED = 100  # false alarms listed per case in the report
NO_ENGINE_NOTE = "this loop has no remediation engine; aurora bench e2e --engine measures Aurora's"

# What must return to normal for a fix to count as verified: (metric, whose service: root | fix).
# Mostly the root-cause metric itself; for saturation the fix (scale out) removes the effect, not the
# cause (CPU per request stays high), so the shed requests (error ratio) of the fixed service are checked.
VERIFY: dict[str, tuple[str, str]] = {
    "memory_leak": ("container_memory_working_set_bytes", "root"),
    "pool_exhaustion": ("db_connections_open", "root"),
    "slow_database": ("http_request_duration_seconds", "root"),
    "bad_deployment": ("http_request_error_ratio", "root"),
    "dependency_outage": ("http_request_error_ratio", "root"),
    "cache_failure": ("cache_hit_ratio", "root"),
    "cpu_saturation": ("http_request_error_ratio", "fix"),
    "traffic_surge": ("http_request_error_ratio", "fix"),
}


# ------------------------------------------------------------------------------ remediation protocol


@dataclass(frozen=True)
class Action:
    kind: str  # restart | rollback | scale_out | cache_flush | failover
    service: str


@dataclass(frozen=True)
class Alert:
    time: float
    service: str | None
    metric: str
    labels: dict[str, str]
    score: float
    analyzers: tuple[str, ...] = ()  # the analyzers that voted (calibrated score >= the ensemble's vote)
    expected: tuple[float, float] = (float("nan"), float("nan"))
    observed: float = float("nan")


@dataclass(frozen=True)
class ActionRecord:
    action: Action
    time: float
    right: bool  # the ground truth's fix on the ground truth's service
    effective: bool  # the simulator's own verdict: it removed an active fault
    verified_at: float | None = None
    verification: str = "pending"  # pending | verified | failed


@dataclass(frozen=True)
class IncidentView:
    """What a remediator may see: the engine's view of the incident, never the ground truth."""

    now: float
    detected_at: float
    alerts: tuple[Alert, ...]  # since an hour before detection
    root_causes: tuple[tuple[str, float], ...]  # services, most suspicious first (empty until ranked)
    events: tuple[ChangeEvent, ...]  # change events (deployments, restarts, ...) since an hour before detection
    topology: tuple[dict[str, Any], ...]
    actions: tuple[ActionRecord, ...]  # taken so far in this incident


class Remediator(Protocol):
    name: str

    def decide(self, view: IncidentView) -> Action | None: ...


RemediatorFactory = Callable[[dict[str, Any]], Remediator]


class NullRemediator:
    """No remediation in this loop (Aurora's engine is measured by ``bench e2e --engine``)."""

    name = "none"

    def decide(self, view: IncidentView) -> Action | None:
        return None


class OracleRemediator:
    """Applies the ground truth's fix at detection. Validates the harness; not a result of Aurora."""

    name = "oracle"

    def __init__(self, truth: dict[str, Any]) -> None:
        self.truth = truth

    def decide(self, view: IncidentView) -> Action | None:
        if view.actions or self.truth["fix"] == "none":
            return None
        return Action(self.truth["fix"], self.truth["fix_service"])


# ------------------------------------------------------------------------------------------ the loop


@dataclass(frozen=True)
class E2eConfig:
    warmup_s: float = 3600.0  # alerts in the first hour of a run are not counted (fresh detector)
    eval_s: float = 60.0  # RCA and remediator cadence after detection
    normal_s: float = 3600.0  # RCA's normal period: the hour before detection
    rca_horizon_s: float = 3600.0  # stop looking for a correct root cause this long after detection
    verify_s: float = 20 * 60.0  # verification window after an action
    hold_s: float = 120.0  # the verification metric must stay normal this long
    max_actions: int = 3  # per incident
    fault_free_hours: float = 24.0
    detector: EnsembleConfig = field(default_factory=EnsembleConfig)


def counter_rates(values: np.ndarray, counters: np.ndarray, step_s: float,
                  prev: np.ndarray | None = None) -> np.ndarray:
    """``values`` (steps x series) with the ``counters`` columns as per-second rates over ``step_s``; a reset
    (a drop) counts from zero. ``prev`` is the row before the first (none: the first rate is NaN)."""
    x = values.astype(np.float64, copy=True)
    c = values[:, counters]
    before = np.vstack([np.full((1, c.shape[1]), np.nan) if prev is None else prev[None, counters], c[:-1]])
    d = c - before
    x[:, counters] = np.where(d >= 0, d, c) / step_s
    if prev is None:
        x[0, counters] = np.nan
    return x


def _column_names(series: list[tuple[str, dict[str, str]]]) -> list[str]:
    out = []
    for metric, labels in series:
        svc = labels.get("service")
        if svc is None:
            out.append("")
            continue
        extra = "".join(f"_{k}={v}" for k, v in sorted(labels.items()) if k not in ("service", "host", "instance"))
        out.append(f"{svc}_{metric}{extra}")
    return out


def _band(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normal band per column from a normal period: [p1, p99] widened by half its width (and a small floor)."""
    lo, hi, med = np.nanpercentile(x, 1, axis=0), np.nanpercentile(x, 99, axis=0), np.nanmedian(x, axis=0)
    pad = 0.5 * (hi - lo) + 1e-3 * np.abs(med) + 1e-9
    return lo - pad, hi + pad


class _Case:
    """One closed-loop case, stepped in event time: ``observe`` (a scrape, detection, verification), then
    ``act`` (RCA, remediation, the stop rule). ``fork`` copies the whole case (fleet, detector, history) and
    hands it to another remediator: up to the first remediation decision every remediator's run is the same,
    so the bench runs that prefix once and forks at detection."""

    def __init__(self, scenario: str, seed: int, cfg: E2eConfig, start: float) -> None:
        self.scenario, self.seed, self.cfg = scenario, seed, cfg
        sc = get_scenario(scenario)
        truths = sc.ground_truth(start)
        if len(truths) > 1:
            raise ValueError(f"scenario {scenario!r} has several faults; e2e runs single-fault scenarios")
        gt = truths[0] if truths else None
        if gt is not None and gt["kind"] not in VERIFY:
            raise ValueError(f"scenario {scenario!r}: {gt['kind']} has no action that fixes it (fix {gt['fix']!r})")
        self.gt = gt
        self.rem: Remediator = NullRemediator()
        hours = sc.hours if gt is not None else cfg.fault_free_hours
        self.fleet = fleet = Fleet(seed=seed, start=start, faults=sc.at(start))
        self.series = series = fleet.series()
        self.names = _column_names(series)
        self.n_steps = round(hours * 3600 / fleet.step_s)
        self.dt = fleet.step_s
        self.counters = np.array([m.endswith("_total") for m, _ in series])
        self.svc_of = [lab.get("service") for _, lab in series]
        fault_services = set() if gt is None else {gt["root_cause_service"], gt["fix_service"], sc.faults[0].service}
        self.on_fault = np.array([s in fault_services for s in self.svc_of])
        self.svc_cols = np.array([i for i, n in enumerate(self.names) if n], dtype=np.int64)
        self.verify_cols = np.zeros(0, dtype=np.int64)
        if gt is not None:
            vmetric, whose = VERIFY[gt["kind"]]
            vsvc = gt["root_cause_service"] if whose == "root" else gt["fix_service"]
            self.verify_cols = np.array([i for i, (m, lab) in enumerate(series)
                                         if m == vmetric and lab.get("service") == vsvc], dtype=np.int64)

        self.det = EnsembleDetector(len(series), cfg.detector)
        self.slots = np.arange(len(series))
        self.data = np.full((self.n_steps, len(series)), np.nan)  # transformed (counters as rates), as detected
        self.times = np.zeros(self.n_steps)
        self.prev: np.ndarray | None = None
        self.row = np.zeros(len(series))
        self.alerts: list[Alert] = []
        self.false_before = 0
        self.false_off = 0
        self.false_votes: dict[str, int] = dict.fromkeys(self.det.names, 0)
        self.false_list: list[Alert] = []  # false alarms before the onset (all of a fault-free run's): evidence
        self.detected_at: float | None = None
        self.detected_by: Alert | None = None
        self.first_alert_after_onset: float | None = None
        self.rca_evals: list[dict[str, Any]] = []
        self.rc_correct_at: float | None = None
        self.next_eval: float | None = None
        self.events: list[ChangeEvent] = []
        self.actions: list[ActionRecord] = []
        self.band: tuple[np.ndarray, np.ndarray] | None = None
        self.normal_since: float | None = None
        self.ranking: list[tuple[str, float]] = []
        self.t_start = fleet.now
        self.onset: float | None = gt["onset"] if gt else None
        self.k = -1  # the last step observed
        self.now = self.t_start
        self.done = False
        self.wall = 0.0

    def set_remediator(self, factory: RemediatorFactory | None) -> None:
        """``factory`` is handed the ground truth, which only the oracle may use (a real engine's ignores it)."""
        self.rem = NullRemediator() if factory is None or self.gt is None else factory(self.gt)

    def fork(self, factory: RemediatorFactory | None) -> _Case:
        other = copy.deepcopy(self)
        other.set_remediator(factory)
        return other

    def observe(self) -> bool:
        """One scrape. Returns whether the fault was detected at this step."""
        t0 = time.perf_counter()
        cfg, series, onset = self.cfg, self.series, self.onset
        self.k = k = self.k + 1
        ts_ms, raw = self.fleet.generate_matrix(1)
        self.now = now = float(ts_ms[0]) / 1000.0
        row = counter_rates(raw, self.counters, self.dt, self.prev)[0]
        self.prev = raw[0]
        self.row = row
        self.data[k] = row
        self.times[k] = now
        self.events.extend(self.fleet.drain_events())
        scored = self.det.update(self.slots, row, np.full(len(series), now))

        fire = scored.alarm  # an alert is the detector's alarm, as live
        detected_now = False
        if fire.any() and now - self.t_start >= cfg.warmup_s:
            vote, det_names = self.det.config.vote, self.det.names
            for i in np.flatnonzero(fire).tolist():
                voters = tuple(n for n, v in zip(det_names, scored.votes[i], strict=True) if v >= vote)
                a = Alert(now, self.svc_of[i], series[i][0], series[i][1], float(scored.score[i]), voters,
                          (float(scored.expected[i, 0]), float(scored.expected[i, 1])), float(row[i]))
                self.alerts.append(a)
                if onset is None or now < onset:  # a fault-free run, or before the onset: false
                    self.false_before += 1
                    if len(self.false_list) < MAX_LISTED:
                        self.false_list.append(a)
                    for n in voters:
                        self.false_votes[n] += 1
                    continue
                if self.first_alert_after_onset is None:
                    self.first_alert_after_onset = now
                if not self.on_fault[i]:  # after the onset, off the fault's services: false by definition
                    self.false_off += 1
                    continue
                if self.detected_at is None:
                    self.detected_at, self.detected_by = now, a
                    self.next_eval = now
                    detected_now = True

        # the normal band of the verification metric, once the hour before onset has passed
        times, data = self.times[: k + 1], self.data[: k + 1]
        if onset is not None and self.band is None and now >= onset:
            pre = (times >= onset - 3600.0) & (times < onset)
            self.band = _band(data[pre][:, self.verify_cols])

        # pending verification
        actions, band = self.actions, self.band
        if actions and actions[-1].verification == "pending" and band is not None:
            last = actions[-1]
            vals = row[self.verify_cols]
            inside = bool(np.all((vals >= band[0]) & (vals <= band[1])))
            self.normal_since = (self.normal_since if self.normal_since is not None else now) if inside else None
            if self.normal_since is not None and now - self.normal_since >= cfg.hold_s:
                actions[-1] = ActionRecord(last.action, last.time, last.right, last.effective, now, "verified")
            elif now - last.time > cfg.verify_s:
                actions[-1] = ActionRecord(last.action, last.time, last.right, last.effective, None, "failed")
        self.wall += time.perf_counter() - t0
        return detected_now

    def act(self) -> None:
        """RCA and remediation every ``eval_s`` after detection; then the stop rule."""
        t0 = time.perf_counter()
        cfg, gt, now, k = self.cfg, self.gt, self.now, self.k
        actions, detected_at = self.actions, self.detected_at
        if detected_at is not None and self.next_eval is not None and now >= self.next_eval:
            self.next_eval = now + cfg.eval_s
            times, data = self.times[: k + 1], self.data[: k + 1]
            mask_n = (times >= detected_at - cfg.normal_s) & (times < detected_at)
            mask_a = times >= detected_at
            if mask_a.sum() >= 2 and mask_n.sum() >= 2:
                cols = [self.names[i] for i in self.svc_cols]
                ranked = rank_root_causes(cols, data[mask_n][:, self.svc_cols], data[mask_a][:, self.svc_cols])
                self.ranking = rank_services(ranked)
                if self.rc_correct_at is None and now - detected_at <= cfg.rca_horizon_s:
                    top = self.ranking[0][0] if self.ranking else None
                    ok = gt is not None and top == gt["root_cause_service"]
                    self.rca_evals.append({"time": now, "top": top, "top_metric": ranked[0][0] if ranked else None,
                                           "correct": ok})
                    if ok:
                        self.rc_correct_at = now
            pending = bool(actions) and actions[-1].verification == "pending"
            fixed = any(a.verification == "verified" for a in actions)
            if not pending and not fixed and len(actions) < cfg.max_actions:
                view = IncidentView(
                    now=now, detected_at=detected_at, root_causes=tuple(self.ranking),
                    alerts=tuple(a for a in self.alerts if a.time >= detected_at - 3600.0),
                    events=tuple(e for e in self.events if e.time >= detected_at - 3600.0),
                    topology=tuple(self.fleet.topology()), actions=tuple(actions),
                )
                act = self.rem.decide(view)
                if act is not None:
                    res = self.fleet.apply_action(act.kind, act.service)
                    right = gt is not None and act.kind == gt["fix"] and act.service == gt["fix_service"]
                    actions.append(ActionRecord(act, res.time, right, res.effective))
                    self.normal_since = None

        # stop once every measure is settled
        if detected_at is not None:
            rca_done = self.rc_correct_at is not None or now - detected_at > cfg.rca_horizon_s
            last_state = actions[-1].verification if actions else None
            rem_done = (isinstance(self.rem, NullRemediator) or last_state == "verified"
                        or (last_state == "failed" and len(actions) >= cfg.max_actions)
                        or now - detected_at > 2 * cfg.rca_horizon_s)
            self.done = rca_done and rem_done
        self.done = self.done or self.k + 1 >= self.n_steps
        self.wall += time.perf_counter() - t0

    def run(self) -> None:
        while not self.done:
            self.observe()
            self.act()

    def result(self) -> dict[str, Any]:
        cfg, gt, onset, actions = self.cfg, self.gt, self.onset, self.actions
        end = float(self.times[self.k] + self.dt)
        scored_end = float(onset if onset is not None else end)  # every series can false-alarm until the onset
        scored_h = max(0.0, (scored_end - self.t_start - cfg.warmup_s) / 3600.0)
        # ... and the series off the fault's services after it
        after_h = 0.0 if onset is None else max(0.0, (end - max(onset, self.t_start + cfg.warmup_s)) / 3600.0)
        n_off = int((~self.on_fault).sum()) if onset is not None else 0
        n = len(self.series)
        detected_at, rc_at = self.detected_at, self.rc_correct_at

        def since_onset(t: float | None) -> float | None:
            return None if t is None or onset is None else t - onset

        verified = next((a for a in actions if a.verification == "verified"), None)
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "seed": self.seed,
            "faulty": gt is not None,
            "kind": gt["kind"] if gt else None,
            "onset": onset,
            "root_cause_service": gt["root_cause_service"] if gt else None,
            "fix": gt["fix"] if gt else None,
            "fix_service": gt["fix_service"] if gt else None,
            "hours_run": (end - self.t_start) / 3600.0,
            "series": n,
            "series_off_fault": n_off,
            "scored_hours": scored_h,
            "hours_after_onset": after_h,
            "false_alarms": self.false_before + self.false_off,
            "false_alarms_before_onset": self.false_before,  # on a fault-free run: all of them
            "false_alarms_off_fault": self.false_off,
            "false_alarm_series_hours": n * scored_h + n_off * after_h,
            "false_alarm_votes": dict(self.false_votes),  # analyzers voting in the false alarms before the onset
            "false_alarms_listed": [asdict(a) for a in self.false_list],  # the first MAX_LISTED of them
            "detected": detected_at is not None,
            "detected_at": detected_at,
            "time_to_detect_s": since_onset(detected_at),
            "detected_by": asdict(self.detected_by) if self.detected_by else None,
            "time_to_first_alert_anywhere_s": since_onset(self.first_alert_after_onset),
            "rca_found": rc_at is not None,
            "time_to_root_cause_s": since_onset(rc_at),
            "root_cause_after_detect_s": None if rc_at is None or detected_at is None else rc_at - detected_at,
            "rca_first": self.rca_evals[0] if self.rca_evals else None,
            "rca_evaluations": len(self.rca_evals),
            "remediator": self.rem.name,
            "actions": [{"kind": a.action.kind, "service": a.action.service, "time": a.time, "right": a.right,
                         "effective": a.effective, "verification": a.verification, "verified_at": a.verified_at}
                        for a in actions],
            "fix_verified": verified is not None if actions else None,
            "time_to_verified_fix_s": since_onset(verified.verified_at) if verified else None,
            "actions_all_right": all(a.right for a in actions) if actions else None,
            "wall_seconds": self.wall,
        }
        if isinstance(self.rem, NullRemediator):
            out["remediation_note"] = NO_ENGINE_NOTE
        return out


def run_cases(scenario: str, seed: int, remediators: Sequence[RemediatorFactory | None],
              config: E2eConfig | None = None, start: float = DEFAULT_START) -> list[dict[str, Any]]:
    """One closed-loop case per remediator factory (None: no remediation engine), sharing the run up to
    detection: the first remediator's case runs, and at detection (or at the end, if nothing was detected
    and so no remediator was ever asked) every other remediator takes over a copy of it. Each result is
    exactly what ``run_case`` gives for that remediator alone."""
    if not remediators:
        return []
    base = _Case(scenario, seed, config or E2eConfig(), start)
    base.set_remediator(remediators[0])
    branches: list[_Case] = []
    while not base.done:
        if base.observe() and not branches:
            branches = [base.fork(f) for f in remediators[1:]]
        base.act()
    if not branches:
        branches = [base.fork(f) for f in remediators[1:]]
    for b in branches:
        b.act()  # the step the copy was taken at: its remediator's first decision
        b.run()
    return [base.result(), *(b.result() for b in branches)]


def run_case(scenario: str, seed: int, remediator: RemediatorFactory | None = None,
             config: E2eConfig | None = None, start: float = DEFAULT_START) -> dict[str, Any]:
    """Run one closed-loop case. ``remediator`` makes the case's remediator; it is handed the ground truth,
    which only the oracle may use (a real engine's factory ignores it). None: no remediation engine."""
    case = _Case(scenario, seed, config or E2eConfig(), start)
    case.set_remediator(remediator)
    case.run()
    return case.result()


# ------------------------------------------------------------------------------------------- scoring


def _pct(xs: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if len(xs) else None


def _per_1000(alarms: float, series_hours: float) -> float | None:
    return 1000.0 * alarms / series_hours if series_hours else None


def _vote_counts(votes: Sequence[dict[str, int] | Sequence[str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in votes:
        for name in v:
            out[name] = out.get(name, 0) + (v[name] if isinstance(v, dict) else 1)
    return out


def summarize(cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    faulty = [c for c in cases if c["faulty"]]
    free = [c for c in cases if not c["faulty"]]
    ttd = [c["time_to_detect_s"] for c in faulty if c["detected"]]
    ttr = [c["time_to_root_cause_s"] for c in faulty if c["rca_found"]]
    det = [c for c in faulty if c["detected"]]
    acted = [c for c in faulty if c["actions"]]
    ttf = [c["time_to_verified_fix_s"] for c in faulty if c["time_to_verified_fix_s"] is not None]
    free_h = sum(c["scored_hours"] for c in free)
    pre_h = sum(c["scored_hours"] for c in faulty)
    names = list(dict.fromkeys(n for c in cases for n in c["false_alarm_votes"]))
    return {
        "cases": len(faulty),
        "fault_free_runs": len(free),
        "detected": (len(det) / len(faulty)) if faulty else None,
        "detected_cases": len(det),
        "time_to_detect_median_s": _pct(ttd, 50),
        "time_to_detect_p90_s": _pct(ttd, 90),
        "root_cause_correct": (len(ttr) / len(faulty)) if faulty else None,
        "root_cause_correct_given_detected": (len(ttr) / len(det)) if det else None,
        "root_cause_first_eval_correct": (sum(bool(c["rca_first"] and c["rca_first"]["correct"]) for c in det)
                                          / len(det)) if det else None,
        "time_to_root_cause_median_s": _pct(ttr, 50),
        "time_to_root_cause_p90_s": _pct(ttr, 90),
        # fault-free runs: every alarm after the warm-up is false
        "false_alarms_fault_free": sum(c["false_alarms"] for c in free),
        "fault_free_series_hours": sum(c["false_alarm_series_hours"] for c in free),
        "false_alarms_per_1000_series_hours_fault_free": _per_1000(
            sum(c["false_alarms"] for c in free), sum(c["false_alarm_series_hours"] for c in free)),
        "false_alarms_per_day_fault_free": (24 * sum(c["false_alarms"] for c in free) / free_h) if free_h else None,
        # faulty runs: before the onset (every series), and after it off the fault's services
        "false_alarms_per_1000_series_hours_faulty": _per_1000(
            sum(c["false_alarms"] for c in faulty), sum(c["false_alarm_series_hours"] for c in faulty)),
        "false_alarms_per_1000_series_hours_before_onset": _per_1000(
            sum(c["false_alarms_before_onset"] for c in faulty), sum(c["series"] * c["scored_hours"] for c in faulty)),
        "false_alarms_off_fault_per_1000_series_hours": _per_1000(
            sum(c["false_alarms_off_fault"] for c in faulty),
            sum(c["series_off_fault"] * c["hours_after_onset"] for c in faulty)),
        "false_alarms_per_day_before_onset": (
            (24 * sum(c["false_alarms_before_onset"] for c in faulty) / pre_h) if pre_h else None),
        # evidence: the analyzers that voted in the alert that detected each fault, and in the false alarms
        "first_alarm_votes": {n: 0 for n in names} | _vote_counts([c["detected_by"]["analyzers"] for c in det]),
        "false_alarm_votes": {n: 0 for n in names} | _vote_counts([c["false_alarm_votes"] for c in cases]),
        "fixed": (sum(bool(c["fix_verified"]) for c in faulty) / len(faulty)) if faulty else None,
        "time_to_verified_fix_median_s": _pct(ttf, 50),
        "time_to_verified_fix_p90_s": _pct(ttf, 90),
        "actions": sum(len(c["actions"]) for c in faulty),
        "actions_all_right": all(c["actions_all_right"] for c in acted) if acted else None,
        "actions_effective_agrees_with_verification": (
            all(a["effective"] == (a["verification"] == "verified") for c in acted for a in c["actions"])
            if acted else None),
    }


def run_bench(out_dir: Path, seeds: int = 10, seed_base: int = SEED_BASE, scenarios: Sequence[str] = DEFAULT_SCENARIOS,
              fault_free: bool = True, oracle: bool = True, limit: int | None = None, config: E2eConfig | None = None,
              progress: Callable[[str, int], Callable[[int], None]] | None = None) -> dict[str, Any]:
    cfg = config or E2eConfig()
    seed_list = [seed_base + i for i in range(seeds)]
    cases = [(s, seed) for seed in seed_list for s in scenarios]
    if fault_free:
        cases += [("fault_free", seed) for seed in seed_list]
    if limit:
        cases = cases[:limit]
    t0 = time.perf_counter()
    advance = progress("e2e" + (" + oracle" if oracle else ""), len(cases)) if progress else None
    runs, oracle_runs = [], []
    for s, seed in cases:
        # the oracle takes over a copy of the case at detection (the same run up to there: computed once)
        faulty = s != "fault_free"
        out = run_cases(s, seed, [None, OracleRemediator] if oracle and faulty else [None], cfg)
        runs.append(out[0])
        oracle_runs.extend(out[1:])
        if advance is not None:
            advance(1)
    names = list(dict.fromkeys(c["scenario"] for c in runs if c["faulty"]))
    kinds = list(dict.fromkeys(c["kind"] for c in runs if c["faulty"]))
    main = summarize(runs)
    # No remediation engine: nothing was fixed, and "0 % fixed" would read as a result. Say null.
    main.update(fixed=None, time_to_verified_fix_s=None, time_to_verified_fix_median_s=None,
                time_to_verified_fix_p90_s=None)
    report: dict[str, Any] = {
        "bench": "e2e",
        "detector": (f"{EnsembleDetector.name} ({', '.join(cfg.detector.analyzers)}; "
                     f"quorum {cfg.detector.quorum}, adaptive threshold from {cfg.detector.gate.threshold})"),
        "analyzers": list(cfg.detector.analyzers),
        "ranker": "aurora-baseline (BARO-style robust z)",
        "remediator": "none",
        "remediation_note": NO_ENGINE_NOTE,
        "config": asdict(cfg),
        "scenarios": names,
        "seed_base": seed_base,
        "seeds": seed_list,
        "seed_note": f"reported seeds {seed_list[0]}..{seed_list[-1]}; development used seeds < 1000",
        "partial": bool(limit),
        **main,
        "by_fault": {f: summarize([c for c in runs if c["kind"] == f]) for f in kinds},
        "by_scenario": {n: summarize([c for c in runs if c["scenario"] == n]) for n in names},
        "oracle": {
            "label": "ORACLE: applies the ground truth's fix at detection; validates the harness, not Aurora",
            **summarize(oracle_runs),
            "by_fault": {f: summarize([c for c in oracle_runs if c["kind"] == f]) for f in kinds},
            "by_scenario": {n: summarize([c for c in oracle_runs if c["scenario"] == n]) for n in names},
            "case_results": oracle_runs,
        } if oracle_runs else None,
        "seconds": time.perf_counter() - t0,
        "case_results": runs,
    }
    write_report(Path(out_dir), report, render_markdown, render_plot)
    return report


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 60:.1f} min"


def _fmt(v: float | bool | None, spec: str = ".2f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return format(v, spec)


def render_markdown(report: dict[str, Any]) -> str:
    cfg = report["config"]
    analyzers = report["analyzers"]
    lines = [
        "# Closed-loop benchmark (simulated fleet)", "",
        f"Detector: {report['detector']}; alert = the detector's alarm (as live). "
        f"Ranker: {report['ranker']}. Remediator: **{report['remediator']} ({report['remediation_note']})**.", "",
        f"Seeds: {report['seed_note']}." + (" **Partial run (--limit): not comparable.**" if report["partial"] else ""),
        "", "Times are from the fault's onset. Detected = an alert on a series of the fault's services after the "
        "onset. False alarms on faulty runs: alerts before the onset, or after it on a series off the fault's "
        "services (some of those are the fault's cascade), per 1,000 series-hours of exposure.", "",
        "## Detection per fault type", "",
        "| fault | cases | detected | detect median | detect p90 | root cause right | RC median | "
        "false alarms /1000 series-h | of them before onset | time to verified fix |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in [*report["by_fault"].items(), ("all", report)]:
        lines.append(
            f"| {name} | {s['cases']} | {_fmt(s['detected'])} | {_fmt_s(s['time_to_detect_median_s'])} | "
            f"{_fmt_s(s['time_to_detect_p90_s'])} | {_fmt(s['root_cause_correct'])} | "
            f"{_fmt_s(s['time_to_root_cause_median_s'])} | "
            f"{_fmt(s['false_alarms_per_1000_series_hours_faulty'], '.2f')} | "
            f"{_fmt(s['false_alarms_per_1000_series_hours_before_onset'], '.2f')} | null ({NO_ENGINE_NOTE}) |"
        )
    lines += [
        "", "## Fault-free runs", "",
        f"{report['fault_free_runs']} runs of {cfg['fault_free_hours']:g} h, "
        f"{_fmt(report['fault_free_series_hours'], ',.0f')} series-hours after the warm-up hour: "
        f"{report['false_alarms_fault_free']} false alarms = "
        f"**{_fmt(report['false_alarms_per_1000_series_hours_fault_free'], '.3f')} per 1,000 series-hours** "
        f"({_fmt(report['false_alarms_per_day_fault_free'], '.2f')} per day of the whole fleet).", "",
        "## Analyzers voting in the alert that detected each fault", "",
        "A vote is an analyzer's calibrated score at or above the ensemble's vote level in that sample. The last "
        "row counts the votes in the false alarms (fault-free runs and before the onsets).", "",
        "| fault | detected | " + " | ".join(analyzers) + " |",
        "|---|---:|" + "---:|" * len(analyzers),
    ]
    for name, s in [*report["by_fault"].items(), ("all", report)]:
        votes = s["first_alarm_votes"]
        lines.append(f"| {name} | {s['detected_cases']} | " + " | ".join(str(votes.get(a, 0)) for a in analyzers)
                     + " |")
    fav = report["false_alarm_votes"]
    lines.append("| false alarms | - | " + " | ".join(str(fav.get(a, 0)) for a in analyzers) + " |")
    lines.append("")
    o = report.get("oracle")
    if o:
        lines += [
            f"## {o['label']}", "",
            "| fault | cases | fix verified | verified fix median | verified fix p90 | all actions right | "
            "sim agrees with verification |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, s in [*o["by_fault"].items(), ("all", o)]:
            lines.append(
                f"| {name} | {s['cases']} | {_fmt(s['fixed'])} | {_fmt_s(s['time_to_verified_fix_median_s'])} | "
                f"{_fmt_s(s['time_to_verified_fix_p90_s'])} | {_fmt(s['actions_all_right'])} | "
                f"{_fmt(s['actions_effective_agrees_with_verification'])} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def render_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["by_fault"])
    fig, ax = plt.subplots(figsize=(10, 0.55 * max(len(names), 2) + 1.8))
    y = np.arange(len(names))
    h = 0.27
    by = report["by_fault"]
    oracle = (report.get("oracle") or {"by_fault": {}})["by_fault"]
    series = [
        ("time to detect", [by[n]["time_to_detect_median_s"] for n in names], "tab:blue"),
        ("time to correct root cause", [by[n]["time_to_root_cause_median_s"] for n in names], "tab:orange"),
        ("time to verified fix (ORACLE remediator)",
         [oracle.get(n, {}).get("time_to_verified_fix_median_s") for n in names], "tab:gray"),
    ]
    for j, (label, vals, color) in enumerate(series):
        ax.barh(y + (j - 1) * h, [(v or 0.0) / 60 for v in vals], h, label=label, color=color)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("minutes after onset (median; a missing bar: never)")
    ax.set_title("Closed loop: detect, root cause, fix (fix by the oracle only; the engine: bench e2e --engine)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
