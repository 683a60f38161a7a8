"""The tabular risk models (logistic regression, gradient boosting) and what every learned model shares.

A risk model maps features (``features.FEATURES``) to P(the series breaches its limit within 4 h).
``RiskModel.predict_run`` takes a run's ``evals x series x features`` and returns ``evals x series``
probabilities; a model's prediction at an evaluation reads only that evaluation's features (the tabular
models) or the ones before it (the CfC), so it is as causal as the features. ``predictions`` turns them
into the bench's records with their evidence. These models give no ETA and no interval: their records
carry the probability, the threshold and the features that drove them, not a breach time.

* ``logreg``: standardised features, L2 logistic regression (``C = 1``), sample weights (the inverse
  sampling rates of ``dataset.sample``); the explanation names the three largest contributions
  (coefficient x standardised value).
* ``gbm``: scikit-learn's ``HistGradientBoostingClassifier`` (200 trees of at most 15 leaves, learning
  rate 0.05, at least 40 samples per leaf, L2 1.0, no early stopping, ``random_state=0``): deterministic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aurora.predict.learned.features import FEATURES

_COL = {n: i for i, n in enumerate(FEATURES)}
LABELS = {
    "headroom": "headroom", "peak_headroom": "headroom at the peaks", "tstat_60": "60-min slope t",
    "volatility": "noise vs headroom", "since_drop": "time since a drop", "anomaly_z": "anomaly z",
    "breakout": "breakout over earlier peaks", "flat_share": "staircase share", "coverage": "history",
    "since_change": "time since a change", "since_restart": "time since a restart", "trend_p4h": "trend P(4 h)",
    **{f"rate_{w}": f"rise over {w} min" for w in (15, 30, 60, 120, 240)},
    **{f"tte_{w}": f"time to limit at the {w}-min pace" for w in (15, 30, 60, 120, 240)},
}


class RiskModel:
    """Base of the learned models: a name, a threshold (set by ``train``), ``predict_run``."""

    name = "risk"
    threshold = 0.5

    def fit(self, data: Any) -> RiskModel:  # data: dataset.Dataset
        raise NotImplementedError

    def predict_run(self, feats: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def contributions(self, x: np.ndarray) -> np.ndarray | None:
        """Per-feature contributions to the logit of each row of ``x`` (None: not additive)."""
        return None

    def params(self) -> dict[str, Any]:
        return {}


class LogRegModel(RiskModel):
    name = "logreg"

    def __init__(self, c: float = 1.0) -> None:
        self.c = c
        self.mean = np.zeros(len(FEATURES))
        self.std = np.ones(len(FEATURES))
        self.coef = np.zeros(len(FEATURES))
        self.intercept = 0.0

    def fit(self, data: Any) -> LogRegModel:
        from sklearn.linear_model import LogisticRegression

        x = data.tabular()
        w = data.weight
        self.mean = np.average(x, axis=0, weights=w)
        self.std = np.sqrt(np.average((x - self.mean) ** 2, axis=0, weights=w))
        self.std = np.where(self.std > 1e-12, self.std, 1.0)
        clf = LogisticRegression(C=self.c, max_iter=2000)
        clf.fit((x - self.mean) / self.std, data.y, sample_weight=w / w.mean())
        self.coef = clf.coef_[0].astype(np.float64)
        self.intercept = float(clf.intercept_[0])
        return self

    def _logit(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std) @ self.coef + self.intercept

    def predict_run(self, feats: np.ndarray) -> np.ndarray:
        e, s, f = feats.shape
        z = self._logit(feats.reshape(-1, f))
        return (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).reshape(e, s)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std) * self.coef

    def params(self) -> dict[str, Any]:
        return {"C": self.c, "coefficients": dict(zip(FEATURES, self.coef.round(4).tolist(), strict=True)),
                "intercept": round(self.intercept, 4)}


class GbmModel(RiskModel):
    name = "gbm"

    def __init__(self, max_iter: int = 200, learning_rate: float = 0.05, max_leaf_nodes: int = 15,
                 min_samples_leaf: int = 40, l2: float = 1.0) -> None:
        self.kw = {"max_iter": max_iter, "learning_rate": learning_rate, "max_leaf_nodes": max_leaf_nodes,
                   "min_samples_leaf": min_samples_leaf, "l2_regularization": l2}
        self.clf: Any = None

    def fit(self, data: Any) -> GbmModel:
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.clf = HistGradientBoostingClassifier(early_stopping=False, random_state=0, **self.kw)
        self.clf.fit(data.tabular(), data.y, sample_weight=data.weight / data.weight.mean())
        return self

    def predict_run(self, feats: np.ndarray) -> np.ndarray:
        e, s, f = feats.shape
        if e * s == 0:
            return np.zeros((e, s))
        return self.clf.predict_proba(feats.reshape(-1, f))[:, 1].reshape(e, s)

    def params(self) -> dict[str, Any]:
        return dict(self.kw)


def _fmt_minutes(log10_min: float) -> str:
    m = 10 ** log10_min
    if m >= 2880 - 1e-6:
        return "not rising"
    return f"{m / 60:.1f} h" if m >= 90 else f"{m:.0f} min"


def explain(model: RiskModel, x: np.ndarray, p: float) -> str:
    """One prediction's evidence: the probability against the threshold and the features behind it."""
    c = _COL
    parts = [
        f"P(breach within 4 h) {p:.2f} >= threshold {model.threshold:.2f} ({model.name})",
        f"headroom {100 * x[c['headroom']]:.1f} % of the limit",
        f"rising {x[c['rate_60']]:+.2f} of the headroom per hour over 60 min "
        f"(limit in {_fmt_minutes(x[c['tte_60']])} at that pace; 15 min: {_fmt_minutes(x[c['tte_15']])})",
        f"trend P(4 h) {x[c['trend_p4h']]:.2f}",
        f"anomaly z {x[c['anomaly_z']]:+.1f}",
    ]
    since = 10 ** x[c["since_change"]]
    parts.append(f"last change on the service {since:.0f} min ago" if since < 1440 - 1e-6
                 else "no change on the service in 24 h")
    contrib = model.contributions(x[None, :])
    if contrib is not None:
        top = np.argsort(-np.abs(contrib[0]))[:3]
        parts.append("largest contributions: " + ", ".join(f"{LABELS[FEATURES[i]]} {contrib[0, i]:+.2f}"
                                                           for i in top.tolist()))
    return "; ".join(parts)


def predictions(model: RiskModel, p: np.ndarray, feats: np.ndarray, now: float, observed: np.ndarray,
                limits: np.ndarray, series: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Records of one evaluation: every series (of ``series``, default all) with ``p >= threshold``."""
    rows = np.flatnonzero(p >= model.threshold)
    if series is not None:
        rows = rows[np.isin(rows, series)]
    out = []
    for r in rows.tolist():
        x = feats[r]
        out.append({
            "series": int(r), "state": "issue", "model": model.name, "probability": float(p[r]),
            "threshold": model.threshold, "current": float(observed[r]), "limit": float(limits[r]),
            "headroom": float(x[_COL["headroom"]]), "eta": None, "eta_low": None, "eta_high": None,
            "explanation": explain(model, x, float(p[r])),
        })
    return out
