"""Notifications delivered to real receivers on loopback: an HTTP server (webhook, Slack, PagerDuty, n8n) and
a small SMTP server; outages, restarts, grouping and the delivery log, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine

from aurora.db.database import create_db_engine, migrate
from aurora.notify import formats
from aurora.notify.config import NotificationsConfig
from aurora.notify.dispatcher import Notifier
from aurora.notify.message import Notification, from_incident

SECRET = "hmac-test-key"
ENV = {"HOOK_KEY": SECRET, "PD_KEY": "R0UTINGKEY"}
INCIDENT: dict[str, Any] = {"id": 7, "title": "cart memory up", "status": "open", "severity": "critical",
                            "opened_at": 1_700_000_000.0, "updated_at": 1_700_000_060.0, "services": ["cart"],
                            "root_causes": [], "summary": "cart's memory grows", "signal_count": 2}


# --- receivers -----------------------------------------------------------------------------------------
class HttpReceiver:
    """Records every POST; answers ``status`` (default 200, PagerDuty paths 202), 503 while ``down_until``."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self.down_until = 0.0
        self.status: dict[str, int] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if time.monotonic() < outer.down_until:
                    with outer._lock:
                        outer.refused += 1
                    self._answer(503, b"down for maintenance")
                    return
                code = outer.status.get(self.path, 202 if self.path.startswith("/pd") else 200)
                if code < 300:
                    with outer._lock:
                        outer.received.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                               "json": json.loads(body)})
                self._answer(code, b'{"status":"success"}' if code < 300 else b"invalid_payload")

            def _answer(self, code: int, text: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    """Enough SMTP (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) to take mail; ``smtpd`` left the stdlib."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 localhost test ESMTP\r\n")
        sender, rcpts = "", list[str]()
        while line := await reader.readline():
            cmd = line.decode().strip()
            up = cmd.upper()
            if up.startswith("EHLO"):
                writer.write(b"250-localhost\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
            elif up.startswith(("HELO", "RSET", "NOOP")):
                writer.write(b"250 OK\r\n")
            elif up.startswith("MAIL FROM:"):
                sender, rcpts = cmd[10:].split()[0].strip("<>"), []
                writer.write(b"250 OK\r\n")
            elif up.startswith("RCPT TO:"):
                rcpts.append(cmd[8:].strip().strip("<>"))
                writer.write(b"250 OK\r\n")
            elif up == "DATA":
                writer.write(b"354 end with <CRLF>.<CRLF>\r\n")
                await writer.drain()
                data = []
                while (chunk := await reader.readline()) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                self.messages.append({"from": sender, "to": rcpts, "data": b"".join(data)})
                writer.write(b"250 OK queued\r\n")
            elif up == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"502 not implemented\r\n")
            await writer.drain()
        writer.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    r = HttpReceiver()
    yield r
    r.stop()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_db_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cfg(channels: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None) -> NotificationsConfig:
    fast = {"backoff_s": 0.05, "max_backoff_s": 0.2, "timeout_s": 2, "rate_limit_per_minute": 60_000}
    return NotificationsConfig.model_validate({"channels": [{**fast, **c} for c in channels], "routes": routes or []})


def _n(i: int, **kw: Any) -> Notification:
    base: dict[str, Any] = {"event": "incident_opened", "severity": "critical", "title": f"incident {i}",
                            "text": "x", "group_key": f"incident:{i}", "dedup_key": f"incident:{i}:opened",
                            "time": 1_700_000_000.0 + i, "services": ("cart",)}
    return Notification(**{**base, **kw})


@contextlib.contextmanager
def running(n: Notifier) -> Iterator[Notifier]:
    n.start()
    try:
        yield n
    finally:
        n.stop()


# --- tests ---------------------------------------------------------------------------------------------
def test_http_formats_arrive_signed(engine: Engine, receiver: HttpReceiver) -> None:
    cfg = _cfg([{"name": "hook", "type": "webhook", "url": receiver.url("/hook"), "secret_env": "HOOK_KEY"},
                {"name": "slack", "type": "slack", "url": receiver.url("/slack/T000/B000/XXXX")},
                {"name": "pd", "type": "pagerduty", "url": receiver.url("/pd"), "routing_key_env": "PD_KEY"},
                {"name": "n8n", "type": "n8n", "url": receiver.url("/n8n"), "secret_env": "HOOK_KEY"}])
    with running(Notifier(cfg, engine, environ=ENV, client_url="http://aurora.test")) as notifier:
        notifier.notify(from_incident(INCIDENT, base_url="http://aurora.test"))
        assert notifier.wait_idle(10)
    by_path = {r["path"].split("/")[1]: r for r in receiver.received}
    assert sorted(by_path) == ["hook", "n8n", "pd", "slack"] and len(receiver.received) == 4
    for name in ("hook", "n8n"):
        r = by_path[name]
        assert formats.verify(SECRET.encode(), r["body"], r["headers"]["X-Aurora-Signature"])
        assert r["json"]["sent_at"] == int(r["headers"]["X-Aurora-Timestamp"])
        assert r["headers"]["Content-Type"] == "application/json"
    assert by_path["hook"]["json"]["title"] == "Incident: cart memory up"
    assert by_path["n8n"]["json"]["service"] == "cart"
    pd = by_path["pd"]["json"]
    assert (pd["routing_key"], pd["event_action"], pd["dedup_key"]) == ("R0UTINGKEY", "trigger", "aurora:incident:7")
    assert pd["payload"]["severity"] == "critical" and pd["links"][0]["href"] == "http://aurora.test/ui/incidents/7"
    assert by_path["slack"]["json"]["blocks"][0]["type"] == "section"
    assert "X-Aurora-Signature" not in by_path["slack"]["headers"]
    log = notifier.deliveries(limit=10)
    assert len(log) == 4 and {d["status"] for d in log} == {"sent"}
    assert {d["http_status"] for d in log} == {200, 202}
    assert all(d["attempts"] == 1 and d["latency_ms"] > 0 and d["sent_at"] >= d["created_at"] for d in log)


def test_email_over_smtp(engine: Engine) -> None:
    smtp = SmtpReceiver()
    try:
        cfg = _cfg([{"name": "mail", "type": "email", "smtp": {
            "host": "127.0.0.1", "port": smtp.port, "starttls": False, "from": "aurora@example.com",
            "to": ["ops@example.com", "sre@example.com"]}}])
        with running(Notifier(cfg, engine)) as notifier:
            notifier.notify(from_incident(INCIDENT))
            assert notifier.wait_idle(10)
        (m,) = smtp.messages
        assert m["from"] == "aurora@example.com" and m["to"] == ["ops@example.com", "sre@example.com"]
        parsed = email.message_from_bytes(m["data"], policy=email.policy.default)
        assert parsed["Subject"] == "[Aurora] [CRITICAL] Incident: cart memory up"
        assert parsed.get_content_type() == "multipart/alternative"
        assert {p.get_content_type() for p in parsed.iter_parts()} == {"text/plain", "text/html"}
        (d,) = notifier.deliveries()
        assert d["status"] == "sent" and d["channel_type"] == "email" and d["http_status"] is None
    finally:
        smtp.stop()


def test_outage_then_recovery_delivers_each_once(engine: Engine, receiver: HttpReceiver) -> None:
    receiver.down_until = time.monotonic() + 0.8
    cfg = _cfg([{"name": "hook", "type": "webhook", "url": receiver.url("/hook"), "max_retries": 50}])
    with running(Notifier(cfg, engine, seed=1)) as notifier:
        for i in range(20):
            notifier.notify(_n(i))
        assert notifier.wait_idle(20)
    ids = [r["json"]["title"] for r in receiver.received]
    assert sorted(ids) == sorted(f"incident {i}" for i in range(20))  # every one, exactly once
    assert receiver.refused >= 2
    log = notifier.deliveries(limit=100)
    assert {d["status"] for d in log} == {"sent"}
    probed = [d for d in log if d["attempts"] > 1]
    assert probed, "the outage should show as retries in the delivery log"
    first_failures = [h for d in probed for h in d["history"] if not h["ok"]]
    assert all(h["http_status"] == 503 and "HTTP 503" in h["error"] for h in first_failures)
    # while the receiver was down only one delivery probed it: retries are few, not 20 per round
    assert receiver.refused < 20


def test_restart_delivers_what_was_pending(engine: Engine) -> None:
    port = _free_port()  # nothing listens yet: connection refused
    cfg = _cfg([{"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{port}/hook"}],
               [{"channels": ["hook"], "match": {"event": ["incident_opened"]}},
                {"channels": ["hook"], "match": {"event": ["incident_updated"]}, "group_wait_s": 60}])
    first = Notifier(cfg, engine)
    with running(first):
        for i in range(5):
            first.notify(_n(i))
        first.notify(_n(9, event="incident_updated", dedup_key="incident:9:ranked"))  # waits 60 s for its group
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(d["attempts"] for d in first.deliveries()):
            time.sleep(0.02)
    log = first.deliveries()
    assert len(log) == 5 and {d["status"] for d in log} == {"pending"}
    assert any("cannot reach http://127.0.0.1" in (d["last_error"] or "") for d in log)

    receiver = HttpReceiver(port)
    try:
        fast = _cfg([{"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{port}/hook"}])
        second = Notifier(fast, engine)
        with running(second):
            assert second.wait_idle(10)
        titles = sorted(r["json"]["title"] for r in receiver.received)
        assert titles == sorted([f"incident {i}" for i in range(5)] + ["incident 9"])
        assert {d["status"] for d in second.deliveries()} == {"sent"}
        assert second.stats()["recovered"] == 6
    finally:
        receiver.stop()


def test_burst_all_delivered_once_logged_and_deduplicated_after_restart(engine: Engine,
                                                                        receiver: HttpReceiver) -> None:
    cfg = _cfg([{"name": "hook", "type": "webhook", "url": receiver.url("/hook")}],
               [{"channels": ["hook"], "repeat_interval_s": 3600}])
    with running(Notifier(cfg, engine)) as notifier:
        for i in range(300):  # handed over at once: bulk outbox writes, results written in batches
            notifier.notify(_n(i))
        assert notifier.wait_idle(30)
        log = notifier.deliveries(limit=1000)
    assert sorted(r["json"]["title"] for r in receiver.received) == sorted(f"incident {i}" for i in range(300))
    assert len(log) == 300 and {d["status"] for d in log} == {"sent"} and {d["attempts"] for d in log} == {1}
    assert {d["http_status"] for d in log} == {200}
    with running(Notifier(cfg, engine)) as again:  # a restart: the outbox, not memory, knows what was sent
        for i in range(295, 305):
            again.notify(_n(i))
        assert again.wait_idle(10)
        assert again.stats()["deduplicated"] == 5
    assert len(receiver.received) == 305


def test_grouping_dedup_and_order(engine: Engine, receiver: HttpReceiver) -> None:
    cfg = _cfg([{"name": "hook", "type": "webhook", "url": receiver.url("/hook")}],
               [{"channels": ["hook"], "group_wait_s": 0.3, "repeat_interval_s": 600}])
    with running(Notifier(cfg, engine)) as notifier:
        notifier.notify(_n(1))
        notifier.notify(_n(1))  # the same dedup key again: dropped
        notifier.notify(_n(1, event="incident_updated", dedup_key="incident:1:ranked", title="updated 1"))
        notifier.notify(_n(2))
        assert notifier.wait_idle(10)
        assert notifier.stats()["deduplicated"] == 1
    by_group = {r["json"]["group_key"]: r["json"] for r in receiver.received}
    assert len(receiver.received) == 2
    one = by_group["incident:1"]
    assert one["count"] == 2 and one["title"] == "updated 1" and one["grouped"][0]["title"] == "incident 1"
    assert by_group["incident:2"]["count"] == 1


def test_refused_payload_fails_at_once_and_test_channel(engine: Engine, receiver: HttpReceiver) -> None:
    receiver.status["/bad"] = 400
    cfg = _cfg([{"name": "bad", "type": "webhook", "url": receiver.url("/bad")},
                {"name": "good", "type": "slack", "url": receiver.url("/good")}],
               [{"channels": ["bad"]}])
    with running(Notifier(cfg, engine)) as notifier:
        notifier.notify(_n(1))
        assert notifier.wait_idle(10)
        (failed,) = notifier.deliveries(status="failed", channel="bad")
        assert failed["attempts"] == 1 and failed["http_status"] == 400
        assert "the receiver refused it" in failed["last_error"] and "HTTP 400" in failed["last_error"]
        rec = notifier.test_channel("good")
        assert rec["status"] == "sent" and rec["event"] == "test" and rec["http_status"] == 200
        assert "Aurora test message to channel good" in receiver.received[-1]["json"]["text"]
        receiver.status["/bad"] = 200
        again = notifier.retry(failed["id"])
        assert again["status"] == "pending"
        assert notifier.wait_idle(10)
        assert notifier.deliveries(channel="bad")[0]["status"] == "sent"
        with pytest.raises(Exception, match="no notification channel 'nope'"):
            notifier.test_channel("nope")


def test_attach_feeds_bus_events_and_hooks(engine: Engine, receiver: HttpReceiver) -> None:
    """``attach`` on a stand-in for ``Aurora``: the background task starts the notifier, bus events and the
    incident service's hooks become deliveries, cancelling the task stops it."""
    from types import SimpleNamespace

    from aurora.bus import EventBus
    from aurora.notify.wiring import attach

    incidents = {7: dict(INCIDENT)}
    background: list[Any] = []
    service = SimpleNamespace(on_ack=None, on_resolve=lambda iid: None)
    cfg = SimpleNamespace(notifications=_cfg([{"name": "hook", "type": "webhook", "url": receiver.url("/hook")}]),
                          server=SimpleNamespace(host="127.0.0.1", port=8000),
                          services=[SimpleNamespace(name="cart", owner="shop")])
    aurora = SimpleNamespace(cfg=cfg, engine=engine, incident_store=SimpleNamespace(get=incidents.get),
                             incidents=service, bus=EventBus(), add_background=background.append)
    notifier = attach(aurora)  # type: ignore[arg-type]
    assert notifier is not None and len(background) == 1

    async def scenario() -> None:
        task = asyncio.create_task(background[0]())
        while not notifier.running:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the task subscribes right after the notifier started
        aurora.bus.publish("incident", {"id": 7, "change": "opened"})
        await asyncio.sleep(0.2)
        incidents[7]["acked_by"] = "ann"
        await asyncio.to_thread(service.on_ack, 7)
        assert await asyncio.to_thread(notifier.wait_idle, 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert not notifier.running
    got = [(r["json"]["event"], r["json"]["team"]) for r in receiver.received]
    assert got == [("incident_opened", "shop"), ("incident_updated", "shop")]
    assert receiver.received[0]["json"]["url"] == "http://127.0.0.1:8000/ui/incidents/7"
