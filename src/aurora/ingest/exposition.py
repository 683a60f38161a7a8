"""Prometheus text exposition format 0.0.4 parser; also reads OpenMetrics text.

Histograms and summaries are returned as the flat series they are on the page (``_bucket``, ``_sum``,
``_count``, quantiles). OpenMetrics pages (recognised by their closing ``# EOF``) are read with their
own rules: timestamps are in seconds, and the ``<family>_created`` samples of counters, histograms and
summaries are skipped (they are creation times, not measurements; Prometheus does not store them as
samples either). Exemplars (``# {...} value [ts]`` after a sample) are ignored.

Label values ``le`` and ``quantile`` are normalised to one float spelling (``1`` -> ``1.0``), as
Prometheus 3 does, so a bucket keeps its identity whichever client library wrote it. Labels with an
empty value are dropped (Prometheus treats them as absent). A series that appears twice on a page is
one series; a repeated timestamp keeps the first sample.
"""

from __future__ import annotations

import math
import re

import numpy as np
from prometheus_client.utils import floatToGoString

from aurora.errors import BadInput
from aurora.model import SeriesBatch

__all__ = ["parse_exposition"]

# Unrolled-loop forms ("[^"\\]*(?:\\.[^"\\]*)*") keep Python's regex engine from stepping per character.
_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
_LABEL_BODY = r'(?:[^"}]++|"[^"\\]*(?:\\.[^"\\]*)*")*+'
_SAMPLE = re.compile(
    r"[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)"  # metric name
    r"(?:\{(" + _LABEL_BODY + r")\}[ \t]*|[ \t]+)"  # optional labels
    r"([^ \t#]+)"  # value
    r"(?:[ \t]+([^ \t#][^ \t]*))?"  # optional timestamp
    r"[ \t]*(?:#.*)?$"  # optional exemplar
)
_PAIR = r"[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*" + _QUOTED + r"[ \t]*"
_PAIR_RE = re.compile(_PAIR)
_PAIRS_FULL = re.compile(r"(?:" + _PAIR + r",)*(?:" + _PAIR + r")?,?[ \t]*")
_UNESCAPE = re.compile(r'\\([\\"n])')
_UNESCAPE_MAP = {"\\": "\\", '"': '"', "n": "\n"}
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped", "unknown", "gaugehistogram", "stateset", "info"}
_CREATED_FAMILIES = {"counter", "histogram", "summary", "gaugehistogram"}

# Parsed label blocks by their text: a scraped page repeats the same blocks every scrape, so after the
# first scrape a line costs one regex match and a dict lookup. Emptied when full to stay bounded.
LABEL_CACHE_MAX = 100_000
_label_cache: dict[str, tuple[str, dict[str, str]]] = {}
_NO_LABELS: tuple[str, dict[str, str]] = ("", {})


def _unescape(value: str) -> str:
    return _UNESCAPE.sub(lambda m: _UNESCAPE_MAP[m.group(1)], value)


def _bad(lineno: int, line: str, why: str) -> BadInput:
    shown = line if len(line) <= 120 else line[:117] + "..."
    return BadInput(f"exposition line {lineno}: {why}: {shown!r}", line=lineno)


