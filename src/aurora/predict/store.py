"""Where predictions live: the ``predictions`` table, written by the prediction stage, read by the API.

A prediction row is one episode of one series: created when it is first issued, updated while the
forecaster keeps it, closed as ``withdrawn`` (the trend stopped) or ``confirmed`` (the breach happened).
Infinite ETA bounds (the slope is not significant at that level) are stored as NULL and shown as null.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

from sqlalchemy import Engine, insert, select, update

from aurora.db.tables import predictions

STATES = ("active", "withdrawn", "confirmed")
_JSON = ("labels", "probabilities", "evidence")
CONE_POINTS = 13


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _clean(x: Any) -> Any:
    """JSON-safe: non-finite floats (an infinite ETA bound) become null."""
    if isinstance(x, float):
        return _finite(x)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def _row(rec: dict[str, Any]) -> dict[str, Any]:
    row = {c.name: rec[c.name] for c in predictions.columns if c.name != "id" and c.name in rec}
    for k in _JSON:
        if k in row:
            row[k] = json.dumps(_clean(row[k]), sort_keys=True, allow_nan=False)
    for k in ("eta_low", "eta_high"):
        if k in row:
            row[k] = _finite(row[k])
    return row


def cone(rec: dict[str, Any], points: int = CONE_POINTS) -> list[list[float]]:
    """The prediction's cone for a chart: ``[time, low, mid, high]`` from the last update to the latest
    ETA bound (or twice the ETA when that bound is infinite): the fitted level carried forward at the
    fitted slope and at the slope's interval bounds."""
    ev = rec.get("evidence") or {}
    t0 = float(rec["updated_at"])
    try:
        level, slope = float(ev["current"]), float(ev["slope"])
        lo_s, hi_s = float(ev.get("slope_low", slope)), float(ev.get("slope_high", slope))
    except (KeyError, TypeError, ValueError):
        return []
    eta, high = float(rec["eta"]), rec.get("eta_high")
    end = float(high) if high is not None and math.isfinite(high) else t0 + 2 * max(eta - t0, 60.0)
    end = max(end, t0 + 60.0)
    out = []
    for i in range(points):
        t = t0 + (end - t0) * i / (points - 1)
        a, b = level + lo_s * (t - t0), level + hi_s * (t - t0)
        out.append([t, min(a, b), level + slope * (t - t0), max(a, b)])
    return out


def api_record(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as ``GET /api/v1/predictions`` shows it (the design's fields first)."""
    rec = dict(row)
    for k in _JSON:
        if isinstance(rec.get(k), str):
            rec[k] = json.loads(rec[k])
    out = {k: rec.get(k) for k in ("id", "created_at", "updated_at", "service", "metric", "labels", "kind",
                                   "threshold", "eta", "eta_low", "eta_high", "probability", "explanation")}
    out.update({k: rec.get(k) for k in ("state", "closed_at", "close_reason", "probabilities", "direction",
                                        "limit_source", "first_eta", "breach_at", "updates", "series_id")})
    ev = rec.get("evidence") or {}
    out["evidence"] = ev
    out["cone"] = cone(rec)
    if rec.get("breach_at") is not None:
        out["eta_error_s"] = float(rec["first_eta"]) - float(rec["breach_at"])
    return out


class PredictionStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    def insert(self, recs: list[dict[str, Any]]) -> list[int]:
        """Store new predictions; returns their ids (in order)."""
        ids: list[int] = []
        with self._lock, self._engine.begin() as conn:
            for rec in recs:
                res = conn.execute(insert(predictions).values(**_row(rec)))
                key = res.inserted_primary_key
                assert key is not None
                ids.append(int(key[0]))
        return ids

    def update(self, recs: list[dict[str, Any]]) -> None:
        """Rewrite the given predictions (by ``id``) in one transaction."""
        if not recs:
            return
        with self._lock, self._engine.begin() as conn:
            for rec in recs:
                conn.execute(update(predictions).where(predictions.c.id == rec["id"]).values(**_row(rec)))

    def active_rows(self) -> list[dict[str, Any]]:
        """The active predictions, decoded (the stage resumes them after a restart)."""
        q = select(predictions).where(predictions.c.state == "active")
        with self._engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings().all()]
        for r in rows:
            for k in _JSON:
                r[k] = json.loads(r[k])
            for k in ("eta_low", "eta_high"):
                if r[k] is None:
                    r[k] = math.inf
        return rows

    def query(self, service: str | None = None, active: bool | None = True, state: str | None = None,
              metric: str | None = None, start: float | None = None, end: float | None = None,
              limit: int = 500) -> list[dict[str, Any]]:
        """Predictions, newest first. ``active=True``: only active ones; ``start``/``end`` bound their
        last update (event time)."""
        q = select(predictions).order_by(predictions.c.updated_at.desc(), predictions.c.id.desc()).limit(limit)
        if active:
            q = q.where(predictions.c.state == "active")
        if state:
            q = q.where(predictions.c.state == state)
        if service:
            q = q.where(predictions.c.service == service)
        if metric:
            q = q.where(predictions.c.metric == metric)
        if start is not None:
            q = q.where(predictions.c.updated_at >= start)
        if end is not None:
            q = q.where(predictions.c.created_at <= end)
        with self._engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [api_record(dict(r)) for r in rows]

    def get(self, prediction_id: int) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(predictions).where(predictions.c.id == prediction_id)).mappings().first()
        return None if row is None else api_record(dict(row))
