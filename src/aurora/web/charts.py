"""The Service page's chart data: one chart per metric, in uPlot's column shape, with what to mark on it.

Counters are charted as per-second rates. A single-series chart gets a band: the rolling median +/- 3
scaled MADs of the points before each step (``BAND_WINDOW`` steps), a display aid that says what "usual"
looked like, not the detectors' own state. Anomalies carry the detectors' expected range at their time.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from aurora.model import escape_label_value, is_counter
from aurora.predict.limits import LIMITS
from aurora.web import adapter
from aurora.web.queries import data_now, range_series

POINTS = 360  # steps per chart
BAND_WINDOW = 30
RANGES = {"1h": 3600.0, "6h": 6 * 3600.0, "24h": 86_400.0}
MAX_CHARTS = 24
HIDDEN_LABELS = {"__name__", "service", "instance", "host"}  # the same on every series of a service
LIMIT_METRICS = {m for m, _ in LIMITS.values() if isinstance(m, str)}  # drawn on the metric they limit


def unit_of(metric: str) -> str:
    if is_counter(metric):
        return "/s"
    for suffix, unit in (("_ratio", "ratio"), ("_bytes", "bytes"), ("_seconds", "s"), ("_score", "")):
        if metric.endswith(suffix):
            return unit
    return ""


def metrics_of(aurora: Any, service: str) -> list[str]:
    return sorted({i.metric for i in aurora.tsdb.all_series() if i.labels.get("service") == service})


def _band(values: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """Rolling median +/- 3 * 1.4826 * MAD over the previous BAND_WINDOW steps (NaN where too few)."""
    n = len(values)
    lo: list[float | None] = [None] * n
    hi: list[float | None] = [None] * n
    if n <= BAND_WINDOW:
        return lo, hi
    win = np.lib.stride_tricks.sliding_window_view(values, BAND_WINDOW)[:-1]  # window ending before step i
    with warnings.catch_warnings():  # an all-NaN window (a gap in the data) is expected, not news
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(win, axis=1)
        mad = np.nanmedian(np.abs(win - med[:, None]), axis=1) * 1.4826
    spread = 3 * mad
    for j, (m, s) in enumerate(zip(med, spread, strict=True)):
        if math.isfinite(m) and math.isfinite(s):
            lo[j + BAND_WINDOW] = float(m - s)
            hi[j + BAND_WINDOW] = float(m + s)
    return lo, hi


def _legend(labels: dict[str, str], metric: str) -> str:
    rest = {k: v for k, v in labels.items() if k not in HIDDEN_LABELS}
    return ", ".join(f"{k}={v}" for k, v in sorted(rest.items())) or metric


def _clean(values: np.ndarray, present: np.ndarray) -> list[float | None]:
    pairs = zip(values.tolist(), present.tolist(), strict=True)
    return [float(v) if p and math.isfinite(v) else None for v, p in pairs]


def _limit(aurora: Any, metric: str, sel: str, start: float, end: float, step: float,
           n: int) -> dict[str, Any] | None:
    """The metric's limit (``aurora.predict.limits.LIMITS``) as a line: its limit series, or a fixed floor."""
    if metric not in LIMITS:
        return None
    source, direction = LIMITS[metric]
    if not isinstance(source, str):  # a fixed level: a floor (accuracy) when the metric fails by falling
        return {"label": f"{'floor' if direction < 0 else 'limit'} {source:g}", "values": [float(source)] * n}
    _, found = range_series(aurora, f"max({source}{sel})", start, end, step)
    if not found:
        return None
    return {"label": source, "values": _clean(found[0].values, found[0].present)}


