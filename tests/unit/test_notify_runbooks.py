"""The runbooks linked to an incident travel with its notifications: the builders put them in ``fields``, every
channel format shows their names and dashboard links, and the notifier reads them with the incident service's
own lookup (``IncidentService.runbooks_of``, as ``GET /api/v1/incidents/{id}`` shows them)."""

from __future__ import annotations

import email
import email.policy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from aurora.notify import formats
from aurora.notify.channels import Channel, HttpRequest, Secrets
from aurora.notify.config import NotificationsConfig
from aurora.notify.message import Notification, fixed_fyi, from_action, from_incident
from aurora.notify.wiring import Bridge, with_runbooks

T = 1_700_000_000.0
BASE = "https://aurora.example"
LEAK_URL = f"{BASE}/ui/runbooks/memory-leak.md"
ODD_URL = f"{BASE}/ui/runbooks/odd%20%3Cname%3E.md"
INCIDENT: dict[str, Any] = {
    "id": 7, "title": "cart memory up", "status": "open", "severity": "critical", "opened_at": T,
    "updated_at": T + 60, "services": ["cart"], "category": "memory", "summary": "cart leaks memory",
    "root_causes": [{"service": "cart", "metric": "memory_bytes", "score": 0.9, "evidence": []}],
    "runbooks": [{"name": "memory-leak.md", "title": "Memory leak on a service", "score": None,
                  "why": "named by a matching playbook"},
                 {"name": "odd <name>.md", "title": "Caches & <queues>", "score": 1.2,
                  "why": "matches the incident's words"}],
}
ACTION: dict[str, Any] = {"id": 11, "incident_id": 7, "playbook": "restart-leaky", "action": "restart",
                          "target": "cart", "status": "pending_approval", "dry_run": False}


def _message() -> Notification:
    n = from_incident(INCIDENT, base_url=BASE)
    return Notification.from_dict(json.loads(json.dumps(n.as_dict())))  # as the outbox keeps it


def _channel(kind: str) -> Channel:
    cfg: dict[str, Any] = {"name": kind, "type": kind}
    if kind in ("webhook", "n8n"):
        cfg.update(url="http://127.0.0.1:9/hook", secret_env="K")
    elif kind == "slack":
        cfg["url"] = "https://hooks.slack.com/services/x"
    elif kind == "pagerduty":
        cfg["routing_key_env"] = "PD"
    else:
        cfg["smtp"] = {"host": "mail.example.com", "from": "aurora@example.com", "to": ["ops@example.com"]}
    channel = NotificationsConfig.model_validate({"channels": [cfg]}).channels[0]
    return Channel(channel, Secrets(hmac_key=b"k", routing_key="R"), None, BASE)


def test_incident_messages_carry_the_runbooks_with_their_dashboard_links() -> None:
    n = from_incident(INCIDENT, base_url=BASE)
    assert n.fields["runbooks"] == [
        {"name": "memory-leak.md", "title": "Memory leak on a service", "url": LEAK_URL},
        {"name": "odd <name>.md", "title": "Caches & <queues>", "url": ODD_URL}]
    # without a dashboard URL the name is what a person can look up
    assert [r["url"] for r in from_incident(INCIDENT).fields["runbooks"]] == [None, None]
    assert "runbooks" not in from_incident({**INCIDENT, "runbooks": []}, base_url=BASE).fields
    # the same links on what is sent about the incident's actions and on "detected and fixed"
    pending = from_action(ACTION, INCIDENT, base_url=BASE)
    assert pending is not None and pending.fields["runbooks"] == n.fields["runbooks"]
    fixed = {**ACTION, "status": "verified", "mode": "auto", "decided_by": "aurora"}
    fyi = fixed_fyi({**INCIDENT, "status": "mitigated", "mitigated_at": T + 300}, fixed, base_url=BASE)
    assert fyi is not None and fyi.fields["runbooks"] == n.fields["runbooks"]


def test_webhook_and_n8n_carry_the_runbooks() -> None:
    for kind in ("webhook", "n8n"):
        req = _channel(kind).render([_message()], 1, T + 5)
        assert isinstance(req, HttpRequest)
        body = json.loads(req.body)
        got = body["fields"]["runbooks"] if kind == "webhook" else json.loads(body["field_runbooks"])
        assert [(r["title"], r["url"]) for r in got] == [("Memory leak on a service", LEAK_URL),
                                                         ("Caches & <queues>", ODD_URL)], kind
        assert formats.verify(b"k", req.body, req.headers[formats.SIGNATURE_HEADER])  # signed with them


def test_slack_links_the_runbooks_escaped() -> None:
    req = _channel("slack").render([_message()], 1, T + 5)
    assert isinstance(req, HttpRequest)
    blocks = json.loads(req.body)["blocks"]
    section = {"type": "section", "text": {"type": "mrkdwn", "text": (
        f"*Runbooks*\n• <{LEAK_URL}|Memory leak on a service>\n• <{ODD_URL}|Caches &amp; &lt;queues&gt;>")}}
    assert section in blocks and blocks[-1]["type"] == "context"  # before the footer
    plain = formats.slack_body([from_incident(INCIDENT)])  # no dashboard URL: named, not linked
    assert any("• Memory leak on a service (memory-leak.md)" in b.get("text", {}).get("text", "")
               for b in plain["blocks"])


