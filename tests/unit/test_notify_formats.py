"""Notification payloads byte for byte, the builders from Aurora's records, and the config's errors."""

from __future__ import annotations

import email
import email.policy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from aurora.config_base import Section
from aurora.errors import ConfigError
from aurora.notify import formats
from aurora.notify.channels import Channel, HttpRequest, Secrets, resolve_secrets
from aurora.notify.config import NotificationsConfig
from aurora.notify.message import (
    Notification,
    fixed_alone,
    fixed_fyi,
    from_action,
    from_incident,
    from_prediction,
)

T = 1_700_000_000.0
INCIDENT: dict[str, Any] = {
    "id": 7, "title": "cart memory up", "status": "open", "severity": "critical", "opened_at": T,
    "updated_at": T + 60, "mitigated_at": None, "resolved_at": None, "acked_at": None, "acked_by": None,
    "services": ["checkout", "cart"], "confidence": "high", "category": "memory", "signal_count": 3,
    "summary": "cart's memory grows since the 1.4.2 deployment",
    "root_causes": [{"service": "cart", "metric": "memory_bytes", "score": 0.91,
                     "evidence": [{"type": "onset", "text": "began 12:00, 3 min before checkout"}]},
                    {"service": "checkout", "metric": "latency_p99", "score": 0.4, "evidence": []}],
}
PREDICTION: dict[str, Any] = {
    "id": 3, "created_at": T, "updated_at": T + 120, "service": "cart", "metric": "memory_bytes", "labels": {},
    "kind": "memory_exhaustion", "threshold": 2e9, "eta": T + 1800, "eta_low": T + 1500, "eta_high": T + 2400,
    "probability": 0.9, "explanation": "memory rises 2 MB/min; the 2 GB limit is reached in 28 min", "state": "active",
}
ACTION: dict[str, Any] = {"id": 11, "incident_id": 7, "playbook": "restart-leaky", "action": "restart",
                          "target": "cart", "status": "succeeded", "dry_run": False, "verified": True,
                          "output": "pod cart-1 restarted"}


def _cfg(channels: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None) -> NotificationsConfig:
    return NotificationsConfig.model_validate({"channels": channels, "routes": routes or []})


def _n(**kw: Any) -> Notification:
    base: dict[str, Any] = {"event": "incident_opened", "severity": "critical", "title": "cart <down> & out",
                            "text": "memory *leak*", "group_key": "incident:7", "dedup_key": "incident:7:opened",
                            "time": T, "services": ("cart",), "team": "shop", "url": "http://a.example/ui/incidents/7",
                            "fields": {"incident_id": 7}, "id": "n1"}
    return Notification(**{**base, **kw})


# --- config ------------------------------------------------------------------------------------------
def test_config_is_a_strict_section() -> None:
    assert issubclass(NotificationsConfig, Section)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        NotificationsConfig.model_validate({"chanels": []})