def _chart(aurora: Any, title: str, metric: str, sel: str, start: float, end: float, step: float,
           anomalies: list[dict[str, Any]], preds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One chart: the series ``metric{sel}`` (counters as rates), its band and limit when it is one series,
    its anomalies and predictions."""
    q = f"rate({metric}{sel}[5m])" if is_counter(metric) else f"{metric}{sel}"
    steps, found = range_series(aurora, q, start, end, step)
    if not found:
        return None
    series = [{"label": _legend(s.labels, metric), "values": _clean(s.values, s.present)} for s in found[:12]]
    chart: dict[str, Any] = {"metric": title, "query": q, "unit": unit_of(metric),
                             "x": (steps / 1000.0).tolist(), "series": series, "band": None, "limit": None,
                             "anomalies": [], "predictions": []}
    if len(found) == 1:
        vals = np.where(found[0].present, found[0].values, np.nan)
        lo, hi = _band(vals)
        chart["band"] = {"lo": lo, "hi": hi}
        chart["limit"] = _limit(aurora, metric, sel, start, end, step, len(steps))
    chart["anomalies"] = [{"time": a["time"], "observed": a["observed"], "expected": a["expected"],
                           "severity": a["severity"], "explanation": a["explanation"]}
                          for a in anomalies if a["metric"] == metric]
    chart["predictions"] = [{k: p.get(k) for k in ("threshold", "eta", "eta_low", "eta_high", "probability",
                                                   "explanation", "cone")}
                            for p in preds if p.get("metric") == metric]
    return chart


def service_charts(aurora: Any, service: str, range_s: float,
                   only: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Charts of a service's metrics (those ``only`` accepts, when given) over the last ``range_s`` of data."""
    end = data_now(aurora)
    start = end - range_s
    step = max(1.0, range_s / POINTS)
    sel = f'{{service="{escape_label_value(service)}"}}'
    anomalies = aurora.anomalies.query(start=start, end=end, service=service, limit=2000)
    preds = adapter.predictions(aurora, service, True) or []
    charts = []
    wanted = [m for m in metrics_of(aurora, service) if m not in LIMIT_METRICS and (only is None or only(m))]
    for metric in wanted[:MAX_CHARTS]:
        chart = _chart(aurora, metric, metric, sel, start, end, step, anomalies, preds)
        if chart is not None:
            charts.append(chart)
    deployments = [{"time": e["time"], "kind": e["kind"],
                    "text": f"{e['kind']} {e['attributes'].get('version', '')}".strip()}
                   for e in aurora.events.query(service, None, start, end, 200)]
    return {"service": service, "start": start, "end": end, "step": step, "charts": charts,
            "events": deployments}


CAUSE_CHARTS = 3
BEFORE_S = 3600.0  # an incident's charts start this long before it opened: the normal it is compared with


def incident_charts(aurora: Any, inc: dict[str, Any]) -> dict[str, Any]:
    """The evidence charts of an incident: each of its top ranked causes' series, from an hour before it
    opened to its end (or now), with the anomalies, predictions, changes and the opening marked."""
    opened = float(inc["opened_at"])
    end = float(inc.get("resolved_at") or 0) or data_now(aurora)
    start = opened - BEFORE_S
    step = max(1.0, (end - start) / POINTS)
    charts = []
    for c in (inc.get("root_causes") or [])[:CAUSE_CHARTS]:
        metric, labels = c.get("metric"), dict(c.get("labels") or {})
        if not metric:
            continue
        labels.setdefault("service", c["service"])
        sel = "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(labels.items())) + "}"
        anomalies = aurora.anomalies.query(start=start, end=end, service=c["service"], limit=2000)
        preds = [p for p in adapter.predictions(aurora, c["service"], False) or [] if p.get("created_at", 0) <= end]
        chart = _chart(aurora, f"{c['service']} · {metric}", metric, sel, start, end, step, anomalies, preds)
        if chart is not None:
            chart["score"] = c.get("score")
            charts.append(chart)
    events = [{"time": opened, "kind": "incident", "text": f"incident #{inc['id']} opened"}]
    for svc in inc.get("services") or []:
        events += [{"time": e["time"], "kind": e["kind"],
                    "text": f"{e['kind']} {svc} {e['attributes'].get('version', '')}".strip()}
                   for e in aurora.events.query(svc, None, start, end, 50)]
    return {"incident": inc["id"], "start": start, "end": end, "step": step, "charts": charts, "events": events}
