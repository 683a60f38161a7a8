"""A small, honest subset of PromQL, parsed into a tiny AST and evaluated over a range of steps.

Supported: instant and range vector selectors (with ``offset``), number literals, unary ``-``/``+``,
``+ - * /`` between scalars and vectors and between two vectors with identical label sets (one-to-one,
``__name__`` ignored), ``sum avg min max count`` with ``by``/``without`` before or after the argument,
the range functions ``rate irate increase delta avg_over_time min_over_time max_over_time
sum_over_time count_over_time last_over_time quantile_over_time`` and ``abs clamp_min clamp_max``.
Anything else raises ``BadInput("unsupported PromQL: ...")``.

Semantics follow Prometheus 3: a step at time t sees the newest sample in (t - lookback, t] unless that
sample is the staleness marker; range windows are (t - range, t]; rate/increase/delta extrapolate the
way ``extrapolatedRate`` does, counter resets included. Evaluation is vectorised over the steps of each
series (``np.searchsorted`` aligns samples to steps); Python loops run over series and groups only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from aurora.errors import BadInput
from aurora.query.lexer import Token
from aurora.query.params import to_ms
from aurora.query.response import labels_body, matrix_body, scalar_body, series_body, vector_body
from aurora.query.selector import Selector, TokenStream, match, parse_selector, parse_selector_tokens
from aurora.query.source import SeriesInfo, SeriesSource, is_stale, series_labels

__all__ = [
    "MAX_POINTS",
    "Agg",
    "Binary",
    "Call",
    "Evaluator",
    "MatrixSel",
    "NumberLit",
    "Series",
    "Unary",
    "VectorSel",
    "evaluate_range",
    "instant_query",
    "label_names",
    "label_values",
    "parse",
    "query_range",
    "series_match",
    "value_type",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolArr = npt.NDArray[np.bool_]

#: Prometheus refuses range queries with more than this many steps per series.
MAX_POINTS = 11_000

RANGE_FUNCS = {
    "rate",
    "irate",
    "increase",
    "delta",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
}
AGG_OPS = {"sum", "avg", "min", "max", "count"}
UNSUPPORTED_AGG_OPS = {
    "topk", "bottomk", "quantile", "count_values", "stddev", "stdvar", "group", "limitk", "limit_ratio",
}  # fmt: skip
_NAME = "__name__"


# ----------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class NumberLit:
    value: float
    pos: int = 0


@dataclass(frozen=True, slots=True)
class VectorSel:
    sel: Selector


@dataclass(frozen=True, slots=True)
class MatrixSel:
    sel: Selector


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Node, ...]
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Agg:
    op: str
    expr: Node
    grouping: tuple[str, ...] = ()
    without: bool = False
    by: bool = False
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # + - * /
    lhs: Node
    rhs: Node
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # + -
    expr: Node
    pos: int = 0


Node = Union[NumberLit, VectorSel, MatrixSel, Call, Agg, Binary, Unary]  # noqa: UP007


def value_type(node: Node) -> str:
    """``scalar``, ``vector`` (instant vector) or ``matrix`` (range vector)."""
    if isinstance(node, NumberLit):
        return "scalar"
    if isinstance(node, MatrixSel):
        return "matrix"
    if isinstance(node, Unary):
        return value_type(node.expr)
    if isinstance(node, Binary):
        both = (value_type(node.lhs), value_type(node.rhs))
        return "scalar" if both == ("scalar", "scalar") else "vector"
    return "vector"


_TYPE_NAMES = {"scalar": "scalar", "vector": "instant vector", "matrix": "range vector"}


# ----------------------------------------------------------------------------- parser

_BINOPS = {"ADD": "+", "SUB": "-", "MUL": "*", "DIV": "/"}
_UNSUPPORTED_BINOPS = {
    "MOD": "%", "POW": "^", "EQLC": "==", "NEQ": "!=", "LSS": "<", "GTR": ">", "LTE": "<=", "GTE": ">=",
}  # fmt: skip
_UNSUPPORTED_WORD_OPS = {"and", "or", "unless", "atan2"}
_MODIFIERS = {"bool", "on", "ignoring", "group_left", "group_right"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.ts = TokenStream(text)

    def parse(self) -> Node:
        if self.ts.peek().kind == "EOF":
            raise self.ts.error(self.ts.peek(), "no expression found in input")
        node = self.expr()
        t = self.ts.peek()
        if t.kind != "EOF":
            self._check_unsupported_op(t)
            raise self.ts.error(t, f"unexpected {t.describe()}, expected an operator or end of input")
        return node

    def _check_unsupported_op(self, t: Token) -> None:
        if t.kind in _UNSUPPORTED_BINOPS:
            raise self.ts.error(t, f'unsupported PromQL: operator "{_UNSUPPORTED_BINOPS[t.kind]}"')
        if t.kind == "IDENT" and t.text in _UNSUPPORTED_WORD_OPS:
            raise self.ts.error(t, f'unsupported PromQL: operator "{t.text}"')
        if t.kind == "AT":
            raise self.ts.error(t, "unsupported PromQL: @ modifier")
        if t.kind == "LBRACKET":
            raise self.ts.error(t, "unsupported PromQL: subquery (or range applied to a non-selector)")

    def _binop_tail(self, op_tok: Token) -> None:
        t = self.ts.peek()
        if t.kind == "IDENT" and t.text in _MODIFIERS:
            raise self.ts.error(t, f'unsupported PromQL: "{t.text}" modifier on binary operator {op_tok.text}')

    def _check_operand(self, node: Node, pos: int) -> None:
        if value_type(node) == "matrix":
            raise self.ts.error(pos, "binary expression must contain only scalar and instant vector types")

    def expr(self) -> Node:
        start = self.ts.peek().pos
        lhs = self.term()
        while self.ts.peek().kind in ("ADD", "SUB"):
            op = self.ts.next()
            self._binop_tail(op)
            rstart = self.ts.peek().pos
            rhs = self.term()
            self._check_operand(lhs, start)
            self._check_operand(rhs, rstart)
            lhs = Binary(op.text, lhs, rhs, op.pos)
        return lhs

    def term(self) -> Node:
        start = self.ts.peek().pos
        lhs = self.unary()
        while True:
            t = self.ts.peek()
            if t.kind in ("MUL", "DIV"):
                op = self.ts.next()
                self._binop_tail(op)
                rstart = self.ts.peek().pos
                rhs = self.unary()
                self._check_operand(lhs, start)
                self._check_operand(rhs, rstart)
                lhs = Binary(op.text, lhs, rhs, op.pos)
                continue
            self._check_unsupported_op(t)
            return lhs

    def unary(self) -> Node:
        t = self.ts.peek()
        if t.kind in ("ADD", "SUB"):
            self.ts.next()
            inner = self.unary()
            if value_type(inner) == "matrix":
                raise self.ts.error(t, "unary expression only allowed on expressions of type scalar or instant vector")
            if isinstance(inner, NumberLit):
                return NumberLit(-inner.value if t.kind == "SUB" else inner.value, t.pos)
            return Unary(t.text, inner, t.pos) if t.kind == "SUB" else inner
        return self.primary()

    def primary(self) -> Node:
        t = self.ts.peek()
        if t.kind == "NUMBER":
            self.ts.next()
            return NumberLit(float(t.value or 0.0), t.pos)
        if t.kind == "STRING":
            raise self.ts.error(t, "unsupported PromQL: string literal as an expression")
        if t.kind == "DURATION":
            raise self.ts.error(t, f"unexpected duration {t.text!r}, expected an expression")
        if t.kind == "LPAREN":
            self.ts.next()
            inner = self.expr()
            self.ts.expect("RPAREN", '")"')
            nxt = self.ts.peek()
            if nxt.kind == "LBRACKET":
                raise self.ts.error(nxt, "unsupported PromQL: subquery")
            if nxt.kind == "IDENT" and nxt.text == "offset":
                raise self.ts.error(
                    nxt, "offset modifier must be preceded by an instant vector selector or range vector selector"
                )
            return inner
        if t.kind == "IDENT":
            nxt = self.ts.peek(1)
            name = t.text
            if name in AGG_OPS and (nxt.kind == "LPAREN" or (nxt.kind == "IDENT" and nxt.text in ("by", "without"))):
                return self.aggregation()
            if name in UNSUPPORTED_AGG_OPS and nxt.kind in ("LPAREN", "IDENT"):
                raise self.ts.error(t, f"unsupported PromQL: aggregation {name}")
            if nxt.kind == "LPAREN":
                return self.call()
        if t.kind in ("IDENT", "LBRACE"):
            sel = parse_selector_tokens(self.ts)
            return MatrixSel(sel) if sel.range_ms is not None else VectorSel(sel)
        raise self.ts.error(t, f"unexpected {t.describe()}, expected an expression")

    def grouping(self) -> tuple[str, ...]:
        self.ts.expect("LPAREN", '"(" after by/without')
        labels: list[str] = []
        while True:
            t = self.ts.peek()
            if t.kind == "RPAREN":
                self.ts.next()
                return tuple(labels)
            if t.kind not in ("IDENT", "STRING"):
                raise self.ts.error(t, f"unexpected {t.describe()} in grouping opts, expected label")
            self.ts.next()
            labels.append(t.text)
            sep = self.ts.peek()
            if sep.kind == "COMMA":
                self.ts.next()
            elif sep.kind != "RPAREN":
                raise self.ts.error(sep, f'unexpected {sep.describe()} in grouping opts, expected "," or ")"')

    def _modifier(self) -> tuple[str, tuple[str, ...]] | None:
        t = self.ts.peek()
        if t.kind == "IDENT" and t.text in ("by", "without"):
            self.ts.next()
            return t.text, self.grouping()
        return None

    def aggregation(self) -> Node:
        op_tok = self.ts.next()
        pre = self._modifier()
        self.ts.expect("LPAREN", f'"(" after {op_tok.text}')
        arg_start = self.ts.peek().pos
        if self.ts.peek().kind == "RPAREN":
            raise self.ts.error(self.ts.peek(), f"no arguments for aggregate expression {op_tok.text} provided")
        arg = self.expr()
        if self.ts.peek().kind == "COMMA":
            raise self.ts.error(self.ts.peek(), f"unsupported PromQL: parameter for aggregation {op_tok.text}")
        self.ts.expect("RPAREN", '")"')
        post = self._modifier()
        if pre and post:
            raise self.ts.error(self.ts.peek(), "grouping given both before and after the aggregation")
        mod = pre or post
        typ = value_type(arg)
        if typ != "vector":
            raise self.ts.error(
                arg_start, f"expected type instant vector in aggregation expression, got {_TYPE_NAMES[typ]}"
            )
        grouping = mod[1] if mod else ()
        return Agg(
            op_tok.text,
            arg,
            grouping,
            without=bool(mod and mod[0] == "without"),
            by=bool(mod and mod[0] == "by"),
            pos=op_tok.pos,
        )

    def call(self) -> Node:
        name_tok = self.ts.next()
        name = name_tok.text
        sig = _SIGNATURES.get(name)
        if sig is None:
            raise self.ts.error(name_tok, f"unsupported PromQL: function {name}()")
        self.ts.expect("LPAREN", '"("')
        args: list[Node] = []
        starts: list[int] = []
        if self.ts.peek().kind != "RPAREN":
            while True:
                starts.append(self.ts.peek().pos)
                args.append(self.expr())
                if self.ts.accept("COMMA"):
                    if self.ts.peek().kind == "RPAREN":  # trailing comma
                        break
                    continue
                break
        self.ts.expect("RPAREN", '"," or ")"')
        if len(args) != len(sig):
            raise self.ts.error(name_tok, f'expected {len(sig)} argument(s) in call to "{name}", got {len(args)}')
        for want, arg, pos in zip(sig, args, starts, strict=True):
            got = value_type(arg)
            if got != want:
                raise self.ts.error(
                    pos,
                    f'expected type {_TYPE_NAMES[want]} in call to function "{name}", got {_TYPE_NAMES[got]}',
                )
        return Call(name, tuple(args), name_tok.pos)


_SIGNATURES: dict[str, tuple[str, ...]] = {f: ("matrix",) for f in RANGE_FUNCS}
_SIGNATURES["quantile_over_time"] = ("scalar", "matrix")
_SIGNATURES["abs"] = ("vector",)
_SIGNATURES["clamp_min"] = ("vector", "scalar")
_SIGNATURES["clamp_max"] = ("vector", "scalar")


def parse(text: str) -> Node:
    """Parse a PromQL expression of the supported subset; BadInput with position otherwise."""
    return _Parser(text).parse()


# ----------------------------------------------------------------------------- values


@dataclass(slots=True)
class Series:
    """One series over all steps: ``present[i]`` says whether ``values[i]`` exists at step i."""

    labels: dict[str, str]
    values: F64
    present: BoolArr


Value = Union[F64, list[Series]]  # noqa: UP007  (a scalar is an array of one value per step)


def _label_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _drop_name(labels: dict[str, str]) -> dict[str, str]:
    if _NAME not in labels:
        return labels
    out = dict(labels)
    del out[_NAME]
    return out


def _merge_same_labels(series: list[Series]) -> list[Series]:
    """After a name drop two series may share a label set: fine if they never overlap, else an error."""
    if len(series) < 2:
        return series
    groups: dict[tuple[tuple[str, str], ...], list[Series]] = {}
    for s in series:
        groups.setdefault(_label_key(s.labels), []).append(s)
    if len(groups) == len(series):
        return series
    out: list[Series] = []
    for members in groups.values():
        if len(members) == 1:
            out.append(members[0])
            continue
        count = np.sum([m.present for m in members], axis=0)
        if (count > 1).any():
            raise BadInput(
                "vector cannot contain metrics with the same labelset: "
                + "{"
                + ", ".join(f'{k}="{v}"' for k, v in sorted(members[0].labels.items()))
                + "}"
            )
        values = np.full_like(members[0].values, np.nan)
        present = np.zeros_like(members[0].present)
        for m in members:
            values = np.where(m.present, m.values, values)
            present |= m.present
        out.append(Series(members[0].labels, values, present))
    return out


# ----------------------------------------------------------------------------- range functions


def _window_reduce(ufunc: np.ufunc, v: F64, lo: I64, hi: I64) -> F64:
    """ufunc.reduce(v[lo[k]:hi[k]]) for every k (garbage where lo == hi; mask it)."""
    v2 = np.append(v, 0.0)  # reduceat needs every index < len; hi may equal len(v)
    idx = np.empty(2 * len(lo), dtype=np.intp)
    idx[0::2] = lo
    idx[1::2] = hi
    out: F64 = ufunc.reduceat(v2, idx)[0::2]
    return out


def _extrapolated_rate(
    t: I64, v: F64, lo: I64, hi: I64, t_eval: I64, range_ms: int, is_counter: bool, is_rate: bool
) -> tuple[F64, BoolArr]:
    """Prometheus' extrapolatedRate, vectorised over the steps."""
    n = hi - lo
    ok = n >= 2
    if not ok.any():
        return np.full(len(t_eval), np.nan), ok
    last_i = np.maximum(hi - 1, 0)
    first_i = np.minimum(lo, len(v) - 1)
    first_v, last_v = v[first_i], v[last_i]
    first_t, last_t = t[first_i], t[last_i]
    result = last_v - first_v
    if is_counter and len(v) > 1:
        resets = np.flatnonzero(v[1:] < v[:-1]) + 1  # index of the sample after each reset
        if len(resets):
            # a reset at pair (i-1, i) counts in windows with lo + 1 <= i <= hi - 1; add the value before it
            before = v[resets - 1]
            a = np.searchsorted(resets, lo + 1, side="left")
            b = np.searchsorted(resets, hi - 1, side="right")
            has = ok & (b > a)
            if has.any():
                sums = _window_reduce(np.add, before, a, np.maximum(a, b))
                result = np.where(has, result + sums, result)
    with np.errstate(divide="ignore", invalid="ignore"):
        range_start = t_eval - range_ms
        dur_start = (first_t - range_start) / 1000.0
        dur_end = (t_eval - last_t) / 1000.0
        sampled = (last_t - first_t) / 1000.0
        avg = sampled / np.maximum(n - 1, 1)
        threshold = avg * 1.1
        dur_start = np.where(dur_start >= threshold, avg / 2, dur_start)
        if is_counter:
            to_zero = sampled * (first_v / result)
            use_zero = (result > 0) & (first_v >= 0) & (to_zero < dur_start)
            dur_start = np.where(use_zero, to_zero, dur_start)
        dur_end = np.where(dur_end >= threshold, avg / 2, dur_end)
        factor = (sampled + dur_start + dur_end) / sampled
        if is_rate:
            factor = factor / (range_ms / 1000.0)
        out = result * factor
    return out, ok & (sampled > 0)


