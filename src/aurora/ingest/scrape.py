"""Prometheus-style scraping: fetch metrics pages on an interval and hand each scrape to a sink.

Like Prometheus, every scraped series gets ``job`` and ``instance`` labels (plus the job's own labels;
a scraped label with one of those names is kept as ``exported_<name>``), and every scrape of every
target also yields ``up`` (1/0), ``scrape_duration_seconds`` and ``scrape_samples_scraped``, stamped
with the scrape's start time. Targets of a job are spread over its interval by a stable per-target
offset so they are not all fetched at once. A failing target (refused, timeout, HTTP error, bad page)
gives ``up=0`` and a logged reason; it never stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from aurora.config import ScrapeJob
from aurora.errors import BadInput
from aurora.ingest.exposition import parse_exposition
from aurora.model import BatchBuilder, SeriesBatch

__all__ = ["Scraper", "Sink", "target_url"]

log = logging.getLogger(__name__)

Sink = Callable[[SeriesBatch], Awaitable[None] | None]

ACCEPT = ("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.9,"
          "*/*;q=0.1")
MAX_PAGE_BYTES = 64 * 1024 * 1024
# Pages larger than this are parsed in a worker thread so the event loop keeps serving requests.
PARSE_INLINE_BYTES = 256 * 1024


def target_url(job: ScrapeJob, target: str) -> tuple[str, str]:
    """(url, instance) for a target: ``host:port`` gets ``http://`` and the job's metrics_path; a full URL
    is used as given (its own path wins when it has one). The instance is ``host:port``, as in Prometheus."""
    if "://" not in target:
        target = "http://" + target
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"scrape target {target!r} of job {job.name!r} is not host:port or an http(s) URL")
    path = parts.path if parts.path not in ("", "/") else job.metrics_path
    query = f"?{parts.query}" if parts.query else ""
    url = f"{parts.scheme}://{parts.netloc}{path}{query}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return url, f"{host}:{port}"


@dataclass
class _TargetState:
    job: str
    url: str
    instance: str
    health: str = "unknown"
    last_error: str | None = None
    last_scrape: float | None = None
    last_duration_s: float | None = None
    last_samples: int = 0


class Scraper:
    def __init__(
        self,
        jobs: Sequence[ScrapeJob],
        sink: Sink | None = None,
        *,
        now_ms: Callable[[], int] | None = None,
        max_page_bytes: int = MAX_PAGE_BYTES,
    ) -> None:
        self.jobs = list(jobs)
        self.sink = sink
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.max_page_bytes = max_page_bytes
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._state: dict[tuple[str, str], _TargetState] = {}
        for job in self.jobs:
            for target in job.targets:
                url, instance = target_url(job, target)
                self._state[(job.name, target)] = _TargetState(job.name, url, instance)

    # ----------------------------------------------------------------------------------- lifecycle

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=True, headers={"Accept": ACCEPT})
        return self._client

    async def start(self) -> None:
        if self._tasks:
            return
        for job in self.jobs:
            for target in job.targets:
                self._tasks.append(asyncio.create_task(self._loop(job, target),
                                                       name=f"scrape {job.name} {target}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def targets(self) -> list[dict[str, Any]]:
        """Status of every target, for a status endpoint."""
        return [
            {"job": s.job, "url": s.url, "instance": s.instance, "health": s.health,
             "last_error": s.last_error, "last_scrape": s.last_scrape, "last_duration_s": s.last_duration_s,
             "last_samples": s.last_samples}
            for s in self._state.values()
        ]

    # -------------------------------------------------------------------------------------- scraping

    @staticmethod
    def _offset(job: ScrapeJob, target: str) -> float:
        # Stable across restarts, so a target keeps its slot in the interval.
        return (zlib.crc32(f"{job.name}\x00{target}".encode()) / 2**32) * job.interval_s

    async def _loop(self, job: ScrapeJob, target: str) -> None:
        loop = asyncio.get_running_loop()
        interval = job.interval_s
        # Align to the interval grid (wall time) plus this target's offset.
        now = time.time()
        next_at = (now // interval) * interval + self._offset(job, target)
        if next_at < now:
            next_at += interval
        while True:
            await asyncio.sleep(max(0.0, next_at - time.time()))
            started = loop.time()
            try:
                batch = await self.scrape_once(job, target)
                await self._emit(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one scrape must not end the loop
                log.exception("scrape of %s (job %s) failed unexpectedly", target, job.name)
            # Skip slots a slow scrape overran instead of scraping back to back.
            next_at += interval
            behind = time.time() - next_at
            if behind > 0:
                next_at += (behind // interval + 1) * interval
            if loop.time() - started > interval:
                log.warning("scrape of %s (job %s) took longer than its interval %.1fs", target, job.name,
                            interval)

    async def _emit(self, batch: SeriesBatch) -> None:
        if self.sink is None:
            return
        try:
            result = self.sink(batch)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("scrape sink failed; %d series dropped", batch.n_series)

    async def _fetch(self, url: str, timeout_s: float) -> tuple[str, str]:
        client = self._http()
        async with client.stream("GET", url, timeout=timeout_s,
                                 headers={"X-Prometheus-Scrape-Timeout-Seconds": f"{timeout_s:g}"}) as resp:
            if resp.status_code != 200:
                raise _ScrapeFailed(f"HTTP {resp.status_code} from {url}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > self.max_page_bytes:
                    raise _ScrapeFailed(f"page is larger than {self.max_page_bytes} bytes")
                chunks.append(chunk)
            body = b"".join(chunks)
            ctype = resp.headers.get("content-type", "")
        try:
            return body.decode("utf-8"), ctype
        except UnicodeDecodeError as exc:
            raise _ScrapeFailed(f"page is not UTF-8 text: {exc}") from exc

    async def scrape_once(self, job: ScrapeJob, target: str) -> SeriesBatch:
        """Scrape one target now: its series plus up/scrape_duration_seconds/scrape_samples_scraped."""
        key = (job.name, target)
        state = self._state.get(key)
        if state is None:
            url, instance = target_url(job, target)
            state = self._state[key] = _TargetState(job.name, url, instance)
        start_ms = self._now_ms()
        t0 = time.perf_counter()
        target_labels = {**job.labels, "job": job.name, "instance": state.instance}
        page = SeriesBatch.empty()
        error: str | None = None
        try:
            # The whole scrape, connect to last byte, must fit in the job's timeout.
            text, ctype = await asyncio.wait_for(self._fetch(state.url, job.timeout_s), job.timeout_s)
            om = True if ctype.startswith("application/openmetrics-text") else None
            if len(text) > PARSE_INLINE_BYTES:
                page = await asyncio.to_thread(parse_exposition, text, start_ms, openmetrics=om)
            else:
                page = parse_exposition(text, start_ms, openmetrics=om)
        except asyncio.CancelledError:
            raise
        except (TimeoutError, httpx.TimeoutException):
            error = f"timeout after {job.timeout_s:g}s"
        except httpx.ConnectError as exc:
            error = f"connection failed: {exc or 'refused'}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except _ScrapeFailed as exc:
            error = str(exc)
        except BadInput as exc:
            error = f"bad metrics page: {exc.message}"
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration = time.perf_counter() - t0

        for labels in page.labels:
            for name, value in target_labels.items():
                if name in labels:
                    labels["exported_" + name] = labels.pop(name)
                labels[name] = value
        meta = BatchBuilder()
        n_samples = page.n_samples
        for metric, mvalue in (("up", 0.0 if error else 1.0), ("scrape_duration_seconds", duration),
                               ("scrape_samples_scraped", float(n_samples))):
            meta.add(metric, dict(target_labels), [start_ms], [mvalue])

        state.last_scrape = start_ms / 1000
        state.last_duration_s = duration
        state.last_samples = n_samples
        if error:
            if state.health != "down" or state.last_error != error:
                log.warning("scrape of %s (job %s) failed: %s", state.url, job.name, error)
            state.health, state.last_error = "down", error
        else:
            state.health, state.last_error = "up", None
        return SeriesBatch.concat([page, meta.build()])


class _ScrapeFailed(Exception):
    pass
