"""Train the learned risk models inside a bench run: fit seeds, then thresholds on tune seeds.

``train(names)`` simulates the fit runs (``TrainConfig.fit_seeds``), samples them (``dataset.sample``),
fits each model, simulates the tune runs (``TrainConfig.tune_seeds``), predicts every evaluation of
them and sets each model's threshold (``threshold.choose_threshold``). Deterministic: fixed seeds, fixed
sampling, deterministic learners; nothing is read from disk and nothing but the report is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from aurora.predict.learned.dataset import RunData, TrainConfig, load_runs, n_cases, sample
from aurora.predict.learned.features import FEATURES
from aurora.predict.learned.models import GbmModel, LogRegModel, RiskModel
from aurora.predict.learned.threshold import choose_threshold

LEARNED = ("logreg", "gbm", "cfc")
Progress = Callable[[str, int], Callable[[int], None]]


def make(name: str) -> RiskModel:
    if name == "logreg":
        return LogRegModel()
    if name == "gbm":
        return GbmModel()
    if name == "cfc":
        from aurora.predict.learned.cfc import CfcModel

        return CfcModel()
    raise ValueError(f"unknown learned model {name!r}; known: {', '.join(LEARNED)}")


@dataclass
class Trained:
    models: dict[str, RiskModel]
    config: TrainConfig
    fit_seconds: dict[str, float] = field(default_factory=dict)  # per model: fitting only
    data_seconds: float = 0.0  # simulating and featurising the fit and tune runs (shared by the models)
    tuning: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        return {
            "train_config": cfg,
            "features": list(FEATURES),
            "samples": self.samples,
            "data_seconds": self.data_seconds,
            "models": {n: {"threshold": m.threshold, "fit_seconds": self.fit_seconds[n], "params": m.params(),
                           "tuning_curve": self.tuning[n]} for n, m in self.models.items()},
        }


def _tune_view(runs: Sequence[RunData], p: Sequence[np.ndarray]
               ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int, float | None, float | None]]:
    return [(pi, r.valid, r.evals, r.target, r.onset, r.breach) for r, pi in zip(runs, p, strict=True)]


def train(names: Sequence[str], config: TrainConfig | None = None, progress: Progress | None = None,
          min_precision: float = 0.9) -> Trained:
    cfg = config or TrainConfig()
    names = list(dict.fromkeys(names))
    models = {n: make(n) for n in names}  # fails early (the cfc without its extra)
    t0 = time.perf_counter()
    adv = progress("train data", n_cases(cfg.fit_seeds, cfg) + n_cases(cfg.tune_seeds, cfg)) if progress else None
    fit_runs = load_runs(cfg.fit_seeds, cfg, adv)
    tune_runs = load_runs(cfg.tune_seeds, cfg, adv)
    data = sample(fit_runs, cfg)
    out = Trained(models, cfg, data_seconds=time.perf_counter() - t0,
                  samples={"fit_samples": int(data.y.size), "fit_positives": int(data.y.sum()),
                           "fit_runs": len(fit_runs), "tune_runs": len(tune_runs),
                           "tune_evaluations": int(sum(r.valid.sum() for r in tune_runs)),
                           "tune_positives": int(sum((r.y & r.valid).sum() for r in tune_runs))})
    adv = progress("train fit", len(models)) if progress else None
    for n, m in models.items():
        t1 = time.perf_counter()
        m.fit(data)
        out.fit_seconds[n] = time.perf_counter() - t1
        p = [m.predict_run(r.feats) for r in tune_runs]
        m.threshold, out.tuning[n] = choose_threshold(_tune_view(tune_runs, p), min_precision)
        if adv is not None:
            adv(1)
    return out
