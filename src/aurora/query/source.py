"""What the query layer needs from storage: a list of series and a way to read one of them.

Defined as Protocols so the query layer never imports the store; any object with these attributes and
methods works (the store's ``SeriesInfo`` has exactly ``id, metric, labels``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["STALE_NAN_BITS", "SeriesInfo", "SeriesSource", "is_stale", "series_labels"]

#: Prometheus' staleness marker: a NaN with this exact bit pattern ends a series.
STALE_NAN_BITS = 0x7FF0000000000002


class SeriesInfo(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def metric(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...


class SeriesSource(Protocol):
    def all_series(self) -> Sequence[SeriesInfo]:
        """Every series the source knows."""
        ...

    def read(self, series_id: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples with ``start_ms <= t <= end_ms``: int64 unix ms (sorted, unique) and float64 values."""
        ...


def series_labels(info: SeriesInfo) -> dict[str, str]:
    """The full Prometheus label set of a series, ``__name__`` included."""
    out = dict(info.labels)
    out["__name__"] = info.metric
    return out


def is_stale(values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Which values are the staleness marker (bit-exact; other NaNs are ordinary values)."""
    return np.ascontiguousarray(values, dtype=np.float64).view(np.uint64) == np.uint64(STALE_NAN_BITS)
