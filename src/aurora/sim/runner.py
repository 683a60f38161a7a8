"""Drive a fleet through event time into a sink: Aurora in-process, Aurora over HTTP, or anything callable.

The fleet itself never reads the wall clock; only the runner does, to pace delivery (``speed``) and to
anchor live runs at "now".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from aurora.api.json_ingest import batch_to_json
from aurora.ingest.events import ChangeEvent
from aurora.model import SeriesBatch
from aurora.sim.faults import Scenario
from aurora.sim.fleet import Fleet

if TYPE_CHECKING:
    from aurora.app import Aurora

Sink = Callable[[SeriesBatch], Any]
EventSink = Callable[[list[ChangeEvent]], Any]


def parse_speed(speed: str | float | None) -> float | None:
    """``max`` (or None) -> None (as fast as possible); ``realtime`` -> 1.0; ``10x`` / ``10`` -> 10.0."""
    if speed is None:
        return None
    if isinstance(speed, int | float):
        value = float(speed)
    else:
        s = speed.strip().lower()
        if s in ("max", "inf", ""):
            return None
        if s in ("realtime", "real", "1x"):
            return 1.0
        try:
            value = float(s[:-1] if s.endswith("x") else s)
        except ValueError:
            raise ValueError(f"speed must be max, realtime or a factor such as 10x; got {speed!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"speed must be positive; got {speed!r}")
    return value


def anchored_start(hours: float, speed: float | None, now: float, step_s: float) -> float:
    """A start such that the run never produces samples ahead of the wall clock (servers reject those):
    at full speed the run ends at ``now``; at ``speed`` x it starts far enough back to end at wall time."""
    span = hours * 3600.0
    back = span if speed is None else span * max(0.0, 1.0 - 1.0 / speed)
    return math.floor((now - back) / step_s) * step_s


# --- sinks -----------------------------------------------------------------------------------------
def inprocess_sinks(aurora: Aurora, sync: bool = True) -> tuple[Sink, EventSink]:
    """Sinks that feed an open, in-process Aurora as its HTTP routes would."""

    def sink(batch: SeriesBatch) -> None:
        aurora.ingest(batch, "sim", sync=sync)

    def event_sink(evs: list[ChangeEvent]) -> None:
        aurora.add_events(evs)

    return sink, event_sink


class HttpSink:
    """Posts batches to ``/api/v1/write`` (remote_write; JSON ``/api/v1/ingest`` if no encoder) and events to
    ``/api/v1/events`` with a bearer token."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 60.0, remote_write: bool = True,
                 transport: Any = None) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport)
        self._encode: Callable[[SeriesBatch], bytes] | None = None
        if remote_write:
            try:
                from aurora.ingest.remote_write import encode_remote_write
            except ImportError:  # the encoder is optional; JSON always works
                pass
            else:
                self._encode = encode_remote_write

    def _check(self, resp: Any) -> None:
        if resp.status_code >= 300:
            raise RuntimeError(f"{resp.request.method} {resp.request.url.path}: HTTP {resp.status_code}: "
                               f"{resp.text[:500]}")

    def __call__(self, batch: SeriesBatch) -> None:
        if self._encode is not None:
            resp = self.client.post("/api/v1/write", content=self._encode(batch), headers={
                "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0"})
        else:
            resp = self.client.post("/api/v1/ingest", content=json.dumps(batch_to_json(batch)),
                                    headers={"Content-Type": "application/json"})
        self._check(resp)

    def events(self, evs: list[ChangeEvent]) -> None:
        body = {"events": [{"kind": e.kind, "service": e.service, "time": e.time, "attributes": e.attributes}
                           for e in evs]}
        self._check(self.client.post("/api/v1/events", json=body))

    def close(self) -> None:
        self.client.close()


# --- the runner ------------------------------------------------------------------------------------
@dataclass
class RunStats:
    steps: int = 0
    batches: int = 0
    samples: int = 0
    events: int = 0
    wall_s: float = 0.0
    sim_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "samples_per_s": self.samples / self.wall_s if self.wall_s else None,
                "sim_hours_per_s": self.sim_s / 3600 / self.wall_s if self.wall_s else None}


