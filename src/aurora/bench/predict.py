"""``aurora bench predict``: failure prediction on the simulated fleet's slow-burn faults, two models side by side.

Per scenario and seed the fleet is simulated (``aurora.sim``), then streamed through each predictor in
event time: every ``eval_s`` (1 min) of event time each predictor sees, for every series with a known
limit (memory vs its limit, disk vs capacity, DB connections vs the pool size, model accuracy vs its
floor), only the samples at or before ``now``. Models (``MODELS``; the first one's scores are the
report's top-level keys, all of them are under ``models``):

* ``trend`` (default): ``aurora.predict.trend`` on 1-min blocks over 4 h (the blocks of the whole run are
  computed once, each ending at an evaluation time; every evaluation gets the 240 ending at ``now``),
  with its active set carried from one evaluation to the next, as a live stage would;
* ``baseline``: ``aurora.predict.baseline`` (Theil-Sen over the last hour) on the raw samples.

The run is simulated whole first for speed; causality is the predictors' contract, and the harness
only ever hands them data ending at ``now``.

A *prediction* is an episode, as the API shows it: it is created the first time a series gets a
prediction and updated while the series keeps getting one; a gap longer than ``gap_s`` closes it.

Scores per model (ground truth from ``Scenario.ground_truth`` and the fleet's observed breach):

* recall: share of faulty runs with a correct prediction: on the root-cause series, created after the
  fault's onset and before the breach; ``slow_burn`` repeats every score over the slow-burn scenarios
  (and the fault-free runs), the issue's population;
* precision: correct predictions / all predictions (faulty and fault-free runs);
* false predictions per 1,000 series-days on the fault-free runs (and, separately, on the faulty runs'
  other series);
* lead time = breach time - creation of the first correct prediction (median and 10th percentile;
  misses are not in it, recall counts them);
* ETA interval coverage: share of the correct predictions' updates (one per evaluation) whose
  ``[eta_low, eta_high]`` contains the true breach, and the same for the first update only; the median
  absolute ETA error and interval width of first predictions; for the trend model the calibration of
  P(breach within 30 min / 1 h / 2 h / 4 h) by decile (``probability_calibration``);
* cost: seconds in the forecaster per limited series and evaluation (``forecast_us_per_series_eval``;
  with tens of series per call the per-call overhead dominates it, see
  ``benchmarks/bench_predict_cost.py`` for 100,000 series) and the share of series-evaluations that
  needed the trend model's full fit (``fitted_share``, the rest stopped at its screen).

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
from aurora.predict.baseline import PredictConfig, predict_breaches
from aurora.predict.blocks import Blocks, blocks_from_samples
from aurora.predict.limits import limit_columns
from aurora.predict.trend import TrendConfig, forecast, records
from aurora.sim import DEFAULT_START, get_scenario, simulate

SLOW_BURN = ("slow_memory_leak", "slow_disk_fill", "slow_pool_leak", "model_drift")
FAST = ("memory_leak", "disk_fill", "pool_exhaustion")
DEFAULT_SCENARIOS = (*SLOW_BURN, *FAST)
SEED_BASE = 1000  # reported seeds start here; development used seeds < 1000
DAY = 86400.0
MODELS = ("trend", "baseline")  # the first is the default: its scores are the report's top-level keys
DESCRIPTIONS = {
    "trend": "aurora-trend: robust Theil-Sen trend over nested windows (1-min blocks, up to 4 h), sawtooth- and "
             "reset-aware, ETA interval from the fit's band (level + slope + curvature), P(breach within h)",
    "baseline": "aurora-baseline: Theil-Sen trend over a trailing window, projected to the limit",
}
PROBABILITY_HORIZONS_S = (1800.0, 3600.0, 7200.0, 14400.0)


@dataclass(frozen=True)
class PredictBenchConfig:
    eval_s: float = 60.0  # evaluate every minute of event time
    gap_s: float = 600.0  # a prediction absent for longer than this is closed
    fault_free_hours: float = 24.0
    first_eval_s: float = 1800.0  # first evaluation this long after the run starts (both models)


def _episodes(records: list[tuple[float, dict[str, Any]]], gap_s: float) -> list[list[tuple[float, dict[str, Any]]]]:
    """Group one series' (time, record) updates into episodes."""
    out: list[list[tuple[float, dict[str, Any]]]] = []
    for now, rec in records:
        if out and now - out[-1][-1][0] <= gap_s:
            out[-1].append((now, rec))
        else:
            out.append([(now, rec)])
    return out


