"""Notification delivery: latency to a loopback HTTP receiver, and a receiver outage — a measurement script,
not a test.

    .venv/bin/python benchmarks/bench_notify.py [--count 1000] [--rate 200] [--outage-s 60] [--outage-count 100]

Latency: ``--count`` notifications handed to ``Notifier.notify`` at ``--rate`` per second (0: all at once)
for a generic webhook channel on 127.0.0.1 (a ``ThreadingHTTPServer`` in a process of its own, as a real
receiver is), SQLite outbox in a temp dir; the latency of one is from the ``notify`` call to the receiver
reading the request (``time.monotonic``, the same clock in both processes).
Outage: the receiver's port refuses connections for ``--outage-s``; ``--outage-count`` notifications are
sent spread over the outage; then the receiver starts. Reports lost (sent but never received), duplicates,
attempts, and the time from the receiver coming up to the last delivery (the drain). Channel settings are
the defaults (backoff 1 s doubling to 30 s, jitter) except the rate limit, raised out of the way. Prints
one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from aurora.db.database import create_db_engine, migrate
from aurora.notify.config import NotificationsConfig
from aurora.notify.dispatcher import Notifier
from aurora.notify.message import Notification


def serve(port: int, out: Path) -> None:
    """The receiver process (``--serve``): a ``ThreadingHTTPServer`` with keep-alive that notes when each
    notification id first arrived (``time.monotonic``, one clock for every process on Linux); on a line on
    stdin it writes those arrivals to ``out`` as JSON and exits."""
    arrivals: dict[str, list[float]] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

        def setup(self) -> None:
            super().setup()
            # Without this, Nagle's algorithm and delayed ACKs add ~40 ms to every response on loopback.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            t = time.monotonic()
            with lock:
                arrivals.setdefault(body["id"], []).append(t)
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # one segment

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.readline()
    with lock:
        out.write_text(json.dumps(arrivals))


class Receiver:
    """The webhook receiver in its own process, as a real one is: sender and receiver do not share one
    interpreter (in one process they would compete for its lock and halve each other's speed)."""

    def __init__(self, tmp: Path, port: int = 0) -> None:
        self._out = tmp / f"arrivals-{time.monotonic_ns()}.json"
        self._proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(self._out)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())
        self.arrivals: dict[str, list[float]] = {}

    def stop(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write("\n")
        self._proc.stdin.flush()
        self._proc.wait(30)
        self.arrivals = json.loads(self._out.read_text())


def _notifier(tmp: Path, name: str, port: int) -> Notifier:
    engine = create_db_engine(f"sqlite:///{tmp / (name + '.db')}")
    migrate(engine)
    cfg = NotificationsConfig.model_validate({"channels": [{
        "name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{port}/hook", "secret_env": "BENCH_KEY",
        "rate_limit_per_minute": 1_000_000}]})
    return Notifier(cfg, engine, environ={"BENCH_KEY": "k"}, seed=0)


def _note(i: int) -> Notification:
    return Notification(event="incident_opened", severity="critical", title=f"incident {i}", text="bench",
                        group_key=f"incident:{i}", dedup_key=f"incident:{i}:opened", time=1.7e9 + i,
                        services=("cart",))


def latency(tmp: Path, count: int, rate: float) -> dict[str, Any]:
    rx = Receiver(tmp)
    notifier = _notifier(tmp, "latency", rx.port)
    notifier.start()
    sent: dict[str, float] = {}
    t_start = time.monotonic()
    for i in range(count):
        if rate > 0:
            target = t_start + i / rate
            while (d := target - time.monotonic()) > 0:
                time.sleep(d)
        n = _note(i)
        sent[n.id] = time.monotonic()
        notifier.notify(n)
    notifier.wait_idle(120)
    elapsed = time.monotonic() - t_start
    notifier.stop()
    rx.stop()
    lat = np.array([(rx.arrivals[k][0] - t0) * 1000 for k, t0 in sent.items() if k in rx.arrivals])
    return {"count": count, "rate_per_s": rate, "received": len(lat), "elapsed_s": round(elapsed, 2),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(lat.max()), 2)}


def outage(tmp: Path, outage_s: float, count: int) -> dict[str, Any]:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    notifier = _notifier(tmp, "outage", port)
    notifier.start()
    ids = []
    t0 = time.monotonic()
    for i in range(count):  # spread over the outage
        while time.monotonic() < t0 + i * outage_s / count:
            time.sleep(0.005)
        n = _note(i)
        ids.append(n.id)
        notifier.notify(n)
    while time.monotonic() < t0 + outage_s:
        time.sleep(0.01)
    rx = Receiver(tmp, port)
    t_up = time.monotonic()
    drained = notifier.wait_idle(600)
    t_done = time.monotonic()
    log = notifier.deliveries(limit=1000)
    notifier.stop()
    rx.stop()
    got = [k for k in ids if k in rx.arrivals]
    last = max((rx.arrivals[k][0] for k in got), default=t_up)
    attempts = [d["attempts"] for d in log]
    return {"outage_s": outage_s, "sent": count, "received": len(got), "lost": count - len(got),
            "duplicates": sum(len(v) - 1 for v in rx.arrivals.values()), "drained": drained,
            "drain_s": round(last - t_up, 2), "idle_after_s": round(t_done - t_up, 2),
            "failed": sum(d["status"] == "failed" for d in log), "attempts_total": int(sum(attempts)),
            "attempts_max": int(max(attempts, default=0))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0, help="notifications per second (0: all at once)")
    ap.add_argument("--outage-s", type=float, default=60.0)
    ap.add_argument("--outage-count", type=int, default=100)
    ap.add_argument("--skip-outage", action="store_true")
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "OUT"), help=argparse.SUPPRESS)  # the receiver process
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out: dict[str, Any] = {"latency": latency(tmp, args.count, args.rate)}
        out["burst"] = latency(Path(tempfile.mkdtemp(dir=d)), args.count, 0.0)
        if not args.skip_outage:
            out["outage"] = outage(tmp, args.outage_s, args.outage_count)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