def test_pagerduty_links_the_runbooks() -> None:
    req = _channel("pagerduty").render([_message()], 1, T + 5)
    assert isinstance(req, HttpRequest)
    body = json.loads(req.body)
    assert body["links"] == [{"href": f"{BASE}/ui/incidents/7", "text": "Open in Aurora"},
                             {"href": LEAK_URL, "text": "Runbook: Memory leak on a service"},
                             {"href": ODD_URL, "text": "Runbook: Caches & <queues>"}]
    assert [r["name"] for r in body["payload"]["custom_details"]["runbooks"]] == ["memory-leak.md", "odd <name>.md"]


def test_email_lists_the_runbooks_in_both_parts() -> None:
    msg = _channel("email").render([_message()], 1, T + 5)
    assert not isinstance(msg, HttpRequest)
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert (f"Runbooks:\n- Memory leak on a service: {LEAK_URL}\n- Caches & <queues>: {ODD_URL}"
            in plain.get_content())
    assert f"<li><a href='{LEAK_URL}'>Memory leak on a service</a></li>" in html.get_content()
    assert "Caches &amp; &lt;queues&gt;</a>" in html.get_content() and "<queues>" not in html.get_content()


def test_messages_without_runbooks_are_unchanged() -> None:
    n = from_incident({k: v for k, v in INCIDENT.items() if k != "runbooks"}, base_url=BASE)
    assert "Runbooks" not in formats.plain_text([n]) and "Runbook" not in json.dumps(formats.slack_body([n]))
    assert formats.pagerduty_body([n], "R")["links"] == [{"href": f"{BASE}/ui/incidents/7", "text": "Open in Aurora"}]


def test_the_notifier_reads_the_incident_services_runbooks(tmp_path: Path) -> None:
    """End to end in one process: an acknowledgement's notification carries the runbooks the incident's API
    record shows (the demo's runbooks, linked by the same lookup)."""
    from aurora.app import Aurora
    from aurora.config import AuroraConfig
    from aurora.notify.config import ChannelConfig, RouteConfig
    from aurora.remedy.demo import RUNBOOKS, demo_playbooks

    cfg = AuroraConfig()
    cfg.storage.data_dir = tmp_path / "data"
    cfg.host_agent.enabled = False
    cfg.remediation.runbooks_dir = RUNBOOKS
    cfg.remediation.playbooks = demo_playbooks()
    cfg.notifications.dashboard_url = BASE
    cfg.notifications.channels = [ChannelConfig(name="hook", type="webhook", url="http://127.0.0.1:9/hook")]
    cfg.notifications.routes = [RouteConfig(channels=["hook"])]
    aurora = Aurora(cfg)
    aurora.open()
    try:
        iid = aurora.incident_store.create({
            "title": "cart memory leak", "status": "open", "severity": "critical", "opened_at": time.time() - 60,
            "services": ["cart"], "category": "memory", "summary": "cart memory grows until the OOM kill",
            "root_causes": [{"service": "cart", "metric": "container_memory_bytes", "score": 0.9, "evidence": []}]})
        linked = aurora.incidents.get(iid)["runbooks"]
        assert linked and linked[0]["name"] == "memory-leak.md"
        assert aurora.notifier is not None
        aurora.incidents.ack(iid, "ann")  # the notifier is not started: the message waits in its inbox
        (sent,) = [n for n in aurora.notifier._inbox if n.fields.get("incident_id") == iid]
        assert [r["name"] for r in sent.fields["runbooks"]] == [r["name"] for r in linked]
        assert sent.fields["runbooks"][0]["url"] == LEAK_URL
    finally:
        aurora.close()


def test_a_failing_runbook_lookup_costs_the_links_not_the_message() -> None:
    sent: list[Notification] = []

    def broken(_: dict[str, Any]) -> list[dict[str, Any]]:
        raise RuntimeError("index gone")

    incidents = {7: {k: v for k, v in INCIDENT.items() if k != "runbooks"}}
    bridge = Bridge(sent.append, lambda iid: with_runbooks(incidents.get(iid), broken), BASE)
    bridge.handle("incident", {"id": 7, "change": "opened"})
    assert len(sent) == 1 and "runbooks" not in sent[0].fields
    assert with_runbooks(None, broken) is None


@pytest.mark.parametrize("bad", [None, "x", [None, {"title": "no name"}, 3]])
def test_malformed_runbooks_are_ignored(bad: Any) -> None:
    n = from_incident({**INCIDENT, "runbooks": bad}, base_url=BASE)
    assert "runbooks" not in n.fields
    assert formats.runbooks(Notification.from_dict({**n.as_dict(), "fields": {"runbooks": bad}})) == []
