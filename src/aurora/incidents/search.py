"""Full-text search over incidents, on SQLite (FTS5) and PostgreSQL (tsvector), behind one small interface.

Each incident has one row in ``incident_search`` (title, summary, causes, notes), rewritten by the store on
every save. Migration 0003 indexes it: on SQLite an external-content FTS5 table ``incident_fts`` kept in
step by triggers; on PostgreSQL a generated ``document`` tsvector column (weighted title A, causes B,
summary C, notes D) with a GIN index. So writes are the same Core statements on both databases and only
the ranked query differs.

User text never reaches either query language as syntax. It is cut into words (letters and digits only,
stop words dropped); on SQLite each word becomes a double-quoted FTS5 string, on PostgreSQL each word is a
bound parameter of its own ``plainto_tsquery``. Documents are stored with punctuation turned into spaces,
so both databases see the same words (``memory_bytes`` is ``memory bytes`` everywhere; PostgreSQL's parser
would otherwise keep ``cart.prod`` whole while FTS5 splits it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from sqlalchemy import Connection, text

MAX_TERMS = 32  # words per query: enough for a title and its root causes, bounded for the planner
_WORD = re.compile(r"[^\W_]+")
_NOT_WORD = re.compile(r"[\W_]+")
# PostgreSQL's english stop words (the Snowball list). PostgreSQL drops them from queries; FTS5 does not,
# so without this a search for "the cart" would demand "the" on SQLite only. FTS5 operator words (OR, NEAR)
# need no special care: every word reaches FTS5 quoted.
STOPWORDS = frozenset((
    "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself", "yourselves",
    "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself", "they", "them",
    "their", "theirs", "themselves", "what", "which", "who", "whom", "this", "that", "these", "those", "am",
    "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does", "did",
    "doing", "an", "the", "and", "but", "if", "or", "because", "as", "until", "while", "of", "at", "by", "for",
    "with", "about", "against", "between", "into", "through", "during", "before", "after", "above", "below",
    "to", "from", "up", "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once",
    "here", "there", "when", "where", "why", "how", "all", "any", "both", "each", "few", "more", "most",
    "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so", "than", "too", "very", "can",
    "will", "just", "don", "should", "now",
))
# bm25 weights per FTS5 column (title, summary, causes, notes), mirroring ts_rank's A/C/B/D defaults.
_SQLITE_WEIGHTS = "10.0, 2.0, 4.0, 1.0"

Mode = Literal["any", "all"]


def words(source: str, numbers: bool = True, limit: int = MAX_TERMS) -> list[str]:
    """Significant words of ``source``, lower case, first occurrence order, at most ``limit``.
    ``numbers=False`` also drops tokens starting with a digit (values in evidence text are noise when
    looking for a similar incident)."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(source.lower()):
        if len(w) < 2 or w in STOPWORDS or (not numbers and w[0].isdigit()):
            continue
        seen.setdefault(w, None)
        if len(seen) >= limit:
            break
    return list(seen)


def normalize(source: str) -> str:
    """Text as stored in the search document: words separated by single spaces."""
    return _NOT_WORD.sub(" ", source).strip()


def strings(value: Any) -> Iterable[str]:
    """The text inside a JSON-like value (evidence is free-form: text, lists, objects). An object with a
    ``text`` member yields only that: its other strings are structure ("type": "peak"), not meaning."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        if isinstance(value.get("text"), str):
            yield value["text"]
            return
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)


def cause_text(root_causes: list[dict[str, Any]]) -> str:
    """Root causes as words: each one's service, metric and evidence text."""
    parts: list[str] = []
    for rc in root_causes:
        parts.extend(s for s in (rc.get("service"), rc.get("metric")) if isinstance(s, str))
        parts.extend(strings(rc.get("evidence")))
    return " ".join(parts)


def description(incident: dict[str, Any]) -> str:
    """What an incident is about, as text: its title, root causes and summary (not its notes)."""
    return " ".join([incident["title"], cause_text(incident["root_causes"]), incident["summary"]])


def _stem(word: str) -> str:
    """A light suffix strip (leaks, leaked, leaking -> leak): enough to compare two incidents' words
    the same way on both databases; the databases' own stemmers do the matching."""
    for suffix in ("ing", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of two descriptions' significant words (numbers ignored), 0..1."""
    wa = {_stem(w) for w in words(a, numbers=False, limit=1000)}
    wb = {_stem(w) for w in words(b, numbers=False, limit=1000)}
    return len(wa & wb) / len(wa | wb) if wa and wb else 0.0


def document(incident: dict[str, Any], notes: list[str]) -> dict[str, str]:
    """The ``incident_search`` row of a decoded incident record (services and category count as causes)."""
    causes = " ".join([cause_text(incident["root_causes"]), *incident["services"], incident.get("category") or ""])
    return {"title": normalize(incident["title"]), "summary": normalize(incident["summary"]),
            "causes": normalize(causes), "notes": normalize(" ".join(notes))}


class TextIndex:
    """Ranked matching of words against the search documents, for one SQL dialect."""

    def __init__(self, dialect: str) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"incident search supports sqlite and postgresql, not {dialect}")
        self.dialect = dialect

    def rank(self, conn: Connection, terms: list[str], mode: Mode, limit: int) -> list[tuple[int, float]]:
        """(incident id, relevance > 0), most relevant first. ``any``: documents with at least one of the
        terms; ``all``: documents with every term."""
        if not terms or limit < 1:
            return []
        if self.dialect == "sqlite":
            query = (" OR " if mode == "any" else " ").join('"' + t.replace('"', '""') + '"' for t in terms)
            sql = text(f"SELECT rowid AS id, -bm25(incident_fts, {_SQLITE_WEIGHTS}) AS rel FROM incident_fts "
                       "WHERE incident_fts MATCH :q ORDER BY rel DESC LIMIT :n")
            rows = conn.execute(sql, {"q": query, "n": limit}).all()
        else:
            op = " || " if mode == "any" else " && "
            tsquery = op.join(f"plainto_tsquery('english', :t{i})" for i in range(len(terms)))
            sql = text(f"SELECT s.incident_id AS id, ts_rank(s.document, q.q) AS rel FROM incident_search s, "
                       f"(SELECT {tsquery} AS q) q WHERE s.document @@ q.q ORDER BY rel DESC, s.incident_id DESC "
                       "LIMIT :n")
            params: dict[str, Any] = {f"t{i}": t for i, t in enumerate(terms)}
            rows = conn.execute(sql, {**params, "n": limit}).all()
        return [(int(r.id), max(float(r.rel), 1e-9)) for r in rows]