Updates = dict[int, list[tuple[float, dict[str, Any]]]]


def _stream_baseline(ts: np.ndarray, values: np.ndarray, cols: np.ndarray, direction: np.ndarray,
                     limits_at: Callable[[int], np.ndarray], evals: np.ndarray, pcfg: PredictConfig,
                     skip: Callable[[int, float], bool]) -> tuple[Updates, float]:
    per_series: Updates = {}
    lo_idx = np.searchsorted(ts, evals - pcfg.window_s, side="right")
    hi_idx = np.searchsorted(ts, evals, side="right")
    spent = 0.0
    for now, lo, hi in zip(evals.tolist(), lo_idx.tolist(), hi_idx.tolist(), strict=True):
        window = values[lo:hi, cols].T
        limits = limits_at(hi)
        t0 = time.perf_counter()
        recs = predict_breaches(ts[lo:hi], window, limits, now, direction, pcfg)
        spent += time.perf_counter() - t0
        for rec in recs:
            if not skip(rec["series"], now):
                per_series.setdefault(rec["series"], []).append((now, rec))
    return per_series, spent


def _run_blocks(ts: np.ndarray, values: np.ndarray, cols: np.ndarray, direction: np.ndarray, evals: np.ndarray,
                tcfg: TrendConfig) -> Blocks:
    """Block statistics of the whole run on the evaluation grid (blocks end at evaluation times), with
    ``n_blocks`` empty blocks in front so that every evaluation's window is a plain slice."""
    if abs(tcfg.block_s - (evals[1] - evals[0] if len(evals) > 1 else tcfg.block_s)) > 1e-9:
        raise ValueError("bench predict evaluates once per block: eval_s must equal the forecaster's block_s")
    n = len(evals) + round((evals[0] - ts[0]) / tcfg.block_s) + 1
    return blocks_from_samples(ts, values[:, cols].T, float(evals[-1]), direction, tcfg.block_s,
                               n + tcfg.n_blocks)


def _stream_trend(ts: np.ndarray, values: np.ndarray, cols: np.ndarray, direction: np.ndarray,
                  limits_at: Callable[[int], np.ndarray], evals: np.ndarray, tcfg: TrendConfig,
                  skip: Callable[[int, float], bool]) -> tuple[Updates, float, float, int]:
    per_series: Updates = {}
    t0 = time.perf_counter()
    full = _run_blocks(ts, values, cols, direction, evals, tcfg)
    blocks_s = time.perf_counter() - t0
    k = tcfg.n_blocks
    end0 = full.n_blocks - len(evals) + 1  # column after the first evaluation's newest block
    hi_idx = np.searchsorted(ts, evals, side="right")
    active = np.zeros(len(cols), bool)
    spent = 0.0
    fitted = 0
    for e, (now, hi) in enumerate(zip(evals.tolist(), hi_idx.tolist(), strict=True)):
        a, b = end0 + e - k, end0 + e
        blk = Blocks(now, full.block_s, full.total[a:b], full.ext[a:b], full.count[a:b], full.t[a:b],
                     full.offset, full.direction)
        limits = limits_at(hi)
        t1 = time.perf_counter()
        fc = forecast(blk, limits, tcfg, active=active)
        recs = records(fc)
        spent += time.perf_counter() - t1
        fitted += int(fc.fitted.sum())
        active = fc.active
        for rec in recs:
            if not skip(rec["series"], now):
                per_series.setdefault(rec["series"], []).append((now, rec))
    return per_series, spent, blocks_s, fitted


