"""Every table Aurora keeps, as SQLAlchemy Core metadata. Migrations in ``aurora/migrations`` build these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Series index: one row per (metric, labels). ``key_hash`` (hex of a 128-bit hash of the canonical key)
# is the lookup key, because a full key can exceed a B-tree entry on PostgreSQL.
series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("key_hash", String(32), nullable=False, unique=True),
    Column("metric", String(255), nullable=False, index=True),
    Column("labels", Text, nullable=False),  # JSON object, keys sorted
    Column("created_ms", BigInteger, nullable=False),
)

# Compressed raw samples: one row per series per chunk.
chunks = Table(
    "chunks",
    metadata,
    Column("series_id", Integer, primary_key=True),
    Column("start_ms", BigInteger, primary_key=True),
    Column("end_ms", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)
Index("ix_chunks_end", chunks.c.end_ms)

# Downsampled aggregates (min, max, sum, count, last per bucket), compressed like chunks.
rollups = Table(
    "rollups",
    metadata,
    Column("series_id", Integer, primary_key=True),
    Column("resolution_s", Integer, primary_key=True),
    Column("start_ms", BigInteger, primary_key=True),
    Column("end_ms", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)
Index("ix_rollups_end", rollups.c.resolution_s, rollups.c.end_ms)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("scopes", String(200), nullable=False),  # space separated
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked", Boolean, nullable=False, default=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("service", String(255), nullable=False),
    Column("time", Float, nullable=False),
    Column("attributes", Text, nullable=False),  # JSON object
    Column("received_at", Float, nullable=False),
)
Index("ix_events_time", events.c.time)
Index("ix_events_service_time", events.c.service, events.c.time)

# Alerts from Alertmanager's webhook; one row per fingerprint, updated as it fires and resolves.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("alertname", String(255), nullable=False),
    Column("service", String(255)),
    Column("severity", String(32)),
    Column("labels", Text, nullable=False),
    Column("annotations", Text, nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float),
    Column("generator_url", Text),
    Column("receiver", String(255)),
    Column("updated_at", Float, nullable=False),
)
Index("ix_alerts_status", alerts.c.status)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", String(255)),
    Column("detail", Text, nullable=False),  # JSON object
)
Index("ix_audit_time", audit_log.c.time)

# Anomalies found by the detection stage, with their evidence.
anomalies = Table(
    "anomalies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),  # event time, unix seconds
    Column("series_id", Integer, nullable=False),
    Column("service", String(255)),
    Column("metric", String(255), nullable=False),
    Column("labels", Text, nullable=False),  # JSON object
    Column("score", Float, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("expected_lo", Float, nullable=False),
    Column("expected_hi", Float, nullable=False),
    Column("observed", Float, nullable=False),
    Column("detectors", Text, nullable=False),  # JSON list
    Column("explanation", Text, nullable=False),
)
Index("ix_anomalies_time", anomalies.c.time)
Index("ix_anomalies_service_time", anomalies.c.service, anomalies.c.time)

# Incidents (written by the incident engine and by people through the API). Times are event time, unix s.
incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", Text, nullable=False),
    Column("status", String(16), nullable=False),  # open | mitigated | resolved
    Column("severity", String(16), nullable=False),  # info | warning | critical
    Column("opened_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("mitigated_at", Float),
    Column("resolved_at", Float),
    Column("acked_at", Float),
    Column("acked_by", String(200)),
    Column("services", Text, nullable=False),  # JSON list of service names
    Column("root_causes", Text, nullable=False),  # JSON list of {service, metric, score, evidence}
    Column("confidence", String(16)),  # high | medium | uncertain | none, or NULL before any ranking
    Column("summary", Text, nullable=False),
    Column("category", String(64)),  # the root cause's kind, e.g. "memory"
    Column("signal_count", Integer, nullable=False),
)
Index("ix_incidents_status_opened", incidents.c.status, incidents.c.opened_at)
Index("ix_incidents_opened", incidents.c.opened_at)

# The deduplicated signals of each incident (SignalState.as_dict()).
incident_signals = Table(
    "incident_signals",
    metadata,
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    Column("fingerprint", String(255), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("service", String(255)),
    Column("metric", String(255)),
    Column("first_time", Float, nullable=False),
    Column("last_time", Float, nullable=False),
    Column("count", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("summary", Text, nullable=False),
    Column("labels", Text, nullable=False),  # JSON object
    Column("resolved", Boolean, nullable=False),
)

# What happened to each incident, oldest first; people's notes are entries of kind "note".
incident_timeline = Table(
    "incident_timeline",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("time", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("data", Text, nullable=False),  # JSON object
)

# The text search document of each incident, rewritten on every save (see aurora.incidents.search): on
# SQLite an FTS5 table ``incident_fts`` indexes it (kept in step by triggers); on PostgreSQL a generated
# tsvector column ``document`` with a GIN index. Both are created by migration 0003 and are not listed here.
incident_search = Table(
    "incident_search",
    metadata,
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("causes", Text, nullable=False),  # root causes' service, metric and evidence; services; category
    Column("notes", Text, nullable=False),
)

# Predictions of a breach (written by the prediction stage). Times are event time, unix s; an infinite
# ETA bound (the slope is not significant at that level) is stored as NULL.
predictions = Table(
    "predictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("series_id", Integer, nullable=False),
    Column("service", String(255)),
    Column("metric", String(255), nullable=False),
    Column("labels", Text, nullable=False),  # JSON object
    Column("kind", String(64), nullable=False),  # e.g. memory_exhaustion, disk_full
    Column("direction", Integer, nullable=False),  # +1 rises to a ceiling, -1 falls to a floor
    Column("threshold", Float, nullable=False),  # the limit
    Column("limit_source", String(255), nullable=False),  # the limit's series, "config" or "default"
    Column("state", String(16), nullable=False),  # active | withdrawn | confirmed
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("closed_at", Float),
    Column("close_reason", Text),
    Column("eta", Float, nullable=False),
    Column("eta_low", Float),
    Column("eta_high", Float),
    Column("first_eta", Float, nullable=False),  # the ETA when first issued (its error is known on breach)
    Column("breach_at", Float),  # when the breach was observed (confirmed)
    Column("probability", Float, nullable=False),  # P(breach within the horizon)
    Column("probabilities", Text, nullable=False),  # JSON {"30m": p, "1h": p, "2h": p, "4h": p}
    Column("evidence", Text, nullable=False),  # JSON: fitted trend, current, since, window, sawtooth, change, ...
    Column("explanation", Text, nullable=False),
    Column("updates", Integer, nullable=False),
)
Index("ix_predictions_state", predictions.c.state)
Index("ix_predictions_service_created", predictions.c.service, predictions.c.created_at)
Index("ix_predictions_series", predictions.c.series_id)

# Remediation runs: every decision, including the ones not taken (status "skipped" with the reason).
# Times are event time, unix s, except decided_wall (when a person approved or rejected).
actions = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, nullable=False, index=True),
    Column("playbook", String(100), nullable=False),
    Column("incident_kind", String(64)),  # the incident's category when decided (for learning)
    Column("mode", String(16), nullable=False),  # auto | approve | notify-only
    Column("dry_run", Boolean, nullable=False),
    Column("action", String(64), nullable=False),  # the first step's action
    Column("executor", String(32), nullable=False),
    Column("target", String(255), nullable=False),
    Column("steps", Text, nullable=False),  # JSON: the steps as rendered, with each step's result once run
    Column("status", String(32), nullable=False),
    Column("reason", Text, nullable=False),  # why this decision: matched because ..., skipped because ...
    Column("requested_at", Float, nullable=False),
    Column("decided_at", Float),
    Column("decided_by", String(200)),
    Column("executed_at", Float),
    Column("finished_at", Float),
    Column("output", Text, nullable=False),
)
Index("ix_actions_target_status", actions.c.target, actions.c.status)

# Remediation switches that outlive a restart (the kill switch: key "paused").
remedy_state = Table(
    "remedy_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),  # wall clock
    Column("updated_by", String(200), nullable=False),
)
