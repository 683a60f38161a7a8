"""The fault library: what can go wrong in the fleet, when, and what the right answer is.

A ``Scenario`` is a named list of faults at offsets from the start of a run; ``Scenario.at(start)``
places them in event time and ``Scenario.ground_truth(start)`` says, for each fault, when it began,
which service and metric are the root cause, when a limit is breached (for faults that creep towards
a limit; ``None`` for the others) and which remediation fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HOUR = 3600.0
MINUTE = 60.0

FIXES = ("restart", "rollback", "scale_out", "cache_flush", "failover", "none")


@dataclass(frozen=True)
class FaultKind:
    name: str
    root_cause_metric: str
    fix: str
    breaches: bool  # creeps towards a limit, so a breach time exists and can be predicted
    description: str
    default_duration_s: float | None = None  # None: lasts until fixed


KINDS: dict[str, FaultKind] = {k.name: k for k in (
    FaultKind("memory_leak", "container_memory_working_set_bytes", "restart", True,
              "working set grows linearly to the memory limit; at the limit the service is OOM-killed and "
              "restarts (memory drops, errors spike), then the leak starts over"),
    FaultKind("disk_fill", "disk_used_bytes", "none", True,
              "disk usage grows until the volume is full; a full disk fails writes"),
    FaultKind("cpu_saturation", "cpu_utilization_ratio", "scale_out", False,
              "an expensive code path multiplies CPU per request; the service saturates, queues and sheds load"),
    FaultKind("slow_database", "http_request_duration_seconds", "failover", False,
              "queries on the primary get an order of magnitude slower; every caller slows down"),
    FaultKind("bad_deployment", "http_request_error_ratio", "rollback", False,
              "a deployment event, then errors and some extra latency right after"),
    FaultKind("dependency_outage", "http_request_error_ratio", "failover", False,
              "the service stops answering (timeouts); callers fail in cascade up to the gateway", 45 * MINUTE),
    FaultKind("pool_exhaustion", "db_connections_open", "restart", True,
              "the service leaks database connections until its pool is exhausted; then its queries fail"),
    FaultKind("traffic_surge", "http_requests_total", "scale_out", False,
              "external traffic multiplies; the least provisioned tier saturates", 45 * MINUTE),
    FaultKind("cache_failure", "cache_hit_ratio", "cache_flush", False,
              "the cache hit ratio collapses; database load and latency rise"),
    FaultKind("model_drift", "model_accuracy_ratio", "none", True,
              "input drift: the model's accuracy declines and its drift score climbs (needs retraining)"),
)}


@dataclass(frozen=True)
class Fault:
    """A fault placed in event time (unix seconds)."""

    kind: str
    service: str
    onset: float
    duration_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    fix_service: str | None = None  # where the fix applies when not the root cause (traffic surge)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {sorted(KINDS)}")

    @property
    def end(self) -> float | None:
        return None if self.duration_s is None else self.onset + self.duration_s

    @property
    def time_to_breach_s(self) -> float | None:
        ttb = self.params.get("time_to_breach_s")
        return None if ttb is None else float(ttb)

    def ground_truth(self) -> dict[str, Any]:
        k = KINDS[self.kind]
        ttb = self.time_to_breach_s
        return {
            "kind": self.kind,
            "onset": self.onset,
            "end": self.end,
            "root_cause_service": "gateway" if self.kind == "traffic_surge" else self.service,
            "root_cause_metric": k.root_cause_metric,
            "breach_time": self.onset + ttb if k.breaches and ttb is not None else None,
            "fix": k.fix,
            "fix_service": self.fix_service or self.service,
        }


@dataclass(frozen=True)
class FaultSpec:
    """A fault at an offset (seconds) from the start of a run."""

    kind: str
    service: str
    offset_s: float
    duration_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    fix_service: str | None = None

    def at(self, start: float) -> Fault:
        duration = self.duration_s if self.duration_s is not None else KINDS[self.kind].default_duration_s
        return Fault(self.kind, self.service, start + self.offset_s, duration, dict(self.params), self.fix_service)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    faults: tuple[FaultSpec, ...] = ()
    hours: float = 6.0  # default length of a run

    @property
    def fault_kind(self) -> str:
        return self.faults[0].kind if len(self.faults) == 1 else ("none" if not self.faults else "schedule")

    @property
    def target(self) -> str | None:
        return self.faults[0].service if len(self.faults) == 1 else None

    def at(self, start: float) -> list[Fault]:
        return [f.at(start) for f in self.faults]

    def ground_truth(self, start: float) -> list[dict[str, Any]]:
        return [{"scenario": self.name, **f.ground_truth()} for f in self.at(start)]


def _one(name: str, desc: str, kind: str, service: str, offset_h: float, hours: float,
         duration_s: float | None = None, fix_service: str | None = None, **params: Any) -> Scenario:
    return Scenario(name, desc, (FaultSpec(kind, service, offset_h * HOUR, duration_s, params, fix_service),), hours)


# Runs start by default at 06:00 UTC on a Monday (see DEFAULT_START), so a fault 3 h in arrives at 09:00,
# when traffic is at its daily mean and load-dependent faults (surge, saturation, cache) clearly show.
CATALOGUE: dict[str, Scenario] = {s.name: s for s in (
    Scenario("fault_free", "a healthy fleet: seasonality, noise and benign deployments only", (), 24.0),
    _one("memory_leak", "catalog leaks memory; OOM-kill 45 min after onset", "memory_leak", "catalog", 3, 5,
         time_to_breach_s=45 * MINUTE),
    _one("slow_memory_leak", "cart leaks slowly; OOM-kill 5 h after onset", "memory_leak", "cart", 2, 9,
         time_to_breach_s=5 * HOUR),
    _one("disk_fill", "the queue's disk fills in 1 h (a stuck consumer's spool)", "disk_fill", "queue", 3, 5,
         time_to_breach_s=1 * HOUR),
    _one("slow_disk_fill", "postgres WAL archiving stalls; the disk is full 4 h after onset", "disk_fill",
         "postgres", 2, 8, time_to_breach_s=4 * HOUR),
    _one("cpu_saturation", "cart's CPU per request quadruples (a regex gone quadratic)", "cpu_saturation", "cart",
         4, 6, factor=4.0, ramp_s=10 * MINUTE),
    _one("slow_database", "postgres queries 12x slower for 40 min (lock contention)", "slow_database", "postgres",
         3, 5, duration_s=40 * MINUTE, factor=12.0),
    _one("bad_deployment", "cart 1.4.3 ships a bug: 15% errors right after the deployment", "bad_deployment",
         "cart", 3, 5, version="1.4.3", error_ratio=0.15, latency_factor=1.3),
    _one("dependency_outage", "payment stops answering for 45 min; checkout and the gateway fail",
         "dependency_outage", "payment", 3, 5),
    _one("pool_exhaustion", "checkout leaks DB connections; pool exhausted 20 min after onset", "pool_exhaustion",
         "checkout", 3, 5, time_to_breach_s=20 * MINUTE),
    _one("slow_pool_leak", "inventory leaks DB connections slowly; pool exhausted 3.5 h after onset",
         "pool_exhaustion", "inventory", 2, 8, time_to_breach_s=3.5 * HOUR),
    _one("traffic_surge", "a flash sale: 2.5x traffic for 45 min at noon; web saturates", "traffic_surge",
         "gateway", 6, 8, fix_service="web", factor=2.5, ramp_s=5 * MINUTE),
    _one("cache_failure", "redis hit ratio collapses (bad key prefix); postgres load and latency rise",
         "cache_failure", "redis", 4, 6, hit_ratio=0.05),
    _one("model_drift", "recommender inputs drift; accuracy falls below 0.85 4 h after onset", "model_drift",
         "recommender", 2, 8, time_to_breach_s=4 * HOUR, threshold=0.85),
)}


def demo_schedule(gap_s: float = 20 * MINUTE, first_s: float = 10 * MINUTE) -> Scenario:
    """Several faults one after another (``gap_s`` apart), for the live demo.

    Every fault has a duration, so that a demo nobody remediates does not pile faults up: when it runs out,
    "someone on call" applies the fix (a rollback or restart event shows it)."""
    specs = [
        FaultSpec("bad_deployment", "cart", 0, 15 * MINUTE,
                  {"version": "1.4.3", "error_ratio": 0.15, "latency_factor": 1.3}),
        # slow enough that the breach is predicted well ahead (the OOM kill comes 40 min after onset)
        FaultSpec("memory_leak", "catalog", 0, 50 * MINUTE, {"time_to_breach_s": 40 * MINUTE}),
        FaultSpec("slow_database", "postgres", 0, 12 * MINUTE, {"factor": 12.0}),
        FaultSpec("dependency_outage", "payment", 0, 12 * MINUTE),
        FaultSpec("cache_failure", "redis", 0, 15 * MINUTE, {"hit_ratio": 0.05}),
        FaultSpec("pool_exhaustion", "checkout", 0, 25 * MINUTE, {"time_to_breach_s": 15 * MINUTE}),
        FaultSpec("traffic_surge", "gateway", 0, 15 * MINUTE, {"factor": 2.5, "ramp_s": 3 * MINUTE}, "web"),
    ]
    placed = tuple(FaultSpec(s.kind, s.service, first_s + i * gap_s, s.duration_s, s.params, s.fix_service)
                   for i, s in enumerate(specs))
    hours = (first_s + len(specs) * gap_s + 10 * MINUTE) / HOUR
    return Scenario("demo", "the live demo: a fault every 20 minutes, each a different kind", placed, hours)


def get_scenario(name: str) -> Scenario:
    if name == "demo":
        return demo_schedule()
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join([*CATALOGUE, 'demo'])}") from None
