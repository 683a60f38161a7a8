"""Reads the series of some services from the store as one aligned matrix, for root-cause ranking.

Rows are a regular grid of ``step_s`` over ``[start, end]``; a cell holds the series' last sample in
that step (NaN if none). Counters (``aurora.model.is_counter``) become per-second rates, a drop
being a reset (the rate is then taken from zero), as detection scores them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np

from aurora.model import is_counter
from aurora.rca.live import Column
from aurora.store.index import SeriesInfo

MAX_SERIES = 2000  # bound the work of one ranking


class SeriesSource(Protocol):
    def all_series(self) -> list[SeriesInfo]: ...

    def read(self, series_id: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]: ...


def service_label(labels: dict[str, str]) -> str | None:
    return labels.get("service") or labels.get("job")


def counter_rates(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-second rates of a counter's samples (times in seconds); a drop is a reset, counted from zero.
    One value fewer than given: the rate is known from the second sample on."""
    if len(t) < 2:
        return t[:0], v[:0]
    dv, dt = np.diff(v), np.diff(t)
    return t[1:], np.where(dv >= 0, dv, v[1:]) / np.where(dt > 0, dt, np.nan)


def read_window(store: SeriesSource, services: Iterable[str], start: float, end: float,
                step_s: float = 15.0) -> tuple[np.ndarray, np.ndarray, list[Column]]:
    """(times, values rows x columns, columns) of every series of ``services`` between ``start`` and ``end``."""
    wanted = set(services)
    infos = [s for s in store.all_series() if service_label(s.labels) in wanted][:MAX_SERIES]
    n_rows = max(1, int((end - start) // step_s) + 1)
    times = start + np.arange(n_rows) * step_s
    values = np.full((n_rows, len(infos)), np.nan)
    cols: list[Column] = []
    lo_ms, hi_ms = int(start * 1000), int(end * 1000)
    for j, info in enumerate(infos):
        svc = service_label(info.labels)
        assert svc is not None
        cols.append(Column(svc, info.metric, dict(info.labels)))
        ts, vs = store.read(info.id, lo_ms - int(step_s * 1000), hi_ms)
        if len(ts) == 0:
            continue
        t = ts.astype(np.float64) / 1000.0
        v = vs.astype(np.float64)
        if is_counter(info.metric):
            t, v = counter_rates(t, v)
        row = np.floor((t - start) / step_s).astype(np.int64)
        ok = (row >= 0) & (row < n_rows)
        values[row[ok], j] = v[ok]  # later samples of a step overwrite earlier ones: the last wins
    return times, values, cols
