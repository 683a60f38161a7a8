"""PromQL vector selectors: parsing (``metric{a="x",b=~"re"}[5m] offset 1h``) and label matching.

Regexes are fully anchored the way Prometheus anchors them (``^(?s:re)$``: ``.`` also matches a
newline) and compiled once per distinct pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from aurora.errors import BadInput
from aurora.model import LABEL_NAME_RE
from aurora.query.lexer import Token, parse_error, tokenize
from aurora.query.source import SeriesInfo

__all__ = [
    "Matcher",
    "Selector",
    "TokenStream",
    "check_selectable",
    "compile_regex",
    "match",
    "parse_selector",
    "parse_selector_tokens",
]

_MATCH_OPS = {"EQ": "=", "NEQ": "!=", "RE": "=~", "NRE": "!~"}


@lru_cache(maxsize=4096)
def compile_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` anchored at both ends like Prometheus (``^(?s:pattern)$``); raises re.error."""
    re.compile(pattern)  # alone first, so "a)|(b" cannot escape the anchoring group
    return re.compile(f"(?s:{pattern})")


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str
    pos: int = 0

    def matches(self, v: str) -> bool:
        op = self.op
        if op == "=":
            return v == self.value
        if op == "!=":
            return v != self.value
        hit = compile_regex(self.value).fullmatch(v) is not None
        return hit if op == "=~" else not hit

    @property
    def matches_empty(self) -> bool:
        return self.matches("")

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


@dataclass(frozen=True, slots=True)
class Selector:
    matchers: tuple[Matcher, ...]
    range_ms: int | None = None  # set for a range vector selector (``[5m]``)
    offset_ms: int = 0
    pos: int = 0
    text: str = ""  # the selector's source text, for messages

    @property
    def metric_name(self) -> str | None:
        for m in self.matchers:
            if m.name == "__name__" and m.op == "=":
                return m.value
        return None


class TokenStream:
    """A cursor over the tokens of one query, with Prometheus-style "unexpected X, expected Y" errors."""

    def __init__(self, text: str, tokens: list[Token] | None = None) -> None:
        self.text = text
        self.toks = tokens if tokens is not None else tokenize(text)
        self.i = 0

    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Token:
        t = self.toks[self.i]
        if t.kind != "EOF":
            self.i += 1
        return t

    def accept(self, kind: str) -> Token | None:
        if self.peek().kind == kind:
            return self.next()
        return None

    def expect(self, kind: str, what: str) -> Token:
        t = self.peek()
        if t.kind != kind:
            raise self.error(t, f"unexpected {t.describe()}, expected {what}")
        return self.next()

    def error(self, tok: Token | int, message: str) -> BadInput:
        return parse_error(self.text, tok if isinstance(tok, int) else tok.pos, message)


def _parse_matchers(ts: TokenStream) -> list[Matcher]:
    ts.expect("LBRACE", '"{"')
    out: list[Matcher] = []
    while True:
        t = ts.peek()
        if t.kind == "RBRACE":
            ts.next()
            return out
        if t.kind == "STRING" and ts.peek(1).kind in ("COMMA", "RBRACE"):
            # Prometheus 3: a lone quoted string is the metric name ({"my.metric"})
            ts.next()
            out.append(Matcher("__name__", "=", t.text, t.pos))
        else:
            if t.kind == "IDENT":
                name = t.text
                if not LABEL_NAME_RE.match(name):
                    raise ts.error(t, f'invalid label name "{name}"')
            elif t.kind == "STRING":
                name = t.text  # quoted (UTF-8) label name
                if not name:
                    raise ts.error(t, "label name must not be empty")
            else:
                raise ts.error(t, f'unexpected {t.describe()} in label matching, expected label name or "}}"')
            ts.next()
            op_tok = ts.peek()
            if op_tok.kind not in _MATCH_OPS:
                raise ts.error(
                    op_tok,
                    f'unexpected {op_tok.describe()} in label matching, expected one of "=", "!=", "=~", "!~"',
                )
            ts.next()
            val = ts.peek()
            if val.kind != "STRING":
                raise ts.error(val, f"unexpected {val.describe()} in label matching, expected string")
            ts.next()
            m = Matcher(name, _MATCH_OPS[op_tok.kind], val.text, t.pos)
            if m.op in ("=~", "!~"):
                try:
                    compile_regex(m.value)
                except re.error as exc:
                    raise ts.error(val, f"invalid regular expression {m.value!r}: {exc}") from None
            out.append(m)
        sep = ts.peek()
        if sep.kind == "COMMA":
            ts.next()
            continue
        if sep.kind != "RBRACE":
            raise ts.error(sep, f'unexpected {sep.describe()} in label matching, expected "," or "}}"')


