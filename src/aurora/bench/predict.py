"""``aurora bench predict``: failure prediction on the simulated fleet's slow-burn faults.

Per scenario and seed the fleet is simulated (``aurora.sim``), then streamed through the predictor in
event time: every ``eval_s`` (1 min) of event time the predictor sees, for every series with a known
limit (memory vs its limit, disk vs capacity, DB connections vs the pool size, model accuracy vs its
floor), only the samples at or before ``now``. The run is simulated whole first for speed; causality
is the predictor's contract, and the harness only ever hands it a window ending at ``now``.

A *prediction* is an episode, as the API shows it: it is created the first time a series gets a
prediction and updated while the series keeps getting one; a gap longer than ``gap_s`` closes it.

Scores (ground truth from ``Scenario.ground_truth``):

* recall: share of faulty runs with a correct prediction: on the root-cause series, created after the
  fault's onset and before the breach;
* precision: correct predictions / all predictions (faulty and fault-free runs);
* false predictions per 1,000 series-days on the fault-free runs (and, separately, on the faulty runs'
  other series);
* lead time = breach time - creation of the first correct prediction (median and 10th percentile;
  misses are not in it, recall counts them);
* ETA interval coverage: share of the correct predictions' updates (one per evaluation) whose
  ``[eta_low, eta_high]`` contains the true breach, and the same for the first update only.

The target series is ignored from its breach on (after an OOM kill the leak starts over; the
ground truth names only the first breach).

Seeds: reported runs use seeds ``seed_base .. seed_base + seeds - 1`` with ``seed_base = 1000`` by
default. Development and the unit tests used seeds below 1000 only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aurora.bench.report import write_report
from aurora.predict.baseline import PredictConfig, limit_columns, predict_breaches
from aurora.sim import DEFAULT_START, get_scenario, simulate

SLOW_BURN = ("slow_memory_leak", "slow_disk_fill", "slow_pool_leak", "model_drift")
FAST = ("memory_leak", "disk_fill", "pool_exhaustion")
DEFAULT_SCENARIOS = (*SLOW_BURN, *FAST)
SEED_BASE = 1000  # reported seeds start here; development used seeds < 1000
DAY = 86400.0


@dataclass(frozen=True)
class PredictBenchConfig:
    eval_s: float = 60.0  # evaluate every minute of event time
    gap_s: float = 600.0  # a prediction absent for longer than this is closed
    fault_free_hours: float = 24.0


def _episodes(records: list[tuple[float, dict[str, Any]]], gap_s: float) -> list[list[tuple[float, dict[str, Any]]]]:
    """Group one series' (time, record) updates into episodes."""
    out: list[list[tuple[float, dict[str, Any]]]] = []
    for now, rec in records:
        if out and now - out[-1][-1][0] <= gap_s:
            out[-1].append((now, rec))
        else:
            out.append([(now, rec)])
    return out


