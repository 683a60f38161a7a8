"""The live persistent-homology stage: every ``eval_every_s`` of event time, each service's gauges from the
store's head window go through ``HomologyAnalyzer``; an anomalous shape becomes an anomaly record.

Off by default (``detection.homology.enabled``): on the simulated fleet it caught nothing the univariate
ensemble missed (see README, Evaluation), so it costs more than it earns there. A group's columns are fixed
at its first evaluation (its first ``max_metrics`` gauges with a full window), so the analyzer's baseline
keeps meaning the same metrics. Counters are left out: their raw values only grow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from aurora.detect.homology import HomologyAnalyzer, HomologyConfig, HomologyRecord
from aurora.model import SeriesBatch, is_counter

NO_SERIES = -1  # the series_id of a record about a whole service
UNSEEN, NO_GROUP = -2, -1


class WindowSource(Protocol):
    def window(self, series_id: int) -> tuple[np.ndarray, np.ndarray]: ...


class HomologyStage:
    name = "homology"

    def __init__(self, store: WindowSource, sink: Callable[[list[dict[str, Any]]], None],
                 config: HomologyConfig | None = None, eval_every_s: float = 300.0, max_metrics: int = 12) -> None:
        self.store = store
        self.sink = sink
        self.analyzer = HomologyAnalyzer(config)
        self.eval_every_ms = int(eval_every_s * 1000)
        self.max_metrics = max_metrics
        self._group_of = np.zeros(0, np.int32)  # per series id: index into _names, or UNSEEN / NO_GROUP
        self._names: list[str] = []
        self._index: dict[str, int] = {}  # service -> its position in _names
        self._members: dict[str, list[tuple[int, str]]] = {}  # service -> (series id, column name)
        self._columns: dict[str, list[tuple[int, str]]] = {}  # fixed at a group's first evaluation
        self._next_ms: dict[str, int] = {}
        self.evaluations = 0

    def _register(self, ids: np.ndarray, batch: SeriesBatch) -> list[str]:
        """Learn the services of series seen for the first time; return the services this batch touches."""
        if len(ids) and int(ids.max()) >= len(self._group_of):
            grow = int(ids.max()) + 1 - len(self._group_of)
            self._group_of = np.concatenate([self._group_of, np.full(grow, UNSEEN, np.int32)])
        for i in np.flatnonzero(self._group_of[ids] == UNSEEN):  # once per series lifetime
            metric, labels = batch.metrics[int(i)], batch.labels[int(i)]
            service = labels.get("service")
            if not service or is_counter(metric):
                self._group_of[ids[i]] = NO_GROUP
                continue
            if service not in self._index:
                self._index[service] = len(self._names)
                self._names.append(service)
                self._members[service] = []
            self._group_of[ids[i]] = self._index[service]
            extra = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("service", "instance"))
            self._members[service].append((int(ids[i]), f"{metric}{{{extra}}}" if extra else metric))
        groups = np.unique(self._group_of[ids])
        return [self._names[g] for g in groups[groups >= 0].tolist()]

    def process(self, batch: SeriesBatch, series_ids: np.ndarray, now_ms: int) -> None:
        ids = np.asarray(series_ids, np.int64)
        if batch.n_samples == 0 or len(ids) == 0:
            return
        t_ms = int(batch.ts_ms.max())
        found: list[dict[str, Any]] = []
        for service in self._register(ids, batch):
            if t_ms < self._next_ms.get(service, 0):
                continue
            self._next_ms[service] = t_ms + self.eval_every_ms
            rec = self._evaluate(service, t_ms)
            if rec is not None and rec.anomalous:
                found.append(self._record(rec))
        if found:
            self.sink(found)

    def _evaluate(self, service: str, t_ms: int) -> HomologyRecord | None:
        need = self.analyzer.config.window
        cols = self._columns.get(service)
        windows: list[np.ndarray] = []
        if cols is None:  # the first evaluation fixes the columns: gauges that already have a full window
            cols = []
            for sid, name in self._members[service]:
                _, vals = self.store.window(sid)
                if len(vals) >= need and len(cols) < self.max_metrics:
                    cols.append((sid, name))
                    windows.append(vals[-need:])
            if len(cols) < 2:
                return None
            self._columns[service] = cols
        else:
            for sid, _ in cols:
                _, vals = self.store.window(sid)
                if len(vals) < need:
                    return None
                windows.append(vals[-need:])
        self.evaluations += 1
        return self.analyzer.update(service, t_ms / 1000, np.column_stack(windows), [n for _, n in cols])

    @staticmethod
    def _record(rec: HomologyRecord) -> dict[str, Any]:
        d = rec.dim
        q = rec.baseline_quantiles[d] if d < len(rec.baseline_quantiles) else [float("nan")] * 3
        return {
            "time": rec.time, "series_id": NO_SERIES, "service": rec.group, "metric": "(co-movement)",
            "labels": {"service": rec.group}, "score": rec.score, "severity": "warning",
            "expected": [q[0], q[-1]], "observed": rec.distance[d], "detectors": ["homology"],
            "explanation": rec.explanation,
        }
