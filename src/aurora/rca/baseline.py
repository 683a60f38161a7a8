"""Aurora's baseline root-cause ranker: BARO-style robust z-scores, pure NumPy.

As BARO's ranking does (Pham et al., FSE'24, as run in RCAEval): a column that is constant in either
period carries no evidence and is dropped (ranked last with score 0); every other column's anomalous
period is standardised against its normal period with the median and the inter-quartile range (an
IQR of 0 falls back to the standard deviation, where BARO uses 1), and the column's score is the largest value
reached. Only rises count: resource faults and their symptoms push metrics up. A column's service is
its name up to the first underscore (``carts-db_cpu`` -> ``carts-db``).
"""

from __future__ import annotations

import numpy as np


def service_of(column: str) -> str:
    return column.split("_", 1)[0]


def rank_root_causes(columns: list[str], normal: np.ndarray, anomalous: np.ndarray) -> list[tuple[str, float]]:
    """Rank metric columns as root-cause candidates, most suspicious first.

    ``normal`` and ``anomalous`` are (rows, len(columns)) arrays; NaN cells are ignored. Ties keep
    column order so the ranking is deterministic.
    """
    normal = np.asarray(normal, dtype=np.float64).reshape(-1, len(columns))
    anomalous = np.asarray(anomalous, dtype=np.float64).reshape(-1, len(columns))
    scores = np.zeros(len(columns))
    with np.errstate(invalid="ignore"):
        usable = (np.nan_to_num(np.nanstd(normal, axis=0)) > 0) & (np.nan_to_num(np.nanstd(anomalous, axis=0)) > 0)
    if usable.any():
        n = normal[:, usable]
        a = anomalous[:, usable]
        med = np.nanmedian(n, axis=0)
        q75, q25 = np.nanpercentile(n, [75, 25], axis=0)
        iqr = q75 - q25
        # BARO/RobustScaler use 1 for a zero IQR, which makes the score depend on the unit (bytes
        # vs. cores); the normal period's standard deviation keeps it unit-free.
        iqr = np.where(np.abs(iqr) < 10 * np.finfo(np.float64).eps, np.nanstd(n, axis=0), iqr)
        z = (a - med) / iqr
        scores[usable] = np.nanmax(np.where(np.isfinite(z), z, np.nan), axis=0)
    scores = np.nan_to_num(scores, nan=0.0, posinf=np.finfo(np.float64).max)
    # Dropped columns go after every kept one, whatever the kept ones scored.
    scores = np.where(usable, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")
    return [(columns[i], float(scores[i]) if usable[i] else 0.0) for i in order]


def rank_services(ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Services in order of their best-ranked column."""
    seen: dict[str, float] = {}
    for col, score in ranked:
        seen.setdefault(service_of(col), score)
    return list(seen.items())
