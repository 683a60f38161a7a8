"""Notifications: routes Aurora's incidents, predictions and actions to webhooks, Slack, PagerDuty, n8n and
e-mail, durably (an outbox in the database), with grouping, dedup, rate limits and retries.

``config`` the ``notifications:`` section · ``message`` the channel-neutral Notification and its builders ·
``formats`` the wire payloads · ``routing`` and ``policy`` who gets what, when · ``transport`` HTTP and SMTP ·
``outbox`` and ``tables`` the durable outbox and delivery log · ``dispatcher`` the Notifier · ``wiring`` the
glue to the app · ``routes`` the HTTP API.
"""

from aurora.notify.config import ChannelConfig, NotificationsConfig, RouteConfig, RouteMatch, SmtpSettings
from aurora.notify.dispatcher import Notifier
from aurora.notify.message import (
    Notification,
    fixed_alone,
    fixed_fyi,
    from_action,
    from_incident,
    from_prediction,
)
from aurora.notify.wiring import Bridge, attach

__all__ = [
    "Bridge",
    "ChannelConfig",
    "Notification",
    "NotificationsConfig",
    "Notifier",
    "RouteConfig",
    "RouteMatch",
    "SmtpSettings",
    "attach",
    "fixed_alone",
    "fixed_fyi",
    "from_action",
    "from_incident",
    "from_prediction",
]
