"""The webhook executor: the action as signed JSON, as n8n's Webhook node takes it."""

from __future__ import annotations

import json
import os
import time
import uuid

import httpx

from aurora.remedy.executors.base import OUTPUT_LIMIT, ExecRequest, ExecResult, sign


class WebhookExecutor:
    name = "webhook"

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def run(self, req: ExecRequest) -> ExecResult:
        # sent_at and id are in the signed body (a header is not signed): a captured request cannot be replayed
        # to a receiver that checks them. Wall-clock, not event time: it dates the request, not the incident.
        sent_at, delivery = int(time.time()), uuid.uuid4().hex
        body = json.dumps({"action_id": req.action_id, "incident_id": req.incident_id, "playbook": req.playbook,
                           "action": req.action, "target": req.target, "time": req.time,
                           "params": {k: v for k, v in req.params.items() if k not in ("url", "secret_env")},
                           "id": delivery, "sent_at": sent_at}, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "X-Aurora-Timestamp": str(sent_at),
                   "X-Aurora-Delivery": delivery, "User-Agent": "aurora-remedy"}
        env = req.params.get("secret_env")
        if env:
            secret = self.environ.get(str(env))
            if not secret:
                return ExecResult(False, f"the webhook secret variable {env} is not set")
            headers["X-Aurora-Signature"] = sign(body, secret)
        t0 = time.perf_counter()
        try:
            r = httpx.post(str(req.params["url"]), content=body, headers=headers, timeout=req.timeout_s)
        except httpx.HTTPError as exc:
            return ExecResult(False, f"POST {req.params['url']} failed: {exc}", {"id": delivery})
        ms = 1000 * (time.perf_counter() - t0)
        ok = 200 <= r.status_code < 300
        return ExecResult(ok, f"POST {req.params['url']} -> {r.status_code} in {ms:.0f} ms: {r.text[:OUTPUT_LIMIT]}",
                          {"status": r.status_code, "latency_ms": ms, "id": delivery})
