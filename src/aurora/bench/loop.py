"""``aurora bench e2e --engine``: the closed loop through the real engine, on the simulated fleet.

Unlike the rest of ``bench e2e`` (its own detector loop with a pluggable remediator), this runs a whole
in-process Aurora per scenario and seed: the fleet's scrapes go one at a time (15 s) through ingestion,
detection, prediction, incidents, root-cause ranking and remediation, and the fleet obeys the remediation
engine's actions (the ``sim`` executor). The playbooks are ``BENCH_PLAYBOOKS``: the demo's, all in ``auto``
mode (a bench has no operator). Measured per run:

* ``detection_delay_s``: fault onset -> the first anomaly or prediction recorded on one of the fault's
  services (its root cause, where it was injected or where it is fixed), and the same in scrape intervals;
* ``detect_to_verified_s``: that detection -> the first remediation run on the fault that the engine verified
  (and whether it was the right fix on the right service, and the fleet's own verdict that it removed the
  fault); ``incident_to_verified_s`` the same from the first incident opened on the fault's services (a
  first anomaly may be a lone blip that opens nothing);
* ``outside_policy``: every run that executed is re-checked against the guardrails as of the moment it
  ran, with the runs before it (``guardrails.check``), and against its playbook's mode; a run that would
  be refused, or ran without an approval its mode needs, is a violation. The flap scenarios
  (``FLAP_SCENARIOS``) try to provoke them: a fix that does not work, a fault that keeps coming back on
  one service, a metric that oscillates, two faults on one target.

Seeds: reported runs use seeds from 1000; development used seeds below 1000.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aurora.app import Aurora
from aurora.bench.report import write_report
from aurora.config import load_config
from aurora.remedy import guardrails
from aurora.remedy.demo import DEMO_PLAYBOOKS, RUNBOOKS
from aurora.remedy.playbook import Playbook
from aurora.sim import DEFAULT_START, FaultSpec, Fleet, Scenario, get_scenario
from aurora.sim.runner import SimRunner, inprocess_sinks

MINUTE, HOUR = 60.0, 3600.0
STEP_S = 15.0
ABRUPT = ("bad_deployment", "dependency_outage", "slow_database", "cache_failure", "traffic_surge")
LOOP_SCENARIOS = ("bad_deployment", "memory_leak", "pool_exhaustion", "cache_failure", "dependency_outage",
                  "slow_memory_leak", "slow_pool_leak")
# The demo's playbooks, all acting on their own (a bench has no operator). The leak restart keeps the demo's
# match on a prediction: restarting whatever service a memory anomaly is blamed on (a database whose cache
# shrank) does harm, and a leak worth a restart is one heading for its limit.
BENCH_PLAYBOOKS: list[dict[str, Any]] = [{**p, "mode": "auto", "dry_run": False} for p in DEMO_PLAYBOOKS]
# Faults that try to make Aurora flap.
FLAP_SCENARIOS: dict[str, Scenario] = {
    # the playbook's fix does not fix it: scale-out on a leak (verification fails, the breaker must stop it)
    "fix_fails": Scenario("fix_fails", "memory leaks on catalog, then on cart; only a scale-out playbook exists",
                          (FaultSpec("memory_leak", "catalog", 20 * MINUTE, 40 * MINUTE, {"time_to_breach_s": 1800}),
                           FaultSpec("memory_leak", "cart", 70 * MINUTE, 40 * MINUTE, {"time_to_breach_s": 1800}),
                           FaultSpec("memory_leak", "inventory", 120 * MINUTE, 40 * MINUTE,
                                     {"time_to_breach_s": 1800})), 3.0),
    # one service's deployment goes bad again and again: cooldown and hourly limits must hold
    "recurring": Scenario("recurring", "cart's bad deployment comes back every 12 minutes", tuple(
        FaultSpec("bad_deployment", "cart", 20 * MINUTE + k * 12 * MINUTE, 8 * MINUTE,
                  {"version": f"1.4.{3 + k}", "error_ratio": 0.3}) for k in range(10)), 3.0),
    # a metric that oscillates: redis's hit ratio collapses for 2 minutes every 6, for 90 minutes (each
    # collapse heals by itself): the cooldown and the hourly limit must hold however often it alarms
    "oscillating": Scenario("oscillating", "redis's cache hit ratio collapses for 2 min every 6 min", tuple(
        FaultSpec("cache_failure", "redis", 20 * MINUTE + k * 6 * MINUTE, 2 * MINUTE) for k in range(15)), 3.0),
    # two faults on one target at once: one run at a time
    "two_on_one": Scenario("two_on_one", "a bad deployment and a connection leak on checkout together",
                           (FaultSpec("bad_deployment", "checkout", 20 * MINUTE, 20 * MINUTE,
                                      {"version": "2.0.1", "error_ratio": 0.2}),
                            FaultSpec("pool_exhaustion", "checkout", 21 * MINUTE, 30 * MINUTE,
                                      {"time_to_breach_s": 900})), 1.5),
}
FLAP_PLAYBOOKS = {"fix_fails": [{"name": "scale-out-on-memory", "match": {"category": ["memory"]}, "mode": "auto",
                                 "dry_run": False, "steps": [{"action": "scale_out"}],
                                 "verify": {"settle_s": 30, "timeout_s": 240},
                                 "guardrails": {"cooldown_s": 600, "max_per_hour": 2}}]}


def _playbooks(scenario: str) -> list[Playbook]:
    return [Playbook.model_validate(p) for p in FLAP_PLAYBOOKS.get(scenario, BENCH_PLAYBOOKS)]


def _violations(actions: list[dict[str, Any]], playbooks: list[Playbook], limits: guardrails.Limits) -> list[str]:
    """Every executed run re-checked against policy as of when it ran."""
    by_name = {p.name: p for p in playbooks}
    ordered = sorted(actions, key=lambda a: a["id"])
    out = []
    for i, a in enumerate(ordered):
        if a["executed_at"] is None or a["dry_run"]:
            continue
        pb = by_name.get(a["playbook"])
        if pb is None:
            out.append(f"#{a['id']}: unknown playbook {a['playbook']}")
            continue
        if pb.mode == "notify-only" or (pb.mode == "approve" and a["decided_by"] in (None, "aurora")):
            out.append(f"#{a['id']}: ran without the approval its mode ({pb.mode}) needs")
        t = float(a["executed_at"])
        before = [dict(b, status=b["status"] if (b["finished_at"] or np.inf) <= t else "running")
                  for b in ordered[:i] if b["requested_at"] <= t]
        why = guardrails.check(pb, [s["target"] for s in a["steps"]], t, before, limits, False)
        if why is not None:
            out.append(f"#{a['id']} {a['playbook']} on {a['target']} at {t:.0f}: {why}")
    return out


def run_loop_case(scenario: str, seed: int, start: float = DEFAULT_START, warm_h: float = 2.0,
                  after_fix_s: float = 1800.0) -> dict[str, Any]:
    """One scenario and seed through a whole Aurora; see the module docstring for what is measured."""
    sc = FLAP_SCENARIOS.get(scenario) or get_scenario(scenario)
    truth = sc.ground_truth(start) if scenario not in FLAP_SCENARIOS else []
    playbooks = _playbooks(scenario)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, {"AURORA_DATA_DIR": tmp, "AURORA_CLOCK": "data",
                                 "AURORA_HOST_AGENT__ENABLED": "false"})
        cfg.remediation.playbooks = playbooks
        cfg.remediation.runbooks_dir = RUNBOOKS  # the runbooks the demo's playbooks name, as the demo has them
        fleet = Fleet(seed=seed, start=start - warm_h * HOUR, step_s=STEP_S, faults=sc.at(start))
        cfg.services = fleet.spec.declared_services()  # the service graph, as the demo declares it
        aurora = Aurora(cfg)
        aurora.open()
        try:
            aurora.use_simulated_fleet(fleet.apply_action)
            sink, event_sink = inprocess_sinks(aurora)
            end = start + (sc.hours or 4.0) * HOUR
            t0 = time.perf_counter()
            SimRunner(fleet, end, sink, event_sink, chunk_steps=1, progress=False).run()
            wall = time.perf_counter() - t0
            anomalies = aurora.anomalies.query(start, None, None, 100_000)
            predictions = aurora.prediction_store.query(active=None, limit=10_000)
            incidents = aurora.incident_store.list(limit=1000)
            actions = aurora.actions.query(limit=10_000)
            limits = guardrails.Limits(cfg.remediation.max_actions_per_hour, cfg.remediation.breaker_failures,
                                       cfg.remediation.breaker_window_s)
            violations = _violations(actions, playbooks, limits)
            log = list(fleet.log)
        finally:
            aurora.close()
    out: dict[str, Any] = {"scenario": scenario, "seed": seed, "wall_seconds": wall,
                           "actions": len(actions), "executed": sum(a["executed_at"] is not None for a in actions),
                           "outside_policy": len(violations), "violations": violations,
                           "statuses": _counts(a["status"] for a in actions),
                           "executed_per_target": _counts(a["target"] for a in actions if a["executed_at"])}
    if truth:
        gt = truth[0]
        services = {gt["root_cause_service"], gt.get("fix_service") or gt["root_cause_service"]}
        services |= {f.service for f in sc.faults}
        # the first signal Aurora raised about the fault: an anomaly, or a prediction (a slow leak may be
        # predicted before any of its samples looks anomalous)
        detected = min([a["time"] for a in anomalies if a["service"] in services and a["time"] >= gt["onset"]]
                       + [float(p["created_at"]) for p in predictions
                          if p["service"] in services and float(p["created_at"]) >= gt["onset"]], default=None)
        fixes = sorted((a for a in actions if a["status"] == "verified" and a["target"] in services),
                       key=lambda a: a["finished_at"])
        fix = fixes[0] if fixes else None
        opened = min((float(i["opened_at"]) for i in incidents if i["opened_at"] >= gt["onset"]
                      and set(i["services"]) & services), default=None)
        effective = any(x["what"] == "action" and x["effective"] and fix is not None and x["service"] == fix["target"]
                        for x in log)
        out.update({
            "kind": gt["kind"], "onset": gt["onset"], "abrupt": gt["kind"] in ABRUPT,
            "detected_at": detected,
            "detection_delay_s": None if detected is None else detected - gt["onset"],
            "detection_delay_scrapes": None if detected is None else (detected - gt["onset"]) / STEP_S,
            "fix": None if fix is None else {k: fix[k] for k in ("id", "playbook", "action", "target",
                                                                 "executed_at", "finished_at")},
            "right_fix": fix is not None and fix["action"] == gt["fix"] and fix["target"] == gt["fix_service"],
            "fix_effective": effective,
            "detect_to_verified_s": (None if fix is None or detected is None
                                     else float(fix["finished_at"]) - detected),
            "detect_to_action_s": (None if fix is None or detected is None
                                   else float(fix["executed_at"]) - detected),
            # the first incident on the fault's services: when the engine took it for a problem
            "incident_at": opened,
            "incident_to_verified_s": None if fix is None or opened is None else float(fix["finished_at"]) - opened,
            "breach_avoided": not any(x["what"] == "breach" for x in log),
        })
    return out


def _counts(xs: Any) -> dict[str, int]:
    return dict(Counter(str(x) for x in xs))


def _pct(xs: Sequence[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if len(xs) else None


def summarize_loop(cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    faulty = [c for c in cases if "kind" in c]
    abrupt = [c["detection_delay_scrapes"] for c in faulty if c["abrupt"] and c["detection_delay_scrapes"] is not None]
    fixed = [c["detect_to_verified_s"] for c in faulty if c["detect_to_verified_s"] is not None]
    from_incident = [c["incident_to_verified_s"] for c in faulty if c.get("incident_to_verified_s") is not None]
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(c["kind"] for c in faulty):
        cs = [c for c in faulty if c["kind"] == kind]
        ttf = [c["detect_to_verified_s"] for c in cs if c["detect_to_verified_s"] is not None]
        decide = [c["detect_to_action_s"] for c in cs if c["detect_to_action_s"] is not None]
        takes = [c["detect_to_verified_s"] - c["detect_to_action_s"] for c in cs
                 if c["detect_to_verified_s"] is not None and c["detect_to_action_s"] is not None]
        itf = [c["incident_to_verified_s"] for c in cs if c.get("incident_to_verified_s") is not None]
        dd = [c["detection_delay_s"] for c in cs if c["detection_delay_s"] is not None]
        by_kind[kind] = {"runs": len(cs), "detected": len(dd), "detection_delay_median_s": _pct(dd, 50),
                         "verified_fixes": len(ttf), "right_fix": sum(c["right_fix"] for c in cs),
                         "detect_to_verified_median_s": _pct(ttf, 50),
                         "detect_to_verified_max_s": max(ttf, default=None),
                         # Aurora's part (detection -> the fix ran) and the fix's (it ran -> verified)
                         "detect_to_action_median_s": _pct(decide, 50), "action_to_verified_median_s": _pct(takes, 50),
                         "incident_to_verified_median_s": _pct(itf, 50),
                         "breach_avoided": sum(c["breach_avoided"] for c in cs)}
    return {
        "runs": len(cases),
        "outside_policy": sum(c["outside_policy"] for c in cases),
        "executed": sum(c["executed"] for c in cases),
        "abrupt_detection_scrapes_median": _pct(abrupt, 50),
        "abrupt_detection_scrapes_max": max(abrupt, default=None),
        "abrupt_detected_within_2_scrapes": (sum(x <= 2 for x in abrupt) / len(abrupt)) if abrupt else None,
        "verified_fixes": len(fixed),
        "faulty_runs": len(faulty),
        "detect_to_verified_median_s": _pct(fixed, 50),
        "detect_to_verified_p90_s": _pct(fixed, 90),
        "verified_within_60s": (sum(x <= 60 for x in fixed) / len(fixed)) if fixed else None,
        "incident_to_verified_median_s": _pct(from_incident, 50),
        "incident_to_verified_within_60s": (sum(x <= 60 for x in from_incident) / len(from_incident)
                                            if from_incident else None),
        "by_kind": by_kind,
        "flap": {f"{c['scenario']}#{c['seed']}": {k: c[k] for k in ("seed", "executed", "statuses",
                                                                    "executed_per_target", "outside_policy")}
                 for c in cases if c["scenario"] in FLAP_SCENARIOS},
    }


def run_loop_bench(out_dir: Path, seeds: Sequence[int], scenarios: Sequence[str] = LOOP_SCENARIOS, flap: bool = True,
                   progress: Callable[[str, int], Callable[[int], None]] | None = None) -> dict[str, Any]:
    """Every (scenario, seed), then each flap scenario once per seed; writes the report to ``out_dir``."""
    todo = [(s, seed) for seed in seeds for s in scenarios] + (
        [(s, seed) for seed in seeds for s in FLAP_SCENARIOS] if flap else [])
    advance = progress("e2e --engine", len(todo)) if progress else None
    cases = []
    t0 = time.perf_counter()
    for s, seed in todo:
        cases.append(run_loop_case(s, seed))
        if advance is not None:
            advance(1)
    report = {"bench": "e2e-engine", "seeds": list(seeds), "scenarios": list(scenarios),
              "seed_note": "reported seeds from 1000; development used seeds < 1000",
              **summarize_loop(cases), "seconds": time.perf_counter() - t0, "playbooks": BENCH_PLAYBOOKS,
              "flap_playbooks": FLAP_PLAYBOOKS, "cases": cases}
    write_report(out_dir, report, render_markdown)
    return report


def _f(v: float | None, spec: str = ".0f") -> str:
    return "-" if v is None else format(v, spec)


def render_markdown(r: dict[str, Any]) -> str:
    lines = [f"# Closed loop through the engine (seeds {r['seeds'][0]}..{r['seeds'][-1]}, {r['runs']} runs)", "",
             f"Executed runs: {r['executed']}; **outside policy: {r['outside_policy']}**. Abrupt faults detected "
             f"within 2 scrapes: {_f(r['abrupt_detected_within_2_scrapes'], '.0%')} (median "
             f"{_f(r['abrupt_detection_scrapes_median'], '.1f')}, max {_f(r['abrupt_detection_scrapes_max'], '.1f')} "
             f"scrapes). Detection to verified fix: median {_f(r['detect_to_verified_median_s'])} s, p90 "
             f"{_f(r['detect_to_verified_p90_s'])} s, within 60 s {_f(r['verified_within_60s'], '.0%')} "
             f"({r['verified_fixes']} fixes in {r['faulty_runs']} faulty runs). From the incident opening to the "
             f"verified fix: median {_f(r['incident_to_verified_median_s'])} s, within 60 s "
             f"{_f(r['incident_to_verified_within_60s'], '.0%')}.", "",
             "| fault | runs | detected | detection median | verified fixes | right fix | detect to verified median "
             "| max | detect to action median | action to verified median | incident to verified median "
             "| breach avoided |", "|---|" + "---:|" * 11]
    for kind, k in r["by_kind"].items():
        lines.append(f"| {kind} | {k['runs']} | {k['detected']} | {_f(k['detection_delay_median_s'])} s | "
                     f"{k['verified_fixes']} | {k['right_fix']} | {_f(k['detect_to_verified_median_s'])} s | "
                     f"{_f(k['detect_to_verified_max_s'])} s | {_f(k['detect_to_action_median_s'])} s | "
                     f"{_f(k['action_to_verified_median_s'])} s | {_f(k['incident_to_verified_median_s'])} s | "
                     f"{k['breach_avoided']} |")
    lines += ["", "| flap scenario | executed | per target | statuses | outside policy |", "|---|---:|---|---|---:|"]
    for name, f in r["flap"].items():
        lines.append(f"| {name} (seed {f['seed']}) | {f['executed']} | {f['executed_per_target']} | {f['statuses']} | "
                     f"{f['outside_policy']} |")
    return "\n".join(lines) + "\n"
