"""Exact wire payloads: generic JSON webhook, Slack incoming webhook, PagerDuty Events API v2, n8n webhook and
e-mail. Pure functions of the messages (a group of notifications about one thing, oldest first; the newest
leads) and the send time, so tests compare bytes.

Signing (webhook and n8n): ``X-Aurora-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` with the channel's
key, and ``X-Aurora-Timestamp: <unix seconds>``. The body repeats the timestamp as ``sent_at``, so the
signature covers it: a receiver rejects a body whose ``sent_at`` is more than a few minutes old (a replay).

The runbooks linked to an incident (``fields["runbooks"]``, see ``aurora.notify.message``) are listed with
their dashboard links in every format: the webhook's and n8n's fields carry them as they are, Slack gets a
section of links, PagerDuty its ``links`` (and ``custom_details``), the e-mail a list in both parts.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from aurora import __version__
from aurora.notify.message import Notification

SIGNATURE_HEADER = "X-Aurora-Signature"
TIMESTAMP_HEADER = "X-Aurora-Timestamp"
DELIVERY_HEADER = "X-Aurora-Delivery"  # the same on every retry of one message: receivers may drop repeats
USER_AGENT = f"Aurora/{__version__}"
PD_SUMMARY_MAX = 1024
SLACK_TEXT_MAX = 3000
SLACK_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}
PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
Group = Sequence[Notification]


# --- helpers -----------------------------------------------------------------------------------------
def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the bytes that are signed are the bytes that are sent."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str).encode()


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """What a receiver runs: constant-time comparison of the header with the body's HMAC."""
    return hmac.compare_digest(sign(secret, body), signature)


def signed_headers(secret: bytes | None, body: bytes, sent_at: int) -> dict[str, str]:
    out = {TIMESTAMP_HEADER: str(sent_at)}
    if secret is not None:
        out[SIGNATURE_HEADER] = sign(secret, body)
    return out


def lead(group: Group) -> Notification:
    if not group:
        raise ValueError("a message needs at least one notification")
    return group[-1]


def severity(group: Group) -> str:
    """The newest notification's: it is the current state (an update may lower it, a resolution ends it)."""
    return lead(group).severity


def title(group: Group) -> str:
    more = f" (+{len(group) - 1} more)" if len(group) > 1 else ""
    return lead(group).title + more


def _others(group: Group) -> list[Notification]:
    return list(group[:-1])


def runbooks(n: Notification) -> list[tuple[str, str, str | None]]:
    """The runbooks a message links, best first: (name, title, dashboard URL or None)."""
    out = []
    for rb in n.fields.get("runbooks") or []:
        if isinstance(rb, Mapping) and rb.get("name"):
            url = rb.get("url")
            out.append((str(rb["name"]), str(rb.get("title") or rb["name"]), str(url) if url else None))
    return out


def plain_text(group: Group) -> str:
    first = lead(group)
    parts = [first.text]
    if len(group) > 1:
        parts.append("Also in this group:\n" + "\n".join(f"- {n.title}" for n in reversed(_others(group))))
    books = runbooks(first)
    if books:
        parts.append("Runbooks:\n" + "\n".join(f"- {t}: {u}" if u else f"- {t} ({name})" for name, t, u in books))
    meta = [f"Severity: {severity(group)}", f"Event: {first.event}"]
    if first.services:
        meta.append(f"Services: {', '.join(first.services)}")
    if first.team:
        meta.append(f"Team: {first.team}")
    meta.append(f"Time: {iso(first.time)}")
    parts.append("\n".join(meta))
    if first.url:
        parts.append(f"Open in Aurora: {first.url}")
    return "\n\n".join(parts)


# --- generic webhook ---------------------------------------------------------------------------------
def webhook_body(group: Group, sent_at: int) -> dict[str, Any]:
    """The lead (newest) notification as JSON, with the others about the same thing under ``grouped``."""
    body = lead(group).as_dict()
    body.update(severity=severity(group), sent_at=sent_at, count=len(group),
                grouped=[n.as_dict() for n in _others(group)], source="aurora", version=1)
    return body


# --- Slack -------------------------------------------------------------------------------------------
def slack_escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters (links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_cut(text: str, limit: int = SLACK_TEXT_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_body(group: Group) -> dict[str, Any]:
    first = lead(group)
    sev = severity(group)
    emoji = ":white_check_mark:" if first.event in ("fixed_fyi", "incident_resolved") else SLACK_EMOJI[sev]
    head = f"{emoji} [{sev.upper()}] {title(group)}"
    fields = [{"type": "mrkdwn", "text": f"*Severity*\n{sev}"}, {"type": "mrkdwn", "text": f"*Event*\n{first.event}"}]
    if first.services:
        fields.append({"type": "mrkdwn", "text": f"*Services*\n{slack_escape(', '.join(first.services))}"})
    if first.team:
        fields.append({"type": "mrkdwn", "text": f"*Team*\n{slack_escape(first.team)}"})
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_cut(f"{emoji} *{slack_escape(title(group))}*")}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_cut(slack_escape(first.text) or " ")}},
        {"type": "section", "fields": fields},
    ]
    if len(group) > 1:
        items = "\n".join(f"• {slack_escape(n.title)}" for n in reversed(_others(group)))
        more = _slack_cut(f"*Also in this group*\n{items}")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": more}})
    books = runbooks(first)
    if books:
        items = "\n".join(f"• <{slack_escape(u)}|{slack_escape(t)}>" if u
                          else f"• {slack_escape(t)} ({slack_escape(name)})" for name, t, u in books)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _slack_cut(f"*Runbooks*\n{items}")}})
    context = f"Aurora · <!date^{int(first.time)}^{{date_short_pretty}} {{time}}|{iso(first.time)}>"
    if first.url:
        context += f" · <{first.url}|Open in Aurora>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": slack_escape(head), "blocks": blocks}