def run_case(scenario: str, seed: int, predictor: PredictConfig | None = None,
             config: PredictBenchConfig | None = None, start: float = DEFAULT_START) -> dict[str, Any]:
    """Simulate one scenario and seed, stream it through the predictor, score it."""
    cfg = config or PredictBenchConfig()
    pcfg = predictor or PredictConfig()
    sc = get_scenario(scenario)
    hours = cfg.fault_free_hours if not sc.faults else None
    t0 = time.perf_counter()
    fleet, ts_ms, values = simulate(sc, seed=seed, start=start, hours=hours)
    sim_s = time.perf_counter() - t0
    ts = ts_ms / 1000.0
    series = fleet.series()
    limited = limit_columns(series)
    cols = np.array([ls.column for ls in limited], dtype=np.int64)
    direction = np.array([ls.direction for ls in limited], dtype=np.int64)
    truth = sc.ground_truth(start)
    gt = truth[0] if truth else None
    observed = fleet.observed_breaches()
    breach = None
    target = -1
    if gt is not None:
        breach = observed[0] if observed and observed[0] is not None else gt["breach_time"]
        for k, ls in enumerate(limited):
            metric, labels = series[ls.column]
            if metric == gt["root_cause_metric"] and labels.get("service") == gt["root_cause_service"]:
                target = k
        if target < 0:
            raise ValueError(f"{scenario}: no predictable series for {gt['root_cause_metric']}")

    # Stream in event time.
    t1 = time.perf_counter()
    per_series: dict[int, list[tuple[float, dict[str, Any]]]] = {}
    first_eval = ts[0] + pcfg.window_s * pcfg.min_span_ratio
    evals = np.arange(first_eval, ts[-1] + 1e-9, cfg.eval_s)
    lo_idx = np.searchsorted(ts, evals - pcfg.window_s, side="right")
    hi_idx = np.searchsorted(ts, evals, side="right")
    for now, lo, hi in zip(evals.tolist(), lo_idx.tolist(), hi_idx.tolist(), strict=True):
        window = values[lo:hi, cols].T
        latest = values[hi - 1]
        limits = np.array([latest[ls.limit_column] if ls.limit_column is not None else ls.limit_value
                           for ls in limited])
        for rec in predict_breaches(ts[lo:hi], window, limits, now, direction, pcfg):
            k = rec["series"]
            if k == target and breach is not None and now >= breach:
                continue
            per_series.setdefault(k, []).append((now, rec))
    predict_s = time.perf_counter() - t1

    predictions: list[dict[str, Any]] = []
    updates_covering = updates_total = 0
    for k in sorted(per_series):
        metric, labels = series[int(cols[k])]
        for ep in _episodes(per_series[k], cfg.gap_s):
            created, first = ep[0]
            correct = bool(k == target and gt is not None and breach is not None
                           and gt["onset"] <= created < breach)
            entry: dict[str, Any] = {
                "metric": metric, "service": labels.get("service"), "labels": labels,
                "created_at": created, "updated_at": ep[-1][0], "updates": len(ep), "correct": correct,
                "first": {x: first[x] for x in ("eta", "eta_low", "eta_high", "slope", "current", "limit", "since")},
            }
            if correct and breach is not None:
                cover = [r["eta_low"] <= breach <= r["eta_high"] for _, r in ep]
                updates_covering += sum(cover)
                updates_total += len(cover)
                entry["first_covers_breach"] = cover[0]
                entry["first_eta_error_s"] = first["eta"] - breach
                entry["updates_covering_breach"] = sum(cover)
            predictions.append(entry)
    correct_preds = [p for p in predictions if p["correct"]]
    first_correct = min((p["created_at"] for p in correct_preds), default=None)
    span_days = (evals[-1] - evals[0] + cfg.eval_s) / DAY if len(evals) else 0.0
    return {
        "scenario": scenario,
        "seed": seed,
        "faulty": gt is not None,
        "onset": gt["onset"] if gt else None,
        "breach_time": breach,
        "breach_time_ground_truth": gt["breach_time"] if gt else None,
        "target": ({"metric": gt["root_cause_metric"], "service": gt["root_cause_service"]} if gt else None),
        "predictable_series": len(limited),
        "evaluations": len(evals),
        "series_days": span_days * len(limited),
        "other_series_days": span_days * (len(limited) - (1 if gt else 0)),
        "predicted": first_correct is not None,
        "first_correct_at": first_correct,
        "lead_time_s": (breach - first_correct) if first_correct is not None and breach is not None else None,
        "correct_predictions": len(correct_preds),
        "false_predictions": len(predictions) - len(correct_preds),
        "eta_updates": updates_total,
        "eta_updates_covering": updates_covering,
        "predictions": predictions,
        "sim_seconds": sim_s,
        "predict_seconds": predict_s,
    }


