"""The simulated fleet as data: services, where they run, whom they call and how hard.

The topology is plain data so that Aurora's own configuration/topology code can read it
(``Fleet.topology()``) and so that other fleets can be described without touching the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aurora.config import ServiceConfig

GiB = 1024**3
MiB = 1024**2


@dataclass(frozen=True)
class Call:
    """``calls`` requests to ``to`` per request served.

    ``critical``: a failed call fails the caller's request (0 = the caller degrades gracefully).
    ``sync``: the caller waits for the answer (an enqueue to an asynchronous consumer does not).
    ``cached``: the call is a cache miss path; its rate scales with the miss ratio of ``via``.
    """

    to: str
    calls: float = 1.0
    critical: float = 1.0
    sync: bool = True
    cached_via: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    kind: str  # gateway | web | service | database | cache | queue | worker | model
    host: str
    calls: tuple[Call, ...] = ()
    base_latency_s: float = 0.01  # own service time at low load
    base_error_ratio: float = 0.001
    replicas: int = 2
    cores: float = 1.0  # CPU limit per replica
    peak_utilization: float = 0.3  # CPU utilization at the weekday peak; sets capacity
    memory_limit_bytes: float = 1 * GiB
    memory_base_ratio: float = 0.5  # working set as a share of the limit in steady state
    disk_capacity_bytes: float | None = None
    disk_base_ratio: float = 0.6
    db_pool_max: int | None = None  # connection pool towards the database, when it uses one
    port: int = 8080
    version: str = "1.0.0"

    @property
    def depends_on(self) -> list[str]:
        return [c.to for c in self.calls]

    def limits(self) -> dict[str, float]:
        out = {"memory_bytes": float(self.memory_limit_bytes), "cpu_cores": self.cores * self.replicas}
        if self.disk_capacity_bytes is not None:
            out["disk_bytes"] = float(self.disk_capacity_bytes)
        if self.db_pool_max is not None:
            out["db_connections"] = float(self.db_pool_max)
        return out


@dataclass(frozen=True)
class HostSpec:
    name: str
    cores: float = 16.0
    memory_bytes: float = 32 * GiB
    os_memory_bytes: float = 2 * GiB


@dataclass(frozen=True)
class FleetSpec:
    name: str
    services: tuple[ServiceSpec, ...]
    hosts: tuple[HostSpec, ...]
    entry: str  # where external traffic arrives
    base_rps: float = 100.0  # external requests per second at the daily mean on a weekday
    daily_amplitude: float = 0.55  # peak = base * (1 + amplitude) at peak_hour_utc
    peak_hour_utc: float = 15.0
    weekend_factor: float = 0.75
    extra: dict[str, str] = field(default_factory=dict)

    def service(self, name: str) -> ServiceSpec:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(f"no service {name!r} in fleet {self.name!r}; services: {[s.name for s in self.services]}")

    def declared_services(self) -> list[ServiceConfig]:
        """The fleet as a service catalogue (``services:`` in aurora.yaml): dependencies, limits and the
        user-facing entry, as the demo declares it; without it the engine has no service graph."""
        from aurora.config import ServiceConfig

        return [ServiceConfig(name=s.name, depends_on=list(s.depends_on), limits=dict(s.limits()),
                              user_facing=s.name == self.entry) for s in self.services]

    def topology(self) -> list[dict[str, object]]:
        return [{"service": s.name, "depends_on": s.depends_on, "host": s.host, "kind": s.kind,
                 "limits": s.limits(), "version": s.version} for s in self.services]


def shop_fleet() -> FleetSpec:
    """The default fleet: a small web shop with a database, a cache, a queue and an ML recommender."""
    pg = "postgres"
    services = (
        ServiceSpec("gateway", "gateway", "host-a", (Call("web"),), base_latency_s=0.003, replicas=2,
                    memory_limit_bytes=512 * MiB, port=8000, version="2.3.1"),
        ServiceSpec("web", "web", "host-a",
                    (Call("catalog", 0.9), Call("cart", 0.35), Call("checkout", 0.08),
                     Call("recommender", 0.5, critical=0.0)),  # recommendations are optional on a page
                    base_latency_s=0.012, replicas=3, peak_utilization=0.5, memory_limit_bytes=1 * GiB,
                    port=8001, version="5.12.0"),
        ServiceSpec("catalog", "service", "host-b",
                    (Call("redis", 3.0, critical=0.0), Call(pg, 3.0, cached_via="redis")),
                    base_latency_s=0.010, memory_limit_bytes=2 * GiB, db_pool_max=20, port=8002, version="3.8.4"),
        ServiceSpec("cart", "service", "host-b",
                    (Call("redis", 2.0, critical=0.0), Call(pg, 2.0, cached_via="redis")),
                    base_latency_s=0.008, memory_limit_bytes=1 * GiB, db_pool_max=20, port=8003, version="1.4.2"),
        ServiceSpec("checkout", "service", "host-c",
                    (Call("payment"), Call("inventory"), Call(pg, 3.0), Call("queue", sync=True)),
                    base_latency_s=0.025, memory_limit_bytes=1 * GiB, db_pool_max=20, port=8004, version="4.0.7"),
        ServiceSpec("payment", "service", "host-c", (), base_latency_s=0.080, memory_limit_bytes=512 * MiB,
                    port=8005, version="2.2.0"),
        ServiceSpec("inventory", "service", "host-b", (Call(pg, 2.0),), base_latency_s=0.008,
                    memory_limit_bytes=512 * MiB, db_pool_max=20, port=8006, version="1.9.3"),
        ServiceSpec(pg, "database", "host-c", (), base_latency_s=0.003, replicas=1, cores=4.0,
                    peak_utilization=0.2, memory_limit_bytes=8 * GiB, memory_base_ratio=0.7,
                    disk_capacity_bytes=200 * GiB, disk_base_ratio=0.55, port=5432, version="16.2"),
        ServiceSpec("redis", "cache", "host-a", (), base_latency_s=0.0005, replicas=1, cores=1.0,
                    peak_utilization=0.25, memory_limit_bytes=4 * GiB, memory_base_ratio=0.6, port=6379,
                    version="7.2.4"),
        ServiceSpec("queue", "queue", "host-c", (Call("worker", sync=False),), base_latency_s=0.001, replicas=1,
                    memory_limit_bytes=2 * GiB, disk_capacity_bytes=50 * GiB, disk_base_ratio=0.4, port=5672,
                    version="3.13.0"),
        ServiceSpec("worker", "worker", "host-a", (), base_latency_s=0.15, replicas=2, peak_utilization=0.45,
                    memory_limit_bytes=1 * GiB, port=8007, version="1.2.0"),
        ServiceSpec("recommender", "model", "host-b", (), base_latency_s=0.035, replicas=2, cores=2.0,
                    memory_limit_bytes=4 * GiB, memory_base_ratio=0.65, port=8008, version="0.9.1"),
    )
    hosts = (HostSpec("host-a"), HostSpec("host-b"), HostSpec("host-c", cores=16.0, memory_bytes=64 * GiB))
    return FleetSpec("shop", services, hosts, entry="gateway")
