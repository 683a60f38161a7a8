"""Stateless checks every ingest path runs on a whole batch before anything is stored.

Checks that need the store's state (order against stored samples, cardinality per metric) live in the
store; this module checks what the batch alone can tell: sizes, names, label syntax, values, timestamps.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from aurora.clock import EventClock
from aurora.config import LimitsConfig
from aurora.errors import BadInput, LimitExceeded
from aurora.model import LABEL_NAME_RE, METRIC_NAME_RE, SeriesBatch, series_key


def _check_series_names(batch: SeriesBatch, limits: LimitsConfig, known_ids: np.ndarray | None) -> None:
    """Names, label syntax and sizes of series the store does not know yet (known ones passed before),
    and that no series appears twice."""
    todo: range | np.ndarray = range(batch.n_series)
    if known_ids is not None:
        ids = known_ids
        known = ids[ids >= 0]
        if np.unique(known).size != known.size:
            dup = int(np.flatnonzero(np.bincount(known) > 1)[0])
            i = int(np.flatnonzero(ids == dup)[1])
            raise BadInput(f"series {series_key(batch.metrics[i], batch.labels[i])} appears twice in the request; "
                           "send its samples in one entry", series_index=i)
        todo = np.flatnonzero(ids < 0)
    seen: set[str] = set()
    for i in (int(j) for j in todo):
        metric, labels = batch.metrics[i], batch.labels[i]
        if not metric:
            raise BadInput(f"series {i} has no metric name", series_index=i)
        if len(metric) > limits.max_metric_name_length:
            raise LimitExceeded(
                f"metric name of series {i} is {len(metric)} characters; the limit is "
                f"{limits.max_metric_name_length} (limits.max_metric_name_length)", series_index=i)
        if not METRIC_NAME_RE.match(metric):
            raise BadInput(f"metric name {metric!r} is not valid: use letters, digits, '_' and ':', "
                           "not starting with a digit", series_index=i)
        if len(labels) > limits.max_labels_per_series:
            raise LimitExceeded(f"series {metric} has {len(labels)} labels; the limit is "
                                f"{limits.max_labels_per_series} (limits.max_labels_per_series)", series_index=i)
        for name, value in labels.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise BadInput(f"label {name!r} of {metric}: names and values must be strings", series_index=i)
            if len(name) > limits.max_label_name_length:
                raise LimitExceeded(f"label name {name[:40]!r}... of {metric} is {len(name)} characters; the "
                                    f"limit is {limits.max_label_name_length}", series_index=i)
            if not LABEL_NAME_RE.match(name) or name.startswith("__"):
                raise BadInput(f"label name {name!r} of {metric} is not valid: use letters, digits and '_', "
                               "not starting with a digit or '__'", series_index=i)
            if len(value) > limits.max_label_value_length:
                raise LimitExceeded(f"value of label {name!r} of {metric} is {len(value)} characters; the "
                                    f"limit is {limits.max_label_value_length} "
                                    "(limits.max_label_value_length)", series_index=i)
        key = series_key(metric, labels)
        if key in seen:
            raise BadInput(f"series {key} appears twice in the request; send its samples in one entry",
                           series_index=i)
        seen.add(key)


def drop_empty(batch: SeriesBatch, known_ids: np.ndarray) -> tuple[SeriesBatch, np.ndarray]:
    """The batch without its series that have no samples (an empty ``points`` list, or every value dropped as
    non-finite), and their ids: a request that stores no sample of a series must not create it."""
    counts = batch.counts()
    if counts.all():
        return batch, known_ids
    keep = np.flatnonzero(counts)
    offsets = np.zeros(keep.size + 1, np.int64)
    np.cumsum(counts[keep], out=offsets[1:])
    return (SeriesBatch([batch.metrics[i] for i in keep], [batch.labels[i] for i in keep], offsets, batch.ts_ms,
                        batch.values), known_ids[keep])


def _when(ts_ms: int) -> str:
    """The date a millisecond timestamp means, for messages about a wrong unit."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fmt_ts(ts_ms: int) -> str:
    return f"{ts_ms / 1000:.3f}"


