"""PromQL evaluation over an in-memory source: alignment, lookback, staleness, functions, aggregations."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from aurora.errors import BadInput
from aurora.query import instant_query, query_range
from aurora.query.promql import parse

STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
T0 = 1_700_000_000  # seconds


@dataclass(frozen=True)
class Info:
    id: int
    metric: str
    labels: dict[str, str] = field(default_factory=dict)


class FakeSource:
    def __init__(self) -> None:
        self.series: list[Info] = []
        self.data: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.reads: list[tuple[int, int, int]] = []

    def add(self, metric: str, labels: dict[str, str], points: list[tuple[float, float]]) -> FakeSource:
        sid = len(self.series)
        self.series.append(Info(sid, metric, labels))
        t = np.array([round((T0 + p[0]) * 1000) for p in points], dtype=np.int64)
        v = np.array([p[1] for p in points], dtype=np.float64)
        self.data[sid] = (t, v)
        return self

    def all_series(self) -> list[Info]:
        return self.series

    def read(self, series_id: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        self.reads.append((series_id, start_ms, end_ms))
        t, v = self.data[series_id]
        keep = (t >= start_ms) & (t <= end_ms)
        return t[keep], v[keep]


def qr(src: FakeSource, q: str, start: float, end: float, step: float, **kw: Any) -> list[dict[str, Any]]:
    body = query_range(src, q, T0 + start, T0 + end, step, **kw)
    assert body["status"] == "success" and body["data"]["resultType"] == "matrix"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def points(item: dict[str, Any]) -> list[tuple[float, float]]:
    return [(t - T0, float(v)) for t, v in item["values"]]


def only(result: list[dict[str, Any]]) -> list[tuple[float, float]]:
    assert len(result) == 1, result
    return points(result[0])


# ----------------------------------------------------------------------------- instant selectors


def test_step_alignment_takes_newest_sample_at_or_before_step() -> None:
    src = FakeSource().add("m", {"a": "1"}, [(10, 1.0), (25, 2.0), (40, 3.0)])
    res = qr(src, "m", 0, 60, 20)
    assert res[0]["metric"] == {"__name__": "m", "a": "1"}
    assert points(res[0]) == [(20, 1.0), (40, 3.0), (60, 3.0)]  # nothing at step 0


def test_lookback_window_is_left_open() -> None:
    src = FakeSource().add("m", {}, [(0, 7.0)])
    assert only(qr(src, "m", 0, 120, 30, lookback_s=60)) == [(0, 7.0), (30, 7.0)]  # 60 - 60 = 0 is excluded
    assert only(qr(src, "m", 0, 600, 100)) == [(0, 7.0), (100, 7.0), (200, 7.0)]  # default 5 m


def test_stale_marker_ends_the_series_until_a_new_sample() -> None:
    src = FakeSource().add("m", {}, [(0, 1.0), (15, 2.0), (30, STALE), (120, 5.0)])
    assert only(qr(src, "m", 0, 150, 15)) == [(0, 1.0), (15, 2.0), (120, 5.0), (135, 5.0), (150, 5.0)]


def test_ordinary_nan_is_a_value() -> None:
    src = FakeSource().add("m", {}, [(0, math.nan)])
    body = query_range(src, "m", T0, T0, 1)
    assert body["data"]["result"][0]["values"] == [[T0, "NaN"]]


def test_series_without_points_in_range_are_omitted() -> None:
    src = FakeSource().add("m", {"a": "1"}, [(0, 1.0)]).add("m", {"a": "2"}, [(10_000, 1.0)])
    res = qr(src, "m", 0, 60, 30)
    assert [r["metric"]["a"] for r in res] == ["1"]


def test_offset_shifts_the_lookup_not_the_timestamps() -> None:
    src = FakeSource().add("m", {}, [(0, 1.0), (60, 2.0), (120, 3.0)])
    assert only(qr(src, "m offset 1m", 60, 180, 60, lookback_s=30)) == [(60, 1.0), (120, 2.0), (180, 3.0)]


def test_reads_only_the_needed_window() -> None:
    src = FakeSource().add("m", {}, [(0, 1.0)])
    qr(src, "m", 100, 200, 10)
    assert src.reads == [(0, (T0 + 100 - 300) * 1000 + 1, (T0 + 200) * 1000)]


# ----------------------------------------------------------------------------- rate & co


def counter_src() -> FakeSource:
    # samples every 10 s; resets after 10 (to 2) and after 6 (to 1)
    return FakeSource().add("c", {"job": "x"}, [(0, 0.0), (10, 5.0), (20, 10.0), (30, 2.0), (40, 6.0), (50, 1.0),
                                                 (60, 4.0)])  # fmt: skip


def test_increase_with_counter_resets_by_hand() -> None:
    # window (0, 60]: samples 10..60 = 5 10 2 6 1 4 -> 4 - 5 + 10 + 6 = 15 over 50 s of 6 samples;
    # avg spacing 10 s, threshold 11 s: start gap 10 s extrapolated fully (zero point 50*5/15 = 16.7 s
    # is farther), end gap 0 -> factor (50 + 10 + 0) / 50 = 1.2 -> 18
    res = qr(counter_src(), "increase(c[1m])", 60, 60, 1)
    assert res[0]["metric"] == {"job": "x"}  # the metric name is dropped
    assert only(res) == [(60, pytest.approx(18.0))]
    assert only(qr(counter_src(), "rate(c[1m])", 60, 60, 1)) == [(60, pytest.approx(0.3))]


def test_delta_ignores_resets() -> None:
    # 4 - 5 = -1, same extrapolation factor 1.2 (no zero-point rule for gauges)
    assert only(qr(counter_src(), "delta(c[1m])", 60, 60, 1)) == [(60, pytest.approx(-1.2))]


def test_increase_extrapolates_only_to_the_counter_zero_point() -> None:
    src = FakeSource().add("c", {}, [(10, 1.0), (20, 11.0), (30, 21.0), (40, 31.0), (50, 41.0), (60, 51.0)])
    # result 50 over 50 s; zero point 50 * 1/50 = 1 s before the first sample < 10 s gap -> factor 51/50
    assert only(qr(src, "increase(c[1m])", 60, 60, 1)) == [(60, pytest.approx(51.0))]


def test_extrapolation_is_capped_at_half_a_spacing_when_the_series_starts_late() -> None:
    src = FakeSource().add("g", {}, [(30, 0.0), (40, 10.0), (50, 20.0)])
    # window (0, 60]; avg 10 s, threshold 11 s; start gap 30 s -> 5 s, end gap 10 s kept
    assert only(qr(src, "delta(g[1m])", 60, 60, 1)) == [(60, pytest.approx(20 * 35 / 20))]
    # counter: the first value is 0, so the zero point (0 s) wins over 5 s
    assert only(qr(src, "increase(g[1m])", 60, 60, 1)) == [(60, pytest.approx(20 * 30 / 20))]


def test_rate_needs_two_samples_and_steps_are_vectorised() -> None:
    src = counter_src()
    res = only(qr(src, "rate(c[15s])", 0, 60, 10))
    # every window (t-15, t] holds 2 samples from t = 10 on: (t-10, t) pairs
    assert [t for t, _ in res] == [10, 20, 30, 40, 50, 60]
    # t=30: samples 20 (10) and 30 (2): reset -> 2 - 10 + 10 = 2 over 10 s; start gap 20-15 = 5 s < 11;
    # zero point 10 * 10/2 = 50 s not shorter; end gap 0 -> factor 15/10 -> 3 / 15 s = 0.2
    assert dict(res)[30] == pytest.approx(0.2)


def test_irate_uses_last_two_samples_with_reset() -> None:
    res = dict(only(qr(counter_src(), "irate(c[1m])", 30, 60, 10)))
    assert res[30] == pytest.approx(2 / 10)  # reset: last value / interval
    assert res[40] == pytest.approx(4 / 10)
    assert res[60] == pytest.approx(3 / 10)


def test_rate_ignores_stale_markers_in_the_window() -> None:
    src = FakeSource().add("c", {}, [(10, 1.0), (20, 2.0), (30, STALE), (40, 4.0)])
    a = only(qr(src, "increase(c[40s])", 40, 40, 1))
    b = only(qr(FakeSource().add("c", {}, [(10, 1.0), (20, 2.0), (40, 4.0)]), "increase(c[40s])", 40, 40, 1))
    assert a == b


def test_over_time_functions() -> None:
    src = FakeSource().add("g", {"k": "v"}, [(10, 4.0), (20, 1.0), (30, math.nan), (40, 3.0), (50, 2.0)])
    # window (10, 50] holds 1 NaN 3 2 (the sample at 10 is outside: windows are left-open)
    want = {
        "sum_over_time": math.nan, "avg_over_time": math.nan, "count_over_time": 4.0,
        "min_over_time": 1.0, "max_over_time": 3.0, "last_over_time": 2.0,
    }  # fmt: skip
    for fn, expected in want.items():
        res = qr(src, f"{fn}(g[40s])", 50, 50, 1)
        got = only(res)[0][1]
        assert got == expected or (math.isnan(expected) and math.isnan(got)), fn
        if fn == "last_over_time":
            assert res[0]["metric"] == {"__name__": "g", "k": "v"}  # keeps the name, like offset
        else:
            assert res[0]["metric"] == {"k": "v"}
    assert only(qr(src, "sum_over_time(g[15s])", 50, 50, 1)) == [(50, 5.0)]
    assert only(qr(src, "avg_over_time(g[15s])", 50, 50, 1)) == [(50, 2.5)]
    assert only(qr(src, "max_over_time(g[50s])", 50, 50, 1)) == [(50, 4.0)]


def test_over_time_sliding_windows_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    ts = np.cumsum(rng.integers(5, 20, 300)).astype(float)
    vs = rng.normal(0, 10, 300)
    src = FakeSource().add("g", {}, list(zip(ts.tolist(), vs.tolist(), strict=True)))
    refs: dict[str, Callable[[np.ndarray], Any]] = {
        "sum_over_time": np.sum, "min_over_time": np.min, "max_over_time": np.max, "avg_over_time": np.mean,
    }  # fmt: skip
    for fn, ref in refs.items():
        got = dict(only(qr(src, f"{fn}(g[95s])", 0, float(ts[-1]), 7)))
        for t, val in got.items():
            window = vs[(ts > t - 95) & (ts <= t)]
            assert val == pytest.approx(float(ref(window)), rel=1e-9, abs=1e-9), (fn, t)
        steps = np.arange(0, ts[-1] + 1, 7)
        expect = [t for t in steps if ((ts > t - 95) & (ts <= t)).any()]
        assert sorted(got) == pytest.approx(expect)


def test_quantile_over_time_matches_prometheus_interpolation() -> None:
    src = FakeSource().add("g", {}, [(10, 1.0), (20, 4.0), (30, 2.0), (40, 3.0)])
    # sorted 1 2 3 4, q=0.9 -> rank 2.7 -> 3*0.3 + 4*0.7
    assert only(qr(src, "quantile_over_time(0.9, g[1m])", 40, 40, 1)) == [(40, pytest.approx(3.7))]
    assert only(qr(src, "quantile_over_time(0.5, g[1m])", 40, 40, 1)) == [(40, 2.5)]
    assert only(qr(src, "quantile_over_time(2, g[1m])", 40, 40, 1)) == [(40, math.inf)]
    assert only(qr(src, "quantile_over_time(-1, g[1m])", 40, 40, 1)) == [(40, -math.inf)]


# ----------------------------------------------------------------------------- aggregation & operators


def agg_src() -> FakeSource:
    src = FakeSource()
    src.add("up", {"job": "api", "instance": "a"}, [(0, 1.0)])
    src.add("up", {"job": "api", "instance": "b"}, [(0, 3.0)])
    src.add("up", {"job": "db", "instance": "c"}, [(0, 10.0)])
    return src


def values_by(res: list[dict[str, Any]]) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(r["metric"].items())): float(r["values"][0][1]) for r in res}


@pytest.mark.parametrize(
    ("q", "want"),
    [
        ("sum(up)", {(): 14.0}),
        ("sum by (job) (up)", {(("job", "api"),): 4.0, (("job", "db"),): 10.0}),
        ("sum(up) by (job)", {(("job", "api"),): 4.0, (("job", "db"),): 10.0}),
        ("avg without (instance) (up)", {(("job", "api"),): 2.0, (("job", "db"),): 10.0}),
        ("max(up) without (instance)", {(("job", "api"),): 3.0, (("job", "db"),): 10.0}),
        ("min by (job) (up)", {(("job", "api"),): 1.0, (("job", "db"),): 10.0}),
        ("count by (job) (up)", {(("job", "api"),): 2.0, (("job", "db"),): 1.0}),
        ("sum without (job, instance) (up)", {(): 14.0}),
        ("sum by (__name__) (up)", {(("__name__", "up"),): 14.0}),
        ("sum by () (up)", {(): 14.0}),
    ],
)
def test_aggregations(q: str, want: dict[Any, float]) -> None:
    assert values_by(qr(agg_src(), q, 0, 0, 1)) == want


def test_aggregation_counts_only_present_series_per_step() -> None:
    src = FakeSource().add("m", {"i": "1"}, [(0, 1.0), (60, 1.0)]).add("m", {"i": "2"}, [(60, 5.0)])
    assert only(qr(src, "sum(m)", 0, 60, 60, lookback_s=30)) == [(0, 1.0), (60, 6.0)]
    assert only(qr(src, "avg(m)", 0, 60, 60, lookback_s=30)) == [(0, 1.0), (60, 3.0)]


def test_binary_operators() -> None:
    src = agg_src()
    assert values_by(qr(src, 'up{instance="a"} * 2 + 1', 0, 0, 1)) == {(("instance", "a"), ("job", "api")): 3.0}
    assert values_by(qr(src, '10 / up{job="db"}', 0, 0, 1)) == {(("instance", "c"), ("job", "db")): 1.0}
    assert values_by(qr(src, '-up{job="db"}', 0, 0, 1)) == {(("instance", "c"), ("job", "db")): -10.0}
    assert only(qr(src, "1 + 2 * 3 - 4 / 2", 0, 10, 10)) == [(0, 5.0), (10, 5.0)]
    # vector / vector, one-to-one on identical label sets (name ignored)
    src.add("total", {"job": "api", "instance": "a"}, [(0, 4.0)])
    assert values_by(qr(src, "up / total", 0, 0, 1)) == {(("instance", "a"), ("job", "api")): 0.25}
    assert values_by(qr(src, 'sum by (job) (up) / sum by (job) (up{instance!="b"})', 0, 0, 1)) == {
        (("job", "api"),): 4.0,
        (("job", "db"),): 1.0,
    }


def test_division_by_zero_follows_ieee() -> None:
    src = FakeSource().add("m", {}, [(0, 1.0)]).add("z", {}, [(0, 0.0)])
    assert only(qr(src, "m / 0", 0, 0, 1)) == [(0, math.inf)]
    body = query_range(src, "z / 0", T0, T0, 1)
    assert body["data"]["result"][0]["values"] == [[T0, "NaN"]]


def test_abs_and_clamps() -> None:
    src = FakeSource().add("m", {"a": "1"}, [(0, -5.0), (10, 2.0), (20, 9.0)])
    assert only(qr(src, "abs(m)", 0, 20, 10)) == [(0, 5.0), (10, 2.0), (20, 9.0)]
    assert only(qr(src, "clamp_min(m, 0)", 0, 20, 10)) == [(0, 0.0), (10, 2.0), (20, 9.0)]
    assert only(qr(src, "clamp_max(m, 3)", 0, 20, 10)) == [(0, -5.0), (10, 2.0), (20, 3.0)]
    assert "__name__" not in qr(src, "abs(m)", 0, 0, 1)[0]["metric"]


def test_same_labelset_after_name_drop_is_an_error_only_when_overlapping() -> None:
    src = FakeSource().add("a", {"k": "v"}, [(0, 1.0)]).add("b", {"k": "v"}, [(0, 2.0)])
    with pytest.raises(BadInput, match="same labelset"):
        query_range(src, '{__name__=~"a|b"} * 1', T0, T0, 1)
    src2 = FakeSource().add("a", {"k": "v"}, [(0, 1.0)]).add("b", {"k": "v"}, [(100, 2.0)])
    assert only(qr(src2, '{__name__=~"a|b"} * 2', 0, 100, 100, lookback_s=10)) == [(0, 2.0), (100, 4.0)]


def test_results_are_sorted_by_labels() -> None:
    res = qr(agg_src(), "up", 0, 0, 1)
    assert [r["metric"]["instance"] for r in res] == ["a", "b", "c"]


# ----------------------------------------------------------------------------- limits, errors, instant


def test_eleven_thousand_points_limit() -> None:
    src = FakeSource().add("m", {}, [(0, 1.0)])
    assert len(qr(src, "m", 0, 11_000, 1, lookback_s=1e6)[0]["values"]) == 11_001
    with pytest.raises(BadInput, match="11,000 points"):
        query_range(src, "m", T0, T0 + 11_001, 1)


def test_bad_range_parameters() -> None:
    src = FakeSource()
    with pytest.raises(BadInput, match="step"):
        query_range(src, "m", T0, T0 + 10, 0)
    with pytest.raises(BadInput, match="before start"):
        query_range(src, "m", T0 + 10, T0, 1)
    with pytest.raises(BadInput, match="range vector"):
        query_range(src, "m[5m]", T0, T0, 1)


@pytest.mark.parametrize(
    ("q", "fragment", "pos"),
    [
        ("topk(3, m)", "unsupported PromQL: aggregation topk", 0),
        ("histogram_quantile(0.9, m)", "unsupported PromQL: function histogram_quantile()", 0),
        ("m > 1", 'unsupported PromQL: operator ">"', 2),
        ("m % 2", 'unsupported PromQL: operator "%"', 2),
        ("m and n", 'unsupported PromQL: operator "and"', 2),
        ("m + on(a) n", 'unsupported PromQL: "on" modifier', 4),
        ("m @ 100", "unsupported PromQL: @ modifier", 2),
        ("rate(m[5m:1m])", "unsupported PromQL: subquery", 9),
        ('"str"', "unsupported PromQL: string literal", 0),
        ("rate(m)", 'expected type range vector in call to function "rate", got instant vector', 5),
        ("abs(m[5m])", "expected type instant vector", 4),
        ("sum(m[5m])", "expected type instant vector in aggregation expression, got range vector", 4),
        ("rate(m[5m], 1)", 'expected 1 argument(s) in call to "rate", got 2', 0),
        ("sum(m", 'expected ")"', 5),
        ("m +", "expected an expression", 3),
        ("(m) offset 5m", "offset modifier must be preceded", 4),
        ("", "no expression", 0),
        ("m[5m] + 1", "binary expression must contain only scalar and instant vector types", 0),
    ],
)
def test_unsupported_and_bad_queries(q: str, fragment: str, pos: int) -> None:
    with pytest.raises(BadInput) as ei:
        parse(q)
    assert fragment in ei.value.message
    assert ei.value.details["position"] == pos, ei.value.message


def test_instant_query_vector_scalar_and_matrix() -> None:
    src = FakeSource().add("m", {"a": "1"}, [(0, 1.0), (10, 2.5), (20, 4.0)])
    body = instant_query(src, "m", T0 + 15)
    assert body["data"] == {"resultType": "vector", "result": [{"metric": {"__name__": "m", "a": "1"},
                                                                 "value": [T0 + 15, "2.5"]}]}  # fmt: skip
    assert instant_query(src, "2 * 3", T0)["data"] == {"resultType": "scalar", "result": [T0, "6"]}
    raw = instant_query(src, "m[15s]", T0 + 20)["data"]
    assert raw["resultType"] == "matrix"
    assert raw["result"][0]["values"] == [[T0 + 10, "2.5"], [T0 + 20, "4"]]
    assert instant_query(src, "m", T0 + 1000)["data"]["result"] == []


def test_scalar_range_query_is_one_series_without_labels() -> None:
    assert qr(FakeSource(), "42", 0, 20, 10) == [{"metric": {}, "values": [[T0, "42"], [T0 + 10, "42"],
                                                                            [T0 + 20, "42"]]}]  # fmt: skip


def test_fractional_times_are_kept_to_the_millisecond() -> None:
    src = FakeSource().add("m", {}, [(0, 1.0)])
    body = query_range(src, "m", T0 + 0.5, T0 + 1.5, 0.5)
    assert [v[0] for v in body["data"]["result"][0]["values"]] == [T0 + 0.5, T0 + 1, T0 + 1.5]