def _score(per_series: Updates, series: list[tuple[str, dict[str, str]]], cols: np.ndarray, target: int,
           gt: dict[str, Any] | None, breach: float | None, gap_s: float) -> dict[str, Any]:
    predictions: list[dict[str, Any]] = []
    updates_covering = updates_total = 0
    for k in sorted(per_series):
        metric, labels = series[int(cols[k])]
        for ep in _episodes(per_series[k], gap_s):
            created, first = ep[0]
            correct = bool(k == target and gt is not None and breach is not None
                           and gt["onset"] <= created < breach)
            entry: dict[str, Any] = {
                "metric": metric, "service": labels.get("service"), "labels": labels,
                "created_at": created, "updated_at": ep[-1][0], "updates": len(ep), "correct": correct,
                "first": {x: first[x] for x in ("eta", "eta_low", "eta_high", "slope", "current", "limit", "since")
                          + (("probabilities",) if "probabilities" in first else ())},
            }
            if correct and breach is not None:
                cover = [r["eta_low"] <= breach <= r["eta_high"] for _, r in ep]
                updates_covering += sum(cover)
                updates_total += len(cover)
                entry["first_covers_breach"] = cover[0]
                entry["first_eta_error_s"] = first["eta"] - breach
                entry["first_interval_width_s"] = first["eta_high"] - first["eta_low"]
                entry["updates_covering_breach"] = sum(cover)
                entry["abs_eta_error_median_s"] = float(np.median([abs(r["eta"] - breach) for _, r in ep]))
                if "probabilities" in first:
                    # calibration of P(breach within h) over every update: per probability decile
                    # [updates, sum of p, breaches that did happen within h]
                    bins = np.zeros((10, 3))
                    for now, r in ep:
                        for h, pr in zip(PROBABILITY_HORIZONS_S, r["probabilities"].values(), strict=True):
                            i = min(int(pr * 10), 9)
                            bins[i] += (1.0, pr, float(breach - now <= h))
                    entry["probability_bins"] = bins.tolist()
            predictions.append(entry)
    correct_preds = [p for p in predictions if p["correct"]]
    first_correct = min((p["created_at"] for p in correct_preds), default=None)
    return {
        "predicted": first_correct is not None,
        "first_correct_at": first_correct,
        "lead_time_s": (breach - first_correct) if first_correct is not None and breach is not None else None,
        "correct_predictions": len(correct_preds),
        "false_predictions": len(predictions) - len(correct_preds),
        "eta_updates": updates_total,
        "eta_updates_covering": updates_covering,
        "predictions": predictions,
    }