def _irate(t: I64, v: F64, lo: I64, hi: I64) -> tuple[F64, BoolArr]:
    n = hi - lo
    last_i = np.maximum(hi - 1, 0)
    prev_i = np.maximum(hi - 2, 0)
    last_v, prev_v = v[last_i], v[prev_i]
    dt = t[last_i] - t[prev_i]
    ok = (n >= 2) & (dt != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.where(last_v < prev_v, last_v, last_v - prev_v)
        out = diff / (dt / 1000.0)
    return out, ok


def _quantile_windows(q: F64, v: F64, lo: I64, hi: I64) -> F64:
    """Prometheus' quantile (rank q*(n-1), linear interpolation; NaNs sort first) per window."""
    steps = len(lo)
    n = hi - lo
    out = np.full(steps, np.nan)
    width = int(n.max()) if steps else 0
    if width == 0:
        return out
    v_pad = np.append(v, np.inf)
    cols = np.arange(width)
    rows_per_chunk = max(1, 2_000_000 // width)
    for s0 in range(0, steps, rows_per_chunk):  # chunks bound memory; each chunk is one NumPy pass
        s1 = min(steps, s0 + rows_per_chunk)
        lo_c, n_c = lo[s0:s1], n[s0:s1]
        idx = lo_c[:, None] + cols[None, :]
        inside = cols[None, :] < n_c[:, None]
        mat = np.where(inside, v_pad[np.minimum(idx, len(v))], np.inf)
        mat.sort(axis=1)  # NumPy puts NaN last (after the +Inf padding); Prometheus puts it first
        nan_count = np.isnan(mat).sum(axis=1)
        q_c = q[s0:s1]
        nf = n_c.astype(np.float64)
        rank = q_c * (nf - 1)
        lower = np.maximum(0.0, np.floor(rank))
        upper = np.minimum(nf - 1, lower + 1)
        weight = rank - np.floor(rank)

        def at(i: F64, mat: F64 = mat, nan_count: npt.NDArray[np.intp] = nan_count) -> F64:
            ii = np.nan_to_num(i, nan=0.0).astype(np.int64)
            src = np.clip(ii - nan_count, 0, width - 1)
            got = np.take_along_axis(mat, src[:, None], axis=1)[:, 0]
            return np.where(ii < nan_count, np.nan, got)

        with np.errstate(invalid="ignore"):
            res = at(lower) * (1 - weight) + at(upper) * weight
        res = np.where(q_c < 0, -np.inf, np.where(q_c > 1, np.inf, res))
        res = np.where(np.isnan(q_c), np.nan, res)
        out[s0:s1] = res
    return out


def _range_function(name: str, t: I64, v: F64, t_eval: I64, range_ms: int, q: F64 | None = None) -> tuple[F64, BoolArr]:
    lo = np.searchsorted(t, t_eval - range_ms, side="right").astype(np.int64)
    hi = np.searchsorted(t, t_eval, side="right").astype(np.int64)
    n = hi - lo
    present = n > 0
    if name in ("rate", "increase", "delta"):
        return _extrapolated_rate(t, v, lo, hi, t_eval, range_ms, name != "delta", name == "rate")
    if name == "irate":
        return _irate(t, v, lo, hi)
    if not present.any():
        return np.full(len(t_eval), np.nan), present
    if name == "count_over_time":
        return n.astype(np.float64), present
    if name == "last_over_time":
        return v[np.maximum(hi - 1, 0)], present
    if name == "sum_over_time":
        return _window_reduce(np.add, v, lo, hi), present
    if name == "avg_over_time":
        with np.errstate(invalid="ignore", divide="ignore"):
            return _window_reduce(np.add, v, lo, hi) / np.maximum(n, 1), present
    if name == "min_over_time":
        return _window_reduce(np.fmin, v, lo, hi), present
    if name == "max_over_time":
        return _window_reduce(np.fmax, v, lo, hi), present
    if name == "quantile_over_time":
        assert q is not None
        return _quantile_windows(q, v, lo, hi), present
    raise BadInput(f"unsupported PromQL: function {name}()")  # pragma: no cover - parser filters


# ----------------------------------------------------------------------------- evaluator


_ARITH: dict[str, Callable[[F64, F64], F64]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
}


class Evaluator:
    """Evaluates an AST at the steps ``steps_ms`` (int64 unix ms) against one SeriesSource."""

    def __init__(self, source: SeriesSource, steps_ms: I64, lookback_ms: int) -> None:
        self.source = source
        self.steps = np.asarray(steps_ms, dtype=np.int64)
        self.lookback_ms = int(lookback_ms)
        self._all: Sequence[SeriesInfo] | None = None

    def all_series(self) -> Sequence[SeriesInfo]:
        if self._all is None:
            self._all = self.source.all_series()
        return self._all

    def _read(self, sid: int, start_ms: int, end_ms: int) -> tuple[I64, F64]:
        t, v = self.source.read(sid, start_ms, end_ms)
        return np.asarray(t, dtype=np.int64), np.ascontiguousarray(v, dtype=np.float64)

    # -- dispatch
    def eval(self, node: Node) -> Value:
        if isinstance(node, NumberLit):
            return np.full(len(self.steps), node.value)
        if isinstance(node, VectorSel):
            return self.vector_selector(node.sel)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Agg):
            return self.aggregate(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Unary):
            val = self.eval(node.expr)
            if isinstance(val, np.ndarray):
                return -val
            return _merge_same_labels([Series(_drop_name(s.labels), -s.values, s.present) for s in val])
        if isinstance(node, MatrixSel):
            raise BadInput("a range vector cannot be evaluated here")
        raise BadInput(f"unsupported PromQL: {type(node).__name__}")  # pragma: no cover

    def scalar(self, node: Node) -> F64:
        val = self.eval(node)
        if not isinstance(val, np.ndarray):
            raise BadInput("expected a scalar")
        return val

    # -- selectors
    def vector_selector(self, sel: Selector) -> list[Series]:
        steps = self.steps
        t_eval = steps - sel.offset_ms
        lb = self.lookback_ms
        out: list[Series] = []
        for info in match(self.all_series(), sel.matchers):
            t, v = self._read(info.id, int(t_eval[0]) - lb + 1, int(t_eval[-1]))
            if len(t) == 0:
                continue
            idx = np.searchsorted(t, t_eval, side="right") - 1
            ok = idx >= 0
            idx_c = np.maximum(idx, 0)
            ok &= t[idx_c] > t_eval - lb
            vals = v[idx_c]
            ok &= ~is_stale(vals)
            if not ok.any():
                continue
            out.append(Series(series_labels(info), vals, ok))
        return out

    def matrix_samples(self, sel: Selector) -> list[tuple[dict[str, str], I64, F64]]:
        """Samples (stale markers removed) covering every window (t - offset - range, t - offset]."""
        assert sel.range_ms is not None
        t_eval = self.steps - sel.offset_ms
        out = []
        for info in match(self.all_series(), sel.matchers):
            t, v = self._read(info.id, int(t_eval[0]) - sel.range_ms + 1, int(t_eval[-1]))
            if len(t) == 0:
                continue
            stale = is_stale(v)
            if stale.any():
                keep = ~stale
                t, v = t[keep], v[keep]
                if len(t) == 0:
                    continue
            out.append((series_labels(info), t, v))
        return out

    # -- functions
    def call(self, node: Call) -> list[Series]:
        name = node.func
        if name in RANGE_FUNCS or name == "quantile_over_time":
            q = self.scalar(node.args[0]) if name == "quantile_over_time" else None
            msel = node.args[-1]
            assert isinstance(msel, MatrixSel)
            sel = msel.sel
            assert sel.range_ms is not None
            t_eval = self.steps - sel.offset_ms
            out: list[Series] = []
            for labels, t, v in self.matrix_samples(sel):
                vals, present = _range_function(name, t, v, t_eval, sel.range_ms, q)
                if present.any():
                    # last_over_time acts like offset and keeps the metric name; the others drop it
                    out.append(Series(labels if name == "last_over_time" else _drop_name(labels), vals, present))
            return _merge_same_labels(out)
        vec = self.eval(node.args[0])
        assert isinstance(vec, list)
        if name == "abs":
            res = [Series(_drop_name(s.labels), np.abs(s.values), s.present) for s in vec]
        elif name in ("clamp_min", "clamp_max"):
            bound = self.scalar(node.args[1])
            fn = np.maximum if name == "clamp_min" else np.minimum
            res = [Series(_drop_name(s.labels), fn(s.values, bound), s.present) for s in vec]
        else:  # pragma: no cover - the parser only lets known functions through
            raise BadInput(f"unsupported PromQL: function {name}()")
        return _merge_same_labels(res)

    # -- aggregation
    def aggregate(self, node: Agg) -> list[Series]:
        vec = self.eval(node.expr)
        assert isinstance(vec, list)
        if not vec:
            return []
        grouping = set(node.grouping)
        groups: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[Series]]] = {}
        for s in vec:
            if node.without:
                g = {k: v for k, v in s.labels.items() if k not in grouping and k != _NAME}
            elif node.by:
                g = {k: v for k, v in s.labels.items() if k in grouping}
            else:
                g = {}
            key = _label_key(g)
            if key in groups:
                groups[key][1].append(s)
            else:
                groups[key] = (g, [s])
        out: list[Series] = []
        op = node.op
        for g, members in groups.values():
            vals = np.stack([m.values for m in members])
            pres = np.stack([m.present for m in members])
            count = pres.sum(axis=0)
            present = count > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                if op == "sum":
                    res = np.where(pres, vals, 0.0).sum(axis=0)
                elif op == "avg":
                    res = np.where(pres, vals, 0.0).sum(axis=0) / np.maximum(count, 1)
                elif op == "count":
                    res = count.astype(np.float64)
                elif op == "min":
                    res = np.fmin.reduce(np.where(pres, vals, np.nan), axis=0)
                elif op == "max":
                    res = np.fmax.reduce(np.where(pres, vals, np.nan), axis=0)
                else:  # pragma: no cover
                    raise BadInput(f"unsupported PromQL: aggregation {op}")
            out.append(Series(g, res, present))
        return out

    # -- binary operators
    def binary(self, node: Binary) -> Value:
        fn = _ARITH[node.op]
        lhs = self.eval(node.lhs)
        rhs = self.eval(node.rhs)
        with np.errstate(all="ignore"):
            if isinstance(lhs, np.ndarray) and isinstance(rhs, np.ndarray):
                return fn(lhs, rhs)
            if isinstance(rhs, np.ndarray):
                assert isinstance(lhs, list)
                return _merge_same_labels([Series(_drop_name(s.labels), fn(s.values, rhs), s.present) for s in lhs])
            if isinstance(lhs, np.ndarray):
                return _merge_same_labels([Series(_drop_name(s.labels), fn(lhs, s.values), s.present) for s in rhs])
            return self._vector_vector(fn, lhs, rhs)

    @staticmethod
    def _vector_vector(fn: Callable[[F64, F64], F64], lhs: list[Series], rhs: list[Series]) -> list[Series]:
        def by_signature(side: list[Series], which: str) -> dict[tuple[tuple[str, str], ...], Series]:
            stripped = [Series(_drop_name(s.labels), s.values, s.present) for s in side]
            try:
                merged = _merge_same_labels(stripped)
            except BadInput:
                raise BadInput(
                    f"found duplicate series for the match group on the {which} hand-side of the operation; "
                    "many-to-many matching not allowed: matching labels must be unique on one side"
                ) from None
            return {_label_key(s.labels): s for s in merged}

        left = by_signature(lhs, "left")
        right = by_signature(rhs, "right")
        out: list[Series] = []
        for key, ls in left.items():
            rs = right.get(key)
            if rs is None:
                continue
            present = ls.present & rs.present
            if present.any():
                out.append(Series(ls.labels, fn(ls.values, rs.values), present))
        return out


