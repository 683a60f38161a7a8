"""The live detection stage: scores every stored sample and records anomalies with their evidence.

It runs the ensemble detector of ``ensemble.py`` (analyzers -> likelihood -> quorum -> alarm gate), the one
``benchmarks/bench_detector.py`` measures. Series slots are the store's series ids; times are the samples'
event times.

* Gauges are scored as they are. Counters (``*_total``, ``*_count``, ``*_sum``, ``*_bucket``) are scored
  by their per-second rate: the difference of consecutive samples of the series over their time
  difference. A decrease is a counter reset and gives no sample (the next difference starts from the new
  value); the first sample of a series gives none either. ``*_created`` series (counter creation times)
  are not scored.
* A sample already scored (its time is not after the series' last scored sample, e.g. a retried
  request) is not scored again, so the detector's state only ever moves forward in event time.
* An anomaly is recorded when the detector raises an alarm for a sample (its consensus score passed the
  series' adaptive threshold and the series was not held after an earlier alarm) and the series has not
  had a record within ``cooldown_s`` of event time.

The stage's state (the detector's and its own per-series arrays) can be saved and restored
(``checkpoint`` / ``restore``; the file is ``checkpoint.py``'s), so a restart does not warm every series up
again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Engine, insert, select

from aurora.db.tables import anomalies
from aurora.detect.checkpoint import flatten, unflatten
from aurora.detect.ensemble import EnsembleConfig, EnsembleDetector, EnsembleResult
from aurora.model import SeriesBatch, is_counter

log = logging.getLogger(__name__)

IGNORED_SUFFIXES = ("_created",)
UNKNOWN, GAUGE, COUNTER, IGNORED = 0, 1, 2, 3
NO_TIME = np.iinfo(np.int64).min // 2  # "never", far enough from the minimum that differences cannot overflow
CHECKPOINT_FORMAT = 1
CHECKPOINT_FILE = "detector-state.npz"


class SeriesLookup(Protocol):
    def get_series(self, series_id: int) -> Any: ...


@dataclass(frozen=True)
class DetectionConfig:
    cooldown_s: float = 300.0  # at most one anomaly record per series in this much event time
    critical: float = 0.9999  # consensus score from which an anomaly is critical rather than a warning


def ensemble_config(quorum: int | None = None, vote: float | None = None, threshold: float | None = None,
                    hold: int | None = None, base: EnsembleConfig | None = None) -> EnsembleConfig:
    """The detector's configuration with the given settings replaced; ``None`` keeps the detector's
    (tuned) default."""
    cfg = base or EnsembleConfig()
    gate = cfg.gate
    if threshold is not None:
        gate = replace(gate, threshold=threshold)
    if hold is not None:
        gate = replace(gate, hold=hold)
    if quorum is not None:
        cfg = replace(cfg, quorum=quorum)
    if vote is not None:
        cfg = replace(cfg, vote=vote)
    return replace(cfg, gate=gate)


@dataclass
class AnomalySnapshot:
    """The last consensus score of every scored series, and per service the share of its scored series
    that alarmed within the last cooldown window of event time (what /metrics shows)."""

    series_id: np.ndarray
    metric: list[str]
    service: list[str]
    score: np.ndarray
    rate: dict[str, float]


def service_of(labels: dict[str, str]) -> str | None:
    return labels.get("service") or labels.get("job") or labels.get("host")


def series_starts(s: np.ndarray) -> np.ndarray:
    """For slots sorted by series: True at the first sample of each series."""
    first = np.ones(len(s), bool)
    first[1:] = s[1:] != s[:-1]
    return first


def _fmt(x: float) -> str:
    """A number for people: four significant digits, exponents without padding (2.1e9, 3.5e-5)."""
    s = f"{x:.4g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return s


class DetectStage:
    name = "detect"

    def __init__(self, series: SeriesLookup, sink: Callable[[list[dict[str, Any]]], None],
                 config: DetectionConfig | None = None, detector: EnsembleDetector | None = None) -> None:
        self.series = series
        self.sink = sink
        self.config = config or DetectionConfig()
        self.detector = detector or EnsembleDetector()
        self._lock = threading.Lock()
        self._n = 0
        self._kind = np.zeros(0, np.int8)
        self._svc = np.zeros(0, np.int32)  # per slot: index into _services (-1 unknown)
        self._met = np.zeros(0, np.int32)  # per slot: index into _metrics (-1 unknown)
        self._last_t = np.zeros(0, np.int64)  # time of the last sample taken (scored, or a counter's first)
        self._prev_v = np.zeros(0, np.float64)  # a counter's last raw value (NaN: none yet)
        self._last_record = np.zeros(0, np.int64)  # time of the last anomaly record (cooldown)
        self._last_alarm = np.zeros(0, np.int64)  # time of the last alarm (recorded or not)
        self._score = np.zeros(0, np.float64)  # last consensus score (NaN: never scored)
        self._services: list[str] = []
        self._service_code: dict[str, int] = {}
        self._metrics: list[str] = []
        self._metric_code: dict[str, int] = {}
        self.samples_scored = 0
        self.anomalies_found = 0
        self.dirty = False  # changed since the last checkpoint or restore

    # --- per-series arrays -----------------------------------------------------------------------
    _FIELDS = (("_kind", np.int8, UNKNOWN), ("_svc", np.int32, -1), ("_met", np.int32, -1),
               ("_last_t", np.int64, NO_TIME), ("_prev_v", np.float64, np.nan),
               ("_last_record", np.int64, NO_TIME), ("_last_alarm", np.int64, NO_TIME),
               ("_score", np.float64, np.nan))
    _SAVED = ("_last_t", "_prev_v", "_last_record", "_last_alarm", "_score")

    def _grow(self, n: int) -> None:
        if n <= len(self._kind):
            self._n = max(self._n, n)
            return
        size = max(n, len(self._kind) * 3 // 2)
        for name, dtype, fill in self._FIELDS:
            old = getattr(self, name)
            new = np.full(size, fill, dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        self._n = max(self._n, n)
        self.detector.ensure_slots(n)

    def _code(self, table: list[str], codes: dict[str, int], value: str) -> int:
        c = codes.get(value)
        if c is None:
            c = codes[value] = len(table)
            table.append(value)
        return c

    def _describe(self, sid: int, metric: str, labels: dict[str, str]) -> None:
        """Once per series lifetime: what kind of series it is and the labels /metrics shows for it."""
        counter = is_counter(metric)
        self._kind[sid] = IGNORED if metric.endswith(IGNORED_SUFFIXES) else COUNTER if counter else GAUGE
        self._met[sid] = self._code(self._metrics, self._metric_code, metric)
        self._svc[sid] = self._code(self._services, self._service_code, service_of(labels) or "")

    def _classify(self, ids: np.ndarray, batch: SeriesBatch) -> None:
        for i in np.flatnonzero(self._kind[ids] == UNKNOWN):  # once per series lifetime
            self._describe(int(ids[i]), batch.metrics[int(i)], batch.labels[int(i)])

    # --- scoring ---------------------------------------------------------------------------------
    def process(self, batch: SeriesBatch, series_ids: np.ndarray, now_ms: int) -> None:
        ids = np.asarray(series_ids, np.int64)
        if batch.n_samples == 0 or len(ids) == 0:
            return
        with self._lock:
            found = self._process(batch, ids)
        if found:
            self.sink(found)

    def _process(self, batch: SeriesBatch, ids: np.ndarray) -> list[dict[str, Any]]:
        self._grow(int(ids.max()) + 1)
        self._classify(ids, batch)
        slot = np.repeat(ids, batch.counts())
        kind = self._kind[slot]
        idx = np.flatnonzero(((kind == GAUGE) | (kind == COUNTER)) & np.isfinite(batch.values))
        if len(idx) == 0:
            return []
        # Samples by series, then time; drop those not after the series' last taken sample.
        idx = idx[np.lexsort((batch.ts_ms[idx], slot[idx]))]
        s, t, v = slot[idx], batch.ts_ms[idx], batch.values[idx]
        first = series_starts(s)
        before = np.maximum(self._last_t[s], np.where(first, NO_TIME, np.concatenate([[NO_TIME], t[:-1]])))
        new = t > before
        if not new.all():
            s, t, v = s[new], t[new], v[new]
            if len(s) == 0:
                return []
            first = series_starts(s)
        last = np.ones(len(s), bool)
        last[:-1] = s[:-1] != s[1:]
        counter = self._kind[s] == COUNTER
        x, t_prev = v, self._last_t[s]
        if counter.any():
            prev_v = np.where(first, self._prev_v[s], np.concatenate([[np.nan], v[:-1]]))
            t_prev = np.where(first, t_prev, np.concatenate([[NO_TIME], t[:-1]]))
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = (v - prev_v) / ((t - t_prev) / 1000.0)
            ok = ~counter | ((v >= prev_v) & np.isfinite(rate))  # NaN prev (none yet) compares False
            x = np.where(counter, rate, v)
            cl = counter & last
            self._prev_v[s[cl]] = v[cl]
        else:
            ok = np.ones(len(s), bool)
        self._last_t[s[last]] = t[last]
        self.dirty = True
        if not ok.all():
            s, t, x = s[ok], t[ok], x[ok]
            if len(s) == 0:
                return []
            first = series_starts(s)
        # One detector update per rank (k-th sample of its series in this batch): each slot once per call.
        starts = np.flatnonzero(first)
        rank = np.arange(len(s)) - np.repeat(starts, np.diff(np.append(starts, len(s))))
        found: list[dict[str, Any]] = []
        if len(starts) == len(s):
            found += self._score_group(s, t, x)
        else:
            order = np.argsort(rank, kind="stable")
            bounds = np.flatnonzero(np.diff(rank[order])) + 1
            for part in np.split(order, bounds):
                found += self._score_group(s[part], t[part], x[part])
        self.samples_scored += len(s)
        self.anomalies_found += len(found)
        return found

    def _score_group(self, s: np.ndarray, t: np.ndarray, x: np.ndarray) -> list[dict[str, Any]]:
        res = self.detector.update(s, x, t / 1000.0)
        self._score[s] = res.score
        alarm = res.alarm
        if not alarm.any():
            return []
        self._last_alarm[s[alarm]] = t[alarm]
        hit = alarm & (t - self._last_record[s] >= int(self.config.cooldown_s * 1000))
        self._last_record[s[hit]] = t[hit]
        return [self._record(res, int(j), int(s[j]), int(t[j]), float(x[j])) for j in np.flatnonzero(hit)]

    def _record(self, res: EnsembleResult, j: int, sid: int, ts_ms: int, observed: float) -> dict[str, Any]:
        info = self.series.get_series(sid)
        det, cfg = self.detector, self.config
        score = float(res.score[j])
        lo, hi = (float(v) for v in res.expected[j])
        votes = res.votes[j]
        order = [int(i) for i in np.argsort(-votes, kind="stable") if votes[i] >= det.config.vote]
        names = [det.names[i] for i in order]
        service = service_of(info.labels)
        where = f" of {service}" if service else ""
        rate = " (per-second rate)" if self._kind[sid] == COUNTER else ""
        direction = "above" if observed > hi else "below" if observed < lo else "inside"
        if names:
            agree = ", ".join(f"{det.names[i]} ({det.analyzers[i].reason})" for i in order)
            why = f"{len(names)} of {len(det.names)} analyzers agree: {agree}"
        else:
            why = f"no analyzer reached the vote level {det.config.vote:g} (consensus score {score:.4f})"
        return {
            "time": ts_ms / 1000, "series_id": sid, "service": service, "metric": info.metric,
            "labels": dict(info.labels), "score": score,
            "severity": "critical" if score >= cfg.critical else "warning",
            "expected": [lo, hi], "observed": observed, "detectors": names,
            "explanation": (f"{info.metric}{rate}{where} was {_fmt(observed)}, {direction} its usual range "
                            f"{_fmt(lo)} to {_fmt(hi)}; {why}"),
        }

    def current_scores(self, series_ids: np.ndarray) -> np.ndarray:
        """The last consensus score of each series (NaN: never scored), e.g. whether an anomaly is still on."""
        ids = np.asarray(series_ids, np.int64)
        with self._lock:
            out = np.full(len(ids), np.nan)
            ok = (ids >= 0) & (ids < self._n)
            out[ok] = self._score[ids[ok]]
        return out

    # --- what /metrics shows ---------------------------------------------------------------------
    def snapshot(self, now_ms: int) -> AnomalySnapshot:
        with self._lock:
            n = self._n
            sl = np.flatnonzero(np.isfinite(self._score[:n]))
            for sid in sl[self._svc[sl] < 0]:  # restored from a checkpoint, not seen since
                try:
                    info = self.series.get_series(int(sid))
                except Exception:
                    continue
                self._describe(int(sid), info.metric, info.labels)
            sl = sl[self._svc[sl] >= 0]
            svc, met, score = self._svc[sl], self._met[sl], self._score[sl].copy()
            recent = self._last_alarm[sl] >= now_ms - int(self.config.cooldown_s * 1000)
            services, metrics = list(self._services), list(self._metrics)
        total = np.bincount(svc, minlength=len(services))
        alarmed = np.bincount(svc, weights=recent.astype(np.float64), minlength=len(services))
        rate = {services[i]: float(alarmed[i] / total[i]) for i in np.flatnonzero(total)}
        return AnomalySnapshot(sl, [metrics[c] for c in met], [services[c] for c in svc], score, rate)

    # --- checkpoint ------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """What a checkpoint must match to be loaded: the format, the analyzers and their configuration."""
        return {"format": CHECKPOINT_FORMAT, "names": list(self.detector.names),
                "config": json.loads(json.dumps(asdict(self.detector.config)))}

    def checkpoint(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """A consistent copy of the state: (arrays, JSON-able metadata). Clears ``dirty``."""
        with self._lock:
            arrays, rest = flatten(self.detector.state(), "detector")
            for name in self._SAVED:
                arrays[f"stage.{name.lstrip('_')}"] = getattr(self, name)[: self._n].copy()
            counts = {"samples_scored": self.samples_scored, "anomalies_found": self.anomalies_found}
            self.dirty = False
        return arrays, {**self.meta(), "detector": rest, "counts": counts}

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bool:
        """Load a checkpoint if it is compatible (same format, analyzers and configuration). Returns whether
        it was loaded; an incompatible one is logged and ignored, and the stage starts fresh."""
        mine = self.meta()
        diff = [k for k in ("format", "names", "config") if meta.get(k) != mine[k]]
        if diff:
            log.warning("detector checkpoint ignored: its %s differ from the running configuration; "
                        "every series warms up again", " and ".join(diff))
            return False
        try:
            state = unflatten(arrays, "detector", meta["detector"])
            det = EnsembleDetector.from_state(state)
            n = len(arrays["stage.last_t"])
            loaded = {name: np.asarray(arrays[f"stage.{name.lstrip('_')}"]) for name in self._SAVED}
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("detector checkpoint ignored: unreadable (%s); every series warms up again", exc)
            return False
        with self._lock:
            self.detector = det
            for name, dtype, _ in self._FIELDS:
                setattr(self, name, np.zeros(0, dtype))
            self._n = 0
            self._grow(n)
            for name, arr in loaded.items():
                getattr(self, name)[:n] = arr
            counts = meta.get("counts", {})
            self.samples_scored = int(counts.get("samples_scored", 0))
            self.anomalies_found = int(counts.get("anomalies_found", 0))
            self.dirty = False
        return True


class AnomalyLog:
    """Anomaly records in the database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    def add(self, records: list[dict[str, Any]]) -> None:
        rows = [{"time": r["time"], "series_id": r["series_id"], "service": r["service"], "metric": r["metric"],
                 "labels": json.dumps(r["labels"], sort_keys=True), "score": r["score"], "severity": r["severity"],
                 "expected_lo": r["expected"][0], "expected_hi": r["expected"][1], "observed": r["observed"],
                 "detectors": json.dumps(r["detectors"]), "explanation": r["explanation"]} for r in records]
        with self._lock, self._engine.begin() as conn:
            conn.execute(insert(anomalies), rows)

    def query(self, start: float | None = None, end: float | None = None, service: str | None = None,
              limit: int = 1000) -> list[dict[str, Any]]:
        q = select(anomalies).order_by(anomalies.c.time.desc(), anomalies.c.id.desc()).limit(limit)
        if start is not None:
            q = q.where(anomalies.c.time >= start)
        if end is not None:
            q = q.where(anomalies.c.time <= end)
        if service:
            q = q.where(anomalies.c.service == service)
        with self._engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [{"id": r["id"], "time": r["time"], "service": r["service"], "metric": r["metric"],
                 "labels": json.loads(r["labels"]), "score": r["score"], "severity": r["severity"],
                 "expected": [r["expected_lo"], r["expected_hi"]], "observed": r["observed"],
                 "detectors": json.loads(r["detectors"]), "explanation": r["explanation"]} for r in rows]
