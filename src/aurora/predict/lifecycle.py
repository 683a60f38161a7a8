"""The life of a prediction: issued, updated, withdrawn when the trend stops, confirmed when the breach happens.

The prediction stage hands ``Lifecycle.apply`` each evaluation's outcome per series; this module keeps the
active episodes (one per series), writes them to the store, announces every change on the bus and hands
the incident engine a signal per prediction (on issue, when its urgency class changes, every
``signal_every_s`` while it lasts, and when it ends), so an incident opens ahead of the failure.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aurora.predict.store import api_record
from aurora.predict.trend import fmt_duration
from aurora.rca.live import ChangeRef

#: Why an active prediction was withdrawn, by the forecaster's reason (``trend.REASONS``).
WITHDRAW_REASONS = {
    "no_trend": "the trend stopped: its slope is no longer significant",
    "beyond_horizon": "the breach moved beyond the horizon",
    "no_fit": "not enough recent data to fit a trend",
    "screened_out": "the series moved away from its limit",
    "before_next_drop": "the next expected drop comes before the breach",
    "stale": "the series stopped reporting",
}
CHANGE_KINDS = ("deployment", "config_change", "scale", "rollback")  # changes that can cause trouble
CHANGE_BEFORE_S = 900.0  # a change this long before a trend's start (or 5 min after) is named as its likely cause
CHANGE_AFTER_S = 300.0
URGENT_S = 3600.0  # a breach nearer than this is critical (incident severity by ETA)


@dataclass(frozen=True)
class SeriesMeta:
    """What the lifecycle needs to know of a limited series."""

    series_id: int
    metric: str
    labels: dict[str, str]
    service: str | None
    kind: str
    direction: int
    limit_source: str


def fmt_value(x: float, metric: str) -> str:
    """A value for people, in the metric's unit."""
    if not math.isfinite(x):
        return str(x)
    if metric.endswith("_bytes"):
        for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(x) >= 0.95 * size:
                v = x / size
                return f"{v:.0f} {unit}" if abs(v) >= 100 else f"{v:.3g} {unit}"
        return f"{x:.0f} B"
    if metric.endswith("_ratio"):
        return f"{100 * x:.3g}%"
    return f"{x:.4g}"


def fmt_rate(per_s: float, metric: str) -> str:
    for unit, mult in (("s", 1.0), ("min", 60.0), ("h", 3600.0)):
        v = per_s * mult
        if abs(v) >= 1 or unit == "h":
            sign = "+" if v >= 0 else "-"
            return f"{sign}{fmt_value(abs(v), metric)}/{unit}"
    return f"{per_s:+.4g}/s"