# ----------------------------------------------------------------------------- entry point


def step_times(start_ms: int, end_ms: int, step_ms: int) -> I64:
    """The evaluation instants of a range query; enforces Prometheus' 11,000-points rule."""
    if step_ms <= 0:
        raise BadInput("zero or negative query resolution step widths are not accepted. Try a positive integer")
    if end_ms < start_ms:
        raise BadInput("end timestamp must not be before start time")
    if (end_ms - start_ms) // step_ms > MAX_POINTS:
        raise BadInput(
            f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )
    n = (end_ms - start_ms) // step_ms + 1
    return start_ms + np.arange(n, dtype=np.int64) * step_ms


def evaluate_range(source: SeriesSource, node: Node, steps_ms: I64, lookback_ms: int) -> list[Series] | F64:
    """Evaluate at every step: a scalar (one value per step) or the series with at least one point,
    sorted by label set as Prometheus sorts a range query's matrix."""
    ev = Evaluator(source, steps_ms, lookback_ms)
    val = ev.eval(node)
    if isinstance(val, np.ndarray):
        return val
    kept = [s for s in val if s.present.any()]
    kept.sort(key=lambda s: _label_key(s.labels))
    return kept


# ----------------------------------------------------------------------------- HTTP-facing entry points
# Each takes parsed parameters and returns the full JSON body; bad queries raise BadInput, which
# aurora.query.response.error_body turns into a Prometheus error body.


