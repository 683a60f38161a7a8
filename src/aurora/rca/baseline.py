"""Aurora's baseline root-cause ranker: BARO-style robust z-scores, pure NumPy.

The method is BARO's RobustScorer (Pham et al., FSE'24, as run in RCAEval): each metric column's
anomalous period is standardised against its normal period with the normal median and inter-quartile
range (IQR), and the column's score is the largest value reached; the most-changed columns come first.
It is pure (arrays in, list out), deterministic, and uses nothing but the two periods it is given, so
the same function serves the offline bench and a live incident. The rules, and why each exists:

1. **Only rises count.** The score is the signed maximum, not ``|z|``: CPU and memory faults and their
   symptoms (latency, errors, load) push metrics up; a fall (a caller sending less traffic) is an
   effect, not a cause.
2. **Robust scale: IQR, or the standard deviation when the IQR is 0.** The median and IQR ignore the
   spikes a normal period holds. A column that sits at one value with rare blips has an IQR of 0; its
   standard deviation still measures the blips. (BARO/RobustScaler use 1, which makes the score depend
   on the unit: bytes or megabytes, cores or percent.)
3. **Relative resolution floor: the scale is at least 0.1 % of the column's normal level** (``|median|``;
   for a column whose normal median is 0, the largest absolute deviation it reaches in the anomalous
   period). A change smaller than a thousandth of what a metric normally reads is not one anyone acts
   on, but a quiet column's spread can be far smaller than that: container memory moves in 4 KiB pages,
   so a 270 MB container that held within a page or two has an IQR of 4096 bytes, and a 3.4 MB (1.3 %)
   drift scores ~840, above the ~700 of the root's CPU going from 0.6 % to 100 % (sockshop1
   orders_cpu_5). With the floor that drift scores ~13. The floor only bites on such columns; noisy
   ones (CPU, latency) have spreads far above 0.1 % of their level.
4. **A column is dropped only if it carries no evidence**: no finite value in either period, or one
   value throughout both periods. BARO also drops a column that is constant in *one* period, which
   throws away the strongest signals: a metric flat in the normal period that jumps (a memory gauge
   that doubles), or one that saturates at a new flat level (CPU pinned at its limit). Rules 2-3 give
   those a finite scale: a flat non-zero normal period is scaled by the 0.1 % floor (so a gauge flat at
   431 MB that gains two pages scores 0.02, not infinity: rules 3 and 4 only work together); a column
   flat at exactly 0 that rises scores ``1 / REL_RESOLUTION`` (1000): certain it changed, with no noise
   to say by how much. Dropped columns are ranked after every kept one, with score 0.
5. **NaN and infinite cells are missing values** and ignored per column.
6. **Ties keep column order**, so the ranking is deterministic.

Services are ranked by their best column; a column's service is its name up to the first underscore
(``carts-db_cpu`` -> ``carts-db``).
"""

from __future__ import annotations

import numpy as np

# Rule 3: the smallest change, as a fraction of a column's normal level, that the scale resolves.
REL_RESOLUTION = 1e-3


def service_of(column: str) -> str:
    return column.split("_", 1)[0]


def robust_scores(normal: np.ndarray, anomalous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column score (largest robust z of the anomalous period) and whether the column was kept.

    ``normal`` and ``anomalous`` are (rows, columns) arrays with the same number of columns. Dropped
    columns (rule 4) have score 0 and ``kept`` False; every kept score is finite.
    """
    normal = np.asarray(normal, dtype=np.float64)
    anomalous = np.asarray(anomalous, dtype=np.float64)
    if normal.ndim != 2 or anomalous.ndim != 2 or normal.shape[1] != anomalous.shape[1]:
        raise ValueError(f"normal {normal.shape} and anomalous {anomalous.shape} must be 2-D with equal columns")
    normal = np.where(np.isfinite(normal), normal, np.nan)
    anomalous = np.where(np.isfinite(anomalous), anomalous, np.nan)
    scores = np.zeros(normal.shape[1])
    kept = ~np.isnan(normal).all(axis=0) & ~np.isnan(anomalous).all(axis=0)
    if not kept.any():
        return scores, kept
    both = np.concatenate([normal[:, kept], anomalous[:, kept]])
    kept[kept] = np.nanmax(both, axis=0) > np.nanmin(both, axis=0)
    if not kept.any():
        return scores, kept
    n, a = normal[:, kept], anomalous[:, kept]
    med = np.nanmedian(n, axis=0)
    q75, q25 = np.nanpercentile(n, [75, 25], axis=0)
    iqr = q75 - q25
    spread = np.where(iqr > 0, iqr, np.nanstd(n, axis=0))
    dev = a - med
    level = np.abs(med)
    level = np.where(level > 0, level, np.nanmax(np.abs(dev), axis=0))
    # > 0 for every kept column: a column flat in the normal period moves in the anomalous one, so
    # either its median or its largest deviation is non-zero.
    scale = np.maximum(spread, REL_RESOLUTION * level)
    with np.errstate(over="ignore"):
        z = np.nanmax(dev / scale, axis=0)
    scores[kept] = np.nan_to_num(z, posinf=np.finfo(np.float64).max, neginf=-np.finfo(np.float64).max)
    return scores, kept


def rank_root_causes(columns: list[str], normal: np.ndarray, anomalous: np.ndarray) -> list[tuple[str, float]]:
    """Rank metric columns as root-cause candidates, most suspicious first.

    ``normal`` and ``anomalous`` are (rows, len(columns)) arrays; NaN cells are ignored. Ties keep
    column order so the ranking is deterministic. Dropped columns come last with score 0.
    """
    k = len(columns)
    if k == 0:
        return []
    scores, kept = robust_scores(
        np.asarray(normal, dtype=np.float64).reshape(-1, k), np.asarray(anomalous, dtype=np.float64).reshape(-1, k)
    )
    order = np.argsort(-np.where(kept, scores, -np.inf), kind="stable")
    return [(columns[i], float(scores[i])) for i in order]


def rank_services(ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Services in order of their best-ranked column."""
    seen: dict[str, float] = {}
    for col, score in ranked:
        seen.setdefault(service_of(col), score)
    return list(seen.items())
