"""``aurora bench predict``: failure prediction on the simulated fleet's slow-burn faults, two models side by side.

Per scenario and seed the fleet is simulated (``aurora.sim``), then streamed through each predictor in
event time: every ``eval_s`` (1 min) of event time each predictor sees, for every series with a known
limit (memory vs its limit, disk vs capacity, DB connections vs the pool size, model accuracy vs its
floor), only the samples at or before ``now``. Models (``MODELS``; the first one's scores are the
report's top-level keys, all of them are under ``models``):

* ``trend`` (default): ``aurora.predict.trend`` on 1-min blocks over 4 h (the blocks of the whole run are
  computed once, each ending at an evaluation time; every evaluation gets the 240 ending at ``now``),
  with its active set carried from one evaluation to the next, as a live stage would;
* ``baseline``: ``aurora.predict.baseline`` (Theil-Sen over the last hour) on the raw samples;
* ``logreg``, ``gbm``, ``cfc`` (on request: ``models=``, ``--models``): the learned risk models of
  ``aurora.predict.learned`` (logistic regression, gradient boosting, a CfC liquid network; the last
  needs the ``lnn`` extra). They are trained at the start of the run on simulator seeds below 1000
  (``learned.dataset.TrainConfig``: fitted on seeds 100..104, thresholds tuned on 200..202), on causal
  features of the same blocks, events and the trend model's P(breach within 4 h); each issues a
  prediction while its P(breach within 4 h) is at least its threshold. They give no ETA and no
  interval: their ETA scores are ``None`` (not applicable), not zero.

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
* classification (``classification``, every model that gives a probability: the trend model's P(breach
  within 4 h), carried over its deferred evaluations and 0 where its screen rules a breach out, and the
  learned models'): ROC AUC, average precision and Brier score over every (limited series, evaluation)
  of the reported runs, labelled "the series breaches its limit within 4 h" (``learned.dataset.labels``:
  the root-cause series after the onset and within 4 h of the breach);
* cost: seconds in the forecaster per limited series and evaluation (for a learned model: features,
  the trend probability among them, plus the model) (``forecast_us_per_series_eval``;
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
from aurora.predict.learned.dataset import (
    FAST,
    HORIZON_S,
    SLOW_BURN,
    SimRun,
    TrainConfig,
    labels,
    prepare,
    run_features,
)
from aurora.predict.learned.models import predictions
from aurora.predict.learned.train import LEARNED, Trained, train
from aurora.predict.trend import REASONS, TrendConfig, forecast, records
from aurora.sim import DEFAULT_START, get_scenario

__all__ = ["DEFAULT_MODELS", "DEFAULT_SCENARIOS", "FAST", "LEARNED", "MODELS", "SLOW_BURN", "run_bench", "run_case",
           "summarize"]
DEFAULT_SCENARIOS = (*SLOW_BURN, *FAST)
SEED_BASE = 1000  # reported seeds start here; development used seeds < 1000
DAY = 86400.0
MODELS = ("trend", "baseline", *LEARNED)
DEFAULT_MODELS = ("trend", "baseline")  # the first is the default: its scores are the report's top-level keys
DESCRIPTIONS = {
    "trend": "aurora-trend: robust Theil-Sen trend over nested windows (1-min blocks, up to 4 h), sawtooth- and "
             "reset-aware, ETA interval from the fit's band (level + slope + curvature), P(breach within h)",
    "baseline": "aurora-baseline: Theil-Sen trend over a trailing window, projected to the limit",
    "logreg": "learned: L2 logistic regression on causal block, anomaly and event features (incl. the trend's "
              "P(4 h)) -> P(breach within 4 h), threshold tuned on seeds < 1000; no ETA",
    "gbm": "learned: histogram gradient boosting on the same features -> P(breach within 4 h), threshold tuned "
           "on seeds < 1000; no ETA",
    "cfc": "learned: CfC liquid network (ncps, CPU torch) over the last 24 feature vectors (2 min apart) -> "
           "P(breach within 4 h), threshold tuned on seeds < 1000; no ETA",
}
PROBABILITY_HORIZONS_S = (1800.0, 3600.0, 7200.0, 14400.0)
TRAIN = TrainConfig()  # how the learned models are trained when run_bench is given no train_config


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
                  skip: Callable[[int, float], bool]) -> tuple[Updates, float, float, int, np.ndarray]:
    """The trend model's updates, cost, fitted count and its P(breach within ``HORIZON_S``) per evaluation
    and series (carried over deferred evaluations, 0 where the screen rules a breach out)."""
    per_series: Updates = {}
    hz = list(tcfg.probability_horizons_s)
    p_col = hz.index(HORIZON_S) if HORIZON_S in hz else None
    p_all = np.zeros((len(evals), len(cols)))
    p_last = np.zeros(len(cols))
    deferred = REASONS.index("deferred")
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
        p_now = np.nan_to_num(fc.probabilities[:, p_col] if p_col is not None else fc.probability, nan=0.0)
        p_last = np.where(fc.reason == deferred, p_last, p_now)
        p_all[e] = p_last
        for rec in recs:
            if not skip(rec["series"], now):
                per_series.setdefault(rec["series"], []).append((now, rec))
    return per_series, spent, blocks_s, fitted, p_all


def _stream_learned(run: SimRun, feats: np.ndarray, model: Any, skip: Callable[[int, float], bool]
                    ) -> tuple[Updates, float, np.ndarray]:
    """A learned model's updates (``p >= threshold``), the seconds in the model and its probabilities."""
    t0 = time.perf_counter()
    p = model.predict_run(feats)
    spent = time.perf_counter() - t0
    hi_idx = np.searchsorted(run.ts, run.evals, side="right")
    observed = run.values[hi_idx - 1][:, run.cols]
    limits = run.limits_matrix()
    per_series: Updates = {}
    for e in np.flatnonzero((p >= model.threshold).any(axis=1)).tolist():
        now = float(run.evals[e])
        for rec in predictions(model, p[e], feats[e], now, observed[e], limits[e]):
            if not skip(rec["series"], now):
                per_series.setdefault(rec["series"], []).append((now, rec))
    return per_series, spent, p


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
            has_eta = first.get("eta") is not None  # the learned models give none
            keys = (("eta", "eta_low", "eta_high", "slope", "current", "limit", "since") if has_eta else
                    ("eta", "eta_low", "eta_high", "probability", "threshold", "current", "limit", "headroom",
                     "explanation"))
            entry: dict[str, Any] = {
                "metric": metric, "service": labels.get("service"), "labels": labels,
                "created_at": created, "updated_at": ep[-1][0], "updates": len(ep), "correct": correct,
                "first": {x: first.get(x) for x in keys + (("probabilities",) if "probabilities" in first else ())},
            }
            if correct and breach is not None and has_eta:
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