def _ms(x: float, name: str) -> int:
    if not isinstance(x, int | float) or not math.isfinite(x):
        raise BadInput(f'invalid parameter "{name}": must be a finite number of seconds')
    return to_ms(float(x))


def query_range(
    source: SeriesSource, query: str, start: float, end: float, step: float, lookback_s: float = 300
) -> dict[str, Any]:
    """``GET /api/v1/query_range``: ``resultType: matrix`` over the steps start, start+step, ... <= end."""
    start_ms, end_ms = _ms(start, "start"), _ms(end, "end")
    step_ms = _ms(step, "step")
    node = parse(query)
    typ = value_type(node)
    if typ == "matrix":
        raise BadInput('invalid expression type "range vector" for range query, must be Scalar or instant Vector')
    steps = step_times(start_ms, end_ms, step_ms)
    val = evaluate_range(source, node, steps, _ms(lookback_s, "lookback_delta"))
    if isinstance(val, np.ndarray):
        return matrix_body([({}, steps, val)])
    return matrix_body((s.labels, steps[s.present], s.values[s.present]) for s in val)


def instant_query(source: SeriesSource, query: str, time: float, lookback_s: float = 300) -> dict[str, Any]:
    """``GET /api/v1/query``: ``vector`` (or ``scalar``; ``matrix`` of raw samples for ``metric[5m]``)."""
    t_ms = _ms(time, "time")
    node = parse(query)
    steps = np.array([t_ms], dtype=np.int64)
    lookback_ms = _ms(lookback_s, "lookback_delta")
    if isinstance(node, MatrixSel):
        sel = node.sel
        assert sel.range_ms is not None
        hi = t_ms - sel.offset_ms
        lo = hi - sel.range_ms
        ev = Evaluator(source, steps, lookback_ms)
        out = []
        for labels, t, v in ev.matrix_samples(sel):
            keep = (t > lo) & (t <= hi)
            if keep.any():
                out.append((labels, t[keep], v[keep]))
        out.sort(key=lambda x: sorted(x[0].items()))
        return matrix_body(out)
    val = evaluate_range(source, node, steps, lookback_ms)
    if isinstance(val, np.ndarray):
        return scalar_body(t_ms, float(val[0]))
    return vector_body((s.labels, t_ms, float(s.values[0])) for s in val)


