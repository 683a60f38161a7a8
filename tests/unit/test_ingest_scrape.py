"""Scraper against real HTTP servers on 127.0.0.1 (prometheus_client's exposition and http.server)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from aurora.config import ScrapeJob
from aurora.ingest.scrape import Scraper, target_url
from aurora.model import SeriesBatch

REG = CollectorRegistry()
Counter("jobs_processed", "Jobs", ["queue"], registry=REG).labels("default").inc(5)
Gauge("job_label_clash", "Has a job label", ["job"], registry=REG).labels("inner").set(1)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/metrics":
            body, status = generate_latest(REG), 200
        elif self.path == "/slow":
            time.sleep(1.0)
            body, status = b"late 1\n", 200
        elif self.path == "/garbage":
            body, status = b"this is { not a metrics page\n", 200
        else:
            body, status = b"nope", 500
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def by_key(batch: SeriesBatch) -> dict[str, float]:
    return {k: float(batch.values[batch.series_slice(i)][-1]) for i, k in enumerate(batch.keys())}


def job(targets: list[str], **kw: object) -> ScrapeJob:
    return ScrapeJob.model_validate({"name": "app", "targets": targets, "labels": {"env": "test"}, **kw})


def test_target_urls() -> None:
    j = job(["x:1"], metrics_path="/m")
    assert target_url(j, "127.0.0.1:9100") == ("http://127.0.0.1:9100/m", "127.0.0.1:9100")
    assert target_url(j, "https://h.example/custom?x=1") == ("https://h.example/custom?x=1", "h.example:443")
    assert target_url(j, "http://h:8080") == ("http://h:8080/m", "h:8080")


def test_scrape_once_adds_target_labels_and_meta_series(server: str) -> None:
    j = job([server])

    async def run() -> SeriesBatch:
        scraper = Scraper([j], now_ms=lambda: 1_700_000_000_000)
        try:
            return await scraper.scrape_once(j, server)
        finally:
            await scraper.stop()

    batch = asyncio.run(run())
    d = by_key(batch)
    inst = f'env="test",instance="{server}",job="app"'
    assert d[f'jobs_processed_total{{{inst},queue="default"}}'] == 5.0
    clash = batch.labels[batch.metrics.index("job_label_clash")]  # scraped job label kept as exported_job
    assert clash == {"exported_job": "inner", "job": "app", "instance": server, "env": "test"}
    assert d[f"up{{{inst}}}"] == 1.0
    assert 0 < d[f"scrape_duration_seconds{{{inst}}}"] < 5
    assert d[f"scrape_samples_scraped{{{inst}}}"] == batch.n_samples - 3
    assert set(batch.ts_ms.tolist()) == {1_700_000_000_000}


@pytest.mark.parametrize(("target", "timeout", "reason"), [
    (None, 5.0, "connection failed"),
    ("http://{server}/slow", 0.2, "timeout after 0.2s"),
    ("http://{server}/broken", 5.0, "HTTP 500"),
    ("http://{server}/garbage", 5.0, "bad metrics page: exposition line 1"),
])
def test_failures_give_up_zero_and_a_reason(server: str, target: str | None, timeout: float,
                                            reason: str) -> None:
    tgt = f"127.0.0.1:{free_port()}" if target is None else target.format(server=server)
    j = job([tgt], timeout_s=timeout)

    async def run() -> tuple[SeriesBatch, list[dict[str, object]]]:
        scraper = Scraper([j])
        try:
            return await scraper.scrape_once(j, tgt), scraper.targets()
        finally:
            await scraper.stop()

    batch, status = asyncio.run(run())
    assert batch.metrics == ["up", "scrape_duration_seconds", "scrape_samples_scraped"]
    assert batch.values.tolist()[0] == 0.0 and batch.values.tolist()[2] == 0.0
    assert status[0]["health"] == "down"
    assert reason in str(status[0]["last_error"])


def test_loop_scrapes_every_target_and_survives_a_dead_one(server: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    j = job([server, dead], interval_s=0.2, timeout_s=0.5)
    got: list[SeriesBatch] = []

    async def sink(batch: SeriesBatch) -> None:
        got.append(batch)

    async def run() -> list[dict[str, object]]:
        scraper = Scraper([j], sink)
        await scraper.start()
        await asyncio.sleep(1.0)
        await scraper.stop()
        return scraper.targets()

    status = asyncio.run(run())
    ups = [(b.labels[i]["instance"], b.values[b.series_slice(i)][0])
           for b in got for i, m in enumerate(b.metrics) if m == "up"]
    assert (server, 1.0) in ups and (dead, 0.0) in ups
    assert len(ups) >= 6  # both targets, several intervals each
    health = {s["url"]: s["health"] for s in status}
    assert health == {f"http://{server}/metrics": "up", f"http://{dead}/metrics": "down"}
    assert all(s["last_scrape"] and s["last_duration_s"] is not None for s in status)