def _pct(xs: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if len(xs) else None


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    faulty = [r for r in runs if r["faulty"]]
    free = [r for r in runs if not r["faulty"]]
    all_preds = [p for r in runs for p in r["predictions"]]
    correct = [p for p in all_preds if p["correct"]]
    leads = [r["lead_time_s"] for r in faulty if r["lead_time_s"] is not None]
    first_of_run = []
    for r in faulty:
        cs = [p for p in r["predictions"] if p["correct"]]
        if cs:
            first_of_run.append(min(cs, key=lambda p: p["created_at"]))
    upd = sum(r["eta_updates"] for r in faulty)
    cov = sum(r["eta_updates_covering"] for r in faulty)
    free_days = sum(r["series_days"] for r in free)
    other_days = sum(r["other_series_days"] for r in faulty)
    free_false = sum(r["false_predictions"] for r in free)
    other_false = sum(r["false_predictions"] for r in faulty)
    return {
        "runs": len(runs),
        "faulty_runs": len(faulty),
        "fault_free_runs": len(free),
        "recall": (sum(r["predicted"] for r in faulty) / len(faulty)) if faulty else None,
        "precision": (len(correct) / len(all_preds)) if all_preds else None,
        "predictions": len(all_preds),
        "correct_predictions": len(correct),
        "false_predictions_fault_free": free_false,
        "fault_free_series_days": free_days,
        "false_predictions_per_1000_series_days": (1000 * free_false / free_days) if free_days else None,
        "false_predictions_per_1000_series_days_faulty_runs_other_series":
            (1000 * other_false / other_days) if other_days else None,
        "lead_time_median_s": _pct(leads, 50),
        "lead_time_p10_s": _pct(leads, 10),
        "lead_time_max_s": max(leads) if leads else None,
        "eta_interval_coverage": (cov / upd) if upd else None,
        "eta_interval_coverage_first": (sum(p["first_covers_breach"] for p in first_of_run) / len(first_of_run)
                                        if first_of_run else None),
        "eta_abs_error_first_median_s": _pct([abs(p["first_eta_error_s"]) for p in first_of_run], 50),
    }


def run_bench(out_dir: Path, seeds: int = 10, seed_base: int = SEED_BASE,
              scenarios: Sequence[str] = DEFAULT_SCENARIOS, fault_free: bool = True, limit: int | None = None,
              predictor: PredictConfig | None = None, config: PredictBenchConfig | None = None,
              progress: Callable[[str, int], Callable[[int], None]] | None = None) -> dict[str, Any]:
    """Run every (scenario, seed) (plus ``fault_free`` per seed), score, write the report."""
    cfg = config or PredictBenchConfig()
    pcfg = predictor or PredictConfig()
    for s in scenarios:
        sc = get_scenario(s)
        if len(sc.faults) != 1 or sc.ground_truth(DEFAULT_START)[0]["breach_time"] is None:
            raise ValueError(f"scenario {s!r} has no single fault with a breach time to predict")
    seed_list = [seed_base + i for i in range(seeds)]
    cases = [(s, seed) for seed in seed_list for s in scenarios]
    if fault_free:
        cases += [("fault_free", seed) for seed in seed_list]
    if limit:
        cases = cases[:limit]
    advance = progress("predict", len(cases)) if progress else None
    t0 = time.perf_counter()
    runs = []
    for s, seed in cases:
        runs.append(run_case(s, seed, pcfg, cfg))
        if advance is not None:
            advance(1)
    names = list(dict.fromkeys(r["scenario"] for r in runs))
    report: dict[str, Any] = {
        "bench": "predict",
        "predictor": "aurora-baseline: Theil-Sen trend over a trailing window, projected to the limit",
        "predictor_config": asdict(pcfg),
        "bench_config": asdict(cfg),
        "scenarios": names,
        "seed_base": seed_base,
        "seeds": seed_list,
        "seed_note": f"reported seeds {seed_list[0]}..{seed_list[-1]}; development and unit tests used seeds < 1000",
        "partial": bool(limit),
        **summarize(runs),
        "by_scenario": {n: summarize([r for r in runs if r["scenario"] == n]) for n in names},
        "seconds": time.perf_counter() - t0,
        "cases": runs,
    }
    write_report(Path(out_dir), report, render_markdown, render_plot)
    return report


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 3600:.2f} h" if abs(v) >= 3600 else f"{v / 60:.1f} min"


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Failure prediction benchmark (simulated fleet)", "",
        f"Predictor: {report['predictor']} (window {report['predictor_config']['window_s'] / 60:.0f} min, "
        f"horizon {report['predictor_config']['horizon_s'] / 3600:.0f} h, "
        f"{report['predictor_config']['confidence']:.0%} slope interval). "
        f"Evaluated every {report['bench_config']['eval_s']:.0f} s of event time on data up to now.", "",
        f"Seeds: {report['seed_note']}." + (" **Partial run (--limit): not comparable.**" if report["partial"] else ""),
        "",
        "| scenario | runs | recall | precision | lead median | lead p10 | ETA coverage | first ETA coverage "
        "| median abs ETA error (first) | false / 1000 series-days |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [*report["by_scenario"].items(), ("all", report)]
    for name, s in rows:
        fp = s["false_predictions_per_1000_series_days"]
        if fp is None:
            fp = s["false_predictions_per_1000_series_days_faulty_runs_other_series"]
        lines.append(
            f"| {name} | {s['runs']} | {_fmt(s['recall'])} | {_fmt(s['precision'])} | "
            f"{_fmt_s(s['lead_time_median_s'])} | {_fmt_s(s['lead_time_p10_s'])} | "
            f"{_fmt(s['eta_interval_coverage'])} | {_fmt(s['eta_interval_coverage_first'])} | "
            f"{_fmt_s(s['eta_abs_error_first_median_s'])} | {_fmt(fp)} |"
        )
    lines += [
        "", "Definitions: recall = faulty runs with a prediction on the root-cause series created after onset "
        "and before the breach; precision = correct predictions / all predictions (episodes); false predictions "
        "per 1,000 series-days are measured on the fault-free runs (for a faulty scenario's row: its other "
        "series); lead time = breach - first correct prediction; ETA coverage = share of a correct prediction's "
        "updates whose [eta_low, eta_high] contains the true breach.", "",
    ]
    return "\n".join(lines) + "\n"