# --- PagerDuty Events API v2 --------------------------------------------------------------------------
def pagerduty_action(n: Notification) -> str:
    """resolve when the problem is over (resolved, fixed by Aurora, a closed prediction), acknowledge when a
    person acknowledged it, trigger otherwise (a repeated trigger updates the open alert)."""
    if n.event in ("incident_resolved", "fixed_fyi"):
        return "resolve"
    if n.event == "prediction" and n.fields.get("state") not in (None, "active"):
        return "resolve"
    if n.event == "incident_updated" and n.fields.get("change") == "acked":
        return "acknowledge"
    return "trigger"


def pagerduty_severity(group: Group) -> str:
    if any(n.event == "action_done" and n.fields.get("status") == "failed" for n in group):
        return "error" if severity(group) != "critical" else "critical"
    return PD_SEVERITY[severity(group)]


def pagerduty_body(group: Group, routing_key: str, client_url: str | None = None) -> dict[str, Any]:
    first = lead(group)
    action = pagerduty_action(first)
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": action,
                            "dedup_key": f"aurora:{first.group_key}"[:255]}
    if action != "trigger":  # PagerDuty reads only the key for acknowledge and resolve
        return body
    summary = title(group)
    payload: dict[str, Any] = {
        "summary": summary if len(summary) <= PD_SUMMARY_MAX else summary[: PD_SUMMARY_MAX - 1] + "…",
        "source": first.service or "aurora", "severity": pagerduty_severity(group), "timestamp": iso(first.time),
        "class": first.event,
        "custom_details": {"text": first.text, "services": list(first.services), "event": first.event,
                           "notification_id": first.id, **{k: v for k, v in first.fields.items() if v is not None},
                           **({"grouped": [n.title for n in _others(group)]} if len(group) > 1 else {})},
    }
    if first.service:
        payload["component"] = first.service
    if first.team:
        payload["group"] = first.team
    body["payload"] = payload
    body["client"] = "Aurora"
    if client_url:
        body["client_url"] = client_url
    links = [{"href": first.url, "text": "Open in Aurora"}] if first.url else []
    links += [{"href": u, "text": f"Runbook: {t}"} for _, t, u in runbooks(first) if u]
    if links:
        body["links"] = links
    return body


# --- n8n -----------------------------------------------------------------------------------------------
def _scalar(v: Any) -> Any:
    return v if v is None or isinstance(v, str | int | float | bool) else json.dumps(v, sort_keys=True, default=str)


def n8n_body(group: Group, sent_at: int) -> dict[str, Any]:
    """One flat object (no nesting: n8n's Webhook node exposes each key as ``$json.<key>``); fields become
    ``field_<name>``, lists and objects inside them JSON strings."""
    first = lead(group)
    body: dict[str, Any] = {
        "id": first.id, "event": first.event, "severity": severity(group), "title": title(group), "text": first.text,
        "service": first.service or "", "services": ", ".join(first.services), "team": first.team or "",
        "url": first.url or "", "time": iso(first.time), "time_unix": first.time, "group_key": first.group_key,
        "dedup_key": first.dedup_key, "count": len(group), "grouped_titles": "\n".join(n.title for n in _others(group)),
        "sent_at": sent_at, "source": "aurora"}
    body.update({f"field_{k}": _scalar(v) for k, v in first.fields.items()})
    return body


# --- e-mail --------------------------------------------------------------------------------------------
def subject(group: Group) -> str:
    first = lead(group)
    tag = "FYI" if first.event == "fixed_fyi" else severity(group).upper()
    return " ".join(f"[Aurora] [{tag}] {title(group)}".split())  # no line breaks in a header


def _html(group: Group) -> str:
    first = lead(group)
    esc = html.escape
    rows = [("Severity", severity(group)), ("Event", first.event), ("Services", ", ".join(first.services)),
            ("Team", first.team or ""), ("Time", iso(first.time))]
    table = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows if v)
    text = "<br>".join(esc(line) for line in first.text.splitlines())
    parts = [f"<h2>{esc(title(group))}</h2>", f"<p>{text}</p>", f"<table>{table}</table>"]
    if len(group) > 1:
        parts.append("<p>Also in this group:</p><ul>"
                     + "".join(f"<li>{esc(n.title)}</li>" for n in reversed(_others(group))) + "</ul>")
    books = runbooks(first)
    if books:
        parts.append("<p>Runbooks:</p><ul>" + "".join(
            f"<li><a href='{esc(u, quote=True)}'>{esc(t)}</a></li>" if u else f"<li>{esc(t)} ({esc(name)})</li>"
            for name, t, u in books) + "</ul>")
    if first.url:
        parts.append(f"<p><a href='{esc(first.url, quote=True)}'>Open in Aurora</a></p>")
    return "<html><body>" + "".join(parts) + "</body></html>"


def email_message(group: Group, sender: str, to: Sequence[str], sent_at: float) -> EmailMessage:
    """multipart/alternative: the plain text and the same as HTML."""
    first = lead(group)
    msg = EmailMessage()
    msg["Subject"] = subject(group)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(sent_at, usegmt=True)
    msg["Message-ID"] = make_msgid("aurora", domain=sender.rsplit("@", 1)[-1])  # no DNS lookup of the host
    msg["X-Aurora-Event"] = first.event
    msg["X-Aurora-Group"] = first.group_key
    msg.set_content(plain_text(group))
    msg.add_alternative(_html(group), subtype="html")
    return msg