@pytest.mark.parametrize(("channel", "message"), [
    ({"name": "a", "type": "webhook"}, "needs a url"),
    ({"name": "a", "type": "teams", "url": "http://x"}, "Input should be 'webhook'"),
    ({"name": "a", "type": "webhook", "url": "ftp://x"}, "absolute http"),
    ({"name": "a", "type": "pagerduty"}, "needs routing_key_env"),
    ({"name": "a", "type": "slack", "url": "https://hooks.slack.com/x", "secret_env": "K"}, "webhook and n8n"),
    ({"name": "a", "type": "webhook", "url": "http://x", "secret_env": "my secret"}, "environment variable"),
    ({"name": "a", "type": "email"}, "give smtp"),
    ({"name": "a", "type": "email", "smtp": {"host": "h", "from": "a@b", "to": ["c@d"], "starttls": False,
                                             "username": "u"}}, "clear text"),
    ({"name": "a", "type": "email", "smtp": {"host": "h", "from": "nobody", "to": ["c@d"]}}, "not an e-mail"),
    ({"name": "a", "type": "webhook", "url": "http://x", "headers": {"Content-Type": "x"}}, "set by Aurora"),
])
def test_channel_errors_say_what_is_wrong(channel: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _cfg([channel])


def test_route_to_unknown_channel_points_at_the_entry() -> None:
    with pytest.raises(ValidationError) as err:
        _cfg([{"name": "ops", "type": "webhook", "url": "http://x"}], [{"channels": ["ops", "opps"]}])
    (e,) = err.value.errors()
    assert e["loc"] == ("routes", 0, "channels", 1)
    assert "unknown channel 'opps'; channels: ops" in e["msg"]


def test_duplicate_channel_names_rejected() -> None:
    with pytest.raises(ValidationError) as err:
        _cfg([{"name": "ops", "type": "webhook", "url": "http://x"}, {"name": "ops", "type": "slack", "url": "http://y"}])
    assert err.value.errors()[0]["loc"] == ("channels", 1, "name")


def test_missing_secret_names_the_variable() -> None:
    cfg = _cfg([{"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY"},
                {"name": "hook", "type": "webhook", "url": "http://x", "secret_env": "HOOK_KEY"}])
    with pytest.raises(ConfigError, match="routing_key_env names environment variable PD_KEY"):
        resolve_secrets(cfg, {"HOOK_KEY": "k"})
    got = resolve_secrets(cfg, {"HOOK_KEY": "k", "PD_KEY": "r"})
    assert got["pd"].routing_key == "r" and got["hook"].hmac_key == b"k"


# --- builders ----------------------------------------------------------------------------------------
def test_incident_message() -> None:
    n = from_incident(INCIDENT, base_url="https://aurora.example", team_of={"cart": "shop"}.get)
    assert (n.event, n.severity, n.group_key, n.dedup_key) == ("incident_opened", "critical", "incident:7",
                                                                 "incident:7:incident_opened")
    assert n.title == "Incident: cart memory up"
    assert n.services == ("cart", "checkout")  # the top root cause first
    assert n.team == "shop" and n.url == "https://aurora.example/ui/incidents/7" and n.time == T
    assert "1. cart memory_bytes (score 0.91): began 12:00" in n.text
    resolved = from_incident({**INCIDENT, "status": "resolved", "resolved_at": T + 900})
    assert resolved.event == "incident_resolved" and resolved.time == T + 900


def test_incident_update_dedup_key_follows_what_a_person_reads() -> None:
    a = from_incident(INCIDENT, "incident_updated", change="ranked")
    b = from_incident({**INCIDENT, "updated_at": T + 600}, "incident_updated", change="ranked")
    c = from_incident({**INCIDENT, "severity": "warning"}, "incident_updated", change="ranked")
    assert a.dedup_key == b.dedup_key != c.dedup_key


def test_prediction_message() -> None:
    n = from_prediction(PREDICTION)
    assert n.severity == "critical"  # breach in 28 min
    assert n.title == "Predicted memory exhaustion: cart memory_bytes at 2023-11-14 22:43 UTC (between 22:38 and 22:53)"
    assert n.dedup_key == "prediction:3:active:critical" and n.group_key == "prediction:cart:memory_bytes"
    later = from_prediction({**PREDICTION, "updated_at": T + 180}, "updated")
    assert later.dedup_key == n.dedup_key  # minutely updates of the same prediction are duplicates
    gone = from_prediction({**PREDICTION, "state": "withdrawn", "close_reason": "trend stopped"}, "withdrawn")
    assert gone.severity == "info" and gone.title.startswith("Prediction withdrawn") and "trend stopped" in gone.text


def test_action_messages() -> None:
    pending = from_action({**ACTION, "status": "pending_approval", "verified": None}, INCIDENT)
    assert pending is not None and pending.event == "action_pending_approval"
    assert pending.title == "Approval needed: restart-leaky: restart cart"
    assert "/api/v1/actions/11/approve" in pending.text
    done = from_action(ACTION, INCIDENT)
    assert done is not None and done.event == "action_done" and done.title.startswith("Fixed and verified")
    assert done.group_key == "incident:7" and done.services[0] == "cart"
    assert from_action({**ACTION, "status": "running"}) is None  # interim: the final status follows
    escalated = from_action({**ACTION, "status": "verification_failed", "change": "escalated", "why": "no effect"})
    assert escalated is not None and escalated.severity == "critical" and "no effect" in escalated.text


def test_fixed_fyi_only_when_aurora_fixed_it_alone() -> None:
    mitigated = {**INCIDENT, "status": "mitigated", "mitigated_at": T + 300}
    fyi = fixed_fyi(mitigated, ACTION)
    assert fyi is not None and fyi.event == "fixed_fyi" and fyi.severity == "info"
    assert fyi.title == "FYI: detected and fixed: cart memory up (restart cart)"
    assert "fixed it on its own" in fyi.text and fyi.dedup_key == "incident:7:fixed_fyi"
    # the remediation engine's own record shape
    assert fixed_alone(mitigated, {"id": 1, "incident_id": 7, "status": "verified", "mode": "auto",
                                   "decided_by": "aurora", "dry_run": False})
    assert not fixed_alone(INCIDENT, ACTION)  # still open
    assert not fixed_alone({**mitigated, "acked_by": "ann"}, ACTION)  # a person was on it
    assert not fixed_alone(mitigated, {**ACTION, "approved_by": "ann"})
    assert not fixed_alone(mitigated, {**ACTION, "dry_run": True})
    assert not fixed_alone(mitigated, {**ACTION, "verified": False})
    assert not fixed_alone(mitigated, {**ACTION, "status": "verified", "mode": "approve", "decided_by": "bob"})


def test_notification_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="event 'paged'"):
        _n(event="paged")
    with pytest.raises(ValueError, match="severity 'high'"):
        _n(severity="high")
    assert Notification.from_dict(_n().as_dict()) == _n()


