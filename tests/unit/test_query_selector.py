"""Selector parsing (good and bad, with positions) and label matching."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from aurora.errors import BadInput
from aurora.query.lexer import parse_prom_duration_ms, tokenize
from aurora.query.selector import Matcher, compile_regex, match, parse_selector


@dataclass(frozen=True)
class Info:
    id: int
    metric: str
    labels: dict[str, str] = field(default_factory=dict)


SERIES = [
    Info(0, "node_cpu", {"job": "node", "mode": "idle"}),
    Info(1, "node_mem", {"job": "node"}),
    Info(2, "http_requests", {"job": "api", "code": "200"}),
    Info(3, "http_requests", {"job": "api", "code": "500"}),
    Info(4, "http_requests", {"job": "apiserver"}),
]


def ids(sel: str) -> list[int]:
    return [s.id for s in match(SERIES, parse_selector(sel).matchers)]


def test_plain_metric_name() -> None:
    sel = parse_selector("http_requests")
    assert sel.matchers == (Matcher("__name__", "=", "http_requests", 0),)
    assert sel.range_ms is None and sel.offset_ms == 0
    assert ids("http_requests") == [2, 3, 4]


def test_all_four_operators_and_whitespace_and_trailing_comma() -> None:
    sel = parse_selector('  m { a = "x" , b != "y", c=~"r.*" ,d!~"q" , }  ')
    assert [(m.name, m.op, m.value) for m in sel.matchers] == [
        ("__name__", "=", "m"),
        ("a", "=", "x"),
        ("b", "!=", "y"),
        ("c", "=~", "r.*"),
        ("d", "!~", "q"),
    ]


def test_name_in_braces_and_regex_on_name() -> None:
    assert ids('{__name__=~"node_.*",job="node"}') == [0, 1]
    assert ids('{__name__="node_mem"}') == [1]
    assert ids('{"node_mem"}') == [1]  # Prometheus 3 quoted metric name


def test_string_escapes_all_quote_styles() -> None:
    sel = parse_selector(r"""m{a="q\"x\n\\", b='it\'s "ok"', c=`raw\n"`, d="\x41\u00e9\101"}""")
    vals = {m.name: m.value for m in sel.matchers}
    assert vals["a"] == 'q"x\n\\'
    assert vals["b"] == 'it\'s "ok"'
    assert vals["c"] == 'raw\\n"'
    assert vals["d"] == "A\u00e9A"


def test_range_and_offset() -> None:
    sel = parse_selector("m[1h30m] offset -5m")
    assert sel.range_ms == 5_400_000
    assert sel.offset_ms == -300_000
    assert parse_selector("m[90s]").range_ms == 90_000


@pytest.mark.parametrize(
    ("text", "ms"),
    [("5m", 300_000), ("1h30m", 5_400_000), ("250ms", 250), ("2d", 172_800_000), ("1w", 604_800_000),
     ("1y", 31_536_000_000), ("1m30s500ms", 90_500), ("0", 0)],
)  # fmt: skip
def test_durations(text: str, ms: int) -> None:
    assert parse_prom_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "5", "m", "30m1h", "1h1h", "5 m", "1.5h"])
def test_bad_durations(text: str) -> None:
    assert parse_prom_duration_ms(text) is None


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ('foo{bar="baz"', 13, 'expected "," or "}"'),
        ('foo{bar~"x"}', 7, "unexpected character '~'"),
        ("foo{bar=baz}", 8, "expected string"),
        ('foo{="x"}', 4, "expected label name"),
        ('foo{bar="x" baz="y"}', 12, 'expected "," or "}"'),
        ('foo{a="\\q"}', 7, "unknown escape sequence \\q"),
        ('foo{a="x}', 6, "unterminated quoted string"),
        ("foo[5m", 6, 'expected "]"'),
        ("foo[5x]", 4, "bad number or duration syntax"),
        ("foo[0s]", 4, "range duration must be greater than 0"),
        ("foo[30m1h]", 4, "bad duration"),
        ("foo[5m:1m]", 6, "unsupported PromQL: subquery"),
        ('foo{__name__="bar"}', 4, "metric name must not be set twice"),
        ('foo{a=~"("}', 7, "invalid regular expression"),
        ("foo offset", 10, "expected duration"),
        ("foo bar", 4, "expected end of selector"),
        ("{}", 0, "at least one non-empty matcher"),
        ('{a=""}', 0, "at least one non-empty matcher"),
        ('{a=~".*",b!="x"}', 0, "at least one non-empty matcher"),
        ("", 0, "empty selector"),
    ],
)
def test_parse_errors_name_position_and_expectation(text: str, position: int, fragment: str) -> None:
    with pytest.raises(BadInput) as ei:
        parse_selector(text)
    assert ei.value.details["position"] == position, ei.value.message
    assert fragment in ei.value.message
    assert ei.value.message.startswith(f"1:{position + 1}: parse error: ")


def test_error_position_on_second_line() -> None:
    with pytest.raises(BadInput) as ei:
        parse_selector('foo{\n  a="x",\n  b=1}')
    assert ei.value.details["line"] == 3 and ei.value.details["column"] == 5


def test_regex_is_fully_anchored() -> None:
    assert ids('http_requests{job=~"api"}') == [2, 3]  # not apiserver
    assert ids('http_requests{job=~"api.*"}') == [2, 3, 4]
    assert ids('http_requests{job!~"api"}') == [4]
    assert ids('http_requests{code=~"2.."}') == [2]
    assert ids('http_requests{job=~"a|apiserver"}') == [4]  # alternation inside the anchors
    assert compile_regex("a.b").fullmatch("a\nb")  # (?s): dot matches newline, like Prometheus


def test_regex_cannot_escape_anchoring_group() -> None:
    with pytest.raises(BadInput):
        parse_selector('m{a=~"x)|(y"}')


def test_missing_label_is_empty_string() -> None:
    assert ids('http_requests{code=""}') == [4]
    assert ids('http_requests{code!=""}') == [2, 3]
    assert ids('http_requests{code=~"|200"}') == [2, 4]


def test_empty_matcher_rule_in_match() -> None:
    with pytest.raises(BadInput, match="non-empty matcher"):
        match(SERIES, [Matcher("job", "=~", ".*")])
    with pytest.raises(BadInput):
        match(SERIES, [])
    # one matcher that does not match "" is enough, even next to ones that do
    assert [s.id for s in match(SERIES, [Matcher("job", "=", "node"), Matcher("x", "=", "")])] == [0, 1]


def test_regex_compiled_once() -> None:
    compile_regex.cache_clear()
    for _ in range(3):
        ids('http_requests{job=~"ap.*"}')
    info = compile_regex.cache_info()
    assert info.misses == 1  # compiled at the first parse, reused by every later parse and match
    assert info.hits >= 3


def test_tokens_carry_positions() -> None:
    toks = tokenize("rate(x[5m])  + 1")
    assert [(t.kind, t.pos) for t in toks] == [
        ("IDENT", 0), ("LPAREN", 4), ("IDENT", 5), ("LBRACKET", 6), ("DURATION", 7), ("RBRACKET", 9),
        ("RPAREN", 10), ("ADD", 13), ("NUMBER", 15), ("EOF", 16),
    ]  # fmt: skip