def parse_exposition(text: str, default_ts_ms: int, *, openmetrics: bool | None = None) -> SeriesBatch:
    """Parse a metrics page. Samples without a timestamp get ``default_ts_ms`` (unix ms).

    ``openmetrics`` forces the dialect; by default a page that ends with ``# EOF`` is OpenMetrics.
    Raises BadInput naming the first bad line.
    """
    if openmetrics is None:
        openmetrics = text.rstrip().endswith("# EOF")
    types: dict[str, str] = {}
    index: dict[tuple[str, str], int] = {}
    metrics: list[str] = []
    labels: list[dict[str, str]] = []
    sidx: list[int] = []
    ts_list: list[int] = []
    vals: list[float] = []
    match_sample = _SAMPLE.match

    for lineno, line in enumerate(text.split("\n"), 1):
        if not line or line.isspace():
            continue
        stripped = line.lstrip()
        if stripped[0] == "#":
            parts = stripped.split(None, 3)
            if len(parts) >= 2 and parts[1] == "TYPE":
                if len(parts) < 4:
                    raise _bad(lineno, line, "TYPE needs a metric name and a type")
                mtype = parts[3].strip()
                if mtype not in _TYPES:
                    raise _bad(lineno, line, f"unknown metric type {mtype!r}")
                types[parts[2]] = mtype
            elif len(parts) >= 2 and parts[1] == "EOF":
                break
            continue  # HELP, UNIT and plain comments carry nothing to store
        m = match_sample(line)
        if m is None:
            raise _bad(lineno, line, "not a sample line (expected: name{label=\"value\",...} value [timestamp])")
        name, body, vtok, ttok = m.groups()
        if openmetrics and name.endswith("_created") and types.get(name[:-8]) in _CREATED_FAMILIES:
            continue
        try:
            value = float(vtok)
            if "_" in vtok:  # Python accepts 1_000; the format does not
                raise ValueError
        except ValueError:
            raise _bad(lineno, line, f"value {vtok!r} is not a number (use digits, NaN, +Inf or -Inf)") from None
        if ttok is None:
            ts = default_ts_ms
        else:
            try:
                ts = round(float(ttok) * 1000) if openmetrics else int(ttok)
            except ValueError:
                unit = "seconds" if openmetrics else "integer milliseconds"
                raise _bad(lineno, line, f"timestamp {ttok!r} is not {unit}") from None
            except OverflowError:
                raise _bad(lineno, line, f"timestamp {ttok!r} is out of range") from None
        if body is None:
            parsed = _NO_LABELS
        else:
            parsed = _label_cache.get(body)  # type: ignore[assignment]
            if parsed is None:
                parsed = _parse_labels(body, lineno, line)
                if len(_label_cache) >= LABEL_CACHE_MAX:
                    _label_cache.clear()
                _label_cache[body] = parsed
        key = (name, parsed[0])
        i = index.get(key)
        if i is None:
            i = index[key] = len(metrics)
            metrics.append(name)
            labels.append(parsed[1].copy())  # the cached dict must not change when a caller adds labels
        sidx.append(i)
        ts_list.append(ts)
        vals.append(value)
    return _build(metrics, labels, sidx, ts_list, vals)


def _parse_labels(body: str, lineno: int, line: str) -> tuple[str, dict[str, str]]:
    """(canonical key, labels) of a label block. The key is the sorted pairs as one string, whose hash
    Python caches, so the same labels written in another order are still one series."""
    if not body.strip():
        return _NO_LABELS
    if _PAIRS_FULL.fullmatch(body) is None:
        raise _bad(lineno, line, 'labels are malformed (expected name="value" pairs separated by commas)')
    pairs = _PAIR_RE.findall(body)
    lab: dict[str, str] = {}
    for k, v in pairs:
        if k in lab:
            raise _bad(lineno, line, f"label {k!r} appears twice")
        lab[k] = _unescape(v) if "\\" in v else v
    if "" in lab.values():
        lab = {k: v for k, v in lab.items() if v}
    if "le" in lab or "quantile" in lab:
        _normalise_bounds(lab)
    return "\x00".join(f"{k}\x01{v}" for k, v in sorted(pairs)), lab


def _normalise_bounds(lab: dict[str, str]) -> None:
    for k in ("le", "quantile"):
        v = lab.get(k)
        if v is not None:
            try:
                f = float(v)
            except ValueError:
                continue
            if not math.isnan(f):
                lab[k] = floatToGoString(f)


def _build(metrics: list[str], labels: list[dict[str, str]], sidx: list[int], ts_list: list[int],
           vals: list[float]) -> SeriesBatch:
    if not metrics:
        return SeriesBatch.empty()
    n = len(metrics)
    ts = np.asarray(ts_list, np.int64)
    values = np.asarray(vals, np.float64)
    if len(sidx) == n:  # every series once, in page order: nothing to group
        return SeriesBatch(metrics, labels, np.arange(n + 1, dtype=np.int64), ts, values)
    series = np.asarray(sidx, np.int64)
    order = np.lexsort((ts, series))  # stable: the first of equal timestamps stays first
    series, ts, values = series[order], ts[order], values[order]
    keep = np.ones(series.shape[0], bool)
    keep[1:] = (series[1:] != series[:-1]) | (ts[1:] != ts[:-1])
    series, ts, values = series[keep], ts[keep], values[keep]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(series, minlength=n), out=offsets[1:])
    return SeriesBatch(metrics, labels, offsets, ts, values)
