"""Bodies in the shape of the Prometheus HTTP API (what Grafana's Prometheus data source reads)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from aurora.errors import AuroraError, BadInput, NotFound

__all__ = [
    "error_body",
    "format_timestamp",
    "format_timestamps",
    "format_value",
    "format_values",
    "labels_body",
    "matrix_body",
    "scalar_body",
    "series_body",
    "success",
    "vector_body",
]

_INT_SAFE = 1e15  # below this every integral float prints the same through int()


def format_value(v: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest round-trip digits, never an exponent."""
    if v != v:
        return "NaN"
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    s = repr(v)
    if "e" in s:
        return format(Decimal(s), "f")
    if s.endswith(".0"):
        return s[:-2]
    return s


@lru_cache(maxsize=8)
def _fraction_digits(k: int) -> tuple[str, ...]:
    """``i`` (0 < i < 10**k) as the k-digit fraction string without trailing zeros; [0] is unused."""
    return ("", *(f"{i:0{k}d}".rstrip("0") for i in range(1, 10**k)))


def _format_short_decimals(values: npt.NDArray[np.float64], mag: npt.NDArray[np.float64]) -> list[str] | None:
    """Fast path when every value is a decimal with at most 4 places and 15 significant digits.

    Such a decimal string is exactly what ``repr`` (shortest round trip) prints: two different
    decimals of at most 15 significant digits never map to the same double. So integer arithmetic
    on ``v * 10**k`` gives Go's output without a float-to-string conversion per value.
    """
    top = float(mag.max())
    for k in range(1, 5):
        scale = 10.0**k
        if top * scale >= _INT_SAFE:
            return None
        m = np.rint(values * scale)
        if (m / scale == values).all():  # correctly rounded division: m / 10**k round-trips to v
            break
    else:
        return None
    whole, frac = np.divmod(np.abs(m).astype(np.int64), 10**k)
    digits = _fraction_digits(k)
    out = [f"{w}.{digits[f]}" if f else str(w) for w, f in zip(whole.tolist(), frac.tolist(), strict=True)]
    for i in np.flatnonzero(m < 0).tolist():
        out[i] = "-" + out[i]
    return out


def format_values(values: npt.NDArray[np.float64]) -> list[str]:
    """``format_value`` over an array: ``repr`` in C for every value, Python fix-ups only where needed."""
    if len(values) == 0:
        return []
    with np.errstate(invalid="ignore"):
        mag = np.abs(values)
        finite = np.isfinite(values)
        integral = finite & (values == np.trunc(values)) & (mag < _INT_SAFE)
        if integral.all() and not (np.signbit(values) & (values == 0)).any():
            return list(map(str, values.astype(np.int64).tolist()))
        # repr gives the shortest round-trip digits; it differs from Go's 'f' format only by a
        # trailing ".0", an exponent (|v| >= 1e16 or < 1e-4) or the spelling of NaN/Inf
        fix = integral | ~finite | (mag >= 1e16) | ((mag < 1e-4) & (mag > 0))
        if finite.all() and not (np.signbit(values) & (values == 0)).any():
            fast = _format_short_decimals(values, mag)
            if fast is not None:
                return fast
    out = list(map(repr, values.tolist()))
    if fix.any():
        for i in np.flatnonzero(fix).tolist():
            out[i] = format_value(float(values[i]))
    return out


def format_timestamp(ms: int) -> int | float:
    """Unix ms -> JSON seconds as Prometheus writes them: an integer when whole, else up to 3 decimals."""
    ms = int(ms)
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def format_timestamps(ms: npt.NDArray[np.int64]) -> list[int | float]:
    if len(ms) == 0:
        return []
    if not (ms % 1000).any():
        return list((ms // 1000).tolist())
    return [format_timestamp(x) for x in ms.tolist()]


def _sorted(labels: Mapping[str, str]) -> dict[str, str]:
    """Label sets in Prometheus order (sorted by name, so ``__name__`` usually comes first)."""
    return dict(sorted(labels.items()))


def success(data: Any, warnings: Sequence[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = list(warnings)
    return body


def _pairs(ts_ms: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> list[list[Any]]:
    return [[t, s] for t, s in zip(format_timestamps(ts_ms), format_values(values), strict=True)]


MatrixItem = tuple[Mapping[str, str], npt.NDArray[np.int64], npt.NDArray[np.float64]]


def matrix_body(series: Iterable[MatrixItem]) -> dict[str, Any]:
    """``resultType: matrix``; each item is (labels, timestamps in ms, values)."""
    result = [{"metric": _sorted(labels), "values": _pairs(ts, vs)} for labels, ts, vs in series]
    return success({"resultType": "matrix", "result": result})


def vector_body(samples: Iterable[tuple[Mapping[str, str], int, float]]) -> dict[str, Any]:
    """``resultType: vector``; each item is (labels, timestamp ms, value)."""
    result = [
        {"metric": _sorted(labels), "value": [format_timestamp(ts), format_value(v)]} for labels, ts, v in samples
    ]
    return success({"resultType": "vector", "result": result})


def scalar_body(ts_ms: int, value: float) -> dict[str, Any]:
    return success({"resultType": "scalar", "result": [format_timestamp(ts_ms), format_value(value)]})


def series_body(label_sets: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    return success([_sorted(ls) for ls in label_sets])


def labels_body(names: Iterable[str]) -> dict[str, Any]:
    """Body of ``/api/v1/labels`` and ``/api/v1/label/<name>/values``: a sorted list of strings."""
    return success(sorted(set(names)))


def error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """(HTTP status, Prometheus error body) for an exception raised while answering a query."""
    if isinstance(exc, NotFound):
        status, etype = exc.status, "not_found"
    elif isinstance(exc, BadInput):
        status, etype = exc.status, "bad_data"
    elif isinstance(exc, AuroraError):
        status, etype = exc.status, "execution" if exc.status < 500 else "internal"
    else:
        status, etype = 500, "internal"
    message = exc.message if isinstance(exc, AuroraError) else str(exc) or type(exc).__name__
    return status, {"status": "error", "errorType": etype, "error": message}
