"""Aurora's streaming anomaly detector: univariate analyzers -> likelihood -> quorum -> alarm gate.

``EnsembleDetector.update(slots, values, times)`` scores one sample for each of a batch of distinct series
slots, all at once, and returns per sample the consensus score, whether it is an alarm, each analyzer's
calibrated score (its vote) and the expected range, so every anomaly can be explained. It is

* causal: a sample's score depends only on it and the samples before it in its slot;
* deterministic: no randomness and no wall clock; ``state()`` / ``from_state()`` round-trip exactly;
* columnar: state for every slot lives in arrays; no per-sample Python loop.

Warm-up is explicit: each analyzer says when it is ready, the likelihood layer waits ``warmup`` more of its
samples, and a sample scores 0 until at least ``k`` analyzers can vote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from aurora.detect.analyzer import Analyzer
from aurora.detect.changepoint import ChangePointAnalyzer, ChangePointConfig
from aurora.detect.consensus import AlarmGate, GateConfig, quorum
from aurora.detect.level import LevelAnalyzer, LevelConfig
from aurora.detect.likelihood import Likelihood, LikelihoodConfig
from aurora.detect.resolution import Resolution
from aurora.detect.seasonal import SeasonalAnalyzer, SeasonalConfig
from aurora.detect.shifts import LevelShiftAnalyzer, LevelShiftConfig, SpikeAnalyzer, SpikeConfig
from aurora.detect.spread import RangeAnalyzer, RangeConfig, VarianceAnalyzer, VarianceConfig


@dataclass(frozen=True)
class EnsembleConfig:
    quorum: int = 2  # k: analyzers that must agree
    support: float = 0.1  # how much easier the other k - 1 votes are than the strongest (see quorum())
    vote: float = 0.9  # an analyzer whose calibrated score reaches this is listed as voting
    band: float = 3.0  # expected range = expectation +- band * spread
    analyzers: tuple[str, ...] = ("level", "seasonal", "changepoint", "level_shift", "spike", "variance", "range")
    level: LevelConfig = field(default_factory=LevelConfig)
    seasonal: SeasonalConfig = field(default_factory=SeasonalConfig)
    changepoint: ChangePointConfig = field(default_factory=ChangePointConfig)
    level_shift: LevelShiftConfig = field(default_factory=LevelShiftConfig)
    spike: SpikeConfig = field(default_factory=SpikeConfig)
    variance: VarianceConfig = field(default_factory=VarianceConfig)
    range: RangeConfig = field(default_factory=RangeConfig)
    likelihood: LikelihoodConfig = field(default_factory=LikelihoodConfig)
    gate: GateConfig = field(default_factory=GateConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnsembleConfig:
        parts = {"level": LevelConfig, "seasonal": SeasonalConfig, "changepoint": ChangePointConfig,
                 "level_shift": LevelShiftConfig, "spike": SpikeConfig, "variance": VarianceConfig,
                 "range": RangeConfig, "likelihood": LikelihoodConfig, "gate": GateConfig}
        kw: dict[str, Any] = {}
        for k, v in d.items():
            kw[k] = parts[k](**v) if k in parts else (tuple(v) if k == "analyzers" else v)
        return cls(**kw)


def build_analyzers(cfg: EnsembleConfig) -> list[Analyzer]:
    makers: dict[str, Any] = {
        "level": lambda: LevelAnalyzer(cfg.level),
        "seasonal": lambda: SeasonalAnalyzer(cfg.seasonal),
        "changepoint": lambda: ChangePointAnalyzer(cfg.changepoint),
        "level_shift": lambda: LevelShiftAnalyzer(cfg.level_shift),
        "spike": lambda: SpikeAnalyzer(cfg.spike),
        "variance": lambda: VarianceAnalyzer(cfg.variance),
        "range": lambda: RangeAnalyzer(cfg.range),
    }
    unknown = [a for a in cfg.analyzers if a not in makers]
    if unknown:
        raise ValueError(f"unknown analyzers {unknown}; choose from {sorted(makers)}")
    return [makers[a]() for a in cfg.analyzers]


@dataclass
class EnsembleResult:
    score: np.ndarray  # consensus score in [0, 1] (k-th highest analyzer score)
    reported: np.ndarray  # the score damped while a series is held after an alarm (what NAB sees)
    alarm: np.ndarray  # bool: score passed the series' adaptive threshold and the series was not held
    threshold: np.ndarray  # the threshold each sample was judged against
    votes: np.ndarray  # (samples, analyzers) calibrated score of each analyzer
    log_p: np.ndarray  # (samples, analyzers) log tail probability of each analyzer's surprise
    z: np.ndarray  # (samples, analyzers) raw surprise
    expected: np.ndarray  # (samples, 2) expected range [lo, hi]
    centre: np.ndarray  # the expectation the range is built around


class EnsembleDetector:
    name = "aurora-ensemble"

    def __init__(self, n_slots: int = 0, config: EnsembleConfig | None = None) -> None:
        self.config = config or EnsembleConfig()
        self.analyzers = build_analyzers(self.config)
        self.names = tuple(a.name for a in self.analyzers)
        self.likelihood = Likelihood(len(self.analyzers), self.config.likelihood)
        self.gate = AlarmGate(self.config.gate)
        self.resolution = Resolution()
        # The analyzer whose expectation is shown as the expected range: seasonal once it knows the hour.
        self._seasonal = self.names.index("seasonal") if "seasonal" in self.names else None
        self._level = self.names.index("level") if "level" in self.names else 0
        self.ensure_slots(n_slots)

    def ensure_slots(self, n: int) -> None:
        for a in self.analyzers:
            a.ensure_slots(n)
        self.likelihood.ensure_slots(n)
        self.gate.ensure_slots(n)
        self.resolution.ensure_slots(n)

    def nbytes_per_slot(self) -> int:
        return (sum(a.nbytes_per_slot() for a in self.analyzers) + self.likelihood.nbytes_per_slot()
                + self.gate.nbytes_per_slot() + self.resolution.nbytes_per_slot())

    def update(self, slots: np.ndarray, values: np.ndarray, times: np.ndarray) -> EnsembleResult:
        """Score one sample per slot (slots distinct within a call), then learn it. ``times`` in unix seconds.

        Non-finite values score 0 and leave their slot unchanged.
        """
        slots = np.asarray(slots, dtype=np.int64)
        x_all = np.asarray(values, dtype=np.float64)
        t_all = np.broadcast_to(np.asarray(times, dtype=np.float64), x_all.shape)
        if slots.shape != x_all.shape:
            raise ValueError("slots and values must have the same shape")
        m, na = len(slots), len(self.analyzers)
        out = EnsembleResult(np.zeros(m), np.zeros(m), np.zeros(m, bool), np.ones(m), np.zeros((m, na)),
                             np.zeros((m, na)), np.zeros((m, na)), np.full((m, 2), np.nan), np.full(m, np.nan))
        if m == 0:
            return out
        increasing = bool(np.all(slots[1:] > slots[:-1]))
        if not increasing and len(np.unique(slots)) != m:
            raise ValueError("a slot may appear only once per update")
        self.ensure_slots(int(slots.max()) + 1)
        ok = np.isfinite(x_all)
        idx = None if ok.all() else np.flatnonzero(ok)
        s, x, t = (slots, x_all, t_all) if idx is None else (slots[idx], x_all[idx], t_all[idx])
        if len(s) == 0:
            return out
        s = as_slice(s)

        outs = [a.update(s, x, t) for a in self.analyzers]
        res = self.resolution.update(s, x)
        # Surprise in units of at least one step of the series' own resolution (see resolution.py).
        z = np.column_stack([o.z * (o.spread / np.maximum(o.spread, res)) for o in outs])
        ready = np.column_stack([o.ready for o in outs])
        log_p, votes = self.likelihood.update(s, z, ready)
        score = quorum(votes, self.config.quorum, self.config.support)
        alarm, reported, thr = self.gate.update(s, score)

        pick = outs[self._level]
        centre, spread = pick.expected, pick.spread
        if self._seasonal is not None:
            sea = outs[self._seasonal]
            centre = np.where(sea.ready, sea.expected, centre)
            spread = np.where(sea.ready, sea.spread, spread)
        band = self.config.band * spread
        sel = slice(None) if idx is None else idx
        out.score[sel], out.reported[sel], out.alarm[sel], out.threshold[sel] = score, reported, alarm, thr
        out.votes[sel], out.log_p[sel], out.z[sel] = votes, log_p, z
        out.expected[sel] = np.column_stack([centre - band, centre + band])
        out.centre[sel] = centre
        return out

    def run(self, values: np.ndarray, times: np.ndarray | None = None) -> EnsembleResult:
        """Score one whole series in a fresh slot of its own (for tests and benches)."""
        x = np.asarray(values, dtype=np.float64)
        t = np.arange(len(x)) * 300.0 if times is None else np.asarray(times, dtype=np.float64)
        slot = np.array([self.likelihood.s.n_slots])
        parts = [self.update(slot, x[i : i + 1], t[i : i + 1]) for i in range(len(x))]
        return concat_results(parts)

    def state(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "names": list(self.names),
                "analyzers": {a.name: a.state() for a in self.analyzers},
                "likelihood": self.likelihood.state(), "gate": self.gate.state(),
                "resolution": self.resolution.state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EnsembleDetector:
        det = cls(0, EnsembleConfig.from_dict(state["config"]))
        for a in det.analyzers:
            a.load_state(state["analyzers"][a.name])
        det.likelihood.load_state(state["likelihood"])
        det.gate.load_state(state["gate"])
        det.resolution.load_state(state["resolution"])
        return det


def as_slice(slots: np.ndarray) -> np.ndarray:
    """A run of consecutive slots (the usual scrape batch) as a slice: gathers become views, scatters
    become block copies, several times cheaper than fancy indexing. Analyzers accept either."""
    if len(slots) and int(slots[-1]) - int(slots[0]) == len(slots) - 1 and bool(np.all(np.diff(slots) == 1)):
        return slice(int(slots[0]), int(slots[-1]) + 1)  # type: ignore[return-value]
    return slots


def concat_results(parts: list[EnsembleResult]) -> EnsembleResult:
    return EnsembleResult(*(np.concatenate([getattr(p, f) for p in parts])
                            for f in EnsembleResult.__dataclass_fields__))