# --- payloads ----------------------------------------------------------------------------------------
def test_webhook_body_and_signature() -> None:
    group = [_n(id="n0", title="first", severity="warning"), _n()]  # the newest leads
    body = formats.webhook_body(group, 1_700_000_100)
    assert body["id"] == "n1" and body["severity"] == "critical" and body["count"] == 2
    assert body["sent_at"] == 1_700_000_100 and [g["id"] for g in body["grouped"]] == ["n0"]
    raw = formats.encode(body)
    headers = formats.signed_headers(b"s3cret", raw, 1_700_000_100)
    assert headers["X-Aurora-Timestamp"] == "1700000100"
    assert formats.verify(b"s3cret", raw, headers["X-Aurora-Signature"])
    assert not formats.verify(b"other", raw, headers["X-Aurora-Signature"])
    assert not formats.verify(b"s3cret", raw + b" ", headers["X-Aurora-Signature"])
    assert headers["X-Aurora-Signature"] == (
        "sha256=" + __import__("hmac").new(b"s3cret", raw, "sha256").hexdigest())


def test_slack_blocks_exact() -> None:
    assert formats.slack_body([_n()]) == {
        "text": ":red_circle: [CRITICAL] cart &lt;down&gt; &amp; out",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": ":red_circle: *cart &lt;down&gt; &amp; out*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "memory *leak*"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Severity*\ncritical"},
                                           {"type": "mrkdwn", "text": "*Event*\nincident_opened"},
                                           {"type": "mrkdwn", "text": "*Services*\ncart"},
                                           {"type": "mrkdwn", "text": "*Team*\nshop"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": (
                "Aurora · <!date^1700000000^{date_short_pretty} {time}|2023-11-14T22:13:20.000Z> · "
                "<http://a.example/ui/incidents/7|Open in Aurora>")}]},
        ]}
    grouped = formats.slack_body([_n(id="a", title="older"), _n(event="fixed_fyi", severity="info")])
    assert grouped["text"] == ":white_check_mark: [INFO] cart &lt;down&gt; &amp; out (+1 more)"
    more = {"type": "section", "text": {"type": "mrkdwn", "text": "*Also in this group*\n• older"}}
    assert grouped["blocks"][3] == more


