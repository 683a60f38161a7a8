"""Query layer: PromQL subset over a SeriesSource, answered in the Prometheus HTTP API shape."""

from aurora.query.params import parse_duration, parse_time
from aurora.query.promql import instant_query, label_names, label_values, query_range, series_match
from aurora.query.response import error_body

__all__ = [
    "error_body",
    "instant_query",
    "label_names",
    "label_values",
    "parse_duration",
    "parse_time",
    "query_range",
    "series_match",
]
