from __future__ import annotations

import math

import numpy as np
import pytest

from aurora.clock import EventClock
from aurora.config import LimitsConfig
from aurora.errors import BadInput, LimitExceeded
from aurora.ingest.validate import validate_batch
from aurora.model import BatchBuilder, SeriesBatch

NOW = 1_700_000_000.0
BASE_MS = int(NOW * 1000) - 3_600_000  # the tests' timestamps are milliseconds after this (an hour ago)


def batch(*series: tuple[str, dict[str, str], list[int], list[float]], base: int = BASE_MS) -> SeriesBatch:
    b = BatchBuilder()
    for m, lab, ts, vals in series:
        b.add(m, lab, [base + t for t in ts], vals)
    return b.build()


def clock() -> EventClock:
    return EventClock("wall", wall=lambda: NOW)


def test_good_batch_passes_unchanged() -> None:
    b = batch(("m", {"a": "1"}, [1000, 2000], [1.0, 2.0]))
    assert validate_batch(b, LimitsConfig(), clock()) is b


@pytest.mark.parametrize("metric,labels,match", [
    ("1abc", {}, "metric name"),
    ("m", {"a-b": "x"}, "label name"),
    ("m", {"__name__": "x"}, "label name"),
    ("m", {"a": "x" * 3000}, "limits.max_label_value_length"),
])
def test_names(metric: str, labels: dict[str, str], match: str) -> None:
    with pytest.raises(BadInput, match=match):
        validate_batch(batch((metric, labels, [1000], [1.0])), LimitsConfig(), clock())


def test_duplicate_series_in_one_request() -> None:
    with pytest.raises(BadInput, match="appears twice"):
        validate_batch(batch(("m", {}, [1000], [1.0]), ("m", {}, [2000], [1.0])), LimitsConfig(), clock())


def test_order_within_series_but_not_across() -> None:
    ok = batch(("a", {}, [5000], [1.0]), ("b", {}, [1000], [1.0]))
    validate_batch(ok, LimitsConfig(), clock())
    with pytest.raises(BadInput, match="increasing time order"):
        validate_batch(batch(("a", {}, [2000, 2000], [1.0, 2.0])), LimitsConfig(), clock())


def test_future_limit_on_either_clock() -> None:
    """Ahead of the wall clock is refused on the data clock too (a replay is never ahead of it)."""
    future = int((NOW + 3600) * 1000)
    with pytest.raises(BadInput, match="in the future"):
        validate_batch(batch(("m", {}, [future], [1.0]), base=0), LimitsConfig(), clock())
    with pytest.raises(BadInput, match="in the future"):
        validate_batch(batch(("m", {}, [future], [1.0]), base=0), LimitsConfig(), EventClock("data", wall=lambda: NOW))
    validate_batch(batch(("m", {}, [future - 3_600_000], [1.0]), base=0), LimitsConfig(), EventClock("data"))


def test_timestamps_before_the_floor_are_refused() -> None:
    """Seconds sent as remote_write milliseconds (1.7e9 ms = 20 January 1970), or a zero timestamp."""
    seconds_as_ms = int(NOW)
    wrong_unit = batch(("ok", {}, [BASE_MS], [1.0]), ("m", {"a": "1"}, [seconds_as_ms], [1.0]), base=0)
    with pytest.raises(BadInput, match=r"m\{a=\"1\"\} at 1700000.000 \(1970-01-20T.*before 2000-01-01T.*min_time_s"):
        validate_batch(wrong_unit, LimitsConfig(), clock())
    with pytest.raises(BadInput, match="min_time_s"):
        validate_batch(batch(("m", {}, [0], [1.0]), base=0), LimitsConfig(), EventClock("data"))
    # a replay of 2014 data passes; an operator can lower the floor for older archives
    validate_batch(batch(("m", {}, [1_400_000_000_000], [1.0]), base=0), LimitsConfig(), EventClock("data"))
    validate_batch(batch(("m", {}, [seconds_as_ms], [1.0]), base=0), LimitsConfig(min_time_s=0), clock())


def test_request_size_limits() -> None:
    limits = LimitsConfig(max_series_per_request=1, max_labels_per_series=1)
    with pytest.raises(LimitExceeded, match="max_series_per_request"):
        validate_batch(batch(("a", {}, [1], [1.0]), ("b", {}, [1], [1.0])), limits, clock())
    with pytest.raises(LimitExceeded, match="max_labels_per_series"):
        validate_batch(batch(("a", {"x": "1", "y": "2"}, [1], [1.0])), limits, clock())


def test_non_finite_policies() -> None:
    b = batch(("a", {}, [1000, 2000, 3000], [1.0, math.nan, math.inf]), ("b", {}, [1000], [math.nan]))
    assert validate_batch(b, LimitsConfig(non_finite="store"), clock()).n_samples == 4
    with pytest.raises(BadInput, match="non-finite"):
        validate_batch(b, LimitsConfig(non_finite="reject"), clock())
    kept = validate_batch(b, LimitsConfig(non_finite="drop"), clock())
    assert kept.n_samples == 1 and list(kept.offsets) == [0, 1, 1]
    assert np.array_equal(kept.values, [1.0])


def test_known_series_skip_name_checks_but_duplicates_are_caught() -> None:
    b = batch(("known", {"a": "1"}, [1000], [1.0]), ("new", {"b": "2"}, [1000], [1.0]))
    known_ids = np.array([7, -1], np.int64)
    validate_batch(b, LimitsConfig(), clock(), known_ids)
    # a known series skips the name checks (it passed them when it was created)
    odd = batch(("9legacy", {}, [1000], [1.0]))
    validate_batch(odd, LimitsConfig(), clock(), np.array([3], np.int64))
    twice = batch(("known", {"a": "1"}, [1000], [1.0]), ("known", {"a": "1", "x": "y"}, [1000], [1.0]))
    with pytest.raises(BadInput, match="appears twice"):
        validate_batch(twice, LimitsConfig(), clock(), np.array([7, 7], np.int64))
    bad_new = batch(("known", {"a": "1"}, [1000], [1.0]), ("9new", {}, [1000], [1.0]))
    with pytest.raises(BadInput, match="metric name"):
        validate_batch(bad_new, LimitsConfig(), clock(), known_ids)
