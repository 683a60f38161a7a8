"""The columnar batch every ingest path produces and every stage consumes.

A batch holds many series; the samples of series ``i`` are ``ts_ms[offsets[i]:offsets[i+1]]`` and
``values[offsets[i]:offsets[i+1]]``. Timestamps are unix milliseconds (int64), as in Prometheus.
Label dicts may be shared with decoder caches: treat them as read-only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")  # Prometheus names of cumulative series


def is_counter(metric: str) -> bool:
    """A cumulative series: detection scores it, and root-cause ranking reads it, by its per-second rate."""
    return metric.endswith(COUNTER_SUFFIXES)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def series_key(metric: str, labels: Mapping[str, str]) -> str:
    """Canonical identity of a series, in Prometheus text form: ``metric{a="1",b="2"}`` (labels sorted)."""
    if not labels:
        return metric
    inner = ",".join(f'{k}="{escape_label_value(labels[k])}"' for k in sorted(labels))
    return f"{metric}{{{inner}}}"


@dataclass(slots=True)
class SeriesBatch:
    metrics: list[str]
    labels: list[dict[str, str]]
    offsets: Int64Array
    ts_ms: Int64Array
    values: Float64Array

    @property
    def n_series(self) -> int:
        return len(self.metrics)

    @property
    def n_samples(self) -> int:
        return int(self.ts_ms.shape[0])

    def series_slice(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def counts(self) -> Int64Array:
        return np.diff(self.offsets)

    def keys(self) -> list[str]:
        return [series_key(m, lab) for m, lab in zip(self.metrics, self.labels, strict=True)]

    @staticmethod
    def empty() -> SeriesBatch:
        return SeriesBatch([], [], np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))

    @staticmethod
    def concat(batches: Sequence[SeriesBatch]) -> SeriesBatch:
        batches = [b for b in batches if b.n_series]
        if not batches:
            return SeriesBatch.empty()
        metrics = [m for b in batches for m in b.metrics]
        labels = [lab for b in batches for lab in b.labels]
        counts = np.concatenate([b.counts() for b in batches])
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return SeriesBatch(
            metrics,
            labels,
            offsets,
            np.concatenate([b.ts_ms for b in batches]),
            np.concatenate([b.values for b in batches]),
        )


@dataclass
class BatchBuilder:
    """Collects series one at a time (as protocol decoders see them) and builds one SeriesBatch."""

    metrics: list[str] = field(default_factory=list)
    labels: list[dict[str, str]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    ts_parts: list[Iterable[int] | Int64Array] = field(default_factory=list)
    value_parts: list[Iterable[float] | Float64Array] = field(default_factory=list)

    def add(
        self,
        metric: str,
        labels: dict[str, str],
        ts_ms: Sequence[int] | Int64Array,
        values: Sequence[float] | Float64Array,
    ) -> None:
        if len(ts_ms) != len(values):
            raise ValueError("timestamps and values differ in length")
        self.metrics.append(metric)
        self.labels.append(labels)
        self.counts.append(len(ts_ms))
        self.ts_parts.append(ts_ms)
        self.value_parts.append(values)

    def build(self) -> SeriesBatch:
        if not self.metrics:
            return SeriesBatch.empty()
        offsets = np.zeros(len(self.counts) + 1, np.int64)
        np.cumsum(np.asarray(self.counts, np.int64), out=offsets[1:])
        ts = np.fromiter((t for part in self.ts_parts for t in part), np.int64, count=int(offsets[-1]))
        vals = np.fromiter((v for part in self.value_parts for v in part), np.float64, count=int(offsets[-1]))
        return SeriesBatch(self.metrics, self.labels, offsets, ts, vals)
