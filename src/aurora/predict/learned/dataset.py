"""Training data for the learned risk models: simulator runs on training seeds, features, labels.

A run (``prepare``) is one scenario and seed of ``aurora.sim``, set up exactly as ``aurora bench
predict`` sets it up (the same limited series, limits, evaluation grid, root-cause series and breach
time; the bench uses this function too). ``run_features`` streams it through ``features.stream``:
``evals x series x features``.

Label (``labels``): a (series, evaluation) is positive when the series is the fault's root-cause series,
the fault has begun (``now >= onset``) and its limit is breached within the horizon ``H = 4 h``
(``now < breach <= now + H``): "this series fails within 4 h". Before the onset nothing in the data can
foretell the fault, and the bench counts a prediction created then as false, so those evaluations are
negatives. The root-cause series from its breach on is left out (``valid`` is False), as the bench
ignores it (after an OOM kill the leak starts over). 4 h is the trend model's longest probability
horizon and its horizon without a daily profile, so its P(breach within 4 h) scores on the same labels.

Training seeds (``TrainConfig``; reported bench runs use 1000+, the README's 3000+): the models are fitted
on seeds 100..104 of every bench scenario plus a 24 h fault-free run per seed; their decision
thresholds are tuned on seeds 200..202 (``models.choose_threshold``). Every fitted (series,
evaluation) sample (``build``): all evaluations of the root-cause series (both classes), all "hard"
negatives (the trend model's P(4 h) >= 0.02, or a 60-minute rise that would cover the headroom within
8 h, or headroom below 5 %) and one in ``easy_negative_rate`` of the others (drawn with a fixed seed);
each sample is weighted by the inverse of its sampling rate, so the weighted classes keep the runs'
real proportions and the fitted probabilities stay calibrated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aurora.ingest.events import ChangeEvent
from aurora.predict.learned.features import (
    CHANGE_KINDS,
    FEATURES,
    RESTART_KINDS,
    FeatureConfig,
    last_event_times,
    stream,
)
from aurora.predict.limits import limit_columns
from aurora.sim import DEFAULT_START, get_scenario, simulate

HORIZON_S = 4 * 3600.0
SLOW_BURN = ("slow_memory_leak", "slow_disk_fill", "slow_pool_leak", "model_drift")
FAST = ("memory_leak", "disk_fill", "pool_exhaustion")


@dataclass
class SimRun:
    """One simulated run, ready to evaluate: the limited series (columns of ``values``), their limits,
    the root-cause series (``target``, -1: none), onset and breach time, the evaluation grid."""

    scenario: str
    seed: int
    ts: np.ndarray  # sample times (s)
    values: np.ndarray  # samples x all series
    series: list[tuple[str, dict[str, str]]]
    cols: np.ndarray  # column of each limited series
    direction: np.ndarray
    lim_cols: np.ndarray  # column of each limit series (-1: fixed)
    lim_fixed: np.ndarray
    events: list[ChangeEvent]
    gt: dict[str, Any] | None
    breach: float | None
    target: int
    evals: np.ndarray
    sim_seconds: float = 0.0

    @property
    def services(self) -> list[str | None]:
        return [self.series[int(c)][1].get("service") for c in self.cols]

    def limits_at(self, hi: int) -> np.ndarray:
        """The limits as of the newest sample before index ``hi``."""
        latest = self.values[hi - 1]
        return np.where(self.lim_cols >= 0, latest[np.maximum(self.lim_cols, 0)], self.lim_fixed)

    def limits_matrix(self) -> np.ndarray:
        """``evals x series``: the limits at each evaluation."""
        hi = np.searchsorted(self.ts, self.evals, side="right")
        latest = self.values[hi - 1]
        return np.where(self.lim_cols >= 0, latest[:, np.maximum(self.lim_cols, 0)], self.lim_fixed)


def prepare(scenario: str, seed: int, start: float = DEFAULT_START, fault_free_hours: float = 24.0,
            first_eval_s: float = 1800.0, eval_s: float = 60.0) -> SimRun:
    """Simulate ``scenario`` with ``seed`` and set it up for evaluation (as ``aurora bench predict``)."""
    import time

    sc = get_scenario(scenario)
    hours = fault_free_hours if not sc.faults else None
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
    evals = np.arange(ts[0] + first_eval_s, ts[-1] + 1e-9, eval_s)
    return SimRun(scenario, seed, ts, values, series, cols, direction, lim_cols, lim_fixed, list(fleet.events),
                  gt, breach, target, evals, sim_s)


def labels(run: SimRun, horizon_s: float = HORIZON_S) -> tuple[np.ndarray, np.ndarray]:
    """``(y, valid)``, both ``evals x series`` bool (see the module docstring)."""
    e, s = run.evals.size, run.cols.size
    y = np.zeros((e, s), bool)
    valid = np.ones((e, s), bool)
    if run.target >= 0 and run.breach is not None and run.gt is not None:
        now = run.evals
        y[:, run.target] = (now >= run.gt["onset"]) & (now < run.breach) & (run.breach <= now + horizon_s)
        valid[:, run.target] = now < run.breach
    return y, valid


def run_features(run: SimRun, config: FeatureConfig | None = None) -> np.ndarray:
    """``evals x series x features`` of a run."""
    services = run.services
    change = last_event_times(run.events, services, run.evals, CHANGE_KINDS)
    restart = last_event_times(run.events, services, run.evals, RESTART_KINDS)
    return stream(run.ts, run.values[:, run.cols].T, run.direction, run.limits_matrix(), run.evals, change, restart,
                  config)


@dataclass(frozen=True)
class TrainConfig:
    fit_seeds: tuple[int, ...] = (100, 101, 102, 103, 104)
    tune_seeds: tuple[int, ...] = (200, 201, 202)
    scenarios: tuple[str, ...] = (*SLOW_BURN, *FAST)
    fault_free: bool = True
    fault_free_hours: float = 24.0
    horizon_s: float = HORIZON_S
    easy_negative_rate: int = 40  # keep one in this many easy negatives
    hard_p: float = 0.02  # negatives with the trend's P(4 h) at least this are "hard" (all kept) ...
    hard_rate_h: float = 1 / 8  # ... or a 60-min rise covering the headroom within 8 h
    hard_headroom: float = 0.05  # ... or less headroom than this
    sample_seed: int = 0
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def __post_init__(self) -> None:
        if max((*self.fit_seeds, *self.tune_seeds), default=0) >= 1000:
            raise ValueError("training and tuning seeds must be below 1000 (reported runs use 1000+)")
        if set(self.fit_seeds) & set(self.tune_seeds):
            raise ValueError("fit and tune seeds must differ")


@dataclass
class RunData:
    """A run's features and labels (every evaluation)."""

    scenario: str
    seed: int
    feats: np.ndarray  # evals x series x features
    y: np.ndarray  # evals x series
    valid: np.ndarray
    evals: np.ndarray
    target: int
    onset: float | None
    breach: float | None


