"""The service graph: who calls whom, merged from configuration, series labels and traces.

Every edge ``a -> b`` ("a calls b") remembers which sources vouch for it -- ``declared`` (the
configuration's ``depends_on``), ``labels`` (an ingested series naming a peer) and ``traces`` (a span whose
parent is in another service, or an outgoing span naming its peer) -- and, when traces cross it, the calls'
rate, error ratio and latency over a sliding window of event time (``window.py``). So the topology
explains itself: the API shows why each edge is there and how it behaves.

The incident and root-cause code asks the graph questions per signal (callers, callees, how far apart
two services are), at signal rates, so queries read cached adjacency sets and cached breadth-first
distances; any change of the node or edge set invalidates the caches. All methods are thread-safe.

Memory is bounded: at most ``max_services`` nodes and ``max_edges`` edges (anything beyond is counted in
``dropped`` and ignored; series labels and spans are client input), fixed-size windows per traced edge,
and a bounded span cache (``spans.py``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from aurora.topology.spans import SpanJoiner
from aurora.topology.window import EdgeWindow

if TYPE_CHECKING:
    from aurora.ingest.otlp_traces import SpanBatch

__all__ = ["SOURCES", "DeclaredService", "ServiceGraph"]

SOURCES = ("declared", "labels", "traces")
_OUTGOING_KINDS = (3, 4)  # OTLP SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER
_MEMO_LIMIT = 4096  # cached breadth-first searches kept before the cache is cleared


class DeclaredService(Protocol):
    """What the graph reads of a configured service (``aurora.config.ServiceConfig``)."""

    name: str
    depends_on: list[str]
    owner: str | None
    tier: str | None


@dataclass(slots=True)
class _Node:
    declared: bool = False
    owner: str | None = None
    tier: str | None = None
    user_facing: bool = False
    sources: set[str] = field(default_factory=set)  # sources that saw the service's own data


@dataclass(slots=True)
class _Edge:
    sources: set[str] = field(default_factory=set)
    server: EdgeWindow | None = None  # calls measured by the callee's spans (child of a caller's span)
    client: EdgeWindow | None = None  # calls measured by the caller's outgoing spans naming the callee


@dataclass(frozen=True, slots=True)
class _Adjacency:
    out: Mapping[str, frozenset[str]]
    inc: Mapping[str, frozenset[str]]
    und: Mapping[str, frozenset[str]]


_EMPTY: frozenset[str] = frozenset()


class ServiceGraph:
    def __init__(self, *, window_s: float = 300.0, bucket_s: float = 15.0, span_cache: int = 100_000,
                 span_ttl_s: float = 300.0, max_services: int = 10_000, max_edges: int = 50_000) -> None:
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.max_services = max_services
        self.max_edges = max_edges
        self._lock = threading.RLock()
        self._nodes: dict[str, _Node] = {}
        self._edges: dict[tuple[str, str], _Edge] = {}
        self._names: list[str] = []  # service codes for the span joiner
        self._codes: dict[str, int] = {}
        self._joiner = SpanJoiner(span_cache, span_ttl_s)
        self._adj: _Adjacency | None = None
        self._memo: dict[tuple[str, str], dict[str, int]] = {}
        self.newest_ms: int | None = None  # newest span end seen (event time)
        self.version = 0  # bumped whenever the node or edge set changes
        self.dropped = {"services": 0, "edges": 0}

    # --- building --------------------------------------------------------------------------------
    def _changed(self) -> None:
        self.version += 1
        self._adj = None
        self._memo.clear()

    def _node(self, name: str) -> _Node | None:
        node = self._nodes.get(name)
        if node is None:
            if len(self._nodes) >= self.max_services:
                self.dropped["services"] += 1
                return None
            node = self._nodes[name] = _Node()
            self._changed()
        return node

    def _code(self, name: str) -> int:
        c = self._codes.get(name)
        if c is None:
            c = self._codes[name] = len(self._names)
            self._names.append(name)
        return c

    def _edge(self, a: str, b: str, source: str) -> _Edge | None:
        if not a or not b or a == b:
            return None
        e = self._edges.get((a, b))
        if e is None:
            if len(self._edges) >= self.max_edges:
                self.dropped["edges"] += 1
                return None
            if self._node(a) is None or self._node(b) is None:
                return None
            e = self._edges[(a, b)] = _Edge()
            self._changed()
        e.sources.add(source)
        return e

    def set_declared(self, services: Iterable[DeclaredService]) -> None:
        """Replace the configured services and their ``depends_on`` edges (owner, tier, user_facing too)."""
        services = list(services)
        with self._lock:
            for old in self._nodes.values():
                old.declared = False
            for key, e in list(self._edges.items()):
                e.sources.discard("declared")
                if not e.sources:
                    del self._edges[key]
                    self._changed()
            for s in services:
                node = self._node(s.name)
                if node is None:
                    continue
                node.declared = True
                node.owner, node.tier = s.owner, s.tier
                node.user_facing = bool(getattr(s, "user_facing", False))
                for dep in s.depends_on:
                    self._edge(s.name, dep, "declared")
            orphans = [n for n, o in self._nodes.items() if not o.declared and not o.sources]
            linked = {x for key in self._edges for x in key}
            for n in orphans:
                if n not in linked:
                    del self._nodes[n]
                    self._changed()

    def add_services(self, names: Iterable[str], source: str) -> None:
        """Note that ``source`` saw data of these services (they exist even without edges)."""
        with self._lock:
            for name in names:
                if name:
                    node = self._node(name)
                    if node is not None:
                        node.sources.add(source)

    def add_edge(self, caller: str, callee: str, source: str) -> bool:
        """Record ``caller -> callee`` as seen by ``source``. Returns whether the edge exists now."""
        with self._lock:
            return self._edge(caller, callee, source) is not None

    def add_edges(self, pairs: Iterable[tuple[str, str]], source: str) -> int:
        with self._lock:
            return sum(self._edge(a, b, source) is not None for a, b in pairs)

    def add_spans(self, spans: SpanBatch) -> int:
        """Merge a decoded trace export: services, parent/child calls across services (joined across
        requests), outgoing spans naming a peer; per-edge call statistics. Returns calls recorded."""
        if spans.n == 0:
            return 0
        with self._lock:
            table = np.full(len(spans.services) + 1, -1, np.int64)  # batch service -> code; last: none
            for i, name in enumerate(spans.services):
                node = self._node(name)
                if node is not None:
                    node.sources.add("traces")
                    table[i] = self._code(name)
            svc = table[spans.service]
            ok = np.flatnonzero(svc >= 0)
            newest = int(spans.end_ms.max())
            self.newest_ms = newest if self.newest_ms is None else max(self.newest_ms, newest)
            calls = self._joiner.join(spans.key[ok], spans.parent[ok], svc[ok], spans.end_ms[ok],
                                      spans.error[ok], spans.duration_s[ok])
            n = self._record(calls.caller, calls.callee, calls.end_ms, calls.error, calls.duration_s, "server")
            n += self._peer_calls(spans, svc)
            return n

    def _peer_calls(self, spans: SpanBatch, svc: np.ndarray) -> int:
        """Outgoing (client/producer) spans whose ``peer.service`` names a service, or whose address names
        a service the graph knows (``postgres``, ``postgres.shop.svc.cluster.local:5432``)."""
        rows = np.flatnonzero((spans.peer >= 0) & (svc >= 0) & np.isin(spans.kind, _OUTGOING_KINDS))
        if len(rows) == 0:
            return 0
        peer_code = np.full(len(spans.peer_names), -1, np.int64)
        exact = set(spans.peer[rows][spans.peer_exact[rows]].tolist())
        for i, name in enumerate(spans.peer_names):
            target = name if i in exact else _known(name, self._nodes)
            if target is not None and self._node(target) is not None:
                peer_code[i] = self._code(target)
        callee = peer_code[spans.peer[rows]]
        hit = rows[callee >= 0]
        return self._record(svc[hit], callee[callee >= 0], spans.end_ms[hit], spans.error[hit],
                            spans.duration_s[hit], "client")

    def _record(self, caller: np.ndarray, callee: np.ndarray, end_ms: np.ndarray, error: np.ndarray,
                duration_s: np.ndarray, side: str) -> int:
        cross = caller != callee
        if not cross.any():
            return 0
        caller, callee = caller[cross], callee[cross]
        end_ms, error, duration_s = end_ms[cross], error[cross], duration_s[cross]
        base = len(self._names) + 1
        uniq, inv = np.unique(caller * base + callee, return_inverse=True)
        n = 0
        for j, p in enumerate(uniq.tolist()):
            a, b = self._names[p // base], self._names[p % base]
            e = self._edge(a, b, "traces")
            if e is None:
                continue
            m = inv == j
            w = getattr(e, side)
            if w is None:
                w = EdgeWindow(self.window_s, self.bucket_s)
                setattr(e, side, w)
            n += w.add(end_ms[m], error[m], duration_s[m])
        return n

    # --- reading ---------------------------------------------------------------------------------
    def services(self) -> list[str]:
        with self._lock:
            return sorted(self._nodes)

    def service(self, name: str) -> dict[str, Any] | None:
        """What the graph knows of a service: declared?, owner, tier, user_facing, sources of its own data."""
        with self._lock:
            node = self._nodes.get(name)
            if node is None:
                return None
            return {"service": name, "declared": node.declared, "owner": node.owner, "tier": node.tier,
                    "user_facing": node.user_facing, "sources": sorted(node.sources)}

    def edges(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """Every edge: ``{from, to, sources, stats}``; ``stats`` (or None) are the calls in the window ending
        at ``now_ms`` (event time; default the newest span seen), measured by the callee's spans when there
        are any, else by the caller's outgoing spans (``stats.measured_by`` says which)."""
        with self._lock:
            now = self.newest_ms if now_ms is None else now_ms
            out = []
            for (a, b), e in sorted(self._edges.items()):
                out.append({"from": a, "to": b, "sources": [s for s in SOURCES if s in e.sources],
                            "stats": None if now is None else _stats(e, now)})
            return out

    def edge_count(self) -> int:
        with self._lock:
            return len(self._edges)

    def _adjacency(self) -> _Adjacency:
        adj = self._adj
        if adj is None:
            out: dict[str, set[str]] = {n: set() for n in self._nodes}
            inc: dict[str, set[str]] = {n: set() for n in self._nodes}
            for a, b in self._edges:
                out[a].add(b)
                inc[b].add(a)
            adj = self._adj = _Adjacency(
                {n: frozenset(v) for n, v in out.items()}, {n: frozenset(v) for n, v in inc.items()},
                {n: frozenset(out[n] | inc[n]) for n in self._nodes})
        return adj

    def callees(self, service: str) -> frozenset[str]:
        """Services ``service`` calls directly."""
        with self._lock:
            return self._adjacency().out.get(service, _EMPTY)

    def callers(self, service: str) -> frozenset[str]:
        """Services that call ``service`` directly."""
        with self._lock:
            return self._adjacency().inc.get(service, _EMPTY)

    def _distances(self, kind: str, start: str) -> dict[str, int]:
        """Hop counts from ``start`` (itself 0) over out- (``out``), in- (``inc``) or undirected (``und``)
        edges, in order of distance; cached until the graph changes. Call with the lock held."""
        memo = self._memo.get((kind, start))
        if memo is not None:
            return memo
        adj: Mapping[str, frozenset[str]] = getattr(self._adjacency(), kind)
        dist = {start: 0} if start in adj else {}
        queue = deque(dist)
        while queue:
            u = queue.popleft()
            du = dist[u] + 1
            for v in adj[u]:
                if v not in dist:
                    dist[v] = du
                    queue.append(v)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[(kind, start)] = dist
        return dist

    def _reach(self, kind: str, service: str, hops: int | None) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._lock:
            for s, d in self._distances(kind, service).items():
                if hops is not None and d > hops:
                    break  # in order of distance
                if d:
                    out[s] = d
        return out

    def downstream(self, service: str, hops: int | None = None) -> dict[str, int]:
        """Services ``service`` calls, directly or through others (within ``hops``): name -> hops, nearest
        first."""
        return self._reach("out", service, hops)

    def upstream(self, service: str, hops: int | None = None) -> dict[str, int]:
        """Services that call ``service``, directly or through others (within ``hops``): name -> hops,
        nearest first."""
        return self._reach("inc", service, hops)

    def distance(self, a: str, b: str) -> int | None:
        """Hops between two services ignoring direction; None if they are not connected (or unknown)."""
        with self._lock:
            return self._distances("und", a).get(b)

    def connected(self, a: str, b: str, max_hops: int = 1) -> bool:
        """Whether two services are at most ``max_hops`` apart, ignoring direction."""
        d = self.distance(a, b)
        return d is not None and d <= max_hops

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"services": len(self._nodes), "edges": len(self._edges), "span_cache": len(self._joiner),
                    "dropped": dict(self.dropped)}


def _stats(e: _Edge, now_ms: int) -> dict[str, Any] | None:
    for side, label in (("server", "server_spans"), ("client", "client_spans")):
        w: EdgeWindow | None = getattr(e, side)
        if w is not None:
            s = w.summary(now_ms)
            if s is not None:
                s["measured_by"] = label
                return s
    return None


def _known(address: str, nodes: Mapping[str, _Node]) -> str | None:
    """The known service an address names: itself, without a port, or its first DNS label."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    for cand in (address, host, host.split(".", 1)[0]):
        if cand in nodes:
            return cand
    return None