ScoreSink = dict[str, list[tuple[np.ndarray, np.ndarray]]]


def run_case(scenario: str, seed: int, predictor: PredictConfig | None = None,
             config: PredictBenchConfig | None = None, start: float = DEFAULT_START,
             trend: TrendConfig | None = None, models: Sequence[str] = DEFAULT_MODELS,
             learned: Trained | None = None, scores: ScoreSink | None = None) -> dict[str, Any]:
    """Simulate one scenario and seed, stream it through the predictors (the same evaluations), score
    each. The top-level scores are the first model's (the default: ``trend``); ``models`` has all.

    Learned models (``logreg``, ``gbm``, ``cfc``) need ``learned`` (``learned.train.train``). ``scores``,
    when given, receives per model that gives a probability ``(p, y)`` over the run's valid (series,
    evaluation) pairs, for the classification scores of ``run_bench``."""
    cfg = config or PredictBenchConfig()
    pcfg = predictor or PredictConfig()
    tcfg = trend or TrendConfig()
    unknown = set(models) - set(MODELS)
    if unknown or not models:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; known: {', '.join(MODELS)}")
    missing = [m for m in models if m in LEARNED and (learned is None or m not in learned.models)]
    if missing:
        raise ValueError(f"learned model(s) {', '.join(missing)} not trained: pass learned=train(...)")
    run = prepare(scenario, seed, start, cfg.fault_free_hours, cfg.first_eval_s, cfg.eval_s)
    ts, values, series, cols, direction = run.ts, run.values, run.series, run.cols, run.direction
    gt, breach, target, evals = run.gt, run.breach, run.target, run.evals
    limits_at = run.limits_at  # the limits as of the newest sample at or before now

    def skip(k: int, now: float) -> bool:  # the target is ignored from its breach on
        return k == target and breach is not None and now >= breach

    span_days = (evals[-1] - evals[0] + cfg.eval_s) / DAY if len(evals) else 0.0
    n_series_evals = len(evals) * len(cols)
    y, valid = labels(run, HORIZON_S)
    feats: np.ndarray | None = None
    feats_s = 0.0
    scored: dict[str, dict[str, Any]] = {}
    for name in models:
        prob: np.ndarray | None = None
        if name == "trend":
            per, spent, blocks_s, fitted, prob = _stream_trend(ts, values, cols, direction, limits_at, evals, tcfg,
                                                               skip)
            extra = {"blocks_seconds": blocks_s, "fitted_share": fitted / n_series_evals if n_series_evals else None}
        elif name in LEARNED:
            assert learned is not None
            if feats is None:
                t0 = time.perf_counter()
                feats = run_features(run, learned.config.features)
                feats_s = time.perf_counter() - t0
            per, model_s, prob = _stream_learned(run, feats, learned.models[name], skip)
            spent = feats_s + model_s
            extra = {"blocks_seconds": None, "fitted_share": None, "features_seconds": feats_s,
                     "model_seconds": model_s}
        else:
            per, spent = _stream_baseline(ts, values, cols, direction, limits_at, evals, pcfg, skip)
            extra = {"blocks_seconds": None, "fitted_share": None}
        if prob is not None and scores is not None:
            scores.setdefault(name, []).append((prob[valid], y[valid]))
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
        "predictable_series": len(cols),
        "evaluations": len(evals),
        "series_days": span_days * len(cols),
        "other_series_days": span_days * (len(cols) - (1 if gt else 0)),
        "positive_evaluations": int((y & valid).sum()),
        "model": models[0],
        **main,
        "sim_seconds": run.sim_seconds,
        "models": {n: v for n, v in scored.items() if n != models[0]},
    }