@dataclass
class Dataset:
    """Fitted samples: ``(run, evaluation, series)`` indices into ``runs``, labels and weights."""

    runs: list[RunData]
    run: np.ndarray
    eval: np.ndarray
    series: np.ndarray
    y: np.ndarray
    weight: np.ndarray

    def tabular(self) -> np.ndarray:
        """``samples x features``: the feature vector at each sample's evaluation."""
        out = np.empty((self.y.size, len(FEATURES)))
        for r, rd in enumerate(self.runs):
            m = self.run == r
            out[m] = rd.feats[self.eval[m], self.series[m]]
        return out

    def sequences(self, length: int, stride: int) -> np.ndarray:
        """``samples x length x features``: each sample's last ``length`` evaluations, ``stride`` apart."""
        out = np.empty((self.y.size, length, len(FEATURES)))
        offs = (np.arange(length) - (length - 1)) * stride
        for r, rd in enumerate(self.runs):
            m = np.flatnonzero(self.run == r)
            idx = np.maximum(self.eval[m][:, None] + offs[None, :], 0)
            out[m] = rd.feats[idx, self.series[m][:, None]]
        return out


def load_runs(seeds: Sequence[int], config: TrainConfig,
              advance: Callable[[int], None] | None = None) -> list[RunData]:
    cases = [(s, seed) for seed in seeds for s in config.scenarios]
    if config.fault_free:
        cases += [("fault_free", seed) for seed in seeds]
    out = []
    for s, seed in cases:
        run = prepare(s, seed, fault_free_hours=config.fault_free_hours)
        y, valid = labels(run, config.horizon_s)
        out.append(RunData(s, seed, run_features(run, config.features), y, valid, run.evals, run.target,
                           run.gt["onset"] if run.gt else None, run.breach))
        if advance is not None:
            advance(1)
    return out


def n_cases(seeds: Sequence[int], config: TrainConfig) -> int:
    return len(seeds) * (len(config.scenarios) + (1 if config.fault_free else 0))


def sample(runs: list[RunData], config: TrainConfig) -> Dataset:
    """The fitted samples of ``runs`` (see the module docstring): deterministic."""
    col = {n: i for i, n in enumerate(FEATURES)}
    rng = np.random.default_rng(config.sample_seed)
    parts: list[tuple[np.ndarray, ...]] = []
    for r, rd in enumerate(runs):
        f = rd.feats
        e_idx, s_idx = np.nonzero(rd.valid)
        fv = f[e_idx, s_idx]
        hard = ((fv[:, col["trend_p4h"]] >= config.hard_p) | (fv[:, col["rate_60"]] >= config.hard_rate_h)
                | (fv[:, col["headroom"]] < config.hard_headroom) | (s_idx == rd.target))
        keep_easy = rng.random(e_idx.size) < 1.0 / config.easy_negative_rate
        keep = hard | keep_easy
        w = np.where(hard, 1.0, float(config.easy_negative_rate))
        parts.append((np.full(int(keep.sum()), r), e_idx[keep], s_idx[keep], rd.y[e_idx[keep], s_idx[keep]], w[keep]))
    run, ev, se, y, w = (np.concatenate([p[i] for p in parts]) for i in range(5))
    return Dataset(runs, run.astype(np.int64), ev.astype(np.int64), se.astype(np.int64), y.astype(bool), w)
