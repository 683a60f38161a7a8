"""HTTP parameters of the Prometheus API: times and durations, parsed the way Prometheus parses them."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

from aurora.errors import BadInput
from aurora.query.lexer import parse_prom_duration_ms

__all__ = ["parse_duration", "parse_time", "parse_time_ms", "to_ms"]

_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_MAX_ABS_MS = 9_223_372_036_854  # int64 nanoseconds in ms: what Go's time.Duration can hold


def _bad(name: str | None, msg: str) -> BadInput:
    return BadInput(f'invalid parameter "{name}": {msg}' if name else msg)


def to_ms(seconds: float) -> int:
    """Float seconds -> int ms, rounding the fraction to the millisecond as Prometheus does."""
    whole = math.trunc(seconds)
    return int(whole) * 1000 + round((seconds - whole) * 1000)


def parse_time_ms(s: str, name: str | None = None) -> int:
    """A Prometheus API time (unix seconds, possibly fractional, or RFC 3339) in unix ms."""
    s = s.strip() if isinstance(s, str) else str(s)
    if _FLOAT_RE.fullmatch(s):
        t = float(s)
        if not math.isfinite(t) or abs(t) * 1000 > 2**62:
            raise _bad(name, f"cannot parse {s!r} to a valid timestamp")
        return to_ms(t)
    m = _RFC3339_RE.fullmatch(s)
    if m:
        y, mo, d, h, mi, sec = (int(x) for x in m.groups()[:6])
        frac, tz = m.group(7), m.group(8)
        try:
            offset = timedelta(0)
            if tz not in ("Z", "z"):
                sign = 1 if tz[0] == "+" else -1
                oh, om = int(tz[1:3]), int(tz[4:6])
                if oh > 23 or om > 59:
                    raise ValueError("bad zone offset")
                offset = sign * timedelta(hours=oh, minutes=om)
            dt = datetime(y, mo, d, h, mi, sec, tzinfo=timezone(offset))
        except ValueError:
            raise _bad(name, f"cannot parse {s!r} to a valid timestamp") from None
        ms = int(dt.timestamp()) * 1000
        if frac:
            ms += int((frac[1:] + "000")[:3])  # Go truncates nanoseconds to milliseconds
        return ms
    raise _bad(name, f"cannot parse {s!r} to a valid timestamp")


def parse_time(s: str, name: str | None = None) -> float:
    """``"1700000000.5"`` or ``"2023-11-14T22:13:20Z"`` -> unix seconds (float, millisecond precision)."""
    return parse_time_ms(s, name) / 1000.0


def parse_duration(s: str, name: str | None = None) -> float:
    """``"15"``, ``"0.5"`` (float seconds) or ``"15s"``, ``"1h30m"`` (Prometheus durations) -> seconds."""
    s = s.strip() if isinstance(s, str) else str(s)
    if _FLOAT_RE.fullmatch(s):
        d = float(s)
        if not math.isfinite(d) or abs(d) * 1000 > _MAX_ABS_MS:
            raise _bad(name, f"cannot parse {s!r} to a valid duration. It overflows int64")
        return d
    ms = parse_prom_duration_ms(s)
    if ms is None:
        raise _bad(name, f"cannot parse {s!r} to a valid duration")
    return ms / 1000.0
