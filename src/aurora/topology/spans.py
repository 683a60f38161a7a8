"""Joins spans to their parents across requests, to find calls between services, in bounded memory.

A span whose parent is in another service is a call from the parent's service to the span's. The
parent often comes in another request: exporters send spans as they end, and a parent ends after its
children, so the child usually arrives first. The joiner therefore keeps two caches, both bounded in
entries and limited in (event) time:

* ``seen``: (trace, span) key -> service, for spans whose children may come later;
* ``waiting``: (trace, parent) key -> the children that came before their parent.

Each cache is two generations of plain dicts: new entries go into the current one; it is retired when it
holds half the capacity or is older than half the time limit, and the previous one is dropped then. So
an entry lives between ttl/2 and ttl of event time (or until 2 x capacity/2 newer entries pushed it out),
the memory never exceeds ``capacity`` entries per cache, and no per-entry timestamps are stored.
A child whose parent never arrives (sampled out, lost) simply ages out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

V = TypeVar("V")


class GenerationalCache(Generic[V]):
    """A bounded map whose entries expire by event time, without per-entry bookkeeping."""

    def __init__(self, capacity: int, ttl_ms: int) -> None:
        self.capacity = max(2, int(capacity))
        self.ttl_ms = max(1, int(ttl_ms))
        self._cur: dict[int, V] = {}
        self._old: dict[int, V] = {}
        self._cur_start_ms: int | None = None
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._cur) + len(self._old)

    def advance(self, now_ms: int) -> None:
        """Retire generations by event time: called with the newest time seen."""
        if self._cur_start_ms is None:
            self._cur_start_ms = now_ms
            return
        age = now_ms - self._cur_start_ms
        if age >= self.ttl_ms:  # both generations are too old
            self.evicted += len(self)
            self._old, self._cur = {}, {}
            self._cur_start_ms = now_ms
        elif age >= self.ttl_ms // 2:
            self._rotate(now_ms)

    def _rotate(self, now_ms: int | None) -> None:
        self.evicted += len(self._old)
        self._old, self._cur = self._cur, {}
        if now_ms is not None:
            self._cur_start_ms = now_ms

    def _room(self) -> None:
        if len(self._cur) >= self.capacity // 2:
            self._rotate(self._cur_start_ms)

    def get(self, key: int) -> V | None:
        v = self._cur.get(key)
        return self._old.get(key) if v is None else v

    def get_current(self, key: int) -> V | None:
        """The value in the current generation only (an entry to extend rather than replace)."""
        return self._cur.get(key)

    def put(self, key: int, value: V) -> None:
        self._room()
        self._cur[key] = value

    def put_many(self, items: Iterable[tuple[int, V]]) -> None:
        for k, v in items:
            self.put(k, v)

    def pop(self, key: int) -> tuple[V | None, V | None]:
        """Remove ``key``; its (current, previous) generation values."""
        return self._cur.pop(key, None), self._old.pop(key, None)


@dataclass(slots=True)
class Calls:
    """Calls found: ``caller[i]`` -> ``callee[i]`` (service codes), with the callee span's end, status and
    duration."""

    caller: np.ndarray
    callee: np.ndarray
    end_ms: np.ndarray
    error: np.ndarray
    duration_s: np.ndarray

    def __len__(self) -> int:
        return int(self.caller.shape[0])


# A child waiting for its parent: (callee code, end ms, error, duration s).
Waiting = tuple[int, int, bool, float]


class SpanJoiner:
    def __init__(self, capacity: int = 100_000, ttl_s: float = 300.0) -> None:
        ttl_ms = int(ttl_s * 1000)
        self.seen: GenerationalCache[int] = GenerationalCache(capacity, ttl_ms)
        self.waiting: GenerationalCache[list[Waiting]] = GenerationalCache(capacity, ttl_ms)

    def __len__(self) -> int:
        return len(self.seen) + len(self.waiting)

    def join(self, key: np.ndarray, parent: np.ndarray, service: np.ndarray, end_ms: np.ndarray,
             error: np.ndarray, duration_s: np.ndarray) -> Calls:
        """Remember these spans (service codes >= 0) and return every parent -> child pair that is now
        known: within the batch, children of earlier spans, and earlier children of these spans. Pairs in
        one service are returned too (the caller filters them)."""
        if len(key) == 0:
            return _no_calls()
        newest = int(np.max(end_ms))
        self.seen.advance(newest)
        self.waiting.advance(newest)
        keys = key.tolist()
        svcs = service.tolist()
        self.seen.put_many(zip(keys, svcs, strict=True))
        caller: list[int] = []
        callee: list[int] = []
        ends: list[int] = []
        errs: list[bool] = []
        durs: list[float] = []
        # Children of spans seen (now or before).
        rows = np.flatnonzero(parent != 0)
        if len(rows):
            get = self.seen.get
            pcodes = np.fromiter((-1 if (c := get(p)) is None else c for p in parent[rows].tolist()), np.int64,
                                 len(rows))
            found = pcodes >= 0
            hit = rows[found]
            caller.extend(pcodes[found].tolist())
            callee.extend(service[hit].tolist())
            ends.extend(end_ms[hit].tolist())
            errs.extend(error[hit].tolist())
            durs.extend(duration_s[hit].tolist())
            lost = rows[~found]
            for p, s, t, e, d in zip(parent[lost].tolist(), service[lost].tolist(), end_ms[lost].tolist(),
                                     error[lost].tolist(), duration_s[lost].tolist(), strict=True):
                kids = self.waiting.get_current(p)
                if kids is None:
                    kids = []
                    self.waiting.put(p, kids)
                kids.append((s, t, e, d))
        # Children that came before these spans.
        if len(self.waiting):
            pop = self.waiting.pop
            for k, s in zip(keys, svcs, strict=True):
                cur, old = pop(k)
                for kids in (cur, old):
                    for c, t, e, d in kids or ():
                        caller.append(s)
                        callee.append(c)
                        ends.append(t)
                        errs.append(e)
                        durs.append(d)
        if not caller:
            return _no_calls()
        return Calls(np.asarray(caller, np.int64), np.asarray(callee, np.int64), np.asarray(ends, np.int64),
                     np.asarray(errs, bool), np.asarray(durs, np.float64))


def _no_calls() -> Calls:
    return Calls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool),
                 np.zeros(0, np.float64))
