"""``aurora bench incidents``: correlation and root-cause ranking on the simulated fleet, many seeds.

Per scenario and seed, the fleet runs in event time through the same stages the live engine runs:
the detection stage (``DetectStage``: counters as rates, cooldown, anomaly records with evidence), then
the incident engine (``IncidentEngine``: correlation over the fleet's declared topology, the evidence bar,
the lifecycle, root-cause ranking over the stored series). Only the storage differs: series live in
memory (``MatrixStore``) and incidents in a list (``MemoryIncidents``), so a run takes seconds.

Measures, per fault type and overall:

* **one incident per fault**: exactly one incident opened after the fault's onset (runs hold one fault).
  Incidents opened before the onset are false incidents, as are all of a fault-free run's (reported per
  fleet-day).
* **AC@1 / AC@3**: the fault's incident (the first opened after the onset) ranks the ground truth's
  root-cause service first / in the top 3, at its first ranking and at its last (what its page shows
  when the run ends); a fault with no incident counts as a miss.
* time from onset to the incident opening.

Reported seeds start at 1000; development used seeds below 1000.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aurora.bench.report import write_report
from aurora.config import ServiceConfig
from aurora.detect.stage import DetectStage
from aurora.incidents.engine import IncidentEngine
from aurora.incidents.signals import from_anomaly, from_prediction
from aurora.predict.lifecycle import Lifecycle
from aurora.predict.stage import PredictStage
from aurora.rca.live import ChangeRef
from aurora.sim import DEFAULT_START, Fleet, get_scenario
from aurora.sim.faults import CATALOGUE
from aurora.store.index import SeriesInfo
from aurora.topology.graph import ServiceGraph

DEFAULT_SCENARIOS = tuple(n for n, s in CATALOGUE.items() if s.faults)
CHUNK_STEPS = 4  # one minute of scrapes per batch, as a scrape-driven server sees them


class MatrixStore:
    """The fleet's series in memory, with the two calls the detection stage and the ranking make."""

    def __init__(self, series: list[tuple[str, dict[str, str]]], capacity: int) -> None:
        self.infos = [SeriesInfo(i, m, dict(lab)) for i, (m, lab) in enumerate(series)]
        self.ts = np.zeros(capacity, np.int64)
        self.values = np.full((capacity, len(series)), np.nan)
        self.n = 0

    def append(self, ts_ms: np.ndarray, rows: np.ndarray) -> None:
        k = len(ts_ms)
        self.ts[self.n:self.n + k] = ts_ms
        self.values[self.n:self.n + k] = rows
        self.n += k

    def get_series(self, series_id: int) -> SeriesInfo:
        return self.infos[series_id]

    def all_series(self) -> list[SeriesInfo]:
        return self.infos

    def read(self, series_id: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        ts = self.ts[: self.n]
        a, b = int(np.searchsorted(ts, start_ms, "left")), int(np.searchsorted(ts, end_ms, "right"))
        return ts[a:b].copy(), self.values[a:b, series_id].copy()


class MemoryPredictions:
    """A prediction store (``PredictionStore``'s writes) in a dict."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}

    def insert(self, recs: list[dict[str, Any]]) -> list[int]:
        ids = []
        for rec in recs:
            pid = len(self.rows) + 1
            self.rows[pid] = {**rec, "id": pid}
            ids.append(pid)
        return ids

    def update(self, recs: list[dict[str, Any]]) -> None:
        for rec in recs:
            self.rows[int(rec["id"])].update(rec)

    def active_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["state"] == "active"]


class MemoryIncidents:
    """An incident sink that keeps incidents as dicts, with their ranking history."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}

    def create(self, fields: dict[str, Any]) -> int:
        iid = len(self.items) + 1
        self.items[iid] = {**fields, "id": iid, "rankings": [], "timeline": []}
        return iid

    def update(self, incident_id: int, fields: dict[str, Any]) -> None:
        inc = self.items[incident_id]
        inc.update(fields)
        if fields.get("root_causes"):
            inc["rankings"].append([c["service"] for c in fields["root_causes"]])

    def upsert_signals(self, incident_id: int, signals: list[dict[str, Any]]) -> None:
        pass

    def add_timeline(self, incident_id: int, entries: list[dict[str, Any]]) -> None:
        self.items[incident_id]["timeline"].extend(entries)


def fleet_graph(fleet: Fleet) -> ServiceGraph:
    graph = ServiceGraph()
    graph.set_declared([ServiceConfig(name=str(t["service"]), depends_on=list(t["depends_on"]))
                        for t in fleet.topology()])
    return graph


@dataclass(frozen=True)
class IncidentBenchConfig:
    warmup_s: float = 3600.0  # the detectors learn a fresh fleet: incidents in the first hour count for nothing
    fault_free_hours: float = 24.0
    predictions: bool = True  # run the prediction stage too (its predictions are incident signals)


def run_case(scenario: str, seed: int, cfg: IncidentBenchConfig, hours: float | None = None) -> dict[str, Any]:
    sc = get_scenario(scenario)
    start = DEFAULT_START
    fleet = Fleet(seed=seed, start=start, faults=sc.at(start))
    gt = fleet.ground_truth()[0] if sc.faults else None
    hours = sc.hours if hours is None else hours
    n_steps = round(hours * 3600 / fleet.step_s)
    store = MatrixStore(fleet.series(), n_steps)
    graph = fleet_graph(fleet)
    events: list[ChangeRef] = []
    sink = MemoryIncidents()
    detect_stage: DetectStage | None = None

    def changes(a: float, b: float) -> list[ChangeRef]:
        return [e for e in events if a <= e.time <= b]

    engine = IncidentEngine(sink, store, graph, changes, user_facing=[fleet.spec.entry],
                            score_of=lambda ids: detect_stage.current_scores(ids) if detect_stage else ids * np.nan)
    detect_stage = DetectStage(store, lambda recs: engine.offer(from_anomaly(r) for r in recs))
    predictions = MemoryPredictions()
    predict_stage = None
    if cfg.predictions:
        life = Lifecycle(predictions, signal=lambda recs: engine.offer(from_prediction(r) for r in recs),
                         changes=changes)
        predict_stage = PredictStage(life, store=store)
    ids = np.arange(len(store.infos), dtype=np.int64)
    t0 = time.perf_counter()
    done = 0
    while done < n_steps:
        k = min(CHUNK_STEPS, n_steps - done)
        batch = fleet.generate(k)
        ts, vals = batch.ts_ms[:k], batch.values.reshape(len(ids), k).T
        store.append(ts, vals)
        events.extend(ChangeRef(e.kind, e.service, e.time, e.attributes) for e in fleet.drain_events())
        now_ms = int(ts[-1])
        detect_stage.process(batch, ids, now_ms)
        if predict_stage is not None:
            predict_stage.process(batch, ids, now_ms)
        engine.step(now_ms / 1000.0)
        done += k
    wall = time.perf_counter() - t0
    incs = sorted(sink.items.values(), key=lambda i: i["opened_at"])
    after_warmup = [i for i in incs if i["opened_at"] >= start + cfg.warmup_s]
    onset = gt["onset"] if gt else None
    before = [i for i in after_warmup if onset is None or i["opened_at"] < onset]
    after = [i for i in after_warmup if onset is not None and i["opened_at"] >= onset]
    fault_inc = after[0] if after else None
    truth = gt["root_cause_service"] if gt else None

    def rank_of(ranking: list[str] | None) -> int | None:
        if not ranking or truth is None:
            return None
        return ranking.index(truth) + 1 if truth in ranking else None

    first = fault_inc["rankings"][0] if fault_inc and fault_inc["rankings"] else None
    last = fault_inc["rankings"][-1] if fault_inc and fault_inc["rankings"] else None
    return {
        "scenario": scenario, "seed": seed, "fault": gt["kind"] if gt else "none", "truth": truth,
        "hours": hours, "wall_s": wall, "signals": engine.correlator.signals_seen,
        "blips_dropped": engine.correlator.blips_dropped, "rankings": engine.rankings,
        "predictions": len(predictions.rows),
        # the kinds of signal that opened the fault's incident (its first timeline entries)
        "opened_by": sorted({e["text"].split(":", 1)[0] for e in (fault_inc or {}).get("timeline", [])
                             if e["kind"] == "signal" and e["time"] <= fault_inc["opened_at"]}) if fault_inc else [],
        "incidents_total": len(incs), "false_incidents": len(before), "incidents_after_onset": len(after),
        "one_incident": len(after) == 1,
        "time_to_incident_s": fault_inc["opened_at"] - onset if fault_inc and onset is not None else None,
        "first_rank": rank_of(first), "last_rank": rank_of(last),
        "first_ranking": first, "last_ranking": last,
        "confidence": fault_inc.get("confidence") if fault_inc else None,
        "title": fault_inc.get("title") if fault_inc else None,
        "summary": fault_inc.get("summary") if fault_inc else None,
        "false_titles": [i["title"] for i in before],
        "extra_titles": [i["title"] for i in after[1:]],
    }


def _acc(ranks: Sequence[int | None], k: int) -> float | None:
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else None


def summarize_cases(cases: list[dict[str, Any]]) -> dict[str, Any]:
    ttis = sorted(c["time_to_incident_s"] for c in cases if c["time_to_incident_s"] is not None)
    return {
        "cases": len(cases),
        "one_incident_share": sum(c["one_incident"] for c in cases) / len(cases) if cases else None,
        "no_incident": sum(c["incidents_after_onset"] == 0 for c in cases),
        "several_incidents": sum(c["incidents_after_onset"] > 1 for c in cases),
        "false_incidents": sum(c["false_incidents"] for c in cases),
        "AC@1": _acc([c["last_rank"] for c in cases], 1), "AC@3": _acc([c["last_rank"] for c in cases], 3),
        "AC@1_first": _acc([c["first_rank"] for c in cases], 1),
        "AC@3_first": _acc([c["first_rank"] for c in cases], 3),
        "time_to_incident_median_s": float(np.median(ttis)) if ttis else None,
        "time_to_incident_p90_s": float(np.percentile(ttis, 90)) if ttis else None,
    }


def run_bench(out_dir: Path, seeds: int = 10, seed_base: int = 1000, scenarios: Sequence[str] = DEFAULT_SCENARIOS,
              fault_free: bool = True, config: IncidentBenchConfig | None = None, limit: int | None = None,
              progress: Callable[[str, int], Callable[[int], None]] | None = None) -> dict[str, Any]:
    cfg = config or IncidentBenchConfig()
    for s in scenarios:
        get_scenario(s)
    runs = [(s, seed_base + i) for s in scenarios for i in range(seeds)]
    ff_runs = [("fault_free", seed_base + i) for i in range(seeds)] if fault_free else []
    if limit:
        runs = runs[:limit]
        ff_runs = ff_runs[: max(1, limit // 10)] if fault_free else []
    advance = progress("incidents", len(runs) + len(ff_runs)) if progress else None
    t0 = time.perf_counter()
    cases = []
    for s, seed in runs:
        cases.append(run_case(s, seed, cfg))
        if advance:
            advance(1)
    ff = []
    for s, seed in ff_runs:
        ff.append(run_case(s, seed, cfg, hours=cfg.fault_free_hours))
        if advance:
            advance(1)
    ff_days = sum((c["hours"] * 3600 - cfg.warmup_s) / 86400 for c in ff)
    report: dict[str, Any] = {
        "seeds": [seed_base, seed_base + seeds - 1], "scenarios": list(scenarios),
        **summarize_cases(cases),
        "by_fault": {s: summarize_cases([c for c in cases if c["scenario"] == s]) for s in scenarios},
        "fault_free_runs": len(ff), "fault_free_days": ff_days,
        "false_incidents_fault_free": sum(c["false_incidents"] for c in ff),
        "false_incidents_per_day_fault_free": (sum(c["false_incidents"] for c in ff) / ff_days) if ff_days else None,
        "signals_fault_free": sum(c["signals"] for c in ff),
        "seconds": time.perf_counter() - t0,
        "cases_detail": cases, "fault_free_detail": ff,
    }
    write_report(Path(out_dir), report, render_markdown)
    return report


def _fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "-"
    return f"{x:.0%}" if pct else f"{x:.2f}"


def _mins(s: float | None) -> str:
    return "-" if s is None else f"{s / 60:.1f} min"


def render_markdown(r: dict[str, Any]) -> str:
    lines = ["# Incidents benchmark (simulated fleet)", "",
             f"Seeds {r['seeds'][0]}..{r['seeds'][1]}; {r['cases']} faulty runs, {r['fault_free_runs']} fault-free "
             f"runs ({r['fault_free_days']:.1f} fleet-days).", "",
             "| fault | runs | one incident | none | several | AC@1 | AC@3 | AC@1 first | to incident median | p90 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in [*r["by_fault"].items(), ("all", r)]:
        lines.append(f"| {name} | {s['cases']} | {_fmt(s['one_incident_share'])} | {s['no_incident']} | "
                     f"{s['several_incidents']} | {_fmt(s['AC@1'])} | {_fmt(s['AC@3'])} | {_fmt(s['AC@1_first'])} | "
                     f"{_mins(s['time_to_incident_median_s'])} | {_mins(s['time_to_incident_p90_s'])} |")
    lines += ["", f"False incidents: {r['false_incidents']} before an onset on faulty runs; "
                  f"{r['false_incidents_fault_free']} on fault-free runs = "
                  f"{_fmt(r['false_incidents_per_day_fault_free'], pct=False)} per fleet-day.", "",
              "| run | truth | incidents after onset | last ranking | confidence | title |",
              "|---|---|---:|---|---|---|"]
    for c in r["cases_detail"]:
        lines.append(f"| {c['scenario']}#{c['seed']} | {c['truth']} | {c['incidents_after_onset']} | "
                     f"{', '.join((c['last_ranking'] or [])[:3])} | {c['confidence']} | {c['title']} |")
    return "\n".join(lines) + "\n"
