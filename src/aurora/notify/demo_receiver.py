"""A webhook receiver for ``aurora demo``: a real HTTP server on a loopback port that checks each delivery's
HMAC signature and prints what arrived, so the demo shows notifications end to end without a Slack account."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class DemoReceiver:
    def __init__(self, on_message: Callable[[dict[str, Any], bool], None]) -> None:
        self.secret = secrets.token_hex(16)
        self.on_message = on_message
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                want = "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                signed = hmac.compare_digest(want, self.headers.get("X-Aurora-Signature", ""))
                self.send_response(204 if signed else 401)
                self.end_headers()
                with contextlib.suppress(Exception):  # a printing problem must not fail the delivery
                    receiver.on_message(json.loads(body), signed)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the demo prints its own line
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/aurora"
        self.thread = threading.Thread(target=self.server.serve_forever, name="demo-receiver", daemon=True)

    def start(self) -> DemoReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