def test_pagerduty_trigger_exact() -> None:
    body = formats.pagerduty_body([_n()], "R0UTING", "https://aurora.example")
    assert body == {
        "routing_key": "R0UTING", "event_action": "trigger", "dedup_key": "aurora:incident:7",
        "payload": {"summary": "cart <down> & out", "source": "cart", "severity": "critical",
                    "timestamp": "2023-11-14T22:13:20.000Z", "component": "cart", "group": "shop",
                    "class": "incident_opened",
                    "custom_details": {"text": "memory *leak*", "services": ["cart"], "event": "incident_opened",
                                       "notification_id": "n1", "incident_id": 7}},
        "client": "Aurora", "client_url": "https://aurora.example",
        "links": [{"href": "http://a.example/ui/incidents/7", "text": "Open in Aurora"}],
    }


@pytest.mark.parametrize(("n", "action", "severity"), [
    (_n(event="incident_resolved"), "resolve", None),
    (_n(event="fixed_fyi", severity="info"), "resolve", None),
    (_n(event="incident_updated", fields={"change": "acked"}), "acknowledge", None),
    (_n(event="prediction", fields={"state": "withdrawn"}), "resolve", None),
    (_n(event="incident_mitigated", severity="warning"), "trigger", "warning"),
    (_n(event="prediction", severity="info", fields={"state": "active"}), "trigger", "info"),
    (_n(event="action_done", severity="warning", fields={"status": "failed"}), "trigger", "error"),
])
def test_pagerduty_actions_and_severities(n: Notification, action: str, severity: str | None) -> None:
    body = formats.pagerduty_body([n], "k")
    assert body["event_action"] == action
    if severity is None:
        assert set(body) == {"routing_key", "event_action", "dedup_key"}  # PagerDuty reads only these
    else:
        assert body["payload"]["severity"] == severity


def test_pagerduty_summary_is_cut_to_1024() -> None:
    body = formats.pagerduty_body([_n(title="x" * 5000)], "k")
    assert len(body["payload"]["summary"]) == 1024 and body["payload"]["summary"].endswith("…")


def test_n8n_body_is_flat() -> None:
    body = formats.n8n_body([_n(fields={"incident_id": 7, "root_cause": {"service": "cart"}})], 5)
    assert all(not isinstance(v, dict | list) for v in body.values())
    assert body["field_root_cause"] == '{"service": "cart"}' and body["field_incident_id"] == 7
    assert body["service"] == "cart" and body["time"] == "2023-11-14T22:13:20.000Z" and body["sent_at"] == 5


def test_email_is_multipart_text_and_html() -> None:
    msg = formats.email_message([_n()], "aurora@example.com", ["ops@example.com"], T)
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "[Aurora] [CRITICAL] cart <down> & out"
    assert formats.subject([_n(title="a\nb")]) == "[Aurora] [CRITICAL] a b"  # no line break in a header
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert "memory *leak*" in plain.get_content() and "Open in Aurora: http://a.example" in plain.get_content()
    assert "cart &lt;down&gt; &amp; out" in html.get_content()
    fyi = formats.email_message([_n(event="fixed_fyi", severity="info", title="FYI: fixed")], "a@b", ["c@d"], T)
    assert fyi["Subject"] == "[Aurora] [FYI] FYI: fixed"


def test_channel_renders_signed_request_with_delivery_id() -> None:
    cfg = _cfg([{"name": "n8n", "type": "n8n", "url": "http://127.0.0.1:5678/webhook/x", "secret_env": "K",
                 "headers": {"X-Team": "ops"}}]).channels[0]
    req = Channel(cfg, Secrets(hmac_key=b"k"), None).render([_n()], 42, T + 5)
    assert isinstance(req, HttpRequest) and req.url == "http://127.0.0.1:5678/webhook/x"
    assert req.headers["X-Aurora-Delivery"] == "42" and req.headers["X-Team"] == "ops"
    assert req.headers["Content-Type"] == "application/json"
    assert formats.verify(b"k", req.body, req.headers["X-Aurora-Signature"])
    assert json.loads(req.body)["sent_at"] == int(T + 5) == int(req.headers["X-Aurora-Timestamp"])
