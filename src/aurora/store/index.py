"""In-memory series index: (metric, labels) -> dense series id, and back.

Two maps keep lookups cheap on the hot path:

* ``fast``: Python ``hash((metric, tuple(labels.items())))`` -> id. Costs well under a microsecond per
  series and needs no canonical key; a hit is verified by comparing metric and labels (dict equality),
  so a hash collision can never merge two series. Label order is part of this key, so each label order
  a client uses gets its own entry (clients send a fixed order; Prometheus sends sorted labels).
* ``by_hash``: the 128-bit BLAKE2b of the canonical :func:`series_key` (as stored in ``series.key_hash``)
  -> id. The authority, consulted on a ``fast`` miss.

Label names and values are interned so the many series sharing ``job``/``instance``/... share strings.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from aurora.model import series_key


@dataclass(slots=True)
class SeriesInfo:
    id: int
    metric: str
    labels: dict[str, str]

    @property
    def key(self) -> str:
        return series_key(self.metric, self.labels)


def key_hash(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


def fast_key(metric: str, labels: Mapping[str, str]) -> int:
    return hash((metric, tuple(labels.items())))


class SeriesIndex:
    def __init__(self) -> None:
        self.infos: list[SeriesInfo | None] = []
        self.by_hash: dict[bytes, int] = {}
        self.fast: dict[int, int] = {}
        self.per_metric: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.infos)

    def add(self, sid: int, metric: str, labels: Mapping[str, str], khash: bytes | None = None) -> SeriesInfo:
        intern = sys.intern
        metric = intern(metric)
        labs = {intern(k): intern(v) for k, v in labels.items()}
        info = SeriesInfo(sid, metric, labs)
        while len(self.infos) <= sid:
            self.infos.append(None)
        self.infos[sid] = info
        self.by_hash[khash if khash is not None else key_hash(series_key(metric, labs))] = sid
        self.fast.setdefault(fast_key(metric, labs), sid)
        self.per_metric[metric] = self.per_metric.get(metric, 0) + 1
        return info

    def lookup_fast(self, metrics: list[str], labels: list[dict[str, str]]) -> list[int]:
        """Ids found by the fast map (verified); -1 where it missed."""
        get = self.fast.get
        infos = self.infos
        cand = [get(hash((m, tuple(lab.items()))), -1) for m, lab in zip(metrics, labels, strict=True)]
        out = []
        for c, m, lab in zip(cand, metrics, labels, strict=True):
            if c >= 0:
                info = infos[c]
                if info is None or info.labels != lab or info.metric != m:
                    c = -1
            out.append(c)
        return out

    def lookup_slow(self, metric: str, labels: Mapping[str, str]) -> tuple[int, str, bytes]:
        """(id or -1, canonical key, key hash). Remembers the caller's label order for ``fast`` on a hit."""
        key = series_key(metric, labels)
        kh = key_hash(key)
        sid = self.by_hash.get(kh, -1)
        if sid >= 0:
            self.fast.setdefault(fast_key(metric, labels), sid)
        return sid, key, kh

    def get(self, sid: int) -> SeriesInfo | None:
        if 0 <= sid < len(self.infos):
            return self.infos[sid]
        return None

    def key_of(self, sid: int) -> str:
        info = self.get(sid)
        return info.key if info is not None else f"<series {sid}>"
