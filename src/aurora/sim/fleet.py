"""The simulated fleet: a small service graph whose metrics Aurora ingests and every capability is scored on.

Each scrape step computes the whole fleet with arrays over services (no per-sample loops):

* external traffic = base x daily x weekly seasonality x AR(1) noise, entering at the gateway;
* request rates flow down the call graph (``r = ext + F^T r``, iterated to the graph's depth);
* utilization = demand / (cores x replicas); own latency grows like an M/M/1 queue; above 100 % the
  excess is shed as errors;
* latency flows up the synchronous edges (``L = own + W L``) and errors up the critical ones
  (a request survives when its own work and every critical call it makes succeed);
* stateful resources (memory, disk, DB pools, queue backlog, cache warmth, model accuracy) evolve in
  event time, and faults act on them; the fleet also obeys remediation actions.

Everything is seeded: the same seed, start and faults give bit-identical output. The random stream is
consumed in fixed-size draws per step, so a faulty run and a fault-free run with the same seed share
their noise and differ only by the fault. There is no wall clock in here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aurora.ingest.events import ChangeEvent
from aurora.model import SeriesBatch
from aurora.sim.faults import Fault, Scenario
from aurora.sim.topology import FleetSpec, ServiceSpec, shop_fleet

DEFAULT_START = 1704693600.0  # 2024-01-08 06:00 UTC, a Monday
DAY = 86400.0
QUANTILES = ("0.5", "0.9", "0.99")
_Z_Q = np.array([0.0, 1.2815516, 2.3263479])  # standard normal quantiles of 0.5, 0.9, 0.99
LATENCY_SIGMA = 0.6  # log-normal spread of request latency around its mean
RESTART_WINDOW_S = 45.0
FAILOVER_WINDOW_S = 20.0
ROLLOUT_S = 60.0  # a deployment or rollback takes this long to reach every replica
OUTAGE_TIMEOUT_S = 2.0  # callers give up on a dead dependency after this long
NOMINAL_HIT_RATIO = 0.92
POOL_IDLE = 2.0  # connections a pool keeps open when idle
ACTIONS = ("restart", "rollback", "scale_out", "cache_flush", "failover")
_BREACH_KIND = {"oom": "memory_leak", "disk_full": "disk_fill", "pool_exhausted": "pool_exhaustion",
                "accuracy": "model_drift"}


@dataclass
class _FaultState:
    fault: Fault
    idx: int  # service index
    started: bool = False
    ended_at: float | None = None  # by duration or by a fix
    fixed_by: str | None = None
    breached_at: float | None = None  # when the simulated limit was first hit


@dataclass
class ActionResult:
    kind: str
    service: str
    time: float
    effective: bool  # it removed an active fault
    note: str
    scheduled: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "service": self.service, "time": self.time, "effective": self.effective,
                "note": self.note, "scheduled": self.scheduled}


@dataclass
class _Series:
    metrics: list[str] = field(default_factory=list)
    labels: list[dict[str, str]] = field(default_factory=list)

    def family(self, metric: str, labels: Iterable[dict[str, str]]) -> slice:
        a = len(self.metrics)
        for lab in labels:
            self.metrics.append(metric)
            self.labels.append(lab)
        return slice(a, len(self.metrics))


def _bump(version: str) -> str:
    parts = version.split(".")
    try:
        parts[-1] = str(int(parts[-1]) + 1)
    except ValueError:
        parts.append("1")
    return ".".join(parts)


class Fleet:
    def __init__(self, spec: FleetSpec | None = None, *, seed: int = 0, start: float = DEFAULT_START,
                 step_s: float = 15.0, faults: Sequence[Fault] = (), background_deploys: bool = True,
                 counter_resets: bool = True) -> None:
        self.spec = spec or shop_fleet()
        self.seed = int(seed)
        self.step_ms = round(step_s * 1000)
        if self.step_ms <= 0:
            raise ValueError("step_s must be positive")
        self.step_s = self.step_ms / 1000.0
        self.start_ms = round(start * 1000)
        self.start = self.start_ms / 1000.0
        self.background_deploys = background_deploys
        self.counter_resets = counter_resets
        self._k = 0
        self._rng = np.random.default_rng([self.seed, 0x5EED])
        svcs = self.spec.services
        self.names = [s.name for s in svcs]
        self.index = {n: i for i, n in enumerate(self.names)}
        n = self.n = len(svcs)
        self._build_graph(svcs)
        self._build_state(svcs)
        self._build_series(svcs)
        self.faults = [_FaultState(f, self._idx(f.service)) for f in faults]
        for f in faults:
            if f.fix_service is not None:
                self._idx(f.fix_service)
        self.events: list[ChangeEvent] = []  # emitted, not yet drained
        self.log: list[dict[str, Any]] = []  # what happened (OOM kills, full disks, actions), for tests and demo
        self._pending: list[tuple[float, str, str]] = []
        self._deploy_day = -1
        self._deploys: list[tuple[float, int]] = []
        self._zn = 6 + 9 * n + 2 * len(self.hosts)
        assert n > 0

    # --- construction ----------------------------------------------------------------------------
    def _idx(self, name: str) -> int:
        try:
            return self.index[name]
        except KeyError:
            raise KeyError(f"no service {name!r}; services: {self.names}") from None

    def _build_graph(self, svcs: Sequence[ServiceSpec]) -> None:
        n = len(svcs)
        self.F_static = np.zeros((n, n))  # calls per request, not through a cache
        self.F_cached = np.zeros((n, n))  # calls per request on a cache miss
        self.crit = np.zeros((n, n))  # 1 where a failed call fails the caller
        self.sync = np.zeros((n, n))
        self.cache_idx = -1
        for i, s in enumerate(svcs):
            for c in s.calls:
                j = self._idx(c.to)
                if c.cached_via is not None:
                    self.F_cached[i, j] += c.calls
                    self.cache_idx = self._idx(c.cached_via)
                else:
                    self.F_static[i, j] += c.calls
                self.crit[i, j] = c.critical
                self.sync[i, j] = 1.0 if c.sync else 0.0
        # Longest path, for the fixed-point iterations over the DAG.
        adj = (self.F_static + self.F_cached) > 0
        depth = np.zeros(n, int)
        for _ in range(n):
            nd = np.array([max([depth[j] + 1 for j in np.flatnonzero(adj[i])], default=0) for i in range(n)])
            if np.array_equal(nd, depth):
                break
            depth = nd
        else:
            raise ValueError("the call graph has a cycle")
        self.depth = int(depth.max()) + 1
        self.entry = self._idx(self.spec.entry)
        self.e_entry = np.zeros(n)
        self.e_entry[self.entry] = 1.0
        kinds = [s.kind for s in svcs]
        self.db_idx = kinds.index("database") if "database" in kinds else -1
        self.model_idx = kinds.index("model") if "model" in kinds else -1
        self.queue_idx = kinds.index("queue") if "queue" in kinds else -1
        self.worker_idx = -1
        if self.queue_idx >= 0:
            q = self.queue_idx
            consumers = [j for j in range(n) if self.F_static[q, j] > 0 and not self.sync[q, j]]
            self.worker_idx = consumers[0] if consumers else -1

    def _rates(self, ext: float, miss: float) -> np.ndarray:
        F = self.F_static + self.F_cached * miss
        r = self.e_entry * ext
        for _ in range(self.depth):
            r = self.e_entry * ext + F.T @ r
        return r

    def _build_state(self, svcs: Sequence[ServiceSpec]) -> None:
        n = len(svcs)
        sp = self.spec
        f = np.array
        self.base_latency = f([s.base_latency_s for s in svcs])
        self.base_err = f([s.base_error_ratio for s in svcs])
        self.replicas0 = f([float(s.replicas) for s in svcs])
        self.replicas = self.replicas0.copy()
        self.cores = f([s.cores for s in svcs])
        self.mem_limit = f([float(s.memory_limit_bytes) for s in svcs])
        self.mem_base = self.mem_limit * f([s.memory_base_ratio for s in svcs])
        self.peak_rate = self._rates(sp.base_rps * (1 + sp.daily_amplitude), 1 - NOMINAL_HIT_RATIO)
        capacity = self.peak_rate / f([s.peak_utilization for s in svcs])
        self.cpu_cost = self.cores * self.replicas0 / capacity  # core-seconds per request
        self.versions = [s.version for s in svcs]
        self.prev_versions: list[list[str]] = [[] for _ in svcs]
        # disks
        self.disk_idx = np.array([i for i, s in enumerate(svcs) if s.disk_capacity_bytes is not None], int)
        self.disk_cap = f([float(svcs[i].disk_capacity_bytes or 0) for i in self.disk_idx])
        self.disk_base = self.disk_cap * f([svcs[i].disk_base_ratio for i in self.disk_idx])
        self.disk_growth = self.disk_cap * 0.002 / DAY  # organic growth, bytes/s
        self.disk_fill_done = np.zeros(len(self.disk_idx))  # bytes filled by ended faults
        self.disk_fill_rate = np.zeros(len(self.disk_idx))
        self.disk_fill_t0 = np.zeros(len(self.disk_idx))
        # DB connection pools (clients of the database)
        self.pool_idx = np.array([i for i, s in enumerate(svcs) if s.db_pool_max is not None], int)
        self.pool_max = f([float(svcs[i].db_pool_max or 0) for i in self.pool_idx])
        self.pool_leak_rate = np.zeros(len(self.pool_idx))
        self.pool_leak_t0 = np.zeros(len(self.pool_idx))
        # hosts
        self.hosts = list(sp.hosts)
        host_names = [h.name for h in self.hosts]
        self.H = np.zeros((len(self.hosts), n))
        for i, s in enumerate(svcs):
            self.H[host_names.index(s.host), i] = 1.0
        self.host_cores = f([h.cores for h in self.hosts])
        self.host_mem = f([h.memory_bytes for h in self.hosts])
        self.host_os_mem = f([h.os_memory_bytes for h in self.hosts])
        # dynamic state
        self.ar = 0.0
        self.leak_rate = np.zeros(n)
        self.leak_t0 = np.zeros(n)
        self.restart_until = np.full(n, -np.inf)
        self.restart_err = np.zeros(n)
        self.counters = np.zeros((3, n))  # 2xx, 5xx, cpu seconds
        self.hit = NOMINAL_HIT_RATIO
        self.backlog = 0.0

    def _build_series(self, svcs: Sequence[ServiceSpec]) -> None:
        reg = _Series()
        base = [{"service": s.name, "host": s.host, "instance": f"{s.host}:{s.port}"} for s in svcs]
        per = lambda extra: [{**b, **extra} for b in base]  # noqa: E731
        fam = {}
        fam["ok"] = reg.family("http_requests_total", per({"code": "2xx"}))
        fam["err"] = reg.family("http_requests_total", per({"code": "5xx"}))
        for q in QUANTILES:
            fam["q" + q] = reg.family("http_request_duration_seconds", per({"quantile": q}))
        fam["err_ratio"] = reg.family("http_request_error_ratio", per({}))
        fam["cpu_total"] = reg.family("process_cpu_seconds_total", per({}))
        fam["cpu"] = reg.family("cpu_utilization_ratio", per({}))
        fam["mem"] = reg.family("container_memory_working_set_bytes", per({}))
        fam["mem_limit"] = reg.family("container_spec_memory_limit_bytes", per({}))
        fam["up"] = reg.family("up", per({}))
        fam["replicas"] = reg.family("service_replicas", per({}))
        disk = [base[i] for i in self.disk_idx]
        fam["disk_used"] = reg.family("disk_used_bytes", disk)
        fam["disk_cap"] = reg.family("disk_capacity_bytes", disk)
        db = self.names[self.db_idx] if self.db_idx >= 0 else ""
        pool = [{**base[i], "db": db} for i in self.pool_idx]
        fam["pool_open"] = reg.family("db_connections_open", pool)
        fam["pool_max"] = reg.family("db_connections_max", pool)
        if self.queue_idx >= 0:
            fam["queue"] = reg.family("queue_depth", [base[self.queue_idx]])
        if self.cache_idx >= 0:
            fam["hit"] = reg.family("cache_hit_ratio", [base[self.cache_idx]])
        if self.model_idx >= 0:
            m = [base[self.model_idx]]
            fam["acc"] = reg.family("model_accuracy_ratio", m)
            fam["drift"] = reg.family("model_prediction_drift_score", m)
            fam["inf"] = reg.family("model_inference_latency_seconds", m)
        nodes = [{"host": h.name, "instance": f"{h.name}:9100"} for h in self.hosts]
        fam["node_cpu"] = reg.family("node_cpu_utilization_ratio", nodes)
        fam["node_mem"] = reg.family("node_memory_used_bytes", nodes)
        fam["node_mem_total"] = reg.family("node_memory_total_bytes", nodes)
        self._reg = reg
        self._fam = fam

    # --- public API ------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Event time of the next step (unix seconds)."""
        return (self.start_ms + self._k * self.step_ms) / 1000.0

    @property
    def now_ms(self) -> int:
        return self.start_ms + self._k * self.step_ms

    def topology(self) -> list[dict[str, Any]]:
        return self.spec.topology()

    def series(self) -> list[tuple[str, dict[str, str]]]:
        return list(zip(self._reg.metrics, self._reg.labels, strict=True))

    def series_index(self, metric: str, **labels: str) -> int:
        """Column of the first series of ``metric`` whose labels include ``labels`` (for tests and tools)."""
        for i, (m, lab) in enumerate(zip(self._reg.metrics, self._reg.labels, strict=True)):
            if m == metric and all(lab.get(k) == v for k, v in labels.items()):
                return i
        raise KeyError(f"no series {metric}{labels}")

    def ground_truth(self) -> list[dict[str, Any]]:
        return [fs.fault.ground_truth() for fs in self.faults]

    def drain_events(self) -> list[ChangeEvent]:
        out, self.events = self.events, []
        return out

    def generate(self, n_steps: int) -> SeriesBatch:
        """The next ``n_steps`` scrapes of every series, as one batch (series-major)."""
        ts, values = self.generate_matrix(n_steps)
        s = values.shape[1]
        return SeriesBatch(list(self._reg.metrics), [dict(lab) for lab in self._reg.labels],
                           np.arange(s + 1, dtype=np.int64) * n_steps, np.tile(ts, s),
                           np.ascontiguousarray(values.T).reshape(-1))

    def generate_matrix(self, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """(timestamps ms [n_steps], values [n_steps, n_series]) of the next ``n_steps`` scrapes."""
        out = np.empty((n_steps, len(self._reg.metrics)))
        ts = self.start_ms + (self._k + np.arange(n_steps, dtype=np.int64)) * self.step_ms
        z = self._rng.standard_normal((n_steps, self._zn))
        for k in range(n_steps):
            self._step(int(ts[k]), z[k], out[k])
            self._k += 1
        return ts, out

    def apply_action(self, kind: str, service: str, t: float | None = None) -> ActionResult:
        """Remediate: restart | rollback | scale_out | cache_flush | failover on ``service`` at event time ``t``
        (default: now). An action in the future is queued and applied at its step."""
        if kind not in ACTIONS:
            raise ValueError(f"unknown action {kind!r}; known: {', '.join(ACTIONS)}")
        self._idx(service)
        t = self.now if t is None else float(t)
        if t > self.now:
            self._pending.append((t, kind, service))
            self._pending.sort()
            return ActionResult(kind, service, t, False, "scheduled", scheduled=True)
        return self._apply(kind, service, max(t, self.now - self.step_s))

    # --- actions ---------------------------------------------------------------------------------
    def _event(self, kind: str, i: int, t: float, **attrs: Any) -> None:
        self.events.append(ChangeEvent(kind, self.names[i], float(t), attrs))

    def _restart(self, i: int, t: float, reason: str) -> None:
        self.restart_until[i] = t + RESTART_WINDOW_S
        self.restart_err[i] = 1.0 if self.replicas[i] <= 1 else 0.5
        self.leak_t0[i] = t
        p = np.flatnonzero(self.pool_idx == i)
        if p.size:
            self.pool_leak_t0[p] = t
        if self.counter_resets:
            self.counters[:, i] = 0.0
        self._event("restart", i, t, reason=reason)
        self.log.append({"time": t, "what": "restart", "service": self.names[i], "reason": reason})

    def _end_fault(self, fs: _FaultState, t: float, by: str) -> None:
        """Stop a fault; ``by`` is the action that fixed it or 'duration' (it ran its course)."""
        fs.ended_at = t
        fs.fixed_by = by
        i, kind = fs.idx, fs.fault.kind
        if kind == "memory_leak":
            self.leak_rate[i] = 0.0
        elif kind == "pool_exhaustion":
            p = np.flatnonzero(self.pool_idx == i)
            self.pool_leak_rate[p] = 0.0
        elif kind == "disk_fill":
            d = np.flatnonzero(self.disk_idx == i)
            self.disk_fill_done[d] += self.disk_fill_rate[d] * (t - self.disk_fill_t0[d])
            self.disk_fill_rate[d] = 0.0
        if by == "duration":
            # Stateful faults that "end" are fixed by someone on call, with the usual side effects.
            if kind in ("memory_leak", "pool_exhaustion"):
                self._restart(i, t, "oncall")
            elif kind == "bad_deployment":
                self._rollback(i, t, "oncall")
        self.log.append({"time": t, "what": "fault_end", "service": self.names[i], "kind": kind, "by": by})

    def _rollback(self, i: int, t: float, by: str) -> None:
        if self.prev_versions[i]:
            bad, self.versions[i] = self.versions[i], self.prev_versions[i].pop()
            self._event("rollback", i, t, version=self.versions[i], from_version=bad, by=by)
        else:
            self._event("rollback", i, t, version=self.versions[i], from_version=self.versions[i], by=by)

    def _active_on(self, i: int, kinds: Iterable[str]) -> list[_FaultState]:
        ks = set(kinds)
        return [fs for fs in self.faults if fs.started and fs.ended_at is None and fs.idx == i
                and fs.fault.kind in ks]

    def _apply(self, kind: str, service: str, t: float) -> ActionResult:
        i = self._idx(service)
        fixed: list[_FaultState] = []
        if kind == "restart":
            fixed = self._active_on(i, ("memory_leak", "pool_exhaustion"))
            for fs in fixed:
                self._end_fault(fs, t, "restart")
            self._restart(i, t, "action")
        elif kind == "rollback":
            fixed = self._active_on(i, ("bad_deployment",))
            for fs in fixed:
                self._end_fault(fs, t, "rollback")
            self._rollback(i, t, "action")
        elif kind == "scale_out":
            before = self.replicas[i]
            self.replicas[i] = before * 2
            self._event("scale", i, t, replicas=int(self.replicas[i]), previous=int(before))
            # Scaling out cures saturation (it removes the cause's effect), though not the cause itself.
            fixed = [fs for fs in self.faults if fs.started and fs.ended_at is None and fs.fault.kind in
                     ("cpu_saturation", "traffic_surge") and self._idx(fs.fault.fix_service or fs.fault.service) == i]
        elif kind == "cache_flush":
            fixed = self._active_on(i, ("cache_failure",))
            for fs in fixed:
                self._end_fault(fs, t, "cache_flush")
            self._event("maintenance", i, t, action="cache_flush")
        elif kind == "failover":
            fixed = self._active_on(i, ("dependency_outage", "slow_database"))
            for fs in fixed:
                self._end_fault(fs, t, "failover")
            self.restart_until[i] = t + FAILOVER_WINDOW_S
            self.restart_err[i] = 0.3
            self._event("maintenance", i, t, action="failover")
        note = (f"fixed {', '.join(fs.fault.kind for fs in fixed)}" if fixed
                else "no active fault on this service is fixed by this action")
        self.log.append({"time": t, "what": "action", "action": kind, "service": service, "effective": bool(fixed)})
        return ActionResult(kind, service, t, bool(fixed), note)

    # --- background deployments ------------------------------------------------------------------
    def _plan_deploys(self, day: int) -> None:
        """Benign deployments on weekdays 09:00-18:00 UTC, kept an hour away from every fault onset."""
        rng = np.random.default_rng([self.seed, day, 0xDE9])
        out: list[tuple[float, int]] = []
        deployable = [i for i, s in enumerate(self.spec.services) if s.kind in ("gateway", "web", "service", "worker")]
        n = int(rng.integers(2, 6))
        times = day * DAY + rng.uniform(9 * 3600, 18 * 3600, n)
        picks = rng.integers(0, len(deployable), n)
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday
        if weekday < 5:
            for tt, p in zip(times, picks, strict=True):
                if all(abs(tt - fs.fault.onset) > 3600 for fs in self.faults):
                    out.append((float(tt), deployable[int(p)]))
        self._deploys = sorted(out)

    def _background(self, t: float) -> None:
        day = int(t // DAY)
        if day != self._deploy_day:
            self._deploy_day = day
            self._plan_deploys(day)
        while self._deploys and self._deploys[0][0] <= t:
            tt, i = self._deploys.pop(0)
            if tt < self.start:
                continue
            self.prev_versions[i].append(self.versions[i])
            self.versions[i] = _bump(self.versions[i])
            self._event("deployment", i, tt, version=self.versions[i], previous=self.prev_versions[i][-1])

    # --- faults ----------------------------------------------------------------------------------
    def _start_fault(self, fs: _FaultState, t: float) -> None:
        f, i = fs.fault, fs.idx
        fs.started = True
        ttb = f.time_to_breach_s
        if f.kind == "memory_leak":
            self.leak_rate[i] = (self.mem_limit[i] - self.mem_base[i]) / float(ttb or 3600)
            self.leak_t0[i] = f.onset
        elif f.kind == "disk_fill":
            d = np.flatnonzero(self.disk_idx == i)
            if not d.size:
                raise ValueError(f"disk_fill on {f.service}, which has no disk")
            tb = float(ttb or 3600)
            used_at_breach = (self.disk_base[d] + self.disk_growth[d] * (f.onset + tb - self.start)
                              + self.disk_fill_done[d])
            self.disk_fill_rate[d] = np.maximum(self.disk_cap[d] - used_at_breach, 0.0) / tb
            self.disk_fill_t0[d] = f.onset
        elif f.kind == "pool_exhaustion":
            p = np.flatnonzero(self.pool_idx == i)
            if not p.size:
                raise ValueError(f"pool_exhaustion on {f.service}, which has no DB pool")
            self.pool_leak_rate[p] = (self.pool_max[p] - POOL_IDLE) / float(ttb or 1200)
            self.pool_leak_t0[p] = f.onset
        elif f.kind == "bad_deployment":
            self.prev_versions[i].append(self.versions[i])
            self.versions[i] = str(f.params.get("version", _bump(self.versions[i])))
            self._event("deployment", i, f.onset, version=self.versions[i], previous=self.prev_versions[i][-1])
        self.log.append({"time": t, "what": "fault_start", "service": f.service, "kind": f.kind})

    def _fault_effects(self, t: float, lat_mult: np.ndarray, err_add: np.ndarray, cpu_mult: np.ndarray,
                       down: np.ndarray) -> tuple[float, float | None, float]:
        """Apply active faults to this step's modifiers; returns (traffic factor, cache hit target, drift)."""
        surge, hit_target, drift = 1.0, None, 0.0
        for fs in self.faults:
            f = fs.fault
            if not fs.started:
                if t < f.onset:
                    continue
                self._start_fault(fs, t)
            if fs.ended_at is None and f.end is not None and t >= f.end:
                self._end_fault(fs, f.end, "duration")
            p = f.params
            i = fs.idx
            el = t - f.onset
            if fs.ended_at is not None:
                # Deployments and rollbacks roll out over ROLLOUT_S; everything else stops at once.
                fade = 1.0 - (t - fs.ended_at) / ROLLOUT_S if f.kind == "bad_deployment" else 0.0
                if fade <= 0.0:
                    continue
            else:
                fade = 1.0
            if f.kind == "cpu_saturation":
                ramp = min(1.0, el / max(float(p.get("ramp_s", 600.0)), 1e-9))
                cpu_mult[i] *= 1.0 + (float(p.get("factor", 5.0)) - 1.0) * ramp
            elif f.kind == "slow_database":
                lat_mult[i] *= 1.0 + (float(p.get("factor", 12.0)) - 1.0) * min(1.0, el / 60.0)
            elif f.kind == "bad_deployment":
                roll = min(1.0, el / ROLLOUT_S) * fade
                err_add[i] += float(p.get("error_ratio", 0.15)) * roll
                lat_mult[i] *= 1.0 + (float(p.get("latency_factor", 1.3)) - 1.0) * roll
            elif f.kind == "dependency_outage":
                down[i] = True
            elif f.kind == "traffic_surge":
                ramp_s = max(float(p.get("ramp_s", 300.0)), 1e-9)
                ramp = min(1.0, el / ramp_s)
                if f.end is not None:
                    ramp = min(ramp, max(0.0, (f.end + ramp_s - t) / ramp_s))
                surge *= 1.0 + (float(p.get("factor", 2.5)) - 1.0) * ramp
            elif f.kind == "cache_failure":
                hit_target = float(p.get("hit_ratio", 0.05))
            elif f.kind == "model_drift":
                drift = max(drift, el / float(f.time_to_breach_s or 4 * 3600))
        return surge, hit_target, drift

    # --- one scrape ------------------------------------------------------------------------------
    def _step(self, t_ms: int, z: np.ndarray, row: np.ndarray) -> None:
        t = t_ms / 1000.0
        dt = self.step_s
        n = self.n
        sp = self.spec
        while self._pending and self._pending[0][0] <= t:
            tt, kind, svc = self._pending.pop(0)
            self._apply(kind, svc, tt)
        if self.background_deploys:
            self._background(t)
        lat_mult = np.ones(n)
        err_add = np.zeros(n)
        cpu_mult = np.ones(n)
        down = np.zeros(n, bool)
        surge, hit_target, drift = self._fault_effects(t, lat_mult, err_add, cpu_mult, down)

        # noise slots (fixed layout, so faults never shift the random stream)
        zi = 1

        def take(m: int) -> np.ndarray:
            nonlocal zi
            a = z[zi:zi + m]
            zi += m
            return a

        # traffic: seasonality x AR(1) noise x surge
        phi = 0.98
        self.ar = phi * self.ar + math.sqrt(1 - phi * phi) * 0.06 * float(z[0])
        hour = (t % DAY) / 3600.0
        weekday = int((t // DAY + 3) % 7)
        season = 1.0 + sp.daily_amplitude * math.cos(2 * math.pi * (hour - sp.peak_hour_utc) / 24.0)
        if weekday >= 5:
            season *= sp.weekend_factor
        ext = sp.base_rps * season * math.exp(self.ar) * surge

        # cache: first-order approach to its target (collapse in ~1 min, warm-up in ~3 min)
        target = NOMINAL_HIT_RATIO if hit_target is None else hit_target
        tau = 60.0 if hit_target is not None else 180.0
        self.hit = target + (self.hit - target) * math.exp(-dt / tau)
        z_misc = take(5)  # cache, queue, accuracy, drift score, inference latency
        hit_obs = float(np.clip(self.hit + 0.004 * z_misc[0], 0.0, 1.0))
        miss = 1.0 - self.hit

        F = self.F_static + self.F_cached * miss
        r = self.e_entry * ext
        for _ in range(self.depth):
            r = self.e_entry * ext + F.T @ r
        r = r * (1.0 + 0.02 * take(n))

        capacity_cores = self.cores * self.replicas
        u = r * self.cpu_cost * cpu_mult / capacity_cores
        # the worker drains the queue at its capacity; the rest waits as backlog
        if self.worker_idx >= 0:
            w = self.worker_idx
            cap_w = 0.0 if down[w] else capacity_cores[w] / (self.cpu_cost[w] * cpu_mult[w])
            inflow = r[w]
            done = min(cap_w, inflow + self.backlog / dt)
            self.backlog = max(0.0, self.backlog + (inflow - done) * dt)
            r[w] = done
            u[w] = done * self.cpu_cost[w] * cpu_mult[w] / capacity_cores[w]

        restarting = t < self.restart_until
        own_lat = self.base_latency * lat_mult / (1.0 - np.minimum(u, 0.95))
        own_lat = np.where(down, OUTAGE_TIMEOUT_S, own_lat)
        err = self.base_err + err_add + np.where(u > 1.0, 1.0 - 1.0 / np.maximum(u, 1.0), 0.0)
        err = np.where(down, 1.0, err)
        err = np.where(restarting, np.maximum(err, self.restart_err), err)

        # disks
        d_used = (self.disk_base + self.disk_growth * (t - self.start) + self.disk_fill_done
                  + self.disk_fill_rate * np.maximum(t - self.disk_fill_t0, 0.0))
        full = d_used >= self.disk_cap - 1.0
        if full.any():
            for j in np.flatnonzero(full):
                i = int(self.disk_idx[j])
                # a full disk fails writes: most of a database's traffic, all of a queue's
                err[i] = max(err[i], 1.0 if i == self.queue_idx else 0.6)
                self._breach("disk_full", i, t)
        d_used = np.minimum(d_used, self.disk_cap)

        # DB connection pools: Little's law for active connections, plus leaked ones
        pool_open = np.zeros(len(self.pool_idx))
        if self.pool_idx.size and self.db_idx >= 0:
            pi = self.pool_idx
            db_rate = r[pi] * F[pi, self.db_idx]
            active = db_rate * (own_lat[self.db_idx] + 0.001)
            leaked = np.minimum(self.pool_max, self.pool_leak_rate * np.maximum(t - self.pool_leak_t0, 0.0))
            demand = np.maximum(POOL_IDLE, active)
            avail = self.pool_max - leaked
            pool_err = np.clip(1.0 - avail / demand, 0.0, 1.0)
            share = np.minimum(1.0, F[pi, self.db_idx])
            err[pi] = err[pi] + pool_err * share
            own_lat[pi] += 0.5 * pool_err  # waiting for a connection until the pool timeout
            pool_open = np.minimum(self.pool_max, np.floor(demand + leaked + 1e-9))
            if (pool_open >= self.pool_max).any():
                for j in np.flatnonzero(pool_open >= self.pool_max):
                    self._breach("pool_exhausted", int(pi[j]), t)

        # errors up the critical edges: survival = own x prod over calls (integer part exact, fraction Bernoulli)
        C = F * self.crit
        Ci = np.floor(C)
        Cf = C - Ci
        log_own = np.log1p(-np.clip(err, 0.0, 1.0 - 1e-12))
        E = np.clip(err, 0.0, 1.0)
        for _ in range(self.depth):
            Ec = np.minimum(E, 1.0 - 1e-12)
            log_s = log_own + Ci @ np.log1p(-Ec) + np.log1p(-Cf * Ec[None, :]).sum(axis=1)
            E = -np.expm1(log_s)
        # latency up the synchronous edges
        W = F * self.sync
        L = own_lat
        for _ in range(self.depth):
            L = own_lat + W @ L
        L = np.minimum(L, 30.0)

        # memory: base + leak; at the limit the kernel OOM-kills and the service restarts
        leaked_mem = self.leak_rate * np.maximum(t - self.leak_t0, 0.0)
        mem_det = self.mem_base + leaked_mem
        oom = mem_det >= self.mem_limit - 1.0
        if oom.any():
            for oi in np.flatnonzero(oom).tolist():
                self._breach("oom", oi, t)
                self._restart(oi, t, "OOMKilled")
            leaked_mem = self.leak_rate * np.maximum(t - self.leak_t0, 0.0)
            mem_det = self.mem_base + leaked_mem
            restarting = t < self.restart_until
            E = np.where(oom, np.maximum(E, self.restart_err), E)
        load = r / np.maximum(self.peak_rate, 1e-9)
        mem = np.minimum(self.mem_limit, mem_det + self.mem_base * (0.01 * load + 0.004 * take(n)))

        # request counters (normal approximation of Poisson / binomial counts, rounded)
        n_req = np.maximum(0.0, np.rint(r * dt + np.sqrt(r * dt) * take(n)))
        ze = take(n)
        n_err = np.clip(np.rint(n_req * E + np.sqrt(n_req * E * (1 - E)) * ze), 0.0, n_req)
        cpu_used = np.minimum(u, 1.0) * capacity_cores + 0.02 * self.replicas
        cpu_used = cpu_used * (1.0 + 0.03 * take(n))
        cpu_used = np.maximum(cpu_used, 0.0)
        self.counters[0] += n_req - n_err
        self.counters[1] += n_err
        self.counters[2] += cpu_used * dt

        # latency quantiles of a log-normal with mean L
        mu = np.log(L) - LATENCY_SIGMA**2 / 2
        zq = take(3 * n).reshape(3, n)
        quant = np.exp(mu[None, :] + LATENCY_SIGMA * _Z_Q[:, None] + 0.05 * zq)
        quant.sort(axis=0)  # noise must not invert the quantiles

        fam = self._fam
        row[fam["ok"]] = self.counters[0]
        row[fam["err"]] = self.counters[1]
        row[fam["q0.5"]] = quant[0]
        row[fam["q0.9"]] = quant[1]
        row[fam["q0.99"]] = quant[2]
        row[fam["err_ratio"]] = np.where(n_req > 0, n_err / np.maximum(n_req, 1.0), 0.0)
        row[fam["cpu_total"]] = self.counters[2]
        row[fam["cpu"]] = np.clip(cpu_used / capacity_cores, 0.0, 1.0)
        row[fam["mem"]] = mem
        row[fam["mem_limit"]] = self.mem_limit
        row[fam["up"]] = np.where(down | restarting, 0.0, 1.0)
        row[fam["replicas"]] = self.replicas
        dz = take(n)[: len(self.disk_idx)]  # assumes at most one disk per service
        row[fam["disk_used"]] = np.minimum(self.disk_cap, np.rint(d_used + 2e6 * np.abs(dz)))
        row[fam["disk_cap"]] = self.disk_cap
        row[fam["pool_open"]] = pool_open
        row[fam["pool_max"]] = self.pool_max
        if "queue" in fam:
            wl = L[self.worker_idx] if self.worker_idx >= 0 else 0.0
            inflight = r[self.queue_idx] * wl
            row[fam["queue"]] = max(0.0, np.rint(self.backlog + inflight + math.sqrt(inflight + 1) * z_misc[1]))
        if "hit" in fam:
            row[fam["hit"]] = hit_obs
        if "acc" in fam:
            truth = [fs.fault for fs in self.faults if fs.fault.kind == "model_drift"]
            thr = float(truth[0].params.get("threshold", 0.85)) if truth else 0.85
            acc = max(0.5, 0.92 - drift * (0.92 - thr))
            if drift >= 1.0:
                self._breach("accuracy", self.model_idx, t)
            row[fam["acc"]] = acc + 0.004 * z_misc[2]
            row[fam["drift"]] = max(0.0, 0.05 + 0.25 * drift + 0.01 * z_misc[3])
            row[fam["inf"]] = own_lat[self.model_idx] * math.exp(0.05 * z_misc[4])
        hz = take(2 * len(self.hosts)).reshape(2, -1)
        row[fam["node_cpu"]] = np.clip((self.H @ cpu_used + 0.3) / self.host_cores + 0.01 * hz[0], 0.0, 1.0)
        row[fam["node_mem"]] = self.host_os_mem + self.H @ (mem * self.replicas) + 5e7 * hz[1]
        row[fam["node_mem_total"]] = self.host_mem

    def _breach(self, what: str, i: int, t: float) -> None:
        """Record the first time each fault's limit is hit (the observed ground truth)."""
        kind = _BREACH_KIND[what]
        for fs in self.faults:
            if fs.idx == i and fs.fault.kind == kind and fs.started and fs.breached_at is None:
                fs.breached_at = t
                self.log.append({"time": t, "what": "breach", "service": self.names[i], "kind": what})

    def observed_breaches(self) -> list[float | None]:
        """Per fault, when the simulated limit was actually hit (None if not yet)."""
        return [fs.breached_at for fs in self.faults]


def simulate(scenario: Scenario, *, seed: int = 0, start: float = DEFAULT_START, hours: float | None = None,
             step_s: float = 15.0, **fleet_kw: Any) -> tuple[Fleet, np.ndarray, np.ndarray]:
    """Run ``scenario`` for ``hours`` (default: the scenario's); returns (fleet, ts_ms, values[step, series])."""
    fleet = Fleet(seed=seed, start=start, step_s=step_s, faults=scenario.at(start), **fleet_kw)
    n = round((hours if hours is not None else scenario.hours) * 3600 / fleet.step_s)
    ts, values = fleet.generate_matrix(n)
    return fleet, ts, values