class SimRunner:
    """Generates ``fleet`` from its current time to ``end`` (unix s) and delivers it.

    ``speed``: None/"max" as fast as the sink takes it; 1.0/"realtime" one scrape per ``step_s``; N = N x.
    Steps before ``pace_from`` (a backfill of history) always go at full speed. Change events are
    delivered before the batch whose step produced them, so a deployment is known before its effects.
    """

    def __init__(self, fleet: Fleet, end: float, sink: Sink, event_sink: EventSink | None = None, *,
                 speed: str | float | None = None, chunk_steps: int = 20, pace_from: float | None = None,
                 progress: bool = True, console: Console | None = None,
                 wall: Callable[[], float] = time.monotonic) -> None:
        self.fleet = fleet
        self.end = float(end)
        self.sink = sink
        self.event_sink = event_sink
        self.speed = parse_speed(speed)
        self.chunk_steps = max(1, int(chunk_steps))
        self.pace_from = fleet.now if pace_from is None else float(pace_from)
        self.progress = progress
        self.console = console or Console(stderr=True)
        self.wall = wall
        self.stats = RunStats()
        self._origin: tuple[float, float] | None = None  # (wall, event time) where pacing began
        self._stop = False

    @property
    def total_steps(self) -> int:
        return max(0, math.ceil((self.end * 1000 - self.fleet.now_ms) / self.fleet.step_ms))

    def stop(self) -> None:
        self._stop = True

    def _plan(self) -> tuple[int, float]:
        """Steps to produce next and the wall time to produce them at (0: at once)."""
        f = self.fleet
        left = math.ceil((self.end * 1000 - f.now_ms) / f.step_ms)
        if self.speed is None or f.now < self.pace_from:
            n = min(self.chunk_steps, left)
            if self.speed is not None:
                n = min(n, max(1, math.ceil((self.pace_from * 1000 - f.now_ms) / f.step_ms)))
            return n, 0.0
        if self._origin is None:
            self._origin = (self.wall(), f.now)
        w0, t0 = self._origin
        return 1, w0 + (f.now - t0) / self.speed

    def _produce(self, n: int) -> tuple[SeriesBatch, list[ChangeEvent]]:
        batch = self.fleet.generate(n)
        evs = self.fleet.drain_events()
        self.stats.steps += n
        self.stats.batches += 1
        self.stats.samples += batch.n_samples
        self.stats.events += len(evs)
        self.stats.sim_s += n * self.fleet.step_s
        return batch, evs

    def _progress(self) -> Progress:
        return Progress(TextColumn("[bold]sim[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("steps"), TimeRemainingColumn(), console=self.console,
                        disable=not self.progress, transient=False)

    def run(self) -> RunStats:
        t_start = self.wall()
        with self._progress() as bar:
            task = bar.add_task(f"{self.fleet.spec.name}", total=self.total_steps)
            while not self._stop and self.fleet.now < self.end:
                n, at = self._plan()
                delay = at - self.wall()
                if delay > 0:
                    time.sleep(delay)
                batch, evs = self._produce(n)
                if evs and self.event_sink is not None:
                    self.event_sink(evs)
                self.sink(batch)
                bar.advance(task, n)
        self.stats.wall_s = self.wall() - t_start
        return self.stats

    async def run_async(self) -> RunStats:
        """As ``run``, on an event loop: sleeps with asyncio and calls the sinks in a worker thread."""
        t_start = self.wall()
        with self._progress() as bar:
            task = bar.add_task(f"{self.fleet.spec.name}", total=self.total_steps)
            while not self._stop and self.fleet.now < self.end:
                n, at = self._plan()
                delay = at - self.wall()
                if delay > 0:
                    await asyncio.sleep(delay)
                batch, evs = self._produce(n)
                if evs and self.event_sink is not None:
                    await asyncio.to_thread(self.event_sink, evs)
                await asyncio.to_thread(self.sink, batch)
                bar.advance(task, n)
                if delay <= 0:
                    await asyncio.sleep(0)  # let the server breathe during a backfill
        self.stats.wall_s = self.wall() - t_start
        return self.stats


def build_live(aurora: Aurora, schedule: Scenario, speed: str | float | None = "realtime", *, seed: int = 0,
               backfill_hours: float = 0.0, hours: float | None = None, step_s: float = 15.0,
               progress: bool = False, now: float | None = None) -> SimRunner:
    """A runner that feeds ``aurora`` in-process starting at wall-clock now, faults at ``schedule``'s offsets
    from now. ``backfill_hours`` of fault-free history before now are delivered first at full speed.

    Faster than real time against a wall-clock Aurora, the live part is shifted into the past so that no
    sample is ever ahead of the wall clock (the run then ends at wall-clock "now").
    """
    sp = parse_speed(speed)
    wall_now = time.time() if now is None else now
    hours = schedule.hours if hours is None else hours
    live0 = math.floor(wall_now / step_s) * step_s
    if sp is not None and sp > 1 and aurora.clock.mode == "wall":
        live0 = anchored_start(hours, sp, wall_now, step_s)
    start = live0 - backfill_hours * 3600.0
    fleet = Fleet(seed=seed, start=start, step_s=step_s, faults=schedule.at(live0))
    sink, event_sink = inprocess_sinks(aurora)
    return SimRunner(fleet, live0 + hours * 3600.0, sink, event_sink, speed=sp, chunk_steps=40, pace_from=live0,
                     progress=progress)


async def run_live(aurora: Aurora, schedule: Scenario, speed: str | float | None = "realtime", *, seed: int = 0,
                   backfill_hours: float = 0.0, hours: float | None = None, step_s: float = 15.0,
                   on_start: Callable[[SimRunner], Any] | None = None, progress: bool = False) -> RunStats:
    """Feed the in-process ``aurora`` with a live fleet (see ``build_live``) until the schedule ends or the
    task is cancelled. ``on_start(runner)`` gets the runner first, e.g. to route remediation to
    ``runner.fleet.apply_action`` and to read ``runner.fleet.ground_truth()``."""
    runner = build_live(aurora, schedule, speed, seed=seed, backfill_hours=backfill_hours, hours=hours,
                        step_s=step_s, progress=progress)
    if on_start is not None:
        on_start(runner)
    try:
        return await runner.run_async()
    finally:
        with contextlib.suppress(Exception):
            runner.stop()