def _bad_sample(batch: SeriesBatch, series_of: np.ndarray, j: int, why: str) -> BadInput:
    """"sample of <series> at <time> <why>", for the sample at flat index ``j``."""
    i = int(series_of[j])
    return BadInput(f"sample of {series_key(batch.metrics[i], batch.labels[i])} at {_fmt_ts(int(batch.ts_ms[j]))} "
                    f"{why}", series_index=i)


def validate_batch(batch: SeriesBatch, limits: LimitsConfig, clock: EventClock,
                   known_ids: np.ndarray | None = None) -> SeriesBatch:
    """Return the batch to store (non-finite values dropped when so configured) or raise a 4xx error.

    ``known_ids`` (the store's ids per batch series, -1 for new ones, as ``TSDB.known_ids`` gives them): known
    series skip the per-series name checks, which would otherwise dominate the cost of a scrape-shaped batch."""
    if batch.n_series > limits.max_series_per_request:
        raise LimitExceeded(f"request has {batch.n_series} series; the limit is "
                            f"{limits.max_series_per_request} (limits.max_series_per_request)")
    if batch.n_samples > limits.max_samples_per_request:
        raise LimitExceeded(f"request has {batch.n_samples} samples; the limit is "
                            f"{limits.max_samples_per_request} (limits.max_samples_per_request)")
    _check_series_names(batch, limits, known_ids)
    if batch.n_samples == 0:
        return batch

    ts = batch.ts_ms
    counts = batch.counts()
    series_of = np.repeat(np.arange(batch.n_series), counts)
    # Strictly increasing within each series (a new series starts where offsets say).
    if ts.shape[0] > 1:
        step_back = np.diff(ts) <= 0
        same_series = series_of[1:] == series_of[:-1]
        bad = np.flatnonzero(step_back & same_series)
        if bad.size:
            j = int(bad[0])
            i = int(series_of[j])
            raise BadInput(
                f"samples of {series_key(batch.metrics[i], batch.labels[i])} are not in increasing time order "
                f"at {_fmt_ts(int(ts[j]))} then {_fmt_ts(int(ts[j + 1]))}; sort them and send each timestamp once",
                series_index=i)
    if int(ts.min()) < int(limits.min_time_s * 1000):
        j = int(np.argmin(ts))
        raise _bad_sample(batch, series_of, j, (
            f"({_when(int(ts[j]))}) is before {_when(int(limits.min_time_s * 1000))} (limits.min_time_s). "
            "Timestamps are unix time: seconds in JSON, milliseconds in remote_write (seconds sent as "
            "milliseconds land in January 1970)"))
    # On the data clock too: no sender is ahead of the wall clock (a replay or the simulator never is), and one
    # far-future sample would move event time, and every cooldown and verification with it, forward for good.
    horizon = clock.wall_ms() + int(limits.max_future_s * 1000)
    if int(ts.max()) > horizon:
        j = int(np.argmax(ts))
        raise _bad_sample(batch, series_of, j, (
            f"is {(int(ts[j]) - clock.wall_ms()) / 1000:.0f} s in the future; the limit is "
            f"{limits.max_future_s:.0f} s (limits.max_future_s). Check the sender's clock and that "
            "timestamps are in seconds (JSON) or milliseconds (remote_write)"))

    finite = np.isfinite(batch.values)
    if finite.all() or limits.non_finite == "store":
        return batch
    if limits.non_finite == "reject":
        j = int(np.flatnonzero(~finite)[0])
        i = int(series_of[j])
        raise BadInput(f"sample of {series_key(batch.metrics[i], batch.labels[i])} at {_fmt_ts(int(ts[j]))} "
                       f"is {batch.values[j]}; non-finite values are refused (limits.non_finite=reject)",
                       series_index=i)
    kept_counts = np.bincount(series_of[finite], minlength=batch.n_series)
    offsets = np.zeros(batch.n_series + 1, np.int64)
    np.cumsum(kept_counts, out=offsets[1:])
    return SeriesBatch(batch.metrics, batch.labels, offsets, ts[finite], batch.values[finite])
