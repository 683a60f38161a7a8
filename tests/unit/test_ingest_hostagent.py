"""Host agent: the named node_* and process_* metrics with sane values for this machine."""

from __future__ import annotations

import asyncio
import socket

import psutil

from aurora.config import HostAgentConfig
from aurora.ingest.hostagent import HostAgent
from aurora.model import SeriesBatch

TS = 1_700_000_000_000


def test_collect_once_emits_the_named_metrics() -> None:
    agent = HostAgent(HostAgentConfig.model_validate({"top_processes": 3}))
    agent.collect_once(TS - 1000)
    batch = agent.collect_once(TS)
    names = set(batch.metrics)
    for required in ["node_cpu_utilization_ratio", "node_load1", "node_load5", "node_load15",
                     "node_memory_used_bytes", "node_memory_total_bytes", "node_memory_available_bytes",
                     "node_swap_used_bytes", "node_filesystem_used_bytes", "node_filesystem_size_bytes",
                     "node_network_receive_bytes_total", "node_network_transmit_bytes_total",
                     "process_cpu_utilization_ratio", "process_resident_memory_bytes"]:
        assert required in names, required
    assert all(lab["host"] == socket.gethostname() for lab in batch.labels)
    assert batch.ts_ms.tolist() == [TS] * batch.n_samples
    assert len(set(batch.keys())) == batch.n_series  # no duplicate series

    def values(metric: str) -> list[tuple[dict[str, str], float]]:
        return [(batch.labels[i], float(batch.values[i])) for i, m in enumerate(batch.metrics) if m == metric]

    cpu = values("node_cpu_utilization_ratio")
    assert len(cpu) == 1 + (psutil.cpu_count() or 1)
    assert all(0.0 <= v <= 1.0 for _, v in cpu)
    assert sorted(lab["cpu"] for lab, _ in cpu if "cpu" in lab) == [str(i) for i in range(len(cpu) - 1)]
    total = values("node_memory_total_bytes")[0][1]
    assert total == psutil.virtual_memory().total
    assert 0 < values("node_memory_used_bytes")[0][1] < total
    assert 0 < values("node_memory_available_bytes")[0][1] <= total
    fs = {lab["mountpoint"]: v for lab, v in values("node_filesystem_size_bytes")}
    assert "/" in fs and fs["/"] > 0
    for lab, used in values("node_filesystem_used_bytes"):
        assert 0 <= used <= fs[lab["mountpoint"]]
    procs = values("process_resident_memory_bytes")
    assert 1 <= len(procs) <= 3 and all(v > 0 and "pid" not in lab for lab, v in procs)
    assert all(0.0 <= v <= 1.0 for _, v in values("process_cpu_utilization_ratio"))


def test_start_and_stop_feed_the_sink() -> None:
    got: list[SeriesBatch] = []
    agent = HostAgent(HostAgentConfig.model_validate({"interval_s": 0.2, "top_processes": 0}))

    async def run() -> None:
        await agent.start(got.append)
        await asyncio.sleep(0.7)
        await agent.stop()

    asyncio.run(run())
    assert len(got) >= 2
    assert "process_cpu_utilization_ratio" not in got[0].metrics
    assert got[1].ts_ms[0] > got[0].ts_ms[0]
