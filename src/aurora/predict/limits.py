"""Which series have a known limit, and where that limit comes from.

A limited series is a metric with a direction (``+1``: it rises to a ceiling such as a memory limit,
disk capacity or a pool size; ``-1``: it falls to a floor such as a model's minimum accuracy) and a
limit that is either another series with exactly the same labels (``container_spec_memory_limit_bytes``
next to ``container_memory_working_set_bytes``) or a fixed value (from configuration or an SLO).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Series with a known limit: metric -> (limit metric or fixed value, direction of the breach).
#: ``+1``: the value rises to the limit; ``-1``: it falls to a floor.
LIMITS: dict[str, tuple[str | float, int]] = {
    "container_memory_working_set_bytes": ("container_spec_memory_limit_bytes", 1),
    "disk_used_bytes": ("disk_capacity_bytes", 1),
    "db_connections_open": ("db_connections_max", 1),
    "model_accuracy_ratio": (0.85, -1),
}


#: What a breach of each limited metric means (a prediction's ``kind``).
KINDS: dict[str, str] = {
    "container_memory_working_set_bytes": "memory_exhaustion",
    "disk_used_bytes": "disk_full",
    "db_connections_open": "connection_pool_exhaustion",
    "model_accuracy_ratio": "accuracy_below_floor",
}

#: A service's configured limits (``services[].limits``) by key -> the metric they limit. A limit series
#: exported next to the metric (the real limit) wins over the configured one.
CONFIG_LIMIT_METRICS: dict[str, str] = {
    "memory_bytes": "container_memory_working_set_bytes",
    "disk_bytes": "disk_used_bytes",
    "db_connections": "db_connections_open",
}


def kind_of(metric: str) -> str:
    return KINDS.get(metric, "limit_breach")


@dataclass(frozen=True)
class LimitedSeries:
    column: int  # the series' column
    direction: int  # +1: rises to the limit; -1: falls to a floor
    limit_column: int | None = None  # the column holding its limit, or
    limit_value: float = float("nan")  # a fixed limit


def limit_columns(series: list[tuple[str, dict[str, str]]],
                  limits: dict[str, tuple[str | float, int]] | None = None) -> list[LimitedSeries]:
    """The series of ``(metric, labels)`` with a known limit (``LIMITS`` by default). A limit series
    matches on exactly the same labels."""
    table = LIMITS if limits is None else limits
    where = {(m, tuple(sorted(lab.items()))): k for k, (m, lab) in enumerate(series)}
    out: list[LimitedSeries] = []
    for k, (metric, labels) in enumerate(series):
        if metric not in table:
            continue
        ref, sign = table[metric]
        if isinstance(ref, str):
            col = where.get((ref, tuple(sorted(labels.items()))))
            if col is not None:
                out.append(LimitedSeries(k, sign, limit_column=col))
        else:
            out.append(LimitedSeries(k, sign, limit_value=float(ref)))
    return out