def fmt_clock(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M UTC")


def explain(meta: SeriesMeta, rec: dict[str, Any], now: float, change: dict[str, Any] | None) -> str:
    """'memory of cart will reach its limit of 2 GiB in 2 h 10 min (between 1 h 40 min and 2 h 50 min), because
    it grows by +12 MiB/min since 14:05 UTC, after the 14:03 UTC deployment of cart (1.4.2)'."""
    what = meta.metric if not meta.service else f"{meta.metric} of {meta.service}"
    reach = "reach" if meta.direction > 0 else "fall to"
    if "slo" in meta.labels:  # an error budget (aurora.predict.slo): say it in SLO terms
        what, reach = f"the error budget of SLO {meta.labels['slo']} ({meta.service})", "be used up: reach"
    eta, lo, hi = rec["eta"], rec["eta_low"], rec["eta_high"]
    text = (f"{what} will {reach} its limit of {fmt_value(rec['limit'], meta.metric)} in {fmt_duration(eta - now)} "
            f"(between {fmt_duration(lo - now)} and {fmt_duration(hi - now)}), because it "
            f"{'grows' if rec['slope'] >= 0 else 'falls'} by {fmt_rate(rec['slope'], meta.metric)} since "
            f"{fmt_clock(rec['since'])}")
    if change is not None:
        version = (change.get("attributes") or {}).get("version")
        text += (f", after the {fmt_clock(change['time'])} {change['kind'].replace('_', ' ')} of {change['service']}"
                 + (f" ({version})" if version else ""))
    text += (f"; now {fmt_value(rec['current'], meta.metric)}"
             + (", sawtooth peaks fitted" if rec.get("sawtooth") else "")
             + ("" if rec.get("seasonality") == "profile" else "; no daily profile yet, interval widened"))
    return text


def _evidence(rec: dict[str, Any], change: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("slope", "slope_low", "slope_high", "current", "observed", "since", "window_s", "n_points",
            "envelope", "sawtooth", "period_s", "reset_at", "seasonality", "model")
    return {**{k: rec.get(k) for k in keys}, "change": change, "model_explanation": rec.get("explanation")}


class PredictionSink(Protocol):
    """The writes a lifecycle makes (``PredictionStore``; the incident bench keeps them in memory)."""

    def insert(self, recs: list[dict[str, Any]]) -> list[int]: ...

    def update(self, recs: list[dict[str, Any]]) -> None: ...

    def active_rows(self) -> list[dict[str, Any]]: ...


class Lifecycle:
    def __init__(self, store: PredictionSink, publish: Callable[[str, dict[str, Any]], None] | None = None,
                 signal: Callable[[list[dict[str, Any]]], None] | None = None,
                 changes: Callable[[float, float], list[ChangeRef]] | None = None,
                 signal_every_s: float = 300.0) -> None:
        self.store = store
        self.publish = publish
        self.signal = signal
        self.changes = changes
        self.signal_every_s = signal_every_s
        self.active: dict[int, dict[str, Any]] = {}  # series id -> its active prediction (columns)
        self._signalled: dict[int, tuple[float, bool]] = {}  # series id -> (last signal time, urgent then)
        self.counts = {"issued": 0, "updated": 0, "withdrawn": 0, "confirmed": 0}

    def restore(self) -> None:
        """Resume the active predictions stored before a restart."""
        self.active = {int(r["series_id"]): r for r in self.store.active_rows()}

    def _change_near(self, service: str | None, since: float) -> dict[str, Any] | None:
        if self.changes is None or not service or not math.isfinite(since):
            return None
        near = [c for c in self.changes(since - CHANGE_BEFORE_S, since + CHANGE_AFTER_S)
                if c.service == service and c.kind in CHANGE_KINDS]
        if not near:
            return None
        c = min(near, key=lambda c: abs(c.time - since))
        return {"kind": c.kind, "service": c.service, "time": c.time, "attributes": dict(c.attributes)}

    def apply(self, now: float, kept: Sequence[tuple[SeriesMeta, dict[str, Any]]],
              withdrawn: Sequence[tuple[SeriesMeta, str]], breached: Sequence[tuple[SeriesMeta, float]]) -> None:
        """One evaluation: ``kept`` are the forecaster's records (issued or kept), ``withdrawn`` the series it
        withdrew (with its reason), ``breached`` the series with an active prediction whose value reached the
        limit (and the value). Writes, announces and signals what changed."""
        new: list[dict[str, Any]] = []
        changed: list[tuple[str, dict[str, Any]]] = []
        for meta, value in breached:
            row = self.active.pop(meta.series_id, None)
            if row is not None:
                row.update(state="confirmed", closed_at=now, breach_at=now, updated_at=now,
                           close_reason=f"breach observed: {fmt_value(value, meta.metric)} reached the limit "
                                        f"{fmt_value(row['threshold'], meta.metric)}")
                changed.append(("confirmed", row))
        for meta, reason in withdrawn:
            row = self.active.pop(meta.series_id, None)
            if row is not None:
                row.update(state="withdrawn", closed_at=now, updated_at=now,
                           close_reason=WITHDRAW_REASONS.get(reason, reason))
                changed.append(("withdrawn", row))
        for meta, rec in kept:
            row = self.active.get(meta.series_id)
            fields = {"updated_at": now, "eta": rec["eta"], "eta_low": rec["eta_low"], "eta_high": rec["eta_high"],
                      "threshold": rec["limit"], "probability": rec["probability"],
                      "probabilities": rec["probabilities"]}
            if row is None:
                change = self._change_near(meta.service, rec["since"])
                row = {"series_id": meta.series_id, "service": meta.service, "metric": meta.metric,
                       "labels": meta.labels, "kind": meta.kind, "direction": meta.direction,
                       "limit_source": meta.limit_source, "state": "active", "created_at": now,
                       "first_eta": rec["eta"], "updates": 1, **fields,
                       "evidence": _evidence(rec, change), "explanation": explain(meta, rec, now, change)}
                new.append(row)
            else:
                change = (row.get("evidence") or {}).get("change")
                row.update(fields, updates=int(row["updates"]) + 1, evidence=_evidence(rec, change),
                           explanation=explain(meta, rec, now, change))
                changed.append(("updated", row))
        if new:
            for row, pid in zip(new, self.store.insert(new), strict=True):
                row["id"] = pid
                self.active[int(row["series_id"])] = row
        self.store.update([row for _, row in changed])
        events = [("issued", row) for row in new] + changed
        signals: list[dict[str, Any]] = []
        for change_kind, row in events:
            self.counts[change_kind] += 1
            rec = api_record(row)
            if self.publish is not None:
                self.publish("prediction", {"change": change_kind, **rec})
            if self._should_signal(change_kind, row, now):
                signals.append(rec)
        if signals and self.signal is not None:
            self.signal(signals)

    def _should_signal(self, change_kind: str, row: dict[str, Any], now: float) -> bool:
        sid = int(row["series_id"])
        urgent = float(row["eta"]) - now < URGENT_S
        if change_kind in ("withdrawn", "confirmed"):
            self._signalled.pop(sid, None)
            return True
        last = self._signalled.get(sid)
        if last is None or urgent != last[1] or now - last[0] >= self.signal_every_s:
            self._signalled[sid] = (now, urgent)
            return True
        return False
