"""The pipeline stage that reads the topology out of series labels.

Many metrics name both ends of a call: ``grpc_client_requests_total{service="web",peer_service="cart"}``,
Istio's ``istio_requests_total{source_workload="web",destination_workload="cart"}``. Such a series gives the
edge ``web -> cart`` (source ``labels``); any series with a ``service`` (or ``job``) label says the service
exists and has data.

Labels of a series never change, so each series is looked at once in its lifetime: the stage keeps one
flag per store series id and, per batch, only reads the labels of ids it has not seen (one array lookup
per batch otherwise).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np

from aurora.model import SeriesBatch
from aurora.topology.graph import ServiceGraph

__all__ = ["PEER_LABELS", "TopologyStage", "label_edge"]

SERVICE_LABELS = ("service", "job")
PEER_LABELS = ("peer_service", "peer", "upstream", "destination_service_name", "destination_service",
               "target_service", "server_service")
# (source, destination) label pairs that name both ends (Istio), best first.
PAIR_LABELS = (("source_canonical_service", "destination_canonical_service"),
               ("source_workload", "destination_workload"))
_UNKNOWN = {"", "unknown"}  # Istio's value for an end it could not identify


def _name(value: str | None) -> str | None:
    """A service name from a label value: ``cart``, ``cart:8080`` and ``cart.shop.svc.cluster.local`` all
    give ``cart``."""
    if value is None or value in _UNKNOWN:
        return None
    if ".svc" in value:
        value = value.split(".", 1)[0]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value or None


def label_edge(labels: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(the series' own service, the peer it calls) from its labels; either may be None."""
    for src_key, dst_key in PAIR_LABELS:
        src, dst = _name(labels.get(src_key)), _name(labels.get(dst_key))
        if src and dst:
            return src, dst
    own = next((v for k in SERVICE_LABELS if (v := labels.get(k))), None)
    peer = next((p for k in PEER_LABELS if (p := _name(labels.get(k)))), None)
    return own, peer


class TopologyStage:
    name = "topology"

    def __init__(self, graph: ServiceGraph) -> None:
        self.graph = graph
        self._seen = np.zeros(0, bool)
        self._lock = threading.Lock()
        self.series_read = 0

    def process(self, batch: SeriesBatch, series_ids: np.ndarray, now_ms: int) -> None:
        ids = np.asarray(series_ids, np.int64)
        if len(ids) == 0:
            return
        with self._lock:
            top = int(ids.max()) + 1
            if top > len(self._seen):
                grown = np.zeros(max(top, len(self._seen) * 3 // 2), bool)
                grown[: len(self._seen)] = self._seen
                self._seen = grown
            new = np.flatnonzero((ids >= 0) & ~self._seen[np.maximum(ids, 0)])
            if len(new) == 0:
                return
            self._seen[ids[new]] = True
            self.series_read += len(new)
        services: set[str] = set()
        edges: set[tuple[str, str]] = set()
        for i in new.tolist():
            own, peer = label_edge(batch.labels[i])
            if own:
                services.add(own)
                if peer and peer != own:
                    edges.add((own, peer))
        if services:
            self.graph.add_services(services, "labels")
        if edges:
            self.graph.add_edges(edges, "labels")
