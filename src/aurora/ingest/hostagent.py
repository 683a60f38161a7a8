"""This machine's metrics, collected with psutil, named close to node_exporter.

Every series carries ``host=<hostname>``. Ratios are 0..1. CPU utilisation is computed from the change
in CPU times since the previous collection (since boot on the first one), so it needs no blocking
sample. ``node_memory_used_bytes`` is total minus available (what "used" means to an operator; the
kernel's own "used" excludes reclaimable cache inconsistently across platforms).

Processes are labelled by name, not pid, so restarts and worker pools do not create new series:
processes sharing a name are summed, and only the top N names by CPU and the top N by memory are
reported. ``process_cpu_utilization_ratio`` is the share of the whole machine (all CPUs), comparable
with ``node_cpu_utilization_ratio``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil

from aurora.config import HostAgentConfig
from aurora.model import BatchBuilder, SeriesBatch

__all__ = ["HostAgent"]

log = logging.getLogger(__name__)

# Pseudo and in-memory filesystems, as node_exporter excludes them by default.
_SKIP_FSTYPES = {
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
    "fusectl", "hugetlbfs", "iso9660", "mqueue", "nsfs", "overlay", "proc", "procfs", "pstore",
    "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "erofs", "sysfs", "tracefs", "tmpfs", "ramfs",
    "nfsd", "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal",
}
_SKIP_DISK_PREFIXES = ("loop", "ram", "zram", "fd", "sr")
_MAX_NAME = 64


def _busy_fraction(prev: Any, cur: Any) -> float:
    """Non-idle share of CPU time between two cpu_times samples (prev may be None: since boot)."""
    def idle(t: Any) -> float:
        return float(t.idle + getattr(t, "iowait", 0.0))

    total = sum(cur) - (sum(prev) if prev is not None else 0.0)
    idle_d = idle(cur) - (idle(prev) if prev is not None else 0.0)
    if total <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - idle_d / total))


class HostAgent:
    def __init__(self, config: HostAgentConfig | None = None, *, hostname: str | None = None) -> None:
        self.config = config or HostAgentConfig.model_validate({})
        self.hostname = hostname or socket.gethostname()
        self._prev_cpu: Any = None
        self._prev_percpu: list[Any] | None = None
        self._prev_proc: dict[tuple[int, float], float] = {}
        self._prev_proc_wall: float | None = None
        self._task: asyncio.Task[None] | None = None

    # --------------------------------------------------------------------------------- collection

    def collect_once(self, ts_ms: int | None = None) -> SeriesBatch:
        """One collection of every metric, stamped ``ts_ms`` (now if None). Blocking; see start()."""
        if ts_ms is None:
            ts_ms = int(time.time() * 1000)
        out = BatchBuilder()
        host = {"host": self.hostname}

        def add(metric: str, value: float, **labels: str) -> None:
            out.add(metric, {**host, **labels}, [ts_ms], [float(value)])

        cpu = psutil.cpu_times()
        add("node_cpu_utilization_ratio", _busy_fraction(self._prev_cpu, cpu))
        self._prev_cpu = cpu
        percpu = psutil.cpu_times(percpu=True)
        prev_per = self._prev_percpu if self._prev_percpu and len(self._prev_percpu) == len(percpu) else None
        for i, t in enumerate(percpu):
            add("node_cpu_utilization_ratio", _busy_fraction(prev_per[i] if prev_per else None, t), cpu=str(i))
        self._prev_percpu = list(percpu)

        with contextlib.suppress(OSError, AttributeError):
            l1, l5, l15 = os.getloadavg()
            add("node_load1", l1)
            add("node_load5", l5)
            add("node_load15", l15)

        vm = psutil.virtual_memory()
        add("node_memory_total_bytes", vm.total)
        add("node_memory_available_bytes", vm.available)
        add("node_memory_used_bytes", max(0, vm.total - vm.available))
        add("node_swap_used_bytes", psutil.swap_memory().used)

        self._filesystems(add)
        self._network(add)
        self._disks(add)
        if self.config.top_processes > 0:
            self._processes(add)
        return out.build()

    def _filesystems(self, add: Callable[..., None]) -> None:
        seen: set[str] = set()
        try:
            parts = psutil.disk_partitions(all=False)
        except OSError as exc:
            log.debug("disk_partitions failed: %s", exc)
            return
        for p in parts:
            # In a container the root filesystem is an overlay; it is still the disk that fills up.
            if p.mountpoint in seen or (p.fstype in _SKIP_FSTYPES and p.mountpoint != "/"):
                continue
            if not os.path.isdir(p.mountpoint):  # file bind mounts (/etc/hosts in containers)
                continue
            try:
                usage = psutil.disk_usage(p.mountpoint)
            except OSError:
                continue
            seen.add(p.mountpoint)
            add("node_filesystem_size_bytes", usage.total, mountpoint=p.mountpoint, fstype=p.fstype)
            add("node_filesystem_used_bytes", usage.used, mountpoint=p.mountpoint, fstype=p.fstype)
        if "/" not in seen:
            # psutil lists only device-backed mounts; make sure the root filesystem is always there.
            with contextlib.suppress(OSError):
                usage = psutil.disk_usage("/")
                add("node_filesystem_size_bytes", usage.total, mountpoint="/", fstype="rootfs")
                add("node_filesystem_used_bytes", usage.used, mountpoint="/", fstype="rootfs")

    def _network(self, add: Callable[..., None]) -> None:
        try:
            nics = psutil.net_io_counters(pernic=True)
        except OSError:
            return
        for name, c in sorted(nics.items()):
            add("node_network_receive_bytes_total", c.bytes_recv, device=name)
            add("node_network_transmit_bytes_total", c.bytes_sent, device=name)

    def _disks(self, add: Callable[..., None]) -> None:
        try:
            disks = psutil.disk_io_counters(perdisk=True) or {}
        except (OSError, RuntimeError):
            return
        for name, c in sorted(disks.items()):
            if name.startswith(_SKIP_DISK_PREFIXES):
                continue
            add("node_disk_read_bytes_total", c.read_bytes, device=name)
            add("node_disk_written_bytes_total", c.write_bytes, device=name)

    def _processes(self, add: Callable[..., None]) -> None:
        now = time.monotonic()
        ncpu = psutil.cpu_count() or 1
        elapsed = now - self._prev_proc_wall if self._prev_proc_wall is not None else None
        cpu_by_name: dict[str, float] = {}
        rss_by_name: dict[str, float] = {}
        current: dict[tuple[int, float], float] = {}
        boot = psutil.boot_time()
        wall = time.time()
        for proc in psutil.process_iter(["name", "cpu_times", "memory_info", "create_time"]):
            info = proc.info
            times, mem = info.get("cpu_times"), info.get("memory_info")
            if times is None or mem is None:
                continue  # gone, or not ours to read
            name = (info.get("name") or "unknown")[:_MAX_NAME]
            created = info.get("create_time") or boot
            used = float(times.user + times.system)
            key = (proc.pid, created)
            current[key] = used
            prev = self._prev_proc.get(key)
            if prev is not None and elapsed:
                share = (used - prev) / (elapsed * ncpu)
            else:  # first sight of this process: its average since it started
                share = used / (max(wall - created, 1e-3) * ncpu)
            cpu_by_name[name] = cpu_by_name.get(name, 0.0) + max(0.0, share)
            rss_by_name[name] = rss_by_name.get(name, 0.0) + float(mem.rss)
        self._prev_proc = current
        self._prev_proc_wall = now
        n = self.config.top_processes
        for name, share in sorted(cpu_by_name.items(), key=lambda kv: (-kv[1], kv[0]))[:n]:
            add("process_cpu_utilization_ratio", min(1.0, share), process=name)
        for name, rss in sorted(rss_by_name.items(), key=lambda kv: (-kv[1], kv[0]))[:n]:
            add("process_resident_memory_bytes", rss, process=name)

    # -------------------------------------------------------------------------------------- loop

    async def start(self, sink: Callable[[SeriesBatch], Awaitable[None] | None]) -> None:
        """Collect every interval (in a worker thread: psutil blocks) and pass each batch to ``sink``."""
        if self._task is None and self.config.enabled:
            self._task = asyncio.create_task(self._loop(sink), name="host agent")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self, sink: Callable[[SeriesBatch], Awaitable[None] | None]) -> None:
        interval = self.config.interval_s
        next_at = time.time()
        while True:
            try:
                batch = await asyncio.to_thread(self.collect_once, int(time.time() * 1000))
                result = sink(batch)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:  # one failed collection must not stop the agent
                log.exception("host agent collection failed")
            next_at += interval
            now = time.time()
            if next_at < now:
                next_at = now + interval - ((now - next_at) % interval)
            await asyncio.sleep(next_at - now)
