"""Runbooks: Markdown files (``remediation.runbooks_dir``) indexed and linked to the incidents they fit.

Each file's title is its first ``# `` heading (else the file name). An optional first line
``tags: memory, cart, restart`` names what it is about. An incident is matched on the words of its title,
category, services, root-cause metric and summary: BM25 over the runbooks' words, with tags and a
service named in the runbook counting triple. A playbook's ``runbook:`` names one explicitly; that one is
always linked, first.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORD = re.compile(r"[a-z0-9]+")
STOP = frozenset(["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is", "it",
                  "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "will", "with", "more",
                  "service", "services", "affected"])
K1, B = 1.2, 0.75


def words(text: str) -> list[str]:
    return [w for w in WORD.findall(text.lower().replace("_", " ")) if w not in STOP and len(w) > 1]


@dataclass(frozen=True)
class Runbook:
    name: str  # the file name
    title: str
    path: Path
    tags: tuple[str, ...]
    text: str


def load(folder: Path) -> list[Runbook]:
    out = []
    for path in sorted(folder.glob("*.md")):
        text = path.read_text(errors="replace")
        lines = text.splitlines()
        tags: tuple[str, ...] = ()
        if lines and lines[0].lower().startswith("tags:"):
            tags = tuple(t.strip().lower() for t in lines[0][5:].split(",") if t.strip())
        title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), path.stem)
        out.append(Runbook(path.name, title, path, tags, text))
    return out


class RunbookIndex:
    def __init__(self, runbooks: list[Runbook]) -> None:
        self.runbooks = runbooks
        self.docs: list[Counter[str]] = []
        for rb in runbooks:
            c = Counter(words(rb.title + " " + rb.text))
            for t in rb.tags:  # tags count triple
                for w in words(t):
                    c[w] += 3
            self.docs.append(c)
        self.avg = sum(sum(d.values()) for d in self.docs) / max(len(self.docs), 1)
        df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - k + 0.5) / (k + 0.5)) for w, k in df.items()}

    @classmethod
    def from_folder(cls, folder: Path | None) -> RunbookIndex:
        return cls(load(folder) if folder is not None and folder.is_dir() else [])

    def search(self, query: str, limit: int = 3, boost: tuple[str, ...] = ()) -> list[tuple[Runbook, float]]:
        q = Counter(words(query))
        for w in boost:
            q[w.lower()] += 2
        scored = []
        for rb, d in zip(self.runbooks, self.docs, strict=True):
            length = sum(d.values())
            s = 0.0
            for w, qn in q.items():
                f = d.get(w, 0)
                if f:
                    s += qn * self.idf.get(w, 0.0) * f * (K1 + 1) / (f + K1 * (1 - B + B * length / self.avg))
            if s > 0:
                scored.append((rb, s))
        scored.sort(key=lambda x: -x[1])
        return scored[:limit]

    def for_incident(self, incident: dict[str, Any], named: list[str] | None = None, limit: int = 3
                     ) -> list[dict[str, Any]]:
        """Runbooks for an incident, best first: those its playbooks name, then the best matches."""
        roots = incident.get("root_causes") or []
        top = roots[0] if roots else {}
        query = " ".join(str(x) for x in (incident.get("title"), incident.get("category"), top.get("metric"),
                                          incident.get("summary", "")[:500]) if x)
        boost = tuple(str(s) for s in incident.get("services") or [])
        out: list[dict[str, Any]] = []
        for name in named or []:
            rb = next((r for r in self.runbooks if r.name == name), None)
            if rb is not None:
                out.append({"name": rb.name, "title": rb.title, "score": None, "why": "named by a matching playbook"})
        for rb, score in self.search(query, limit, boost):
            if all(o["name"] != rb.name for o in out):
                out.append({"name": rb.name, "title": rb.title, "score": round(score, 3),
                            "why": "matches the incident's words"})
        return out[:limit]

    def get(self, name: str) -> Runbook | None:
        return next((r for r in self.runbooks if r.name == name), None)