def render_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in report["by_scenario"] if n != "fault_free"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.5 * max(len(names), 2) + 2))
    for row, n in enumerate(names):
        runs = [c for c in report["cases"] if c["scenario"] == n]
        leads = [c["lead_time_s"] / 3600 for c in runs if c["lead_time_s"] is not None]
        ttb = [(c["breach_time"] - c["onset"]) / 3600 for c in runs if c["breach_time"] is not None]
        ax1.scatter(leads, [row] * len(leads), s=14, alpha=0.6, color="tab:blue")
        if ttb:
            ax1.plot([max(ttb)] * 2, [row - 0.35, row + 0.35], color="tab:red", lw=2)
    ax1.set_yticks(range(len(names)), names)
    ax1.invert_yaxis()
    ax1.set_xlabel("lead time (h); red: onset-to-breach (the most any predictor could get)")
    ax1.set_title("Lead time of the first correct prediction")
    h = 0.38
    y = np.arange(len(names))
    rec = [report["by_scenario"][n]["recall"] or 0.0 for n in names]
    cov = [report["by_scenario"][n]["eta_interval_coverage"] or 0.0 for n in names]
    ax2.barh(y - h / 2, rec, h, label="recall", color="tab:blue")
    ax2.barh(y + h / 2, cov, h, label="ETA interval coverage", color="tab:orange")
    ax2.set_yticks(y, names)
    ax2.invert_yaxis()
    ax2.set_xlim(0, 1)
    ax2.legend(loc="lower right", fontsize=8)
    ax2.set_title("Recall and ETA interval coverage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
