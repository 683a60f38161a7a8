"""The JSON push format: {"series": [{"metric": m, "labels": {...}, "points": [[unix_s, value], ...]}]}."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from aurora.errors import BadInput
from aurora.model import SeriesBatch

_SPECIAL = {"NaN": math.nan, "+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf}


def _points(raw: Any, where: str, may_have_literals: bool) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(raw, list):
        raise BadInput(f"{where}.points must be a list of [unix_seconds, value] pairs")
    if not raw:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    arr = None
    if not may_have_literals:  # NumPy would take true/false/null as 1/0/NaN; only then check point by point
        try:
            arr = np.asarray(raw, dtype=np.float64)
        except (ValueError, TypeError):
            arr = None
    if arr is None or arr.ndim != 2 or arr.shape[1] != 2:
        # Slow path only for the unusual: strings like "NaN", or malformed pairs (for a precise error).
        ts_l, v_l = [], []
        for j, p in enumerate(raw):
            if not isinstance(p, list | tuple) or len(p) != 2:
                raise BadInput(f"{where}.points[{j}] must be a [unix_seconds, value] pair")
            t, v = p
            if isinstance(t, bool) or not isinstance(t, int | float):
                raise BadInput(f"{where}.points[{j}][0] must be unix seconds (a number), got {t!r}")
            if isinstance(v, str) and v in _SPECIAL:
                v = _SPECIAL[v]
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise BadInput(f"{where}.points[{j}][1] must be a number or \"NaN\"/\"+Inf\"/\"-Inf\", got {v!r}")
            ts_l.append(float(t))
            v_l.append(float(v))
        arr = np.column_stack([np.asarray(ts_l, np.float64), np.asarray(v_l, np.float64)])
    t = arr[:, 0]
    if not np.isfinite(t).all() or (t > 1e11).any():
        raise BadInput(f"{where}.points has a timestamp that is not unix seconds (too large or not finite)")
    return np.round(t * 1000).astype(np.int64), arr[:, 1].copy()


def parse_json_ingest(body: Any, may_have_literals: bool = True) -> SeriesBatch:
    """``may_have_literals=False`` (the raw body has no ``true``, ``false`` or ``null``) allows the vectorized
    fast path."""
    if not isinstance(body, dict) or not isinstance(body.get("series"), list):
        raise BadInput('body must be a JSON object {"series": [{"metric", "labels", "points"}, ...]}')
    if len(body) > 1:  # a misspelt key would otherwise be dropped without a word
        raise BadInput(f"body has unknown fields {sorted(set(body) - {'series'})}; expected only \"series\"")
    metrics: list[str] = []
    labels: list[dict[str, str]] = []
    ts_parts, v_parts, counts = [], [], []
    for i, s in enumerate(body["series"]):
        where = f"series[{i}]"
        if not isinstance(s, dict):
            raise BadInput(f"{where} must be an object")
        unknown = set(s) - {"metric", "labels", "points"}
        if unknown:
            raise BadInput(f"{where} has unknown fields {sorted(unknown)}; expected metric, labels, points")
        metric = s.get("metric")
        if not isinstance(metric, str):
            raise BadInput(f"{where}.metric must be a string")
        lab = s.get("labels", {}) or {}
        if not isinstance(lab, dict) or not all(isinstance(v, str) for v in lab.values()):
            raise BadInput(f"{where}.labels must be an object of string values")
        ts, vals = _points(s.get("points"), where, may_have_literals)
        metrics.append(metric)
        labels.append(lab)
        ts_parts.append(ts)
        v_parts.append(vals)
        counts.append(len(ts))
    offsets = np.zeros(len(counts) + 1, np.int64)
    if counts:
        np.cumsum(np.asarray(counts, np.int64), out=offsets[1:])
    if not ts_parts:
        return SeriesBatch.empty()
    return SeriesBatch(metrics, labels, offsets, np.concatenate(ts_parts), np.concatenate(v_parts))


def batch_to_json(batch: SeriesBatch) -> dict[str, Any]:
    """The inverse of ``parse_json_ingest``: a batch as a JSON push body (times in unix seconds)."""
    points = np.column_stack([batch.ts_ms / 1000.0, batch.values]).tolist()
    return {"series": [{"metric": m, "labels": lab, "points": points[int(batch.offsets[i]):int(batch.offsets[i + 1])]}
                       for i, (m, lab) in enumerate(zip(batch.metrics, batch.labels, strict=True))]}
