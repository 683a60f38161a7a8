"""Prometheus JSON shapes, Go float formatting, HTTP parameter parsing, series and label endpoints."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from aurora.errors import AuroraError, BadInput
from aurora.query import label_names, label_values, parse_duration, parse_time, series_match
from aurora.query.response import error_body, format_timestamp, format_value, format_values, matrix_body


@pytest.mark.parametrize(
    ("v", "s"),
    [
        (1.0, "1"), (1.5, "1.5"), (0.0, "0"), (-0.0, "-0"), (-2.0, "-2"), (1e21, "1000000000000000000000"),
        (1e-7, "0.0000001"), (0.1 + 0.2, "0.30000000000000004"), (123456789.125, "123456789.125"),
        (1.2345678901234568e20, "123456789012345680000"), (2.5e-5, "0.000025"), (1e16, "10000000000000000"),
        (math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (5e-324, "0." + "0" * 323 + "5"),
    ],
)  # fmt: skip
def test_format_value_like_go_formatfloat_f_minus1(v: float, s: str) -> None:
    assert format_value(v) == s
    assert format_values(np.array([v])) == [s]


def test_format_values_fast_paths_agree_with_scalar_formatting() -> None:
    rng = np.random.default_rng(5)
    arrays = [
        np.round(rng.normal(0, 1e9, 2000), 1), np.round(rng.normal(0, 10, 2000), 3),
        np.round(rng.normal(0, 1, 2000), 4), rng.random(500), np.arange(-50, 50, dtype=float),
        np.array([1.0, 2.5, math.nan, -0.0, 1e300, 3.25]), np.round(rng.normal(0, 1e14, 100), 2),
    ]  # fmt: skip
    for arr in arrays:
        assert format_values(arr) == [format_value(x) for x in arr.tolist()]


def test_timestamps_are_numbers_integer_when_whole() -> None:
    assert format_timestamp(1_700_000_000_000) == 1_700_000_000
    assert isinstance(format_timestamp(1_700_000_000_000), int)
    assert format_timestamp(1_700_000_000_500) == 1_700_000_000.5
    assert json.dumps(format_timestamp(1_700_000_000_123)) == "1700000000.123"


def test_matrix_body_shape() -> None:
    body = matrix_body([({"job": "x", "__name__": "m"}, np.array([1_700_000_000_000, 1_700_000_015_000]),
                         np.array([1.0, 1.5]))])  # fmt: skip
    assert json.loads(json.dumps(body)) == {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {"__name__": "m", "job": "x"}, "values": [[1700000000, "1"], [1700000015, "1.5"]]}],
        },
    }
    assert list(body["data"]["result"][0]["metric"]) == ["__name__", "job"]  # sorted like Prometheus


def test_error_body() -> None:
    status, body = error_body(BadInput("1:3: parse error: boom"))
    assert status == 400
    assert body == {"status": "error", "errorType": "bad_data", "error": "1:3: parse error: boom"}
    assert error_body(RuntimeError("x"))[0] == 500
    assert error_body(AuroraError("y"))[1]["errorType"] == "internal"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1700000000", 1_700_000_000.0), ("1700000000.5", 1_700_000_000.5), ("1700000000.1234", 1_700_000_000.123),
        ("2023-11-14T22:13:20Z", 1_700_000_000.0), ("2023-11-14T22:13:20.25Z", 1_700_000_000.25),
        ("2023-11-14T23:13:20.999999999+01:00", 1_700_000_000.999), ("-1.5", -1.5),
    ],
)  # fmt: skip
def test_parse_time(text: str, seconds: float) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "NaN", "Inf", "2023-11-14", "2023-13-14T00:00:00Z", "1e400", "1_000"])
def test_parse_time_errors(text: str) -> None:
    with pytest.raises(BadInput, match="cannot parse"):
        parse_time(text, "start")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15", 15.0), ("0.5", 0.5), ("15s", 15.0), ("1h30m", 5400.0), ("250ms", 0.25), ("1d", 86400.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "fast", "5 m", "30m1h", "NaN"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(BadInput, match='invalid parameter "step": cannot parse'):
        parse_duration(text, "step")


@dataclass(frozen=True)
class Info:
    id: int
    metric: str
    labels: dict[str, str] = field(default_factory=dict)


class Src:
    def __init__(self) -> None:
        self.series = [
            Info(0, "up", {"job": "api", "instance": "a"}),
            Info(1, "up", {"job": "db"}),
            Info(2, "mem_bytes", {"service": "cart"}),
        ]
        self.data = {0: [1000], 1: [5_000_000], 2: [1000, 2000]}

    def all_series(self) -> list[Info]:
        return self.series

    def read(self, series_id: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        t = np.array([x for x in self.data[series_id] if start_ms <= x <= end_ms], dtype=np.int64)
        return t, np.ones(len(t))


def test_series_endpoint() -> None:
    body = series_match(Src(), ["up", '{service="cart"}'])
    assert body == {
        "status": "success",
        "data": [
            {"__name__": "mem_bytes", "service": "cart"},
            {"__name__": "up", "instance": "a", "job": "api"},
            {"__name__": "up", "job": "db"},
        ],
    }
    # with a time range only series with data in it
    assert [s["__name__"] for s in series_match(Src(), ["up"], 0, 10)["data"]] == ["up"]
    with pytest.raises(BadInput, match="no match"):
        series_match(Src(), [])
    with pytest.raises(BadInput, match="non-empty matcher"):
        series_match(Src(), ['{job=~".*"}'])
    with pytest.raises(BadInput, match="range vector selector not allowed"):
        series_match(Src(), ["up[5m]"])


def test_labels_and_label_values_endpoints() -> None:
    assert label_names(Src())["data"] == ["__name__", "instance", "job", "service"]
    assert label_names(Src(), ["mem_bytes"])["data"] == ["__name__", "service"]
    assert label_values(Src(), "job")["data"] == ["api", "db"]
    assert label_values(Src(), "__name__")["data"] == ["mem_bytes", "up"]
    assert label_values(Src(), "job", ['up{instance="a"}'])["data"] == ["api"]
    assert label_values(Src(), "nope")["data"] == []
