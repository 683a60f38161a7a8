"""Prometheus text exposition 0.0.4 and OpenMetrics text, including real prometheus_client output."""

from __future__ import annotations

import math
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from aurora.errors import BadInput
from aurora.ingest.exposition import parse_exposition
from aurora.model import SeriesBatch

TS = 1_700_000_000_000


def as_dict(batch: SeriesBatch) -> dict[str, list[tuple[int, float]]]:
    out = {}
    for i, key in enumerate(batch.keys()):
        s = batch.series_slice(i)
        out[key] = list(zip(batch.ts_ms[s].tolist(), batch.values[s].tolist(), strict=True))
    return out


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    c = Counter("requests", "Requests served", ["method"], registry=reg)
    c.labels("GET").inc(3)
    h = Histogram("latency_seconds", "Latency", buckets=[0.1, 1], registry=reg)
    h.observe(0.5)
    s = Summary("payload_bytes", "Payload", registry=reg)
    s.observe(100)
    g = Gauge("temperature", 'Temp with "quotes" and \\ backslash', ["path"], registry=reg)
    g.labels('a"b\\c\nd}, x="y"').set(float("nan"))
    g.labels("inf").set(float("inf"))
    return reg


def test_prometheus_client_text_output() -> None:
    batch = parse_exposition(generate_latest(registry()).decode(), TS)
    d = as_dict(batch)
    assert d['requests_total{method="GET"}'] == [(TS, 3.0)]
    assert 'requests_created{method="GET"}' in d  # a declared gauge in 0.0.4; Prometheus keeps it
    assert d['latency_seconds_bucket{le="0.1"}'] == [(TS, 0.0)]
    assert d['latency_seconds_bucket{le="1.0"}'] == [(TS, 1.0)]
    assert d['latency_seconds_bucket{le="+Inf"}'] == [(TS, 1.0)]
    assert d["latency_seconds_count"] == [(TS, 1.0)]
    assert d["latency_seconds_sum"] == [(TS, 0.5)]
    assert d["payload_bytes_sum"] == [(TS, 100.0)]
    i = batch.labels.index({"path": 'a"b\\c\nd}, x="y"'})
    assert batch.metrics[i] == "temperature" and math.isnan(batch.values[i])
    assert d['temperature{path="inf"}'] == [(TS, math.inf)]


def test_openmetrics_output_skips_created_and_reads_eof() -> None:
    text = generate_openmetrics(registry()).decode()
    assert text.rstrip().endswith("# EOF")
    batch = parse_exposition(text, TS)
    assert not [m for m in batch.metrics if m.endswith("_created")]
    assert as_dict(batch)['requests_total{method="GET"}'] == [(TS, 3.0)]


def test_timestamps_special_values_escapes_and_comments() -> None:
    text = "\n".join([
        "# a free comment",
        "# HELP x Some help",
        "# TYPE x gauge",
        'x{a="1",b="two words"} 1.5 1700000000123',
        'x{b="two words",a="1"} 2.5 1700000000456',  # same series, labels in another order
        "y -Inf",
        "z +Inf",
        "w NaN",
        'esc{v="q\\"b\\\\n\\n"} 1e3',
        'bucket{le="1"} 4',
        "  spaced   7   ",
        'trailing{a="1",} 1',
        "empty{} 2",
        'blank{a=""} 3',
        "",
    ])
    d = as_dict(parse_exposition(text, TS))
    assert d['x{a="1",b="two words"}'] == [(1_700_000_000_123, 1.5), (1_700_000_000_456, 2.5)]
    assert d["y"] == [(TS, -math.inf)] and d["z"] == [(TS, math.inf)]
    assert math.isnan(d["w"][0][1])
    assert d['esc{v="q\\"b\\\\n\\n"}'] == [(TS, 1000.0)]  # keys re-escape: the value is q"b\n<newline>
    assert d['bucket{le="1.0"}'] == [(TS, 4.0)]  # le normalised as Prometheus 3 does
    assert d["spaced"] == [(TS, 7.0)]
    assert d['trailing{a="1"}'] == [(TS, 1.0)]
    assert d["empty"] == [(TS, 2.0)]
    assert d["blank"] == [(TS, 3.0)]


def test_openmetrics_exemplars_and_seconds_timestamps() -> None:
    text = "\n".join([
        "# TYPE rpc_seconds histogram",
        'rpc_seconds_bucket{le="0.5"} 3 # {trace_id="abc#1"} 0.25 1700000000.5',
        'rpc_seconds_bucket{le="+Inf"} 4 1700000001.25',
        "rpc_seconds_count 4",
        "rpc_seconds_created 1699999999.0",
        "# EOF",
        "",
    ])
    d = as_dict(parse_exposition(text, TS))
    assert d['rpc_seconds_bucket{le="0.5"}'] == [(TS, 3.0)]
    assert d['rpc_seconds_bucket{le="+Inf"}'] == [(1_700_000_001_250, 4.0)]
    assert "rpc_seconds_created" not in d


def test_repeated_timestamp_keeps_the_first_sample() -> None:
    d = as_dict(parse_exposition("a 1 1000\na 2 1000\na 3 500\n", TS))
    assert d["a"] == [(500, 3.0), (1000, 1.0)]


@pytest.mark.parametrize(("text", "line", "why"), [
    ("ok 1\nbad line here\n", 2, "value 'line' is not a number"),
    ("ok 1\n\nx{a=1} 2\n", 3, "labels are malformed"),
    ('x{a="1" b="2"} 1', 1, "labels are malformed"),
    ('x{a="1",a="2"} 1', 1, "label 'a' appears twice"),
    ("x one", 1, "value 'one' is not a number"),
    ("x 1_000", 1, "is not a number"),
    ("x 1 12.5", 1, "not integer milliseconds"),
    ("# TYPE x sideways\nx 1", 1, "unknown metric type"),
    ('x{a="unterminated} 1', 1, "not a sample line"),
])
def test_bad_lines_name_their_line_number(text: str, line: int, why: str) -> None:
    with pytest.raises(BadInput, match=f"exposition line {line}: .*{why}") as err:
        parse_exposition(text, TS)
    assert err.value.details["line"] == line


def test_pathological_label_block_fails_fast() -> None:
    start = time.perf_counter()
    with pytest.raises(BadInput):
        parse_exposition("x{" + "a" * 50_000 + " 1", TS)
    assert time.perf_counter() - start < 1.0


def test_ten_thousand_lines_parse_quickly() -> None:
    lines = []
    for i in range(2500):
        lines.append(f"# HELP m{i} help")
        lines.append(f'http_requests_total{{method="GET",path="/api/{i}",status="200"}} {i}.5')
        lines.append(f'latency_bucket{{le="0.{i % 9 + 1}",svc="s{i}"}} {i}')
        lines.append(f"plain_{i} 1 1700000000000")
    text = "\n".join(lines)
    batch = parse_exposition(text, TS)  # its speed is measured in benchmarks/, never asserted in a test
    assert batch.n_samples == 7500
