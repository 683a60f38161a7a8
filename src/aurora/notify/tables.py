"""The notification tables, registered on Aurora's one ``MetaData`` (migration 0005 creates them).

``notification_outbox``: every notification accepted for a channel, written before anything is sent, so a
receiver outage or a restart loses nothing; ``delivery_id`` stays NULL while it waits for its group.
``notification_deliveries``: one row per message sent (or to be sent) to a channel — a group of outbox
rows — with its status, attempts and the outcome of each attempt: the delivery log.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from aurora.db.tables import metadata

notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notification_id", String(64), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("event", String(32), nullable=False),
    Column("group_key", String(255), nullable=False),
    Column("dedup_key", String(255), nullable=False),
    Column("time", Float, nullable=False),  # event time of the notification, unix s
    Column("body", Text, nullable=False),  # JSON: Notification.as_dict()
    Column("created_at", Float, nullable=False),  # wall clock
    Column("delivery_id", Integer),
    UniqueConstraint("notification_id", "channel", name="uq_notification_outbox_id_channel"),
)
Index("ix_notification_outbox_dedup", notification_outbox.c.channel, notification_outbox.c.dedup_key,
      notification_outbox.c.time)
Index("ix_notification_outbox_delivery", notification_outbox.c.delivery_id)

notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(100), nullable=False),
    Column("channel_type", String(16), nullable=False),
    Column("group_key", String(255), nullable=False),
    Column("event", String(32), nullable=False),  # the lead notification's
    Column("severity", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("notification_ids", Text, nullable=False),  # JSON list, oldest first
    Column("count", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("http_status", Integer),
    Column("latency_ms", Float),  # of the last attempt
    Column("history", Text, nullable=False),  # JSON list of the last attempts: {at, ok, http_status, error, latency_ms}
    Column("created_at", Float, nullable=False),  # wall clock, like every time in this table
    Column("next_attempt_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("updated_at", Float, nullable=False),
)
Index("ix_notification_deliveries_status_next", notification_deliveries.c.status,
      notification_deliveries.c.next_attempt_at)
Index("ix_notification_deliveries_channel_created", notification_deliveries.c.channel,
      notification_deliveries.c.created_at)
Index("ix_notification_deliveries_created", notification_deliveries.c.created_at)
