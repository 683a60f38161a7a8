"""``aurora bench e2e``: the closed loop on the simulated fleet: detect, find the root cause, fix, verify.

Per scenario and seed the fleet runs step by step in event time (one scrape = 15 s) and every stage
sees only what has happened so far:

* **detect**: the detector scores every series each step (counters ``*_total`` as per-second rates).
  An alert is ``score >= threshold`` for ``persist`` consecutive steps. *Detected* = the first alert
  after the fault's onset on a series of the fault's services (its root cause, where it was injected,
  where it is fixed). Alerts before the onset, and every alert of the fault-free runs, are false
  alarms. The first ``warmup_s`` of a run (the detector learning a fresh fleet) count for nothing.
* **root cause**: from detection on, every ``eval_s`` the ranker orders the services' metrics (normal
  = the hour before detection, anomalous = since detection); *time to a correct root cause* is the
  first evaluation that puts the ground truth's root-cause service first.
* **remediation**: a pluggable ``Remediator`` (``decide(view) -> Action | None``) is asked every
  evaluation after detection. An action is applied to the fleet (``Fleet.apply_action``) and then
  *verified*: the fault's verification metric (below) must be back inside its normal band (from the
  hour before onset) for ``hold_s`` within ``verify_s``. Aurora has no remediation engine yet, so the
  reported remediator is ``none`` and time to verified fix is ``null``. The ``oracle`` remediator
  (applies the ground truth's fix at detection) only validates this harness; its figures are labelled
  as the oracle's and are not Aurora's.

Seeds: reported runs use ``seed_base = 1000`` onwards; development used seeds below 1000 (the alert
rule ``threshold = 0.9, persist = 2`` was picked on fault-free seeds 3 and 4).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from aurora.bench.report import write_report
from aurora.detect.baseline import BaselineDetector
from aurora.ingest.events import ChangeEvent
from aurora.rca.baseline import rank_root_causes, rank_services
from aurora.sim import DEFAULT_START, Fleet, get_scenario

# Faults whose fix is an action the fleet obeys (disk_fill and model_drift need "none": no action fixes them).
DEFAULT_SCENARIOS = ("memory_leak", "cpu_saturation", "slow_database", "bad_deployment", "dependency_outage",
                     "pool_exhaustion", "traffic_surge", "cache_failure")
SEED_BASE = 1000
NO_ENGINE_NOTE = "no remediation engine yet"

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
    """Aurora today: no remediation engine."""

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
    threshold: float = 0.9  # alert when the detector's score is at least this ...
    persist: int = 2  # ... for this many consecutive steps
    refractory_s: float = 600.0  # a series' new alert within this of its last one is the same alert
    warmup_s: float = 3600.0  # alerts in the first hour of a run are not counted (fresh detector)
    eval_s: float = 60.0  # RCA and remediator cadence after detection
    normal_s: float = 3600.0  # RCA's normal period: the hour before detection
    rca_horizon_s: float = 3600.0  # stop looking for a correct root cause this long after detection
    verify_s: float = 20 * 60.0  # verification window after an action
    hold_s: float = 120.0  # the verification metric must stay normal this long
    max_actions: int = 3  # per incident
    fault_free_hours: float = 24.0


@dataclass
class _Run:
    fleet: Fleet
    columns: list[str]  # RCA column names "<service>_<metric>[_<label>=<value>...]", "" for non-service series
    service_cols: np.ndarray
    counters: np.ndarray
    rows: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


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


def run_case(scenario: str, seed: int, remediator: RemediatorFactory | None = None,
             config: E2eConfig | None = None, start: float = DEFAULT_START) -> dict[str, Any]:
    """Run one closed-loop case. ``remediator`` makes the case's remediator; it is handed the ground truth,
    which only the oracle may use (a real engine's factory ignores it). None: no remediation engine."""
    cfg = config or E2eConfig()
    sc = get_scenario(scenario)
    truths = sc.ground_truth(start)
    if len(truths) > 1:
        raise ValueError(f"scenario {scenario!r} has several faults; e2e runs single-fault scenarios")
    gt = truths[0] if truths else None
    if gt is not None and gt["kind"] not in VERIFY:
        raise ValueError(f"scenario {scenario!r}: {gt['kind']} has no action that fixes it (fix {gt['fix']!r})")
    rem: Remediator = NullRemediator() if remediator is None or gt is None else remediator(gt)
    hours = sc.hours if gt is not None else cfg.fault_free_hours
    fleet = Fleet(seed=seed, start=start, faults=sc.at(start))
    series = fleet.series()
    names = _column_names(series)
    n_steps = round(hours * 3600 / fleet.step_s)
    dt = fleet.step_s
    counters = np.array([m.endswith("_total") for m, _ in series])
    svc_of = [lab.get("service") for _, lab in series]
    fault_services = set() if gt is None else {gt["root_cause_service"], gt["fix_service"], sc.faults[0].service}
    on_fault = np.array([s in fault_services for s in svc_of])
    svc_cols = np.array([i for i, n in enumerate(names) if n], dtype=np.int64)
    verify_cols = np.zeros(0, dtype=np.int64)
    if gt is not None:
        vmetric, whose = VERIFY[gt["kind"]]
        vsvc = gt["root_cause_service"] if whose == "root" else gt["fix_service"]
        verify_cols = np.array([i for i, (m, lab) in enumerate(series) if m == vmetric and lab.get("service") == vsvc],
                               dtype=np.int64)

    det = BaselineDetector(len(series))
    slots = np.arange(len(series))
    data = np.full((n_steps, len(series)), np.nan)  # transformed (rates for counters), as the detector saw it
    times = np.zeros(n_steps)
    prev: np.ndarray | None = None
    streak = np.zeros(len(series), dtype=np.int64)
    last_alert = np.full(len(series), -np.inf)
    alerts: list[Alert] = []
    false_alarms = 0
    detected_at: float | None = None
    detected_by: Alert | None = None
    first_alert_after_onset: float | None = None
    rca_evals: list[dict[str, Any]] = []
    rc_correct_at: float | None = None
    next_eval: float | None = None
    events: list[ChangeEvent] = []
    actions: list[ActionRecord] = []
    band: tuple[np.ndarray, np.ndarray] | None = None
    normal_since: float | None = None
    ranking: list[tuple[str, float]] = []
    t_start = fleet.now
    onset = gt["onset"] if gt else None
    wall0 = time.perf_counter()
    k = 0
    for k in range(n_steps):
        ts_ms, raw = fleet.generate_matrix(1)
        now = float(ts_ms[0]) / 1000.0
        row = raw[0].copy()
        if prev is None:
            row[counters] = np.nan
        else:
            d = raw[0, counters] - prev[counters]
            row[counters] = np.where(d >= 0, d, raw[0, counters]) / dt  # a reset starts from zero
        prev = raw[0]
        data[k] = row
        times[k] = now
        events.extend(fleet.drain_events())
        scores = det.update(slots, row)

        # alerts
        hot = scores >= cfg.threshold
        streak = np.where(hot, streak + 1, 0)
        fire = (streak == cfg.persist) & (now - last_alert > cfg.refractory_s)
        cont = streak >= cfg.persist
        last_alert = np.where(cont, now, last_alert)
        if fire.any() and now - t_start >= cfg.warmup_s:
            for i in np.flatnonzero(fire).tolist():
                a = Alert(now, svc_of[i], series[i][0], series[i][1], float(scores[i]))
                alerts.append(a)
                if onset is None or now < onset:
                    false_alarms += 1
                    continue
                if first_alert_after_onset is None:
                    first_alert_after_onset = now
                if detected_at is None and on_fault[i]:
                    detected_at, detected_by = now, a
                    next_eval = now

        # the normal band of the verification metric, once the hour before onset has passed
        if onset is not None and band is None and now >= onset:
            pre = (times[: k + 1] >= onset - 3600.0) & (times[: k + 1] < onset)
            band = _band(data[: k + 1][pre][:, verify_cols])

        # pending verification
        if actions and actions[-1].verification == "pending" and band is not None:
            last = actions[-1]
            inside = bool(np.all((row[verify_cols] >= band[0]) & (row[verify_cols] <= band[1])))
            normal_since = (normal_since if normal_since is not None else now) if inside else None
            if normal_since is not None and now - normal_since >= cfg.hold_s:
                actions[-1] = ActionRecord(last.action, last.time, last.right, last.effective, now, "verified")
            elif now - last.time > cfg.verify_s:
                actions[-1] = ActionRecord(last.action, last.time, last.right, last.effective, None, "failed")

        # RCA and remediation, every eval_s after detection
        if detected_at is not None and next_eval is not None and now >= next_eval:
            next_eval = now + cfg.eval_s
            mask_n = (times[: k + 1] >= detected_at - cfg.normal_s) & (times[: k + 1] < detected_at)
            mask_a = times[: k + 1] >= detected_at
            if mask_a.sum() >= 2 and mask_n.sum() >= 2:
                cols = [names[i] for i in svc_cols]
                ranked = rank_root_causes(cols, data[: k + 1][mask_n][:, svc_cols], data[: k + 1][mask_a][:, svc_cols])
                ranking = rank_services(ranked)
                if rc_correct_at is None and now - detected_at <= cfg.rca_horizon_s:
                    top = ranking[0][0] if ranking else None
                    ok = gt is not None and top == gt["root_cause_service"]
                    rca_evals.append({"time": now, "top": top, "top_metric": ranked[0][0] if ranked else None,
                                      "correct": ok})
                    if ok:
                        rc_correct_at = now
            pending = bool(actions) and actions[-1].verification == "pending"
            fixed = any(a.verification == "verified" for a in actions)
            if not pending and not fixed and len(actions) < cfg.max_actions:
                view = IncidentView(
                    now=now, detected_at=detected_at, root_causes=tuple(ranking),
                    alerts=tuple(a for a in alerts if a.time >= detected_at - 3600.0),
                    events=tuple(e for e in events if e.time >= detected_at - 3600.0),
                    topology=tuple(fleet.topology()), actions=tuple(actions),
                )
                act = rem.decide(view)
                if act is not None:
                    res = fleet.apply_action(act.kind, act.service)
                    right = gt is not None and act.kind == gt["fix"] and act.service == gt["fix_service"]
                    actions.append(ActionRecord(act, res.time, right, res.effective))
                    normal_since = None

        # stop once every measure is settled
        if detected_at is not None:
            rca_done = rc_correct_at is not None or now - detected_at > cfg.rca_horizon_s
            last_state = actions[-1].verification if actions else None
            rem_done = (isinstance(rem, NullRemediator) or last_state == "verified"
                        or (last_state == "failed" and len(actions) >= cfg.max_actions)
                        or now - detected_at > 2 * cfg.rca_horizon_s)
            if rca_done and rem_done:
                break
    wall = time.perf_counter() - wall0
    ran_s = float(times[k] - t_start + dt)
    scored_end = float(onset if onset is not None else times[k] + dt)  # false alarms count before the onset

    def since_onset(t: float | None) -> float | None:
        return None if t is None or onset is None else t - onset

    verified = next((a for a in actions if a.verification == "verified"), None)
    out: dict[str, Any] = {
        "scenario": scenario,
        "seed": seed,
        "faulty": gt is not None,
        "kind": gt["kind"] if gt else None,
        "onset": onset,
        "root_cause_service": gt["root_cause_service"] if gt else None,
        "fix": gt["fix"] if gt else None,
        "fix_service": gt["fix_service"] if gt else None,
        "hours_run": ran_s / 3600.0,
        "scored_hours": max(0.0, (scored_end - t_start - cfg.warmup_s) / 3600.0),
        "false_alarms": false_alarms,
        "detected": detected_at is not None,
        "detected_at": detected_at,
        "time_to_detect_s": since_onset(detected_at),
        "detected_by": asdict(detected_by) if detected_by else None,
        "time_to_first_alert_anywhere_s": since_onset(first_alert_after_onset),
        "rca_found": rc_correct_at is not None,
        "time_to_root_cause_s": since_onset(rc_correct_at),
        "root_cause_after_detect_s": (None if rc_correct_at is None or detected_at is None
                                      else rc_correct_at - detected_at),
        "rca_first": rca_evals[0] if rca_evals else None,
        "rca_evaluations": len(rca_evals),
        "remediator": rem.name,
        "actions": [{"kind": a.action.kind, "service": a.action.service, "time": a.time, "right": a.right,
                     "effective": a.effective, "verification": a.verification, "verified_at": a.verified_at}
                    for a in actions],
        "fix_verified": verified is not None if actions else None,
        "time_to_verified_fix_s": since_onset(verified.verified_at) if verified else None,
        "actions_all_right": all(a.right for a in actions) if actions else None,
        "wall_seconds": wall,
    }
    if isinstance(rem, NullRemediator):
        out["remediation_note"] = NO_ENGINE_NOTE
    return out


# ------------------------------------------------------------------------------------------- scoring


def _pct(xs: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if len(xs) else None


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
    return {
        "cases": len(faulty),
        "fault_free_runs": len(free),
        "detected": (len(det) / len(faulty)) if faulty else None,
        "time_to_detect_median_s": _pct(ttd, 50),
        "time_to_detect_p90_s": _pct(ttd, 90),
        "root_cause_correct": (len(ttr) / len(faulty)) if faulty else None,
        "root_cause_correct_given_detected": (len(ttr) / len(det)) if det else None,
        "root_cause_first_eval_correct": (sum(bool(c["rca_first"] and c["rca_first"]["correct"]) for c in det)
                                          / len(det)) if det else None,
        "time_to_root_cause_median_s": _pct(ttr, 50),
        "time_to_root_cause_p90_s": _pct(ttr, 90),
        "false_alarms_per_day_fault_free": (24 * sum(c["false_alarms"] for c in free) / free_h) if free_h else None,
        "false_alarms_per_day_before_onset": (24 * sum(c["false_alarms"] for c in faulty) / pre_h) if pre_h else None,
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
    faulty_cases = [(s, seed) for s, seed in cases if s != "fault_free"]
    t0 = time.perf_counter()
    advance = progress("e2e", len(cases)) if progress else None
    runs = []
    for s, seed in cases:
        runs.append(run_case(s, seed, None, cfg))
        if advance is not None:
            advance(1)
    oracle_runs = []
    if oracle and faulty_cases:
        advance = progress("e2e oracle", len(faulty_cases)) if progress else None
        for s, seed in faulty_cases:
            oracle_runs.append(run_case(s, seed, OracleRemediator, cfg))
            if advance is not None:
                advance(1)
    names = list(dict.fromkeys(c["scenario"] for c in runs if c["faulty"]))
    main = summarize(runs)
    # No remediation engine: nothing was fixed, and "0 % fixed" would read as a result. Say null.
    main.update(fixed=None, time_to_verified_fix_s=None, time_to_verified_fix_median_s=None,
                time_to_verified_fix_p90_s=None)
    report: dict[str, Any] = {
        "bench": "e2e",
        "detector": "aurora-baseline (robust z + anomaly likelihood)",
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
        "by_scenario": {n: summarize([c for c in runs if c["scenario"] == n]) for n in names},
        "oracle": {
            "label": "ORACLE: applies the ground truth's fix at detection; validates the harness, not Aurora",
            **summarize(oracle_runs),
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
    lines = [
        "# Closed-loop benchmark (simulated fleet)", "",
        f"Detector: {report['detector']}; alert = score >= {cfg['threshold']} for {cfg['persist']} steps. "
        f"Ranker: {report['ranker']}. Remediator: **{report['remediator']} ({report['remediation_note']})**.", "",
        f"Seeds: {report['seed_note']}." + (" **Partial run (--limit): not comparable.**" if report["partial"] else ""),
        "", "Times are from the fault's onset.", "",
        "| scenario | cases | detected | detect median | detect p90 | root cause right | RC median | "
        "time to verified fix | false alarms/day before onset |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in [*report["by_scenario"].items(), ("all", report)]:
        lines.append(
            f"| {name} | {s['cases']} | {_fmt(s['detected'])} | {_fmt_s(s['time_to_detect_median_s'])} | "
            f"{_fmt_s(s['time_to_detect_p90_s'])} | {_fmt(s['root_cause_correct'])} | "
            f"{_fmt_s(s['time_to_root_cause_median_s'])} | null ({NO_ENGINE_NOTE}) | "
            f"{_fmt(s['false_alarms_per_day_before_onset'], '.1f')} |"
        )
    lines += ["", f"False alarms on the fault-free runs: {_fmt(report['false_alarms_per_day_fault_free'], '.2f')} "
              f"per day of the whole fleet ({report['fault_free_runs']} runs).", ""]
    o = report.get("oracle")
    if o:
        lines += [
            f"## {o['label']}", "",
            "| scenario | cases | fix verified | verified fix median | verified fix p90 | all actions right | "
            "sim agrees with verification |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, s in [*o["by_scenario"].items(), ("all", o)]:
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

    names = list(report["by_scenario"])
    fig, ax = plt.subplots(figsize=(10, 0.55 * max(len(names), 2) + 1.8))
    y = np.arange(len(names))
    h = 0.27
    oracle = report.get("oracle") or {"by_scenario": {}}
    series = [
        ("time to detect", [report["by_scenario"][n]["time_to_detect_median_s"] for n in names], "tab:blue"),
        ("time to correct root cause", [report["by_scenario"][n]["time_to_root_cause_median_s"] for n in names],
         "tab:orange"),
        ("time to verified fix (ORACLE remediator)",
         [oracle["by_scenario"].get(n, {}).get("time_to_verified_fix_median_s") for n in names], "tab:gray"),
    ]
    for j, (label, vals, color) in enumerate(series):
        ax.barh(y + (j - 1) * h, [(v or 0.0) / 60 for v in vals], h, label=label, color=color)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("minutes after onset (median; a missing bar: never)")
    ax.set_title("Closed loop: detect, root cause, fix (fix by the oracle only: no remediation engine yet)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
