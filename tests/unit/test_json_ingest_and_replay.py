from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aurora.api.json_ingest import parse_json_ingest
from aurora.errors import BadInput
from aurora.replay import parse_column, read_samples


def test_json_points_to_ms_and_special_values() -> None:
    b = parse_json_ingest({"series": [{"metric": "m", "labels": {"a": "1"},
                                       "points": [[1700000000.5, 1], [1700000001, "NaN"], [1700000002, "+Inf"]]}]})
    assert list(b.ts_ms) == [1700000000500, 1700000001000, 1700000002000]
    assert b.values[0] == 1 and math.isnan(b.values[1]) and b.values[2] == math.inf


@pytest.mark.parametrize("body,match", [
    ([], "JSON object"),
    ({"series": [{"metric": 1}]}, "metric must be a string"),
    ({"series": [{"metric": "m", "labels": {"a": 1}}]}, "labels"),
    ({"series": [{"metric": "m", "points": [[1, 2, 3]]}]}, r"points\[0\]"),
    ({"series": [{"metric": "m", "points": [[1, True]]}]}, r"points\[0\]\[1\]"),
])
def test_json_errors_point_at_the_field(body: object, match: str) -> None:
    with pytest.raises(BadInput, match=match):
        parse_json_ingest(body)


def test_wide_csv_with_iso_times(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text('timestamp,cpu{host="a"},mem\n2024-01-01 00:00:00,1.5,10\n2024-01-01 00:05:00,2.5,\n')
    s = read_samples(p)
    assert s.metrics == ["cpu", "mem"] and s.labels[0] == {"host": "a"}
    assert len(s) == 3  # the empty cell is no sample
    batches = list(s.batches(10))
    assert sum(b.n_samples for b in batches) == 3
    assert batches[0].ts_ms.min() == 1704067200000


def test_long_csv_and_batches_keep_time_order(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    rows = ["time,metric,value,service"] + [f"{1000 + t},lat,{t},s{k}" for t in range(10) for k in range(3)]
    p.write_text("\n".join(rows) + "\n")
    s = read_samples(p)
    seen_max = -1
    for b in s.batches(4):
        assert b.ts_ms.min() > seen_max  # batches are consecutive time slices
        seen_max = int(b.ts_ms.max())
        for i in range(b.n_series):
            assert np.all(np.diff(b.ts_ms[b.series_slice(i)]) > 0)


def test_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"metric": "m", "labels": {"a": "b"}, "time": 10, "value": 1}\n'
                 '{"series": [{"metric": "m", "labels": {"a": "b"}, "points": [[20, 2]]}]}\n')
    s = read_samples(p)
    assert len(s.metrics) == 1 and list(s.values) == [1.0, 2.0]


def test_column_parse() -> None:
    assert parse_column('http_latency{service="cart",q="0.99"}', "f") == ("http_latency",
                                                                          {"service": "cart", "q": "0.99"})
    with pytest.raises(BadInput):
        parse_column("9x", "f")
