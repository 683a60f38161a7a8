"""The live prediction stage: every series with a known limit, forecast once a minute of event time.

Per batch (columnar): samples of limited series go into a ``BlockBuffer`` (1-min blocks over 4 h), the
newest value of each limit series (``container_spec_memory_limit_bytes`` next to the working set) is kept,
and the highest value each series reached since the last evaluation. When event time enters a new block
the completed window is forecast (``trend.forecast``, with the active set carried over) *before* the
batch's own samples are added, so the forecast at a block boundary sees exactly the blocks that ended by
then, as ``aurora bench predict`` does. The outcome goes to the ``Lifecycle`` (store, bus, incidents).

Which series: ``limits.LIMITS`` plus configured ones (``prediction.limits``); the limit is the matching
limit series (same labels), else the service's configured limit (``services[].limits``), else the
fixed value. A series whose value reaches its limit confirms its active prediction and gets no new one
until it falls back (after a restart, a cleanup): the breach itself is an anomaly, not a prediction.
A limited series first seen after a restart is warmed up from the store (its last 4 h).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from aurora.detect.stage import service_of
from aurora.model import SeriesBatch
from aurora.predict.blocks import BlockBuffer
from aurora.predict.lifecycle import Lifecycle, SeriesMeta
from aurora.predict.limits import CONFIG_LIMIT_METRICS, KINDS, LIMITS, kind_of
from aurora.predict.season import DAY, daily_profile
from aurora.predict.slo import KIND as SLO_KIND
from aurora.predict.slo import METRIC as SLO_METRIC
from aurora.predict.slo import SloSpec, SloTracker
from aurora.predict.trend import ISSUE, KEEP, REASONS, WITHDRAW, TrendConfig, forecast, records

log = logging.getLogger(__name__)
# A ceiling within this share of its limit has been reached: limits enforced by the system (the OOM killer,
# a full disk) act as the value gets there, so a scrape rarely sees it exactly at the limit. A floor set by
# people (model accuracy) is breached only below it.
BREACH_TOLERANCE = 0.005
RETREAT_SHARE = 0.02  # after a breach, a new prediction needs the value this share of the limit back
STALE_S = 1800.0  # an active prediction not updated for this long is withdrawn (its series went away)
PROFILE_BINS = 48  # half-hour phases of the day


@dataclass(frozen=True)
class PredictSettings:
    eval_every_s: float = 60.0
    trend: TrendConfig = field(default_factory=TrendConfig)
    limits: dict[str, tuple[str | float, int]] = field(default_factory=lambda: dict(LIMITS))
    kinds: dict[str, str] = field(default_factory=lambda: dict(KINDS))
    service_limits: dict[str, dict[str, float]] = field(default_factory=dict)  # service -> {key: value}
    warm_start: bool = True
    slos: tuple[SloSpec, ...] = ()  # error budgets forecast as virtual series (``slo.py``)
    profile_every_s: float = 3600.0  # refresh a candidate series' daily profile this often (event time)
    profile_days: float = 3.0  # ... from this much stored history before the fit window
    profiles_per_eval: int = 100  # at most this many profiles computed per evaluation (bounds the cost)


class SeriesReader(Protocol):
    """What the stage reads from the store (``TSDB``): raw samples, for a warm start."""

    def read(self, series_id: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]: ...


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


class PredictStage:
    name = "predict"

    def __init__(self, lifecycle: Lifecycle, settings: PredictSettings | None = None,
                 store: SeriesReader | None = None) -> None:
        self.lifecycle = lifecycle
        self.settings = s = settings or PredictSettings()
        self.store = store
        self.buffer = BlockBuffer(np.zeros(0, np.int64), s.trend.block_s, s.trend.n_blocks)
        self._lock = threading.Lock()
        self._limit_metrics = {ref for ref, _ in s.limits.values() if isinstance(ref, str)}
        self._config_key = {m: k for k, m in CONFIG_LIMIT_METRICS.items()}
        # per series id
        self._seen = np.zeros(0, bool)
        self._row_of = np.zeros(0, np.int64)
        self._is_limit = np.zeros(0, bool)
        self._limit_value = np.zeros(0, np.float64)
        self._limit_t = np.zeros(0, np.int64)
        # per row (limited series)
        self.meta: list[SeriesMeta] = []
        self._limit_sid = np.zeros(0, np.int64)
        self._fixed = np.zeros(0, np.float64)
        self._peak = np.zeros(0, np.float64)  # highest value towards the limit since the last evaluation
        self._profile = np.zeros((0, PROFILE_BINS))  # daily profiles (NaN rows: unknown)
        self._profile_at = np.zeros(0)  # when each was computed (event time)
        self._fitted = np.zeros(0, bool)  # rows the last evaluation fitted (candidates)
        self._suppressed = np.zeros(0, bool)
        self._limit_sid_by_key: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._waiting: dict[tuple[str, tuple[tuple[str, str], ...]], list[int]] = {}
        self._block = -(2**62)  # newest block number of event time seen
        self._next_eval = -math.inf
        self.evaluations = 0
        self.last_eval: float | None = None
        self._feeds_slo = np.zeros(0, bool)
        self.slos = SloTracker(list(s.slos), read=store.read if store is not None and s.warm_start else None)
        self._slo_rows = self._add_slo_rows(list(s.slos))

    # --- series --------------------------------------------------------------------------------
    def _add_slo_rows(self, specs: list[SloSpec]) -> np.ndarray:
        """One virtual limited row per SLO (its budget used, rising to 1.0); series ids -1, -2, ..."""
        for k, spec in enumerate(specs):
            self.meta.append(SeriesMeta(-(k + 1), SLO_METRIC, {"slo": spec.name, "service": spec.service},
                                        spec.service, SLO_KIND, 1,
                                        f"slo {spec.name}: {spec.objective:.4%} over {spec.window_s / 86400:g} d"))
        rows = np.arange(len(self.meta) - len(specs), len(self.meta))
        if len(specs):
            self.buffer.grow(np.ones(len(specs), np.int64))
            self._limit_sid = np.concatenate([self._limit_sid, np.full(len(specs), -1, np.int64)])
            self._fixed = np.concatenate([self._fixed, np.ones(len(specs))])
            self._peak = np.concatenate([self._peak, np.full(len(specs), -np.inf)])
            self._grow_rows(len(specs))
            self._suppressed = np.concatenate([self._suppressed, np.zeros(len(specs), bool)])
        return rows

    def _grow_rows(self, n: int) -> None:
        self._profile = np.vstack([self._profile, np.full((n, PROFILE_BINS), np.nan)])
        self._profile_at = np.concatenate([self._profile_at, np.full(n, -np.inf)])
        self._fitted = np.concatenate([self._fitted, np.zeros(n, bool)])

    def _refresh_profiles(self, now: float, active: np.ndarray) -> None:
        """Daily profiles of the series the forecaster looks at (fitted last time, or with a prediction), from
        stored history before the fit window, at most ``profiles_per_eval`` per evaluation, each hourly."""
        st = self.settings
        if self.store is None:
            return
        due = np.flatnonzero((self._fitted | active) & (now - self._profile_at >= st.profile_every_s))
        window = st.trend.window_s
        for row in due[: st.profiles_per_eval].tolist():
            sid = self.meta[row].series_id
            self._profile_at[row] = now
            if sid < 0:
                continue  # an SLO's budget has no daily cycle of its own
            try:
                ts, vs = self.store.read(sid, int((now - st.profile_days * DAY) * 1000), int((now - window) * 1000))
            except Exception:
                continue
            if len(ts):
                self._profile[row] = daily_profile(ts / 1000.0, np.asarray(vs, np.float64)[None, :],
                                                   bins=PROFILE_BINS)[0]

    def _grow_ids(self, n: int) -> None:
        if n <= len(self._seen):
            return
        size = max(n, len(self._seen) * 3 // 2)
        for name, fill in (("_seen", False), ("_row_of", -1), ("_is_limit", False), ("_limit_value", np.nan),
                           ("_limit_t", -(2**62)), ("_feeds_slo", False)):
            old = getattr(self, name)
            new = np.full(size, fill, old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _classify(self, ids: np.ndarray, batch: SeriesBatch, before_ms: int) -> None:
        """Once per series lifetime: is it limited (a new row), a limit series, or neither."""
        new_rows: list[tuple[int, int, float]] = []  # (series id, direction, fixed limit)
        for i in np.flatnonzero(~self._seen[ids]).tolist():
            sid, metric, labels = int(ids[i]), batch.metrics[i], batch.labels[i]
            self._seen[sid] = True
            if self.slos.budgets and self.slos.classify(sid, metric, labels, before_ms):
                self._feeds_slo[sid] = True
            key = _key(labels)
            if metric in self._limit_metrics:
                self._is_limit[sid] = True
                self._limit_sid_by_key[(metric, key)] = sid
                for row in self._waiting.pop((metric, key), []):
                    self._bind(row, sid)
            if metric not in self.settings.limits:
                continue
            ref, direction = self.settings.limits[metric]
            row = len(self.meta)
            fixed, source = (float(ref), "default" if metric in LIMITS else "config") if not isinstance(ref, str) \
                else (math.nan, str(ref))
            service = service_of(labels)
            configured = self.settings.service_limits.get(service or "", {}).get(self._config_key.get(metric, ""))
            if configured is not None and isinstance(ref, str):
                fixed = float(configured)
                source = f"{ref} (else config)"
            self.meta.append(SeriesMeta(sid, metric, dict(labels), service,
                                        self.settings.kinds.get(metric, kind_of(metric)), int(direction), source))
            self._row_of[sid] = row
            new_rows.append((sid, int(direction), fixed))
        if not new_rows:
            return
        sids = np.array([r[0] for r in new_rows], np.int64)
        dirs = np.array([r[1] for r in new_rows], np.int64)
        self.buffer.grow(dirs)
        self._limit_sid = np.concatenate([self._limit_sid, np.full(len(new_rows), -1, np.int64)])
        self._fixed = np.concatenate([self._fixed, [r[2] for r in new_rows]])
        self._peak = np.concatenate([self._peak, np.full(len(new_rows), -np.inf)])
        self._grow_rows(len(new_rows))
        self._suppressed = np.concatenate([self._suppressed, np.zeros(len(new_rows), bool)])
        first = len(self.meta) - len(new_rows)
        for row in range(first, len(self.meta)):
            m = self.meta[row]
            ref = self.settings.limits[m.metric][0]
            if isinstance(ref, str):
                k = (ref, _key(m.labels))
                if k in self._limit_sid_by_key:
                    self._bind(row, self._limit_sid_by_key[k])
                else:
                    self._waiting.setdefault(k, []).append(row)
        if self.settings.warm_start and self.store is not None:
            self._warm(np.arange(first, len(self.meta)), sids, before_ms)

    def _bind(self, row: int, limit_sid: int) -> None:
        self._limit_sid[row] = limit_sid
        if not np.isfinite(self._limit_value[limit_sid]) and self.store is not None and self._block > -(2**61):
            end = int((self._block + 1) * self.settings.trend.block_s * 1000)
            try:
                ts, vs = self.store.read(limit_sid, end - 3_600_000, end)
            except Exception:
                return
            if len(ts):
                self._limit_value[limit_sid], self._limit_t[limit_sid] = float(vs[-1]), int(ts[-1])

    def _warm(self, rows: np.ndarray, sids: np.ndarray, before_ms: int) -> None:
        """A limited series first seen now may have history in the store (a restart): load its window."""
        assert self.store is not None
        window_ms = int(self.settings.trend.window_s * 1000)
        for row, sid in zip(rows.tolist(), sids.tolist(), strict=True):
            try:
                ts, vs = self.store.read(sid, before_ms - window_ms, before_ms - 1)
            except Exception:
                continue
            if len(ts):
                self.buffer.add(np.full(len(ts), row), ts / 1000.0, vs)

    # --- batches -------------------------------------------------------------------------------
    def process(self, batch: SeriesBatch, series_ids: np.ndarray, now_ms: int) -> None:
        ids = np.asarray(series_ids, np.int64)
        if batch.n_samples == 0 or len(ids) == 0:
            return
        with self._lock:
            self._process(batch, ids)

    def _process(self, batch: SeriesBatch, ids: np.ndarray) -> None:
        """Samples in block order: whenever the data enters a new block, the window that ended at its start
        is forecast first (so a batch of many scrapes, a backfill, is evaluated as its scrapes would be)."""
        self._grow_ids(int(ids.max()) + 1)
        self._classify(ids, batch, int(batch.ts_ms.min()))
        bs = self.settings.trend.block_s
        slot = np.repeat(ids, batch.counts())
        ok = np.isfinite(batch.values)
        nb = np.floor(batch.ts_ms / 1000.0 / bs).astype(np.int64)
        order = np.argsort(nb, kind="stable")
        nb_sorted = nb[order]
        done = 0
        for block in np.unique(nb_sorted[nb_sorted > self._block]).tolist():
            cut = int(np.searchsorted(nb_sorted, block, side="left"))
            self._add(order[done:cut], slot, batch, ok)
            done = cut
            boundary = block * bs  # the end of the newest complete block
            if self._block > -(2**61) and boundary >= self._next_eval and self.meta:
                self.lifecycle.apply(*self._evaluate(boundary))
                self._next_eval = boundary + self.settings.eval_every_s - 1e-6
            self._block = block
        self._add(order[done:], slot, batch, ok)

    def _add(self, idx: np.ndarray, slot: np.ndarray, batch: SeriesBatch, ok: np.ndarray) -> None:
        """Take the samples ``idx`` of the batch: limit values, and limited series into the buffer."""
        if not len(idx):
            return
        s, t, v, good = slot[idx], batch.ts_ms[idx], batch.values[idx], ok[idx]
        lim = good & self._is_limit[s]
        if lim.any():  # the newest value of each limit series
            ls, lt, lv = s[lim], t[lim], v[lim]
            o = np.lexsort((lt, ls))
            ls, lt, lv = ls[o], lt[o], lv[o]
            last = np.r_[ls[1:] != ls[:-1], True]
            newer = lt[last] >= self._limit_t[ls[last]]
            self._limit_value[ls[last][newer]] = lv[last][newer]
            self._limit_t[ls[last][newer]] = lt[last][newer]
        slo = good & self._feeds_slo[s]
        if slo.any():  # few series feed SLOs: one call per series
            for sid in np.unique(s[slo]).tolist():
                m = slo & (s == sid)
                o = np.argsort(t[m], kind="stable")
                self.slos.add(sid, t[m][o] / 1000.0, v[m][o])
        rows = self._row_of[s]
        sel = good & (rows >= 0)
        if sel.any():
            r = rows[sel]
            self.buffer.add(r, t[sel] / 1000.0, v[sel])
            np.maximum.at(self._peak, r, v[sel] * self.buffer.direction[r])

    def limits(self) -> np.ndarray:
        has = self._limit_sid >= 0
        from_series = np.where(has, self._limit_value[np.maximum(self._limit_sid, 0)], np.nan)
        return np.where(np.isfinite(from_series), from_series, self._fixed)

    def _evaluate(self, boundary: float) -> tuple[Any, ...]:
        """Forecast the window that ended at ``boundary``; returns the lifecycle's arguments."""
        if len(self._slo_rows):  # each SLO's budget used as of now: one more sample of its virtual series
            used = self.slos.used(boundary)
            ok = np.isfinite(used)
            if ok.any():
                rows = self._slo_rows[ok]
                self.buffer.add(rows, np.full(len(rows), boundary - 0.5), used[ok])
                self._peak[rows] = np.maximum(self._peak[rows], used[ok])
        limits = self.limits()
        direction = self.buffer.direction
        towards_limit = direction * limits
        tol = np.where(direction > 0, BREACH_TOLERANCE * np.abs(limits), 0.0)
        active = self._active_rows()
        reached = np.isfinite(towards_limit) & (self._peak >= towards_limit - tol)
        breached = [(self.meta[r], float(self._peak[r] * direction[r])) for r in np.flatnonzero(reached & active)]
        self._refresh_profiles(boundary, active)
        known = np.isfinite(self._profile).all(axis=1)
        fc = forecast(self.buffer.blocks(boundary - 1e-3), limits, self.settings.trend, active=active & ~reached,
                      profile=self._profile if known.any() else None)
        self._fitted = fc.fitted.copy()
        observed = fc.observed * direction
        retreated = np.isfinite(observed) & (observed < towards_limit - RETREAT_SHARE * np.abs(limits))
        self._suppressed = (self._suppressed | reached) & ~(retreated & ~reached)
        kept = []
        for rec in records(fc, (ISSUE, KEEP)):
            r = rec["series"]
            if self._suppressed[r] and fc.state[r] == ISSUE:
                continue
            kept.append((self.meta[r], rec))
        withdrawn = [(self.meta[r], REASONS[int(fc.reason[r])]) for r in np.flatnonzero(fc.state == WITHDRAW)]
        self._peak[:] = -np.inf
        self.evaluations += 1
        self.last_eval = boundary
        withdrawn += [(m, "stale") for m in self._stale(boundary)]
        return boundary, kept, withdrawn, breached

    def _active_rows(self) -> np.ndarray:
        """Rows with an active prediction (the lifecycle keys them by series id; SLO rows have ids -1, -2, ...)."""
        out = np.zeros(len(self.meta), bool)
        ids = np.fromiter(self.lifecycle.active.keys(), np.int64, len(self.lifecycle.active))
        real = ids[(ids >= 0) & (ids < len(self._row_of))]
        rows = self._row_of[real]
        out[rows[rows >= 0]] = True
        virtual = -ids[(ids < 0) & (-ids <= len(self._slo_rows))] - 1
        out[self._slo_rows[virtual]] = True
        return out

    def _stale(self, now: float) -> list[SeriesMeta]:
        """Active predictions whose series stopped reporting (or never came back after a restart)."""
        out = []
        for sid, row in self.lifecycle.active.items():
            if now - float(row["updated_at"]) > STALE_S:
                r = int(self._row_of[sid]) if 0 <= sid < len(self._row_of) else -1
                if sid < 0 and -sid <= len(self._slo_rows):
                    r = int(self._slo_rows[-sid - 1])
                out.append(self.meta[r] if r >= 0 else SeriesMeta(
                    sid, row["metric"], row["labels"], row["service"], row["kind"], int(row["direction"]),
                    row["limit_source"]))
        return out

    def summary(self) -> dict[str, Any]:
        return {"limited_series": len(self.meta), "evaluations": self.evaluations, "last_evaluation": self.last_eval,
                "active_predictions": len(self.lifecycle.active), **self.lifecycle.counts}


def settings_from_config(cfg: Any, services: list[Any], slos: list[Any] | None = None) -> PredictSettings:
    """``PredictSettings`` from the ``prediction:`` section and the services' configured limits."""
    limits: dict[str, tuple[str | float, int]] = dict(LIMITS)
    kinds = dict(KINDS)
    for metric, spec in cfg.limits.items():
        limits[metric] = (spec.limit, 1 if spec.direction == "rising" else -1)
        if spec.kind:
            kinds[metric] = spec.kind
    no_profile = min(cfg.horizon_s, TrendConfig().horizon_no_profile_s)
    trend = TrendConfig(horizon_s=cfg.horizon_s, horizon_no_profile_s=no_profile)
    specs = tuple(SloSpec(o.name, o.service, o.metric, o.objective, o.window_days * 86400.0) for o in slos or [])
    return PredictSettings(eval_every_s=cfg.eval_every_s, trend=trend, limits=limits, kinds=kinds,
                           service_limits={s.name: dict(s.limits) for s in services if s.limits}, slos=specs)

