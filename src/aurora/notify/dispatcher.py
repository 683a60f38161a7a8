"""The ``Notifier``: takes notifications from any thread without blocking, and delivers them reliably.

It runs its own asyncio loop in one worker thread (the engine calls it from pipeline threads, the API from
uvicorn's loop and threadpool; its own loop keeps slow receivers off both). For each notification:

1. route it to channels (``routing``), drop what a channel got within the route's repeat interval (dedup);
2. write it to the durable outbox, one row per channel, before anything is sent;
3. group it with others about the same thing for ``group_wait_s``, then make one delivery of the group;
4. send deliveries in order per thing (an incident's "opened" never after its "resolved"), at most
   ``max_in_flight`` at a time per channel, within the channel's token bucket (excess waits, is not dropped);
5. on failure retry with exponential backoff and seeded jitter, until ``max_retries`` or ``max_age_s``. While a
   channel fails, only one delivery probes it, so an outage costs retries of one message, not of all, and
   the backlog drains as soon as the receiver answers again.

A restart (a new Notifier on the same database) resumes pending deliveries and regroups outbox rows that
were waiting for their group. What the notifier had taken but not yet written (microseconds of work) is
the only thing a crash can lose. Times for delivery (waits, retries, rate limits) are wall clock; the
repeat interval is event time (see ``policy.Deduper``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from aurora.errors import AuroraError, NotFound
from aurora.notify import formats
from aurora.notify.channels import Channel, resolve_secrets
from aurora.notify.config import NotificationsConfig
from aurora.notify.message import Notification, channel_test_message
from aurora.notify.outbox import NotificationStore
from aurora.notify.policy import Backoff, Deduper, Grouper, PendingGroup, TokenBucket
from aurora.notify.routing import Router, Target
from aurora.notify.transport import HttpTransport, Outcome

log = logging.getLogger(__name__)
INTAKE_BATCH = 500  # notifications written to the outbox per transaction
PRUNE_EVERY_S = 3600.0
STOP_GRACE_S = 5.0  # how long stop() lets requests in flight finish (the rest are retried after a restart)
DB_RETRY_S = 1.0  # pause after a database error before trying again
OUTCOME_WRITE_TRIES = 3  # a batch of attempt results is dropped from memory (logged) after this many failures
MAX_WAIT_S = 60.0


@dataclass
class Delivery:
    id: int
    channel: str
    group_key: str
    items: list[Notification]
    created_at: float
    next_at: float
    attempts: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ChannelState:
    channel: Channel
    bucket: TokenBucket
    backoff: Backoff
    queue: dict[int, Delivery] = field(default_factory=dict)  # pending deliveries by id, oldest first
    in_flight: set[int] = field(default_factory=set)
    failures: int = 0  # consecutive retryable failures
    backoff_until: float = 0.0
    rate_until: float = 0.0

    def blocked_until(self) -> float:
        return max(self.backoff_until, self.rate_until)

    def capacity(self) -> int:
        return (1 if self.failures else self.channel.cfg.max_in_flight) - len(self.in_flight)


class Notifier:
    def __init__(self, cfg: NotificationsConfig, engine: Engine, *, environ: Mapping[str, str] | None = None,
                 client_url: str | None = None, seed: int = 0, wall: Callable[[], float] = time.time) -> None:
        """Raises ConfigError when a channel's secret is missing from the environment."""
        self.cfg = cfg
        self._secrets = resolve_secrets(cfg, environ)
        self.store = NotificationStore(engine)
        self.router = Router(cfg)
        self.deduper = Deduper(self.store.last_time)
        self.grouper = Grouper()
        self.client_url = client_url
        self._rng = random.Random(seed)
        self._wall = wall
        self._inbox: deque[Notification] = deque()
        self._ready_groups: list[PendingGroup] = []
        self._states: dict[str, ChannelState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[tuple[int, dict[str, Any]]] = []  # attempt results waiting for the writer
        self._writer: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._started = threading.Event()
        self._idle = threading.Event()
        self._stopping = False
        self._error: BaseException | None = None
        self.counts: Counter[str] = Counter()

    # --- the caller's side (any thread) ----------------------------------------------------------------
    def notify(self, n: Notification) -> None:
        """Queue a notification; returns at once. Before ``start`` it waits in memory."""
        self._inbox.append(n)
        self.counts["received"] += 1
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wake.set)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._loop is not None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the worker thread; resumes what a previous run left pending."""
        if self._thread is not None:
            return
        self._stopping = False
        self._error = None
        self._started.clear()
        self._thread = threading.Thread(target=self._thread_main, name="aurora-notify", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise RuntimeError(f"the notifier did not start within {timeout_s:g} s")
        if self._error is not None:
            self._thread = None
            raise self._error

    def stop(self, timeout_s: float = STOP_GRACE_S + 5.0) -> None:
        """Stop after writing everything queued to the outbox; requests in flight get ``STOP_GRACE_S``."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._poke()
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("the notifier did not stop within %.0f s", timeout_s)
        self._thread = None

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until everything received so far is sent or failed (tests and benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._inbox and self._idle.is_set():
                return True
            time.sleep(0.005)
        return False

    def test_channel(self, name: str, timeout_s: float | None = None) -> dict[str, Any]:
        """Send a test message to one channel now (no routing, grouping, rate limit or retry) and return its
        delivery record (status sent or failed, with the receiver's answer)."""
        st = self._states.get(name) if self._states else None
        if self.cfg.channel(name) is None:
            known = ", ".join(c.name for c in self.cfg.channels) or "none are configured"
            raise NotFound(f"no notification channel {name!r}; channels: {known}")
        loop = self._loop
        if loop is None or st is None:
            raise AuroraError("the notifier is not running", code="unavailable", status=503)
        wait = timeout_s if timeout_s is not None else st.channel.cfg.timeout_s + 10.0
        return asyncio.run_coroutine_threadsafe(self._test(st), loop).result(wait)

    def retry(self, delivery_id: int, timeout_s: float = 10.0) -> dict[str, Any]:
        """Send a failed delivery again (from its first attempt's budget); returns its record."""
        loop = self._loop
        if loop is None:
            raise AuroraError("the notifier is not running", code="unavailable", status=503)
        return asyncio.run_coroutine_threadsafe(self._retry(delivery_id), loop).result(timeout_s)

    def deliveries(self, limit: int = 100, channel: str | None = None, status: str | None = None,
                   group_key: str | None = None) -> list[dict[str, Any]]:
        """The delivery log, newest first (see ``NotificationStore.deliveries``)."""
        if channel is not None and self.cfg.channel(channel) is None:
            known = ", ".join(c.name for c in self.cfg.channels) or "none are configured"
            raise NotFound(f"no notification channel {channel!r}; channels: {known}")
        return self.store.deliveries(limit, channel, status, group_key)

    def stats(self) -> dict[str, Any]:
        states = dict(self._states)
        return {**{k: self.counts[k] for k in ("received", "deduplicated", "unrouted", "sent", "failed", "retried",
                                                 "rate_limited", "recovered")},
                "queued": len(self._inbox), "grouping": len(self.grouper),
                "pending": sum(len(s.queue) for s in states.values()),
                "channels": {name: {"type": s.channel.cfg.type, "target": s.channel.cfg.target,
                                    "pending": len(s.queue), "in_flight": len(s.in_flight),
                                    "consecutive_failures": s.failures,
                                    "retry_at": s.backoff_until if s.failures else None}
                             for name, s in states.items()}}

    # --- the worker ------------------------------------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:
            self._error = exc
            log.exception("the notifier stopped on an error")
        finally:
            self._loop = None
            self._wake = None
            self._started.set()

    async def _run(self) -> None:
        http = HttpTransport()
        now = self._wall()
        for ch in self.cfg.channels:
            self._states[ch.name] = ChannelState(
                Channel(ch, self._secrets[ch.name], http, self.client_url),
                TokenBucket(ch.rate_limit_per_minute, now), Backoff(ch.backoff_s, ch.max_backoff_s, self._rng))
        try:
            await self._recover()
            self._wake = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._started.set()
            await self._serve()
        finally:
            await self._drain_tasks()
            await http.aclose()

    async def _serve(self) -> None:
        assert self._wake is not None
        last_prune = 0.0
        while True:
            self._wake.clear()
            self._idle.clear()  # before taking from the inbox: wait_idle must not see an empty inbox and idle
            stopping = self._stopping
            ok = await self._intake()
            ok = await self._flush(self._wall()) and ok
            if stopping and not self._inbox:
                return
            now = self._wall()
            self._dispatch(now)
            if now - last_prune >= PRUNE_EVERY_S:
                last_prune = now
                await self._prune(now)
            wait = DB_RETRY_S if not ok else self._next_wake(now)
            if wait is None and not self._inbox and not self._ready_groups and not self._tasks:
                self._idle.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), MAX_WAIT_S if wait is None else wait)

    async def _drain_tasks(self) -> None:
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=STOP_GRACE_S)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late)

    def _accept(self, items: list[Notification], now: float) -> list[tuple[Notification, Target, int]]:
        """Route, deduplicate and write to the outbox (runs in a thread: it reads and writes the database)."""
        pairs: list[tuple[Notification, Target]] = []
        routed = [(n, [t for t in self.router.route(n) if t.channel in self._states]) for n in items]
        unknown = self.deduper.unknown((t.channel, n.dedup_key) for n, targets in routed for t in targets)
        if unknown:  # one query for the whole batch instead of one per new key
            self.deduper.prime(unknown, self.store.last_times(sorted(unknown)))
        for n, targets in routed:
            if not targets:
                self.counts["unrouted"] += 1
            for t in targets:
                if self.deduper.seen(t.channel, n.dedup_key, n.time, t.repeat_interval_s):
                    self.counts["deduplicated"] += 1
                else:
                    pairs.append((n, t))
        try:
            ids = self.store.accept([(n, t.channel) for n, t in pairs], now)
        except Exception:
            self.deduper.forget([(t.channel, n.dedup_key) for n, t in pairs])
            raise
        return [(n, t, i) for (n, t), i in zip(pairs, ids, strict=True) if i is not None]

    async def _intake(self) -> bool:
        items: list[Notification] = []
        while self._inbox and len(items) < INTAKE_BATCH:
            items.append(self._inbox.popleft())
        if not items:
            return True
        now = self._wall()
        try:
            accepted = await asyncio.to_thread(self._accept, items, now)
        except Exception:
            log.exception("notifications not written to the outbox; trying again in %.0f s", DB_RETRY_S)
            self._inbox.extendleft(reversed(items))
            return False
        for n, t, row_id in accepted:
            full = self.grouper.add(t.channel, n, row_id, t.group_wait_s, now)
            if full is not None:
                self._ready_groups.append(full)
        if self._inbox and self._wake is not None:
            self._wake.set()
        return True

    def _delivery_fields(self, g: PendingGroup, now: float, status: str = "pending",
                         error: str | None = None) -> dict[str, Any]:
        group = [n for _, n in g.items]
        cfg = self.cfg.channel(g.channel)
        return {"channel": g.channel, "channel_type": cfg.type if cfg else "unknown", "group_key": g.group_key,
                "event": group[-1].event, "severity": formats.severity(group), "title": formats.title(group)[:2000],
                "notification_ids": [n.id for n in group], "count": len(group), "status": status, "attempts": 0,
                "last_error": error, "http_status": None, "latency_ms": None, "history": [], "created_at": now,
                "next_attempt_at": now, "sent_at": None, "updated_at": now}

    async def _flush(self, now: float) -> bool:
        groups = self._ready_groups + self.grouper.due(now)
        self._ready_groups = []
        if not groups:
            return True
        rows = []
        for g in groups:
            gone = g.channel not in self._states
            rows.append((self._delivery_fields(g, now, "failed" if gone else "pending",
                                               f"channel {g.channel!r} is no longer configured" if gone else None),
                         [rid for rid, _ in g.items]))
        try:
            ids = await asyncio.to_thread(self.store.create_deliveries, rows)
        except Exception:
            log.exception("notification deliveries not written; trying again in %.0f s", DB_RETRY_S)
            self._ready_groups = groups
            return False
        for g, did in zip(groups, ids, strict=True):
            st = self._states.get(g.channel)
            if st is not None:
                st.queue[did] = Delivery(did, g.channel, g.group_key, [n for _, n in g.items], now, now)
        return True

    def _dispatch(self, now: float) -> None:
        for st in self._states.values():
            if not st.queue or now < st.blocked_until():
                continue
            room = st.capacity()
            busy: set[str] = set()  # group keys with an older delivery still pending: keep their order
            for d in list(st.queue.values()):
                if room <= 0:
                    break
                if d.id in st.in_flight or d.group_key in busy:
                    busy.add(d.group_key)
                    continue
                busy.add(d.group_key)
                if d.next_at > now:
                    continue
                wait = st.bucket.take(now)
                if wait > 0:
                    st.rate_until = now + wait
                    self.counts["rate_limited"] += 1
                    break
                st.in_flight.add(d.id)
                room -= 1
                task = asyncio.create_task(self._attempt(st, d))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _next_wake(self, now: float) -> float | None:
        """Seconds until something is due (a group's deadline, a retry, a rate-limit token); None: nothing
        waits on time (a finishing request wakes the loop itself)."""
        times: list[float] = []
        deadline = self.grouper.next_deadline()
        if deadline is not None:
            times.append(deadline)
        for st in self._states.values():
            if not st.queue or st.capacity() <= 0:
                continue
            busy: set[str] = set()
            for d in st.queue.values():
                if d.id not in st.in_flight and d.group_key not in busy:
                    times.append(max(d.next_at, st.blocked_until()))
                busy.add(d.group_key)
        if not times:
            return None if not any(st.queue for st in self._states.values()) else MAX_WAIT_S
        return min(MAX_WAIT_S, max(0.001, min(times) - now))

    async def _attempt(self, st: ChannelState, d: Delivery) -> None:
        cfg = st.channel.cfg
        try:
            try:
                outcome = await st.channel.send(d.items, d.id, self._wall())
            except Exception as exc:  # a rendering bug: retrying cannot help
                log.exception("notification delivery %d to %s could not be built", d.id, cfg.name)
                outcome = Outcome(False, 0.0, error=f"could not build the message: {type(exc).__name__}: {exc}",
                                  permanent=True)
            done = self._wall()
            d.attempts += 1
            d.history.append({"at": round(done, 3), "ok": outcome.ok, "http_status": outcome.http_status,
                              "error": outcome.error, "latency_ms": round(outcome.latency_ms, 2)})
            fields: dict[str, Any] = {"attempts": d.attempts, "http_status": outcome.http_status,
                                      "latency_ms": outcome.latency_ms, "history": d.history, "updated_at": done,
                                      "last_error": outcome.error}
            if outcome.ok:
                fields.update(status="sent", sent_at=done)
                st.failures = 0
                st.backoff_until = 0.0
                st.queue.pop(d.id, None)
                self.counts["sent"] += 1
            elif outcome.permanent or d.attempts > cfg.max_retries or done - d.created_at >= cfg.max_age_s:
                why = ("the receiver refused it" if outcome.permanent else
                       f"gave up after {d.attempts} attempts" if d.attempts > cfg.max_retries else
                       f"gave up: not delivered within max_age_s ({cfg.max_age_s:g} s)")
                fields.update(status="failed", last_error=f"{why}: {outcome.error}")
                st.queue.pop(d.id, None)
                self.counts["failed"] += 1
                log.warning("notification delivery %d to channel %s failed: %s", d.id, cfg.name, fields["last_error"])
            else:
                st.failures += 1
                delay = st.backoff.delay(st.failures)
                if outcome.retry_after_s is not None:
                    delay = max(delay, min(outcome.retry_after_s, cfg.max_backoff_s))
                d.next_at = done + delay
                st.backoff_until = d.next_at
                fields["next_attempt_at"] = d.next_at
                self.counts["retried"] += 1
            self._record_later(d.id, fields)
        finally:
            st.in_flight.discard(d.id)
            if self._wake is not None:
                self._wake.set()

    def _record_later(self, delivery_id: int, fields: dict[str, Any]) -> None:
        """Queue an attempt's result for the writer: results are written in batches, one transaction each, so
        the request slot is free again at once and a burst costs a few commits, not one per delivery."""
        self._outcomes.append((delivery_id, fields))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_outcomes())
            self._tasks.add(self._writer)
            self._writer.add_done_callback(self._tasks.discard)

    async def _write_outcomes(self) -> None:
        failures = 0
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                await asyncio.to_thread(self.store.record_many, batch)
                failures = 0
            except Exception:
                failures += 1
                if failures >= OUTCOME_WRITE_TRIES:
                    log.exception("the outcomes of %d notification deliveries were not recorded", len(batch))
                    failures = 0
                    continue
                log.exception("notification outcomes not written; trying again in %.0f s", DB_RETRY_S)
                self._outcomes[:0] = batch
                await asyncio.sleep(DB_RETRY_S)
        if self._wake is not None:
            self._wake.set()

    async def _recover(self) -> None:
        now = self._wall()
        for rec, items in await asyncio.to_thread(self.store.pending):
            st = self._states.get(rec["channel"])
            if st is None or not items:
                why = (f"channel {rec['channel']!r} is no longer configured" if st is None
                       else "its notifications are missing from the outbox")
                await asyncio.to_thread(self.store.record, rec["id"], {"status": "failed", "last_error": why,
                                                                       "updated_at": now})
                continue
            st.queue[rec["id"]] = Delivery(rec["id"], rec["channel"], rec["group_key"], items, rec["created_at"],
                                           rec["next_attempt_at"], rec["attempts"], list(rec["history"]))
            self.counts["recovered"] += 1
        for row_id, channel, n in await asyncio.to_thread(self.store.ungrouped):
            target = next((t for t in self.router.route(n) if t.channel == channel), None)
            full = self.grouper.add(channel, n, row_id, target.group_wait_s if target else 0.0, now)
            if full is not None:
                self._ready_groups.append(full)
            self.counts["recovered"] += 1
        if self.counts["recovered"]:
            log.info("notifier resumed %d pending notifications", self.counts["recovered"])

    async def _prune(self, now: float) -> None:
        try:
            n = await asyncio.to_thread(self.store.prune, now - self.cfg.log_retention_days * 86400)
        except Exception:
            log.exception("pruning the notification log failed")
            return
        if n:
            log.info("pruned %d old notification deliveries", n)

    async def _test(self, st: ChannelState) -> dict[str, Any]:
        now = self._wall()
        n = channel_test_message(st.channel.name, now)
        row_id = (await asyncio.to_thread(self.store.accept, [(n, st.channel.name)], now))[0]
        assert row_id is not None  # a fresh notification id
        g = PendingGroup(st.channel.name, n.group_key, now, [(row_id, n)])
        did = (await asyncio.to_thread(self.store.create_deliveries, [(self._delivery_fields(g, now), [row_id])]))[0]
        outcome = await st.channel.send([n], did, now)
        done = self._wall()
        await asyncio.to_thread(self.store.record, did, {
            "status": "sent" if outcome.ok else "failed", "attempts": 1, "http_status": outcome.http_status,
            "latency_ms": outcome.latency_ms, "last_error": outcome.error, "updated_at": done,
            "sent_at": done if outcome.ok else None,
            "history": [{"at": round(done, 3), "ok": outcome.ok, "http_status": outcome.http_status,
                         "error": outcome.error, "latency_ms": round(outcome.latency_ms, 2)}]})
        return await asyncio.to_thread(self.store.get, did)

    async def _retry(self, delivery_id: int) -> dict[str, Any]:
        rec = await asyncio.to_thread(self.store.get, delivery_id)
        if rec["status"] != "failed":
            raise AuroraError(f"notification delivery {delivery_id} is {rec['status']}; only a failed one can be "
                              "retried", code="conflict", status=409)
        st = self._states.get(rec["channel"])
        if st is None:
            raise AuroraError(f"channel {rec['channel']!r} is no longer configured", code="conflict", status=409)
        items = [n for _, n in await asyncio.to_thread(self.store.notifications_of, delivery_id)]
        now = self._wall()
        await asyncio.to_thread(self.store.record, delivery_id, {"status": "pending", "next_attempt_at": now,
                                                                 "updated_at": now})
        st.queue[delivery_id] = Delivery(delivery_id, rec["channel"], rec["group_key"], items, now, now, 0,
                                         list(rec["history"]))
        st.queue = dict(sorted(st.queue.items()))
        if self._wake is not None:
            self._wake.set()
        return await asyncio.to_thread(self.store.get, delivery_id)
