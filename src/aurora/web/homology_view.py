"""The persistent-homology view of one service, computed on demand from the TSDB.

The service's gauges over the last few hours go through ``aurora.detect.homology.HomologyAnalyzer`` exactly
as the live stage would feed it (same defaults, one evaluation every ``eval_every`` samples), so the score,
distances and explanation are the analyzer's own. What the analyzer does not hand out is drawn here: the
persistence diagrams of its latest window and of a representative baseline window (the medoid of its ring
of normal diagrams), and the Wasserstein distance between the two.

The live stage is off by default (``detection.homology.enabled``); this view works either way, because it
recomputes from stored data. Results are cached for ``CACHE_S`` per service and ``BUCKET_S`` of data time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aurora.detect.homology import HomologyAnalyzer, HomologyConfig, wasserstein
from aurora.model import escape_label_value, is_counter
from aurora.web.charts import LIMIT_METRICS, metrics_of
from aurora.web.queries import TTLCache, data_now, range_series

EVALUATIONS = 30  # evaluations replayed: enough to pass the analyzer's warm-up (4) and calibration (12)
CACHE_S = 30.0
BUCKET_S = 300.0  # one result per 5 min of data time: the analyzer's own cadence (eval_every at 15 s)
MAX_POINTS_SHOWN = 400  # per diagram; the analyzer's clouds have at most max_points points anyway
_cache = TTLCache(CACHE_S)


class _Recording(HomologyAnalyzer):
    """The analyzer, keeping the diagrams of its latest evaluation (it scores them but does not return them)."""

    last: list[np.ndarray] | None = None

    def _diagrams(self, pts: np.ndarray) -> list[np.ndarray]:
        self.last = super()._diagrams(pts)
        return self.last


def _step_s(aurora: Any, series_id: int) -> float:
    """The scrape interval of the service's data (median gap of a head window), so a window means what it
    means in the live stage: ``window`` samples."""
    ts, _ = aurora.tsdb.window(series_id)
    if len(ts) < 3:
        return 15.0
    return float(np.clip(np.median(np.diff(ts)) / 1000.0, 1.0, 300.0))


def _columns(aurora: Any, service: str, start: float, end: float, step: float,
             need: int, max_metrics: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(step times s, column names, rows [time, column]) of the service's gauges with a full window."""
    sel = f'{{service="{escape_label_value(service)}"}}'
    cols: list[tuple[str, np.ndarray]] = []
    times = np.zeros(0)
    for metric in metrics_of(aurora, service):
        if is_counter(metric) or metric in LIMIT_METRICS or metric == "up":
            continue  # raw counters only grow; limits and up are flat: none of them has a shape to compare
        steps, found = range_series(aurora, f"{metric}{sel}", start, end, step)
        times = steps / 1000.0
        for s in found:
            if int(s.present[-need:].sum()) < need // 2:
                continue
            extra = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())
                             if k not in ("__name__", "service", "instance", "host"))
            cols.append((f"{metric}{{{extra}}}" if extra else metric, np.where(s.present, s.values, np.nan)))
    cols.sort(key=lambda c: c[0])
    cols = cols[:max_metrics]
    if not cols:
        return times, [], np.zeros((len(times), 0))
    return times, [c[0] for c in cols], np.column_stack([c[1] for c in cols])


def _points(d: np.ndarray) -> list[list[float]]:
    d = d[np.argsort(d[:, 0] - d[:, 1])][:MAX_POINTS_SHOWN]  # the most persistent first
    return [[round(float(b), 5), round(float(e), 5)] for b, e in d]


def view(aurora: Any, service: str) -> dict[str, Any]:
    end = data_now(aurora)
    return dict(_cache.get(f"{id(aurora)}:{service}:{int(end // BUCKET_S)}", lambda: _compute(aurora, service, end)))


def _compute(aurora: Any, service: str, end: float) -> dict[str, Any]:
    cfg = HomologyConfig()
    settings = aurora.cfg.detection.homology
    out: dict[str, Any] = {"service": service, "ok": False, "live_stage": bool(settings.enabled),
                           "window": cfg.window, "eval_every": cfg.eval_every}
    ids = [i.id for i in aurora.tsdb.all_series() if i.labels.get("service") == service and not is_counter(i.metric)]
    if not ids:
        out["message"] = (f"{service} has no gauge series, so there is no point cloud to draw. Persistent homology "
                          "needs at least two gauges (memory, latency, a ratio, ...) of the service.")
        return out
    step = _step_s(aurora, ids[0])
    samples = cfg.window + (EVALUATIONS - 1) * cfg.eval_every
    times, names, rows = _columns(aurora, service, end - samples * step, end, step, cfg.window,
                                  settings.max_metrics)
    out.update(step_s=step, columns=names)
    have = int(np.isfinite(rows).any(axis=1).sum()) if rows.size else 0
    # the analyzer scores from its (warmup + min_calib + 1)-th evaluation on
    least = cfg.window + (cfg.warmup + cfg.min_calib) * cfg.eval_every
    if len(names) < 2 or have < cfg.window:
        out["message"] = (f"Too little data for {service}: the view needs at least 2 gauges with {cfg.window} samples "
                          f"each ({cfg.window * step / 60:.0f} min at this {step:.0f} s interval); it found "
                          f"{len(names)} gauge{'s' if len(names) != 1 else ''} and {have} samples. Come back "
                          "when more data has arrived.")
        return out
    first = int(np.flatnonzero(np.isfinite(rows).any(axis=1))[0])
    times, rows = times[first:], rows[first:]
    an = _Recording(cfg)
    records = an.observe(service, times, rows, names)
    if not records or an.last is None:
        out["message"] = f"Too little data for {service}: no full window of {cfg.window} samples yet."
        return out
    rec = records[-1]
    g = an.groups[service]
    ring = [i for i, t in enumerate(g.times) if t != rec.time]  # the baseline, without the window shown
    out.update(ok=True, time=rec.time, status=rec.status, score=rec.score, anomalous=rec.anomalous, z=rec.z,
               dim=rec.dim, distance=rec.distance, usual=rec.baseline_quantiles, betti=rec.betti,
               betti_baseline=rec.betti_baseline, explanation=rec.explanation, evaluations=len(records),
               pair=list(rec.pair) if rec.pair else None, pair_corr=list(rec.pair_corr) if rec.pair_corr else None,
               now=[_points(d) for d in an.last], baseline=None, baseline_time=None, wasserstein=None,
               baseline_size=len(ring))
    if rec.status == "learning":
        out["message"] = (f"Too little history to score {service} yet ({len(records)} evaluations over "
                          f"{(times[-1] - times[0]) / 3600:.1f} h; the analyzer needs about "
                          f"{least * step / 3600:.1f} h): {rec.explanation}. The diagram of the latest window is "
                          "shown; the baseline comparison appears once it has learned the usual shape.")
    if ring:
        # the medoid: the baseline diagram closest, summed over dimensions, to all the others
        sub = g.pair_d[:, ring][:, :, ring].sum(axis=0)
        k = ring[int(np.argmin(sub.sum(axis=1)))]
        base = g.dgms[k]
        out.update(baseline=[_points(d) for d in base], baseline_time=g.times[k],
                   wasserstein=[wasserstein(now, b, cfg.order) for now, b in zip(an.last, base, strict=True)])
    return out