def run_case(scenario: str, seed: int, predictor: PredictConfig | None = None,
             config: PredictBenchConfig | None = None, start: float = DEFAULT_START,
             trend: TrendConfig | None = None, models: Sequence[str] = MODELS) -> dict[str, Any]:
    """Simulate one scenario and seed, stream it through the predictors (the same evaluations), score
    each. The top-level scores are the first model's (the default: ``trend``); ``models`` has all."""
    cfg = config or PredictBenchConfig()
    pcfg = predictor or PredictConfig()
    tcfg = trend or TrendConfig()
    unknown = set(models) - set(MODELS)
    if unknown or not models:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; known: {', '.join(MODELS)}")
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
    lim_cols = np.array([ls.limit_column if ls.limit_column is not None else -1 for ls in limited], dtype=np.int64)
    lim_fixed = np.array([ls.limit_value for ls in limited])
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

    def limits_at(hi: int) -> np.ndarray:  # the limits as of the newest sample at or before now
        latest = values[hi - 1]
        return np.where(lim_cols >= 0, latest[np.maximum(lim_cols, 0)], lim_fixed)

    def skip(k: int, now: float) -> bool:  # the target is ignored from its breach on
        return k == target and breach is not None and now >= breach

    evals = np.arange(ts[0] + cfg.first_eval_s, ts[-1] + 1e-9, cfg.eval_s)
    span_days = (evals[-1] - evals[0] + cfg.eval_s) / DAY if len(evals) else 0.0
    n_series_evals = len(evals) * len(limited)
    scored: dict[str, dict[str, Any]] = {}
    for name in models:
        if name == "trend":
            per, spent, blocks_s, fitted = _stream_trend(ts, values, cols, direction, limits_at, evals, tcfg, skip)
            extra = {"blocks_seconds": blocks_s, "fitted_share": fitted / n_series_evals if n_series_evals else None}
        else:
            per, spent = _stream_baseline(ts, values, cols, direction, limits_at, evals, pcfg, skip)
            extra = {"blocks_seconds": None, "fitted_share": None}
        scored[name] = {**_score(per, series, cols, target, gt, breach, cfg.gap_s), "predict_seconds": spent,
                        "predict_us_per_series_eval": 1e6 * spent / n_series_evals if n_series_evals else None,
                        **extra}
    main = scored[models[0]]
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
        "model": models[0],
        **main,
        "sim_seconds": sim_s,
        "models": {n: v for n, v in scored.items() if n != models[0]},
    }


def _model_view(run: dict[str, Any], model: str) -> dict[str, Any]:
    """A run's fields with the scores of ``model`` on top."""
    if run["model"] == model:
        return run
    return {**run, **run["models"][model]}


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
    evals = sum(r["evaluations"] * r["predictable_series"] for r in runs)
    spent = sum(r["predict_seconds"] for r in runs)
    bins = np.zeros((10, 3))
    for p in correct:
        if "probability_bins" in p:
            bins += np.asarray(p["probability_bins"])
    calib = None
    if bins[:, 0].sum() > 0:
        calib = [{"p_mean": b[1] / b[0], "observed": b[2] / b[0], "updates": int(b[0])}
                 for b in bins if b[0] > 0]
    fitted = [r["fitted_share"] * r["evaluations"] * r["predictable_series"] for r in runs
              if r.get("fitted_share") is not None]
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
        "eta_updates": upd,
        "eta_abs_error_first_median_s": _pct([abs(p["first_eta_error_s"]) for p in first_of_run], 50),
        "eta_abs_error_median_s": _pct([p["abs_eta_error_median_s"] for p in correct], 50),
        "eta_interval_width_first_median_s": _pct([p["first_interval_width_s"] for p in first_of_run
                                                   if np.isfinite(p["first_interval_width_s"])], 50),
        "eta_interval_first_infinite": sum(not np.isfinite(p["first_interval_width_s"]) for p in first_of_run),
        "probability_calibration": calib,
        "forecast_seconds": spent,
        "forecast_us_per_series_eval": (1e6 * spent / evals) if evals else None,
        "fitted_share": (sum(fitted) / evals) if fitted and evals else None,
    }


def _summaries(runs: Sequence[dict[str, Any]], model: str) -> dict[str, Any]:
    views = [_model_view(r, model) for r in runs]
    names = list(dict.fromkeys(r["scenario"] for r in views))
    slow = [r for r in views if r["scenario"] in SLOW_BURN or not r["faulty"]]
    return {**summarize(views), "by_scenario": {n: summarize([r for r in views if r["scenario"] == n]) for n in names},
            "slow_burn": summarize(slow) if any(r["faulty"] for r in slow) else None}