def classification(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any] | None:
    """ROC AUC, average precision and Brier score of probabilities against labels, pooled."""
    if not pairs:
        return None
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    p = np.concatenate([a for a, _ in pairs])
    y = np.concatenate([b for _, b in pairs]).astype(np.int64)
    both = 0 < int(y.sum()) < y.size
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "average_precision": float(average_precision_score(y, p)) if both else None,
        "brier": float(brier_score_loss(y, p, labels=[0, 1])) if y.size else None,
        "positives": int(y.sum()),
        "evaluations": int(y.size),
        "horizon_s": HORIZON_S,
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
            first = min(cs, key=lambda p: p["created_at"])
            if "first_covers_breach" in first:  # a model with an ETA interval
                first_of_run.append(first)
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
        "eta_abs_error_median_s": _pct([p["abs_eta_error_median_s"] for p in correct if "abs_eta_error_median_s" in p],
                                       50),
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
              trend: TrendConfig | None = None, models: Sequence[str] = DEFAULT_MODELS,
              learned: Trained | None = None, train_config: TrainConfig | None = None) -> dict[str, Any]:
    """Run every (scenario, seed) (plus ``fault_free`` per seed) through every model, score, write the
    report. Top-level scores are the first model's; ``models`` holds each model's, side by side. Learned
    models are trained first (``learned.train.train``, on seeds < 1000) unless ``learned`` has them."""
    cfg = config or PredictBenchConfig()
    pcfg = predictor or PredictConfig()
    tcfg = trend or TrendConfig()
    unknown = set(models) - set(MODELS)
    if unknown or not models:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; known: {', '.join(MODELS)}")
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
    t0 = time.perf_counter()
    want = [m for m in models if m in LEARNED]
    train_s = 0.0
    if want and (learned is None or any(m not in learned.models for m in want)):
        t1 = time.perf_counter()
        learned = train(want, train_config or TRAIN, progress=progress)
        train_s = time.perf_counter() - t1
    advance = progress("predict", len(cases)) if progress else None
    runs = []
    sink: ScoreSink = {}
    for s, seed in cases:
        runs.append(run_case(s, seed, pcfg, cfg, trend=tcfg, models=models, learned=learned, scores=sink))
        if advance is not None:
            advance(1)
    names = list(dict.fromkeys(r["scenario"] for r in runs))
    per_model = {m: _summaries(runs, m) for m in models}
    for m in models:
        per_model[m]["classification"] = classification(sink.get(m, []))
        per_model[m]["gives_eta"] = m not in LEARNED
        if m in LEARNED and learned is not None:
            per_model[m]["threshold"] = learned.models[m].threshold
            per_model[m]["fit_seconds"] = learned.fit_seconds[m]
            per_model[m]["train_data_seconds"] = learned.data_seconds
            feats = sum(_model_view(r, m).get("features_seconds") or 0.0 for r in runs)
            ev = sum(r["evaluations"] * r["predictable_series"] for r in runs)
            per_model[m]["features_us_per_series_eval"] = 1e6 * feats / ev if ev else None
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
        "learned": ({**learned.summary(), "training_seconds": train_s} if want and learned is not None else None),
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
        f"Evaluated every {report['bench_config']['eval_s']:.0f} s of event time on data up to now; every model "
        f"sees the same evaluations. Seeds: {report['seed_note']}."
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
    lines += ["", f"Classification of every (limited series, evaluation): \"breaches its limit within "
              f"{HORIZON_S / 3600:.0f} h\" (the root-cause series after the onset); the trend model's "
              f"P(breach within {HORIZON_S / 3600:.0f} h), the learned models' P. Learned models: trained on simulator "
              "seeds < 1000 in this run (fitted on one set, threshold tuned on another); they give no ETA "
              "interval (coverage: -).", "",
              "| model | ROC AUC | average precision | Brier | positives / evaluations | threshold "
              "| fit s | training data s | features µs / series / evaluation |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m, s in report["models"].items():
        c = s.get("classification") or {}
        lines.append(f"| {m} | {_fmt(c.get('roc_auc'), '.4f')} | {_fmt(c.get('average_precision'), '.4f')} "
                     f"| {_fmt(c.get('brier'), '.5f')} | "
                     + (f"{c['positives']:,} / {c['evaluations']:,}" if c else "-")
                     + f" | {_fmt(s.get('threshold'))} | {_fmt(s.get('fit_seconds'), '.1f')} "
                     f"| {_fmt(s.get('train_data_seconds'), '.1f')} "
                     f"| {_fmt(s.get('features_us_per_series_eval'), '.0f')} |")
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
    colors = {"trend": "tab:blue", "baseline": "tab:gray", "logreg": "tab:orange", "gbm": "tab:green",
              "cfc": "tab:purple"}
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
