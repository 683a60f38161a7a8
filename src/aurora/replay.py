"""Reading sample files for `aurora replay`: CSV (long or wide) and JSON lines, into time-ordered batches."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from aurora.api.json_ingest import parse_json_ingest
from aurora.errors import BadInput
from aurora.model import SeriesBatch, series_key

TIME_COLUMNS = ("time", "timestamp", "ts")
_COLUMN_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_time_value(raw: str, where: str) -> float:
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(f"{where}: {raw!r} is neither unix seconds nor an ISO 8601 time") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_column(name: str, where: str) -> tuple[str, dict[str, str]]:
    """A wide CSV column names one series: ``metric`` or ``metric{label="v",...}``."""
    m = _COLUMN_RE.match(name.strip())
    if not m:
        raise BadInput(f"{where}: column {name!r} is not a metric name or metric{{label=\"value\"}}")
    labels: dict[str, str] = {}
    inner = m.group(2) or ""
    pos = 0
    while pos < len(inner):
        lm = _LABEL_RE.match(inner, pos)
        if not lm:
            raise BadInput(f"{where}: cannot read labels of column {name!r} at {inner[pos:]!r}")
        labels[lm.group(1)] = lm.group(2).encode().decode("unicode_escape")
        pos = lm.end()
    return m.group(1), labels


class Samples:
    """All samples of a file as flat arrays sorted by time, with a series table."""

    def __init__(self, metrics: list[str], labels: list[dict[str, str]], sid: np.ndarray, ts_ms: np.ndarray,
                 values: np.ndarray) -> None:
        order = np.lexsort((sid, ts_ms))  # time order; series order within a timestamp
        self.metrics, self.labels = metrics, labels
        self.sid, self.ts_ms, self.values = sid[order], ts_ms[order], values[order]

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    def batches(self, size: int) -> Iterator[SeriesBatch]:
        """Consecutive time slices of about ``size`` samples, never splitting one timestamp."""
        n = len(self)
        start = 0
        while start < n:
            end = min(start + size, n)
            if end < n:  # extend to the end of the current timestamp
                end = int(np.searchsorted(self.ts_ms, self.ts_ms[end - 1], side="right"))
            sid, ts, vals = self.sid[start:end], self.ts_ms[start:end], self.values[start:end]
            order = np.argsort(sid, kind="stable")
            sid, ts, vals = sid[order], ts[order], vals[order]
            uniq, first = np.unique(sid, return_index=True)
            offsets = np.append(first, len(sid)).astype(np.int64)
            yield SeriesBatch([self.metrics[i] for i in uniq], [self.labels[i] for i in uniq], offsets, ts, vals)
            start = end


def _read_csv(path: Path, metric: str | None, extra: dict[str, str]) -> Samples:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration as exc:
            raise BadInput(f"{path}: empty file") from exc
        rows = list(reader)
    lower = [h.lower() for h in header]
    tcol = next((lower.index(c) for c in TIME_COLUMNS if c in lower), None)
    if tcol is None:
        raise BadInput(f"{path}: no time column; name one of {', '.join(TIME_COLUMNS)}")
    times = np.array([parse_time_value(r[tcol], f"{path}:{i + 2}") for i, r in enumerate(rows)], np.float64)
    ts_ms = np.round(times * 1000).astype(np.int64)
    if "metric" in lower and "value" in lower:  # long form: time, metric, value, label columns
        mcol, vcol = lower.index("metric"), lower.index("value")
        label_cols = [i for i in range(len(header)) if i not in (tcol, mcol, vcol)]
        keys: dict[str, int] = {}
        metrics: list[str] = []
        labels: list[dict[str, str]] = []
        sid = np.empty(len(rows), np.int64)
        for i, r in enumerate(rows):
            lab = {**extra, **{header[c]: r[c] for c in label_cols if r[c] != ""}}
            k = series_key(r[mcol], lab)
            if k not in keys:
                keys[k] = len(metrics)
                metrics.append(r[mcol])
                labels.append(lab)
            sid[i] = keys[k]
        values = np.array([float(r[vcol]) for r in rows], np.float64)
        return Samples(metrics, labels, sid, ts_ms, values)
    value_cols = [i for i in range(len(header)) if i != tcol]
    metrics, labels = [], []
    for c in value_cols:
        name = metric if (metric and len(value_cols) == 1) else header[c]
        m, lab = parse_column(name, str(path))
        metrics.append(m)
        labels.append({**extra, **lab})
    grid = np.full((len(rows), len(value_cols)), np.nan)
    for i, r in enumerate(rows):
        for j, c in enumerate(value_cols):
            cell = r[c].strip() if c < len(r) else ""
            if cell:
                try:
                    grid[i, j] = float(cell)
                except ValueError as exc:
                    raise BadInput(f"{path}:{i + 2}: column {header[c]!r} value {cell!r} is not a number") from exc
    present = ~np.isnan(grid)
    ii, jj = np.nonzero(present)
    return Samples(metrics, labels, jj.astype(np.int64), ts_ms[ii], grid[ii, jj])


def _read_jsonl(path: Path, extra: dict[str, str]) -> Samples:
    keys: dict[str, int] = {}
    metrics: list[str] = []
    labels: list[dict[str, str]] = []
    sid_l: list[np.ndarray] = []
    ts_l: list[np.ndarray] = []
    val_l: list[np.ndarray] = []

    def add(metric: str, lab: dict[str, str], ts: np.ndarray, vals: np.ndarray) -> None:
        lab = {**extra, **lab}
        k = series_key(metric, lab)
        if k not in keys:
            keys[k] = len(metrics)
            metrics.append(metric)
            labels.append(lab)
        sid_l.append(np.full(len(ts), keys[k], np.int64))
        ts_l.append(ts)
        val_l.append(vals)

    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj: Any = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInput(f"{path}:{lineno}: not JSON: {exc}") from exc
            if isinstance(obj, dict) and "series" in obj:
                b = parse_json_ingest(obj)
                for i in range(b.n_series):
                    sl = b.series_slice(i)
                    add(b.metrics[i], b.labels[i], b.ts_ms[sl], b.values[sl])
            elif isinstance(obj, dict) and {"metric", "time", "value"} <= set(obj):
                add(str(obj["metric"]), dict(obj.get("labels") or {}),
                    np.array([round(float(obj["time"]) * 1000)], np.int64), np.array([float(obj["value"])]))
            else:
                raise BadInput(f'{path}:{lineno}: expected {{"metric", "labels", "time", "value"}} '
                               'or {"series": [...]}')
    if not ts_l:
        raise BadInput(f"{path}: no samples")
    return Samples(metrics, labels, np.concatenate(sid_l), np.concatenate(ts_l), np.concatenate(val_l))


def read_samples(path: Path, metric: str | None = None, extra_labels: dict[str, str] | None = None) -> Samples:
    extra = extra_labels or {}
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path, extra)
    return _read_csv(path, metric, extra)
