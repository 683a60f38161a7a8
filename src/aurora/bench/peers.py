"""Peer detectors from PyPI, run in streaming fashion so their NAB scores compare with Aurora's.

* ``river_hst``: river's HalfSpaceTrees behind a MinMaxScaler; per point ``learn_one`` the scaler,
  ``score_one`` then ``learn_one`` the trees (the score of row t sees rows <= t only).
* ``pyod_<model>``: a PyOD model refitted every ``refit_every`` rows on the trailing ``window`` rows
  (features: value and first difference); the rows until the next refit are scored by that model,
  which saw only earlier rows. Scores standardise the decision scores against the training ones, as
  PyOD's ``predict_proba(method="unify")`` does, but map the Gaussian tail in log space
  (``1 - p ** 0.1``, like Aurora's baseline) because ``unify``'s ``erf`` rounds to exactly 1.0 beyond
  about 6 sigma (1 % of NAB's rows), which leaves the NAB threshold nothing to choose between.

All are deterministic (fixed seeds). Each function scores one series and returns an array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import log_ndtr

SEED = 42


def river_hst(values: np.ndarray, on_progress: Callable[[int], None] | None = None) -> np.ndarray:
    from river import anomaly, preprocessing

    scaler = preprocessing.MinMaxScaler()
    hst = anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=SEED)  # river defaults
    out = np.zeros(len(values))
    for i, v in enumerate(values.tolist()):
        x = {"value": float(v)}
        scaler.learn_one(x)
        xs = scaler.transform_one(x)
        out[i] = hst.score_one(xs)
        hst.learn_one(xs)
        if on_progress is not None and (i + 1) % 1000 == 0:
            on_progress(1000)
    if on_progress is not None:
        on_progress(len(values) % 1000)
    return out


def _pyod_model(kind: str) -> Any:
    if kind == "knn":
        from pyod.models.knn import KNN

        return KNN(n_neighbors=10)
    if kind == "ecod":
        from pyod.models.ecod import ECOD

        return ECOD()
    if kind == "iforest":
        from pyod.models.iforest import IForest

        return IForest(n_estimators=50, random_state=SEED)
    if kind == "hbos":
        from pyod.models.hbos import HBOS

        return HBOS()
    raise ValueError(f"unknown pyod model {kind!r}")


def pyod_windowed(
    kind: str,
    values: np.ndarray,
    on_progress: Callable[[int], None] | None = None,
    window: int = 500,
    refit_every: int = 50,
    min_fit: int = 50,
) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    feats = np.column_stack([x, np.concatenate([[0.0], np.diff(x)])])
    out = np.zeros(len(x))
    start = min_fit  # rows before the first fit score 0
    while start < len(x):
        stop = min(start + refit_every, len(x))
        model = _pyod_model(kind)
        model.fit(feats[max(0, start - window) : start])
        train = np.asarray(model.decision_scores_, dtype=np.float64)
        mu, sd = float(np.mean(train)), float(np.std(train)) + 1e-12
        log_p = log_ndtr(-(np.asarray(model.decision_function(feats[start:stop])) - mu) / sd)
        out[start:stop] = -np.expm1(log_p / 10.0)
        if on_progress is not None:
            on_progress(stop - start)
        start = stop
    if on_progress is not None:
        on_progress(min(min_fit, len(x)))
    return np.nan_to_num(out, nan=0.0)


def _pyod(kind: str) -> Callable[[np.ndarray, Callable[[int], None] | None], np.ndarray]:
    def run(values: np.ndarray, on_progress: Callable[[int], None] | None = None) -> np.ndarray:
        return pyod_windowed(kind, values, on_progress)

    return run


PEERS: dict[str, Callable[[np.ndarray, Callable[[int], None] | None], np.ndarray]] = {
    "river_hst": river_hst,
    "pyod_knn": _pyod("knn"),
    "pyod_ecod": _pyod("ecod"),
    "pyod_iforest": _pyod("iforest"),
    "pyod_hbos": _pyod("hbos"),
}
