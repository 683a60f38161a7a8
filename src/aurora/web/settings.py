"""The Settings page's data: notification channels (from the configuration) and the notifier's delivery log.

Notifications are optional and may be absent from this Aurora altogether (``aurora.cfg.notifications``,
``aurora.notifier``): each part answers None then, and the page says "not configured" instead of guessing.
A channel's URL can itself be a secret (a Slack incoming-webhook URL is), so only its scheme and host show.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
DELIVERIES_SHOWN = 50


def _where(ch: Any) -> str:
    url = getattr(ch, "url", None)
    if url:
        parts = urlsplit(str(url))
        return f"{parts.scheme}://{parts.hostname or ''}/…"
    smtp = getattr(ch, "smtp", None)
    if smtp is not None:
        return f"{', '.join(getattr(smtp, 'to', []) or [])} via {getattr(smtp, 'host', '?')}"
    return "-"


def channels(aurora: Any) -> list[dict[str, Any]] | None:
    section = getattr(aurora.cfg, "notifications", None)
    found = getattr(section, "channels", None)
    if section is None or not found:
        return None
    secrets = ("secret_env", "routing_key_env")
    return [{"name": getattr(ch, "name", "?"), "type": getattr(ch, "type", "?"), "where": _where(ch),
             "secrets": [f"{k}={getattr(ch, k)}" for k in secrets if getattr(ch, k, None)]} for ch in found]


def routes(aurora: Any) -> list[dict[str, Any]]:
    section = getattr(aurora.cfg, "notifications", None)
    out = []
    for r in getattr(section, "routes", None) or []:
        match = r.match.model_dump(exclude_defaults=True) if hasattr(r, "match") else {}
        out.append({"match": match, "channels": list(getattr(r, "channels", []))})
    return out


def deliveries(aurora: Any) -> list[dict[str, Any]] | None:
    notifier = getattr(aurora, "notifier", None)
    hook = getattr(notifier, "deliveries", None)
    if hook is None:
        return None
    try:
        return [dict(d) for d in hook(limit=DELIVERIES_SHOWN)]
    except Exception:
        log.exception("reading the notifier's delivery log failed; the dashboard shows none")
        return None