def _select(source: SeriesSource, selectors: Sequence[str], start: float | None, end: float | None) -> list[SeriesInfo]:
    """Series matching any of the selectors; with start and end, only those with a sample in [start, end]."""
    all_series = source.all_series()
    parsed = [parse_selector(s, allow_range=False, allow_offset=False) for s in selectors]
    seen: dict[int, SeriesInfo] = {}
    for sel in parsed:
        for info in match(all_series, sel.matchers):
            seen.setdefault(info.id, info)
    found = list(seen.values())
    if start is not None and end is not None:
        lo, hi = _ms(start, "start"), _ms(end, "end")
        if hi < lo:
            raise BadInput("end timestamp must not be before start time")
        found = [info for info in found if len(source.read(info.id, lo, hi)[0]) > 0]
    return found


def series_match(
    source: SeriesSource, selectors: Sequence[str], start: float | None = None, end: float | None = None
) -> dict[str, Any]:
    """``GET /api/v1/series?match[]=...``: label sets (``__name__`` included) of the matching series."""
    if not selectors:
        raise BadInput("no match[] parameter provided")
    found = [series_labels(i) for i in _select(source, selectors, start, end)]
    found.sort(key=lambda ls: sorted(ls.items()))
    return series_body(found)


def label_names(
    source: SeriesSource,
    selectors: Sequence[str] | None = None,
    start: float | None = None,
    end: float | None = None,
) -> dict[str, Any]:
    """``GET /api/v1/labels``. Without ``match[]`` the time range is not applied (every known series)."""
    infos = _select(source, selectors, start, end) if selectors else source.all_series()
    names: set[str] = set()
    for info in infos:
        names.update(info.labels)
        names.add("__name__")
    return labels_body(names)


def label_values(
    source: SeriesSource,
    name: str,
    selectors: Sequence[str] | None = None,
    start: float | None = None,
    end: float | None = None,
) -> dict[str, Any]:
    """``GET /api/v1/label/<name>/values`` (``__name__`` lists metric names)."""
    if not name:
        raise BadInput('invalid label name: ""')
    infos = _select(source, selectors, start, end) if selectors else source.all_series()
    values: set[str] = set()
    for info in infos:
        v = info.metric if name == "__name__" else info.labels.get(name)
        if v:
            values.add(v)
    return labels_body(values)