def run_bench(out_dir: Path, seeds: int = 10, seed_base: int = SEED_BASE,
              scenarios: Sequence[str] = DEFAULT_SCENARIOS, fault_free: bool = True, limit: int | None = None,
              predictor: PredictConfig | None = None, config: PredictBenchConfig | None = None,
              progress: Callable[[str, int], Callable[[int], None]] | None = None,
              trend: TrendConfig | None = None, models: Sequence[str] = MODELS) -> dict[str, Any]:
    """Run every (scenario, seed) (plus ``fault_free`` per seed) through every model, score, write the
    report. Top-level scores are the first model's; ``models`` holds each model's, side by side."""
    cfg = config or PredictBenchConfig()
    pcfg = predictor or PredictConfig()
    tcfg = trend or TrendConfig()
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
        runs.append(run_case(s, seed, pcfg, cfg, trend=tcfg, models=models))
        if advance is not None:
            advance(1)
    names = list(dict.fromkeys(r["scenario"] for r in runs))
    per_model = {m: _summaries(runs, m) for m in models}
    main = per_model[models[0]]
    report: dict[str, Any] = {
        "bench": "predict",
        "model": models[0],
        "predictor": DESCRIPTIONS[models[0]],
        "predictor_config": asdict(tcfg) if models[0] == "trend" else asdict(pcfg),
        "trend_config": asdict(tcfg),
        "baseline_config": asdict(pcfg),
        "bench_config": asdict(cfg),
        "scenarios": names,
        "seed_base": seed_base,
        "seeds": seed_list,
        "seed_note": f"reported seeds {seed_list[0]}..{seed_list[-1]}; development and unit tests used seeds < 1000",
        "partial": bool(limit),
        **{k: v for k, v in main.items()},
        "models": {m: {"description": DESCRIPTIONS[m], **per_model[m]} for m in models},
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


_ROW = ("| {name} | {runs} | {recall} | {precision} | {lead} | {p10} | {cov} | {covf} | {err} | {width} | {fp} |")


def _row(name: str, s: dict[str, Any]) -> str:
    fp = s["false_predictions_per_1000_series_days"]
    if fp is None:
        fp = s["false_predictions_per_1000_series_days_faulty_runs_other_series"]
    return _ROW.format(name=name, runs=s["runs"], recall=_fmt(s["recall"]), precision=_fmt(s["precision"]),
                       lead=_fmt_s(s["lead_time_median_s"]), p10=_fmt_s(s["lead_time_p10_s"]),
                       cov=_fmt(s["eta_interval_coverage"]), covf=_fmt(s["eta_interval_coverage_first"]),
                       err=_fmt_s(s["eta_abs_error_first_median_s"]),
                       width=_fmt_s(s["eta_interval_width_first_median_s"]), fp=_fmt(fp))


def render_markdown(report: dict[str, Any]) -> str:
    tc = report["trend_config"]
    lines = [
        "# Failure prediction benchmark (simulated fleet)", "",
        f"Evaluated every {report['bench_config']['eval_s']:.0f} s of event time on data up to now; both models see "
        f"the same evaluations. Seeds: {report['seed_note']}."
        + (" **Partial run (--limit): not comparable.**" if report["partial"] else ""), "",
        "| model | recall | recall slow-burn | lead median slow-burn | precision | ETA coverage | first ETA coverage "
        "| false / 1000 series-days | forecast µs / series / evaluation |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, s in report["models"].items():
        sb = s.get("slow_burn") or {}
        lines.append(f"| {m} | {_fmt(s['recall'])} | {_fmt(sb.get('recall'))} | {_fmt_s(sb.get('lead_time_median_s'))} "
                     f"| {_fmt(s['precision'])} | {_fmt(s['eta_interval_coverage'])} "
                     f"| {_fmt(s['eta_interval_coverage_first'])} "
                     f"| {_fmt(s['false_predictions_per_1000_series_days'])} "
                     f"| {_fmt(s['forecast_us_per_series_eval'], '.0f')} |")
    lines.append("")
    head = ("| scenario | runs | recall | precision | lead median | lead p10 | ETA coverage | first ETA coverage "
            "| median abs ETA error (first) | interval width (first) | false / 1000 series-days |")
    for m, s in report["models"].items():
        lines += [f"## {m}", "", s["description"] + ("" if m != "trend" else
                  f" (blocks {tc['block_s']:.0f} s x {tc['n_blocks']}, horizon {tc['horizon_s'] / 3600:.0f} h, "
                  f"{tc['interval']:.0%} nominal interval)"), "", head, "|---|---:|---:|---:|---:|---:|---:|---:|---:"
                  "|---:|---:|"]
        lines += [_row(n, v) for n, v in s["by_scenario"].items()]
        lines.append(_row("all", s))
        if s.get("slow_burn"):
            lines.append(_row("slow-burn + fault-free", s["slow_burn"]))
        if s.get("probability_calibration"):
            lines += ["", "P(breach within 30 min / 1 h / 2 h / 4 h) on correct predictions' updates, by decile: "
                      + ", ".join(f"{c['p_mean']:.2f} -> {c['observed']:.2f} ({c['updates']})"
                                  for c in s["probability_calibration"])]
        lines.append("")
    lines += [
        "Definitions: recall = faulty runs with a prediction on the root-cause series created after onset "
        "and before the breach (slow-burn: the faults with >= 3.5 h from onset to breach); precision = correct "
        "predictions / all predictions (episodes); false predictions per 1,000 series-days are measured on the "
        "fault-free runs (for a faulty scenario's row: its other series); lead time = breach - first correct "
        "prediction; ETA coverage = share of a correct prediction's updates whose [eta_low, eta_high] contains "
        "the true breach; forecast cost = time in the forecaster per limited series and evaluation here (tens of "
        "series per call, so per-call overhead dominates; benchmarks/bench_predict_cost.py measures it at "
        "100,000 series).", "",
    ]
    return "\n".join(lines) + "\n"


def render_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(report["models"])
    names = [n for n in report["by_scenario"] if n != "fault_free"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.6 * max(len(names), 2) + 2))
    colors = {"trend": "tab:blue", "baseline": "tab:gray"}
    for mi, m in enumerate(models):
        off = (mi - (len(models) - 1) / 2) * 0.25
        for row, n in enumerate(names):
            runs = [_model_view(c, m) for c in report["cases"] if c["scenario"] == n]
            leads = [c["lead_time_s"] / 3600 for c in runs if c["lead_time_s"] is not None]
            ax1.scatter(leads, [row + off] * len(leads), s=12, alpha=0.6, color=colors.get(m),
                        label=m if row == 0 else None)
            ttb = [(c["breach_time"] - c["onset"]) / 3600 for c in runs if c["breach_time"] is not None]
            if ttb and mi == 0:
                ax1.plot([max(ttb)] * 2, [row - 0.35, row + 0.35], color="tab:red", lw=2)
    ax1.set_yticks(range(len(names)), names)
    ax1.invert_yaxis()
    ax1.legend(loc="lower right", fontsize=8)
    ax1.set_xlabel("lead time (h); red: onset-to-breach (the most any predictor could get)")
    ax1.set_title("Lead time of the first correct prediction")
    y = np.arange(len(names))
    h = 0.8 / (2 * len(models))
    for mi, m in enumerate(models):
        bs = report["models"][m]["by_scenario"]
        rec = [bs[n]["recall"] or 0.0 for n in names]
        cov = [bs[n]["eta_interval_coverage"] or 0.0 for n in names]
        ax2.barh(y - 0.4 + (2 * mi + 0.5) * h, rec, h, label=f"{m} recall", color=colors.get(m), alpha=0.9)
        ax2.barh(y - 0.4 + (2 * mi + 1.5) * h, cov, h, label=f"{m} ETA coverage", color=colors.get(m), alpha=0.45,
                 hatch="//")
    ax2.axvline(0.8, color="tab:red", lw=1, ls=":")
    ax2.set_yticks(y, names)
    ax2.invert_yaxis()
    ax2.set_xlim(0, 1)
    ax2.legend(loc="lower right", fontsize=7)
    ax2.set_title("Recall and ETA interval coverage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
