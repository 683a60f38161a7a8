"""Delivery policies, each a small state machine driven by the caller's clock (so tests use a fake one):
grouping, deduplication, rate limiting and retry backoff."""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aurora.notify.message import Notification

MAX_GROUP = 50  # notifications in one message; a bigger group is sent at once and a new one starts


@dataclass
class PendingGroup:
    channel: str
    group_key: str
    deadline: float
    items: list[tuple[int, Notification]] = field(default_factory=list)  # (outbox row id, notification)


class Grouper:
    """Alertmanager's group_wait: the first notification about a thing opens a group for a channel; whatever
    else arrives about it before the group's deadline goes out in the same message."""

    def __init__(self, max_size: int = MAX_GROUP) -> None:
        self.max_size = max_size
        self._groups: dict[tuple[str, str], PendingGroup] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, channel: str, n: Notification, row_id: int, wait_s: float, now: float) -> PendingGroup | None:
        """Add to the open group (or open one); returns the group when it is full and must go now."""
        key = (channel, n.group_key)
        g = self._groups.get(key)
        if g is None:
            g = self._groups[key] = PendingGroup(channel, n.group_key, now + wait_s)
        g.items.append((row_id, n))
        if len(g.items) >= self.max_size or wait_s <= 0:
            return self._groups.pop(key)
        return None

    def due(self, now: float) -> list[PendingGroup]:
        ready = [k for k, g in self._groups.items() if g.deadline <= now]
        return [self._groups.pop(k) for k in ready]

    def next_deadline(self) -> float | None:
        return min((g.deadline for g in self._groups.values()), default=None)


class Deduper:
    """An identical dedup key goes to a channel at most once per repeat interval of *event* time (so a replay
    sends what living through the data would). ``lookup`` finds the last time in the durable outbox when the
    in-memory cache does not know the key (after a restart)."""

    def __init__(self, lookup: Callable[[str, str], float | None] | None = None, max_keys: int = 100_000) -> None:
        self._lookup = lookup
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.max_keys = max_keys

    def seen(self, channel: str, key: str, t: float, interval_s: float) -> bool:
        """True if (channel, key) was sent within ``interval_s`` of ``t``; otherwise records ``t`` and says False."""
        k = (channel, key)
        last = self._last.get(k)
        if last is None and self._lookup is not None:
            last = self._lookup(channel, key)
        if last is not None and interval_s > 0 and abs(t - last) < interval_s:
            return True
        self._last[k] = t
        self._last.move_to_end(k)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return False


    def unknown(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (channel, key) pairs the cache does not know: ``seen`` would look each up on its own."""
        return {k for k in keys if k not in self._last}

    def prime(self, asked: Iterable[tuple[str, str]], known: Mapping[tuple[str, str], float]) -> None:
        """Fill the cache from one bulk lookup of ``asked``: ``known`` holds the last times found; the others
        were never sent (remembered as -inf, so ``seen`` does not ask again)."""
        for k in asked:
            self._last[k] = known.get(k, -math.inf)
            self._last.move_to_end(k)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)

    def forget(self, keys: list[tuple[str, str]]) -> None:
        """Drop cached keys (their outbox write failed): the next check asks the outbox again."""
        for k in keys:
            self._last.pop(k, None)


class TokenBucket:
    """``per_minute`` messages a minute, bursts up to a minute's worth (at least one)."""

    def __init__(self, per_minute: float, now: float, burst: float | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute if burst is None else burst)
        self.tokens = self.capacity
        self.t = now

    def take(self, now: float) -> float:
        """Take a token: 0 if one was there, else the seconds until one will be (nothing taken then)."""
        if now > self.t:
            self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
            self.t = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Backoff:
    """Exponential backoff with "equal jitter": the n-th consecutive failure waits between half and all of
    ``min(cap, base * 2**(n-1))``; the jitter keeps many Aurora instances from retrying in step. Seeded, so
    tests and benchmarks see the same delays."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng

    def delay(self, failures: int) -> float:
        d = min(self.cap_s, self.base_s * 2.0 ** max(0, min(failures - 1, 60)))
        return d / 2 + self.rng.random() * d / 2
