"""The Settings page's data: notification channels (from the configuration) and the notifier's delivery log.

Notifications are optional and may be absent from this Aurora altogether (``aurora.cfg.notifications``,
``aurora.notifier``): each part answers None then, and the page says "not configured" instead of guessing.
A channel's URL can itself be a secret (a Slack incoming-webhook URL is), so only its scheme and host show.
"""

from __future__ import annotations

import logging
from typing import Any

from aurora.notify.config import ChannelConfig

log = logging.getLogger(__name__)
DELIVERIES_SHOWN = 50


def _where(ch: ChannelConfig) -> str:
    if ch.smtp is not None:
        return f"{', '.join(ch.smtp.to)} via {ch.smtp.host}"
    return f"{ch.target}/…"  # the channel's own secret-free form of its URL


def channels(aurora: Any) -> list[dict[str, Any]] | None:
    found = aurora.cfg.notifications.channels
    if not found:
        return None
    secrets = ("secret_env", "routing_key_env")
    return [{"name": ch.name, "type": ch.type, "where": _where(ch),
             "secrets": [f"{k}={getattr(ch, k)}" for k in secrets if getattr(ch, k, None)]} for ch in found]


def routes(aurora: Any) -> list[dict[str, Any]]:
    return [{"match": r.match.model_dump(exclude_defaults=True), "channels": list(r.channels)}
            for r in aurora.cfg.notifications.routes]


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
