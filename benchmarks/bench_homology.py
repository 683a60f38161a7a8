"""Does the persistent-homology (PH) analyzer earn its place? Its cost, and what it catches on the simulator.

    .venv/bin/python benchmarks/bench_homology.py [--seeds 3] [--seed-base 1000] [--out bench-homology.json]

1. **Cost**: milliseconds per service per evaluation (median, p95) of ``HomologyAnalyzer.update`` on real
   simulator windows with a full baseline, for the default config and other window / max_points /
   baseline settings.
2. **Detection** on the simulated fleet, per fault kind and seed, plus fault-free runs:
   (a) Aurora's univariate ensemble (``EnsembleDetector``, as live) on every series (counters as
   per-second rates), alert = its alarm; (b) the PH analyzer per service (the service's series but
   its configured limits), alert when a record is anomalous. *Detected* = an alert on one of the fault's services (root
   cause, where it was injected, where it is fixed; as in ``aurora bench e2e``) within ``--horizon``
   minutes of the onset. False alarms: alerts on fault-free runs after their first hour (``WARMUP_S``;
   an alert is one per service within ``REFRACTORY_S`` = 10 min, as in the e2e harness), per 1000
   service-hours. PH evaluates every 5 min (``eval_every``), so its time to detect is at least that.

Two faults the simulator does not have are added here, at the observation level (the simulator's fault
physics lives in ``sim/fleet.py``): they change how cart's metrics move together while every metric
stays in its usual range (the univariate detector does not alert on them), starting at 09:00:

* ``decoupling``: for 60 min cart's CPU (utilization and CPU-seconds rate) stops following its own
  load: the values come from an independent fault-free fleet (another seed) at the same times, so the
  daily pattern and the distribution are the same and the fluctuations are unrelated to cart's requests;
* ``antiphase``: for 60 min cart's CPU moves against its load: mirrored around its level at onset
  (``2 level - value``), so it falls when requests rise.

Reported seeds start at 1000 (``--seed-base``); the config was chosen on seeds below 1000.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aurora.bench.e2e import SEED_BASE, counter_rates
from aurora.detect.ensemble import EnsembleDetector
from aurora.detect.homology import HomologyAnalyzer, HomologyConfig
from aurora.sim import CATALOGUE, DEFAULT_START, KINDS, Fleet

HOUR = 3600.0
CONFIG_METRICS = ("container_spec_memory_limit_bytes", "service_replicas", "db_connections_max", "disk_capacity_bytes")
PROBE_SERVICE = "cart"
PROBE_ONSET_H = 3.0
PROBE_MINUTES = 60.0
PROBES = {
    "decoupling": "cart's CPU follows an independent fleet's load (same distribution, unrelated fluctuations)",
    "antiphase": "cart's CPU is mirrored around its level at onset: it falls when requests rise",
}
WARMUP_S = 3600.0  # alerts in a run's first hour do not count (fresh detectors), as in the e2e harness
REFRACTORY_S = 600.0  # a service's alert within this of its last one is the same alert
PRE_ROLL_H = 2.0  # runs start this long before the scenario's own start, so both detectors are warm at onset


# ------------------------------------------------------------------------------------------ data


@dataclass
class Run:
    name: str
    kind: str | None
    seed: int
    ts: np.ndarray  # seconds
    x: np.ndarray  # [step, series], counters as per-second rates (NaN on the first step)
    series: list[tuple[str, dict[str, str]]]
    onset: float | None
    services: set[str]  # the fault's services (empty when fault-free)


def simulate_run(name: str, seed: int, hours: float | None = None) -> Run:
    """A catalogue scenario, or a probe (``decoupling`` / ``antiphase``) laid over a fault-free run."""
    base = name if name in CATALOGUE else "fault_free"
    sc = CATALOGUE[base]
    if hours is None:
        hours = PROBE_ONSET_H + 2.0 if name in PROBES else (sc.hours if sc.faults else 24.0)
    start = DEFAULT_START - PRE_ROLL_H * HOUR
    fleet = Fleet(seed=seed, start=start, faults=sc.at(DEFAULT_START))
    n = round((hours + PRE_ROLL_H) * HOUR / fleet.step_s)
    ts_ms, v = fleet.generate_matrix(n)
    series = fleet.series()
    counters = np.array([m.endswith("_total") for m, _ in series])
    x = counter_rates(v, counters, fleet.step_s)
    ts = ts_ms / 1000.0
    truth = sc.ground_truth(DEFAULT_START)
    if name in PROBES:
        onset = DEFAULT_START + PROBE_ONSET_H * HOUR
        during = (ts >= onset) & (ts < onset + PROBE_MINUTES * 60)
        cpu = np.array([i for i, (m, lab) in enumerate(series) if lab.get("service") == PROBE_SERVICE
                        and m in ("cpu_utilization_ratio", "process_cpu_seconds_total")], dtype=np.int64)
        if name == "decoupling":
            other = Fleet(seed=seed + 500_000, start=start)
            _, v2 = other.generate_matrix(n)
            x2 = counter_rates(v2, counters, fleet.step_s)
            x[np.ix_(during, cpu)] = x2[np.ix_(during, cpu)]
        else:
            before = (ts >= onset - 300) & (ts < onset)
            level = np.nanmean(x[before][:, cpu], axis=0)
            x[np.ix_(during, cpu)] = 2 * level - x[np.ix_(during, cpu)]
        return Run(name, name, seed, ts, x, series, onset, {PROBE_SERVICE})
    if not truth:
        return Run(name, None, seed, ts, x, series, None, set())
    gt = truth[0]
    services = {gt["root_cause_service"], gt["fix_service"], sc.faults[0].service}
    return Run(name, gt["kind"], seed, ts, x, series, gt["onset"], services)


def service_groups(series: Sequence[tuple[str, dict[str, str]]]) -> dict[str, list[int]]:
    """Columns per service: its series but its configured limits (constants, not behaviour)."""
    out: dict[str, list[int]] = {}
    for i, (m, lab) in enumerate(series):
        svc = lab.get("service")
        if svc is not None and m not in CONFIG_METRICS:
            out.setdefault(svc, []).append(i)
    return out


def column_name(metric: str, labels: dict[str, str]) -> str:
    extra = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("service", "host", "instance"))
    return f"{metric}{{{extra}}}" if extra else metric


# ------------------------------------------------------------------------------------- detectors


def _alerts(times: np.ndarray, hot: np.ndarray, t_min: float, refractory_s: float) -> list[float]:
    """Alert times of one service: hot samples, one alert per ``refractory_s``, from ``t_min`` on."""
    out: list[float] = []
    last = -np.inf
    for t in times[hot & (times >= t_min)].tolist():
        if t - last > refractory_s:
            out.append(t)
        last = t
    return out


def univariate_alerts(run: Run, services: Sequence[str]) -> dict[str, list[float]]:
    det = EnsembleDetector(run.x.shape[1])
    slots = np.arange(run.x.shape[1])
    alarms = np.zeros(run.x.shape, dtype=bool)
    for k in range(len(run.x)):  # the detector is streaming: one step of every series at a time
        alarms[k] = det.update(slots, run.x[k], np.full(len(slots), run.ts[k])).alarm
    groups = service_groups(run.series)
    allcols = {s: [i for i, (_, lab) in enumerate(run.series) if lab.get("service") == s] for s in groups}
    t_min = run.ts[0] + WARMUP_S
    hot = {s: np.asarray(alarms[:, allcols[s]].any(axis=1), dtype=bool) for s in services}
    return {s: _alerts(run.ts, hot[s], t_min, REFRACTORY_S) for s in services}


def homology_alerts(run: Run, services: Sequence[str], cfg: HomologyConfig, since: float | None = None,
                    until: float | None = None) -> tuple[dict[str, list[float]], int, float]:
    """PH alerts per service, the number of evaluations and their total seconds."""
    groups = service_groups(run.series)
    keep = np.ones(len(run.ts), bool)
    if since is not None:
        keep &= run.ts >= since
    if until is not None:
        keep &= run.ts < until
    out, evals, secs = {}, 0, 0.0
    for s in services:
        cols = groups[s]
        an = HomologyAnalyzer(cfg)
        t0 = time.perf_counter()
        recs = an.observe(s, run.ts[keep], run.x[keep][:, cols], [column_name(*run.series[i]) for i in cols])
        secs += time.perf_counter() - t0
        evals += len(recs)
        t = np.array([r.time for r in recs])
        hot = np.array([r.anomalous for r in recs], bool)
        out[s] = _alerts(t, hot, run.ts[0] + WARMUP_S, REFRACTORY_S) if len(recs) else []
    return out, evals, secs


# ------------------------------------------------------------------------------------------ cost


def measure_cost(cfg: HomologyConfig, x: np.ndarray, columns: list[str], n_evals: int) -> dict[str, Any]:
    """ms per evaluation of one service with a full baseline, on consecutive real windows."""
    an = HomologyAnalyzer(cfg)
    step = cfg.eval_every
    need = cfg.window + step * (cfg.warmup + cfg.baseline + cfg.min_calib + 2)
    if len(x) < need + step * n_evals:
        raise ValueError("not enough data for the cost measurement")
    an.observe("svc", np.arange(need) * 15.0, x[:need], columns)  # fill the baseline
    ms = []
    for k in range(n_evals):
        end = need + k * step
        t0 = time.perf_counter()
        rec = an.update("svc", end * 15.0, x[end - cfg.window:end])
        ms.append((time.perf_counter() - t0) * 1e3)
        assert rec.status == "scored" and len(an.groups["svc"].dgms) == cfg.baseline  # a full baseline
    return {"window": cfg.window, "max_points": cfg.max_points, "baseline": cfg.baseline,
            "points": cfg.n_points, "distance_calls": cfg.baseline * (cfg.maxdim + 1),
            "ms_median": float(np.median(ms)), "ms_p95": float(np.percentile(ms, 95)), "evaluations": n_evals}


COST_CONFIGS: list[dict[str, Any]] = [
    {},  # the default
    {"window": 60, "max_points": 60},
    {"window": 480, "max_points": 60},
    {"window": 240, "max_points": 120},
    {"window": 240, "max_points": 30},
    {"baseline": 24},
]


# ------------------------------------------------------------------------------------ experiment


def onset_h(name: str) -> float:
    return PROBE_ONSET_H if name in PROBES else CATALOGUE[name].faults[0].offset_s / HOUR


def detection_case(name: str, seed: int, cfg: HomologyConfig, horizon_s: float) -> dict[str, Any]:
    run = simulate_run(name, seed, hours=onset_h(name) + horizon_s / HOUR + 0.1)  # nothing later is scored
    assert run.onset is not None
    onset: float = run.onset
    services = sorted(run.services)
    uni = univariate_alerts(run, services)
    lead = 3.5 * HOUR  # PH needs a window and its learning before onset; earlier samples cannot matter
    ph, evals, secs = homology_alerts(run, services, cfg, since=onset - lead, until=onset + horizon_s)

    def first(alerts: dict[str, list[float]]) -> float | None:
        ts = [t for a in alerts.values() for t in a if onset <= t <= onset + horizon_s]
        return min(ts) - onset if ts else None

    def before(alerts: dict[str, list[float]]) -> int:
        return sum(1 for a in alerts.values() for t in a if t < onset)

    u, p = first(uni), first(ph)
    out: dict[str, Any] = {
        "scenario": name, "kind": run.kind, "seed": seed, "services": services,
        "univariate_detected": u is not None, "univariate_ttd_s": u, "ph_detected": p is not None, "ph_ttd_s": p,
        "univariate_alerts_before_onset": before(uni), "ph_alerts_before_onset": before(ph),
        "ph_evaluations": evals, "ph_seconds": secs,
    }
    if name in PROBES:
        out["probe_correlation"] = probe_strength(run)
    return out


def probe_strength(run: Run) -> dict[str, float]:
    """How strong a probe is where it acts: the correlation of cart's request rate and CPU utilization in
    15-min windows (every 5 min), median over the 2 h before onset and over the windows inside the probe."""
    assert run.onset is not None
    col = {(m, lab.get("code")): i for i, (m, lab) in enumerate(run.series) if lab.get("service") == PROBE_SERVICE}
    rate, cpu = run.x[:, col[("http_requests_total", "2xx")]], run.x[:, col[("cpu_utilization_ratio", None)]]
    before, during = [], []
    for end in range(60, len(run.ts) + 1, 20):
        t0, t1 = run.ts[end - 60], run.ts[end - 1]
        r = float(np.corrcoef(rate[end - 60:end], cpu[end - 60:end])[0, 1])
        if run.onset - 2 * HOUR <= t0 and t1 < run.onset:
            before.append(r)
        elif t0 >= run.onset and t1 < run.onset + PROBE_MINUTES * 60:
            during.append(r)
    return {"before_median": float(np.median(before)), "before_min": float(np.min(before)),
            "during_median": float(np.median(during)), "during_max": float(np.max(during))}


def fault_free_case(seed: int, hours: float, cfg: HomologyConfig) -> dict[str, Any]:
    run = simulate_run("fault_free", seed, hours=hours)
    services = sorted(service_groups(run.series))
    uni = univariate_alerts(run, services)
    ph, evals, secs = homology_alerts(run, services, cfg)
    scored_h = (run.ts[-1] - run.ts[0] - WARMUP_S) / HOUR * len(services)
    return {"seed": seed, "hours": hours + PRE_ROLL_H, "service_hours": scored_h,
            "univariate_alarms": sum(len(a) for a in uni.values()), "ph_alarms": sum(len(a) for a in ph.values()),
            "ph_alarms_by_service": {s: len(a) for s, a in ph.items() if a},
            "ph_evaluations": evals, "ph_seconds": secs}


def default_kinds() -> list[str]:
    """One scenario per simulator fault kind (the one named after it), then the two probes."""
    return [k for k in KINDS if k in CATALOGUE] + list(PROBES)


def summarize(cases: list[dict[str, Any]], free: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, Any] = {}
    for name in dict.fromkeys(c["scenario"] for c in cases):
        cs = [c for c in cases if c["scenario"] == name]
        ut = [c["univariate_ttd_s"] for c in cs if c["univariate_detected"]]
        pt = [c["ph_ttd_s"] for c in cs if c["ph_detected"]]
        by[name] = {
            "cases": len(cs),
            "univariate_detected": sum(c["univariate_detected"] for c in cs),
            "univariate_ttd_median_s": float(np.median(ut)) if ut else None,
            "ph_detected": sum(c["ph_detected"] for c in cs),
            "ph_ttd_median_s": float(np.median(pt)) if pt else None,
            "ph_only": [c["seed"] for c in cs if c["ph_detected"] and not c["univariate_detected"]],
            "univariate_only": [c["seed"] for c in cs if c["univariate_detected"] and not c["ph_detected"]],
            "ph_first": sum(1 for c in cs if c["ph_detected"] and (not c["univariate_detected"]
                                                                   or c["ph_ttd_s"] < c["univariate_ttd_s"])),
        }
    sh = sum(f["service_hours"] for f in free)

    def per_1000(key: str) -> float | None:
        return 1000 * sum(f[key] for f in free) / sh if sh else None

    return {
        "by_scenario": by,
        "ph_only_cases": [(c["scenario"], c["seed"]) for c in cases
                          if c["ph_detected"] and not c["univariate_detected"]],
        "fault_free_service_hours": sh,
        "univariate_false_alarms_per_1000_service_hours": per_1000("univariate_alarms"),
        "ph_false_alarms_per_1000_service_hours": per_1000("ph_alarms"),
    }


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def run_bench(seeds: int, seed_base: int, cfg: HomologyConfig, kinds: Sequence[str], free_hours: float,
              free_runs: int, horizon_s: float, cost_evals: int, console: Console) -> dict[str, Any]:
    t0 = time.perf_counter()
    report: dict[str, Any] = {"bench": "homology", "config": asdict(cfg), "seed_base": seed_base,
                              "seeds": [seed_base + i for i in range(seeds)], "kinds": list(kinds),
                              "univariate": "aurora-ensemble, alert = its alarm (as live)",
                              "horizon_s": horizon_s, "probes": PROBES,
                              "alert_rule": {"refractory_s": REFRACTORY_S, "warmup_s": WARMUP_S}}
    with _progress(console) as bar:
        # 1. cost, on cart's real metrics
        run = simulate_run("fault_free", seed_base, hours=10)
        cols = service_groups(run.series)["cart"]
        x = run.x[1:, cols]
        names = [column_name(*run.series[i]) for i in cols]
        task = bar.add_task("cost", total=len(COST_CONFIGS))
        cost = []
        for over in COST_CONFIGS:
            c = replace(cfg, **over)
            cost.append({"label": "default" if not over else ", ".join(f"{k}={v}" for k, v in over.items()),
                         **measure_cost(c, x, names, cost_evals)})
            bar.advance(task)
        report["cost"] = cost
        # 2. detection
        cases = [(k, seed_base + i) for i in range(seeds) for k in kinds]
        task = bar.add_task("faults", total=len(cases))
        results = []
        for k, seed in cases:
            results.append(detection_case(k, seed, cfg, horizon_s))
            bar.advance(task)
        task = bar.add_task("fault-free", total=free_runs)
        free = []
        for i in range(free_runs):
            free.append(fault_free_case(seed_base + i, free_hours, cfg))
            bar.advance(task)
    report.update(summarize(results, free))
    evals = sum(c["ph_evaluations"] for c in results) + sum(f["ph_evaluations"] for f in free)
    secs = sum(c["ph_seconds"] for c in results) + sum(f["ph_seconds"] for f in free)
    report["ph_ms_per_evaluation_in_experiment"] = 1e3 * secs / evals if evals else None
    report["cases"] = results
    report["fault_free_runs"] = free
    report["seconds"] = time.perf_counter() - t0
    return report


def _min(v: float | None) -> str:
    return "-" if v is None else f"{v / 60:.1f} min"


def render(report: dict[str, Any], console: Console) -> None:
    t = Table(title="PH cost per service per evaluation (cart, full baseline)")
    for c in ("config", "window", "max_points", "points", "baseline", "distance calls", "median ms", "p95 ms"):
        t.add_column(c, justify="left" if c == "config" else "right")
    for c in report["cost"]:
        t.add_row(c["label"], str(c["window"]), str(c["max_points"]), str(c["points"]), str(c["baseline"]),
                  str(c["distance_calls"]), f"{c['ms_median']:.1f}", f"{c['ms_p95']:.1f}")
    console.print(t)
    t = Table(title=f"Detection within {report['horizon_s'] / 60:.0f} min of onset, seeds {report['seeds'][0]}.."
                    f"{report['seeds'][-1]}")
    for c in ("scenario", "cases", "univariate", "uni TTD", "PH", "PH TTD", "PH only", "PH first"):
        t.add_column(c, justify="left" if c == "scenario" else "right")
    for name, s in report["by_scenario"].items():
        t.add_row(name, str(s["cases"]), f"{s['univariate_detected']}/{s['cases']}", _min(s["univariate_ttd_median_s"]),
                  f"{s['ph_detected']}/{s['cases']}", _min(s["ph_ttd_median_s"]), str(len(s["ph_only"])),
                  str(s["ph_first"]))
    console.print(t)
    fu, fp = report["univariate_false_alarms_per_1000_service_hours"], report["ph_false_alarms_per_1000_service_hours"]
    console.print(f"False alarms on fault-free runs ({report['fault_free_service_hours']:.0f} service-hours): "
                  f"univariate {fu:.1f}, PH {fp:.1f} per 1000 service-hours.")
    for c in report["cases"]:
        if "probe_correlation" in c:
            pc = c["probe_correlation"]
            console.print(f"  probe {c['scenario']} seed {c['seed']}: cart requests~CPU correlation per 15-min window "
                          f"before median {pc['before_median']:+.2f} (min {pc['before_min']:+.2f}), during median "
                          f"{pc['during_median']:+.2f} (max {pc['during_max']:+.2f})")
    console.print(f"Cases PH caught and univariate missed: {report['ph_only_cases'] or 'none'}. "
                  f"Whole bench: {report['seconds']:.0f} s.")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-base", type=int, default=SEED_BASE)
    ap.add_argument("--kinds", default=",".join(default_kinds()), help="comma-separated scenarios")
    ap.add_argument("--free-hours", type=float, default=10.0, help="length of each fault-free run")
    ap.add_argument("--free-runs", type=int, default=2)
    ap.add_argument("--horizon", type=float, default=60.0, help="minutes after onset a detection may take")
    ap.add_argument("--cost-evals", type=int, default=40)
    ap.add_argument("--config", default="{}", help="JSON overrides of HomologyConfig")
    ap.add_argument("--out", type=Path, default=Path("bench-homology.json"))
    args = ap.parse_args(argv)
    console = Console(stderr=True)
    cfg = HomologyConfig(**json.loads(args.config))
    report = run_bench(args.seeds, args.seed_base, cfg, [k for k in args.kinds.split(",") if k], args.free_hours,
                       args.free_runs, args.horizon * 60.0, args.cost_evals, console)
    render(report, Console(width=150))
    args.out.write_text(json.dumps(report, indent=2, default=str))
    Console(stderr=True).print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
