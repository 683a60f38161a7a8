"""Alembic environment: Aurora passes an open connection in ``config.attributes['connection']``."""

from alembic import context

from aurora.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through aurora.db.database.migrate(engine)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