def parse_selector_tokens(ts: TokenStream, allow_range: bool = True, allow_offset: bool = True) -> Selector:
    """Parse ``name{...}`` / ``name`` / ``{...}`` then an optional ``[range]`` and ``offset``."""
    start = ts.peek()
    matchers: list[Matcher] = []
    name: str | None = None
    if start.kind == "IDENT":
        ts.next()
        name = start.text
        matchers.append(Matcher("__name__", "=", name, start.pos))
        if ts.peek().kind == "LBRACE":
            inner = _parse_matchers(ts)
            for m in inner:
                if m.name == "__name__":
                    raise ts.error(m.pos, f'metric name must not be set twice: "{name}" or "{m.value}"')
            matchers.extend(inner)
    elif start.kind == "LBRACE":
        matchers = _parse_matchers(ts)
    else:
        raise ts.error(start, f'unexpected {start.describe()}, expected metric name or "{{"')
    check_selectable(matchers, ts, start.pos)
    range_ms: int | None = None
    if ts.peek().kind == "LBRACKET":
        lb = ts.next()
        if not allow_range:
            raise ts.error(lb, "range vector selector not allowed here")
        d = ts.peek()
        if d.kind == "DURATION":
            range_ms = int(d.value or 0)
        elif d.kind == "NUMBER" and d.value is not None and float(d.value) >= 0:
            range_ms = round(float(d.value) * 1000)  # float seconds, as Prometheus 3 accepts
        else:
            raise ts.error(d, f"unexpected {d.describe()}, expected duration like 5m")
        ts.next()
        if range_ms <= 0:
            raise ts.error(d, "range duration must be greater than 0")
        close = ts.peek()
        if close.kind == "COLON" or (close.kind == "IDENT" and close.text.startswith(":")):
            raise ts.error(close, "unsupported PromQL: subquery")
        ts.expect("RBRACKET", '"]"')
    offset_ms = 0
    nxt = ts.peek()
    if nxt.kind == "IDENT" and nxt.text == "offset":
        if not allow_offset:
            raise ts.error(nxt, "offset modifier not allowed here")
        ts.next()
        sign = 1
        if ts.accept("SUB"):
            sign = -1
        else:
            ts.accept("ADD")
        d = ts.peek()
        if d.kind == "DURATION":
            offset_ms = sign * int(d.value or 0)
        elif d.kind == "NUMBER" and d.value is not None:
            offset_ms = sign * round(float(d.value) * 1000)
        else:
            raise ts.error(d, f"unexpected {d.describe()} after offset, expected duration like 5m")
        ts.next()
        if ts.peek().kind == "LBRACKET":
            raise ts.error(ts.peek(), "no offset modifiers allowed before range")
    if ts.peek().kind == "AT":
        raise ts.error(ts.peek(), "unsupported PromQL: @ modifier")
    end = ts.peek().pos
    return Selector(tuple(matchers), range_ms, offset_ms, start.pos, ts.text[start.pos : end].strip())


def check_selectable(matchers: Sequence[Matcher], ts: TokenStream | None = None, pos: int = 0) -> None:
    """Prometheus' rule: at least one matcher must not match the empty string (else "select all")."""
    if not matchers or all(m.matches_empty for m in matchers):
        msg = "vector selector must contain at least one non-empty matcher"
        if ts is not None:
            raise ts.error(pos, msg)
        raise BadInput(msg)


def parse_selector(text: str, allow_range: bool = True, allow_offset: bool = True) -> Selector:
    """Parse one complete selector; anything after it is an error. ``match[]`` takes neither range nor offset."""
    ts = TokenStream(text)
    if ts.peek().kind == "EOF":
        raise ts.error(ts.peek(), 'empty selector, expected metric name or "{"')
    sel = parse_selector_tokens(ts, allow_range, allow_offset)
    t = ts.peek()
    if t.kind != "EOF":
        raise ts.error(t, f"unexpected {t.describe()}, expected end of selector")
    return sel


S = TypeVar("S", bound=SeriesInfo)


def match(series_list: Iterable[S], matchers: Sequence[Matcher]) -> list[S]:
    """The series whose label set (``__name__`` included; a missing label is "") satisfies every matcher."""
    check_selectable(matchers)
    name_eq = [m.value for m in matchers if m.name == "__name__" and m.op == "="]
    rest = [m for m in matchers if not (m.name == "__name__" and m.op == "=")]
    out: list[S] = []
    for s in series_list:
        metric = s.metric
        if name_eq and any(metric != v for v in name_eq):
            continue
        labels = s.labels
        ok = True
        for m in rest:
            v = metric if m.name == "__name__" else labels.get(m.name, "")
            if not m.matches(v):
                ok = False
                break
        if ok:
            out.append(s)
    return out
