"""Tokens of PromQL, with the offset of each token so parse errors can say where they are."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aurora.errors import BadInput

__all__ = ["DURATION_UNITS_MS", "Token", "parse_error", "parse_prom_duration_ms", "tokenize"]

DURATION_UNITS_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
# Prometheus' model.ParseDuration: units in descending order, each at most once.
_DURATION_RE = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?", re.ASCII)
_DURATION_TOKEN_RE = re.compile(r"(?:\d+(?:ms|[smhdwy]))+", re.ASCII)
_NUMBER_RE = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)
_IDENT_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_IDENT_CHAR = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:")
_WORD_CHAR = _IDENT_CHAR - {":"}  # what may not directly follow a number or duration
_SPACE = frozenset(" \t\r\n")
_OPS = [
    ("=~", "RE"),
    ("!~", "NRE"),
    ("!=", "NEQ"),
    ("==", "EQLC"),
    ("<=", "LTE"),
    (">=", "GTE"),
    ("=", "EQ"),
    ("<", "LSS"),
    (">", "GTR"),
    ("{", "LBRACE"),
    ("}", "RBRACE"),
    ("(", "LPAREN"),
    (")", "RPAREN"),
    ("[", "LBRACKET"),
    ("]", "RBRACKET"),
    (",", "COMMA"),
    ("+", "ADD"),
    ("-", "SUB"),
    ("*", "MUL"),
    ("/", "DIV"),
    ("%", "MOD"),
    ("^", "POW"),
    ("@", "AT"),
    (":", "COLON"),
]
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # IDENT STRING NUMBER DURATION EOF or an operator kind from _OPS
    text: str  # source text (for STRING: the unquoted value)
    pos: int  # offset of the first character in the query
    value: float | int | None = None  # NUMBER: float; DURATION: milliseconds

    def describe(self) -> str:
        if self.kind == "EOF":
            return "end of input"
        if self.kind == "STRING":
            return f"string {self.text!r}"
        return f'"{self.text}"'


def parse_error(text: str, pos: int, message: str) -> BadInput:
    """A BadInput naming line, column (1-based) and offset (0-based) of the problem."""
    pos = max(0, min(pos, len(text)))
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return BadInput(f"{line}:{col}: parse error: {message}", position=pos, line=line, column=col)


def parse_prom_duration_ms(s: str) -> int | None:
    """Prometheus duration (``1h30m``, ``5m``, ``250ms``, ``0``) in ms, or None when it is not one."""
    if s == "0":
        return 0
    if not s:
        return None
    m = _DURATION_RE.fullmatch(s)
    if m is None or not any(m.groups()):
        return None
    total = 0
    for amount, unit in zip(m.groups(), ("y", "w", "d", "h", "m", "s", "ms"), strict=True):
        if amount is not None:
            total += int(amount) * DURATION_UNITS_MS[unit]
    return total


def _unquote(text: str, start: int) -> tuple[str, int]:
    """Read the string literal starting at ``text[start]``; return its value and the offset after it."""
    quote = text[start]
    i = start + 1
    n = len(text)
    if quote == "`":
        end = text.find("`", i)
        if end < 0:
            raise parse_error(text, start, "unterminated raw string")
        return text[i:end], end + 1
    out: list[str] = []
    while True:
        if i >= n:
            raise parse_error(text, start, "unterminated quoted string")
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\n":
            raise parse_error(text, i, "newline in quoted string")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise parse_error(text, start, "unterminated quoted string")
        e = text[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif e == quote:
            out.append(quote)
            i += 2
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = text[i + 2 : i + 2 + width]
            if len(digits) != width or any(ch not in "0123456789abcdefABCDEF" for ch in digits):
                raise parse_error(text, i, f"bad escape \\{e}: expected {width} hex digits")
            code = int(digits, 16)
            if e == "x":
                # Go strings are bytes; \xHH above 0x7f cannot be represented in a text label value
                if code > 0x7F:
                    raise parse_error(text, i, f"escape \\x{digits} is not valid UTF-8 on its own")
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise parse_error(text, i, f"escape \\{e}{digits} is not a valid Unicode code point")
            out.append(chr(code))
            i += 2 + width
        elif e in "01234567":
            digits = text[i + 1 : i + 4]
            if len(digits) != 3 or any(ch not in "01234567" for ch in digits) or int(digits, 8) > 0x7F:
                raise parse_error(text, i, "bad octal escape: expected 3 octal digits up to \\177")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise parse_error(text, i, f"unknown escape sequence \\{e}")


def tokenize(text: str) -> list[Token]:
    """Split a PromQL expression into tokens; raises BadInput (with position) on bad characters."""
    toks: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
            continue
        if c == "#":  # comment to end of line
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c in "\"'`":
            value, j = _unquote(text, i)
            toks.append(Token("STRING", value, i))
            i = j
            continue
        if "0" <= c <= "9" or (c == "." and i + 1 < n and "0" <= text[i + 1] <= "9"):
            m = _DURATION_TOKEN_RE.match(text, i)
            if m and (m.end() >= n or text[m.end()] not in _WORD_CHAR):
                ms = parse_prom_duration_ms(m.group())
                if ms is None:
                    raise parse_error(text, i, f'bad duration "{m.group()}": units must be in order y w d h m s ms')
                toks.append(Token("DURATION", m.group(), i, ms))
                i = m.end()
                continue
            m = _NUMBER_RE.match(text, i)
            if not m or (m.end() < n and (text[m.end()] in _WORD_CHAR or text[m.end()] == ".")):
                end = i
                while end < n and (text[end] in _WORD_CHAR or text[end] == "."):
                    end += 1
                raise parse_error(text, i, f'bad number or duration syntax "{text[i:end]}"')
            s = m.group()
            val = float(int(s, 16)) if s[:2] in ("0x", "0X") else float(s)
            toks.append(Token("NUMBER", s, i, val))
            i = m.end()
            continue
        if c in _IDENT_CHAR:
            m = _IDENT_RE.match(text, i)
            assert m is not None
            word = m.group()
            if word.lower() in ("inf", "nan"):
                toks.append(Token("NUMBER", word, i, float(word.lower())))
            else:
                toks.append(Token("IDENT", word, i))
            i = m.end()
            continue
        for op, kind in _OPS:
            if text.startswith(op, i):
                toks.append(Token(kind, op, i))
                i += len(op)
                break
        else:
            raise parse_error(text, i, f"unexpected character {c!r}")
    toks.append(Token("EOF", "", n))
    return toks
