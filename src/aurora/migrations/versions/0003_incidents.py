"""incidents, their signals and timeline, and full-text search over them

Revision ID: 0003
Revises: 0002

The search document lives in the plain table ``incident_search`` on both databases, so the store writes it
with the same Core statements. What indexes it differs:

* SQLite: an external-content FTS5 table ``incident_fts`` over ``incident_search`` (porter stemming, like
  PostgreSQL's english configuration), kept in step by triggers on insert, update and delete.
* PostgreSQL: a generated, stored tsvector column ``document`` (title weighted A, causes B, summary C,
  notes D) with a GIN index. Stored, so ranking reads it instead of re-parsing every matching row.

The SQL below is frozen here on purpose (a migration must not change when the application code does);
``aurora.incidents.search`` queries these objects by name.
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

FTS_COLUMNS = "title, summary, causes, notes"
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE incident_fts USING fts5(title, summary, causes, notes, content='incident_search', "
    "content_rowid='incident_id', tokenize='porter unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER incident_search_ai AFTER INSERT ON incident_search BEGIN "
    f"INSERT INTO incident_fts(rowid, {FTS_COLUMNS}) "
    f"VALUES (new.incident_id, new.title, new.summary, new.causes, new.notes); END",
    f"CREATE TRIGGER incident_search_ad AFTER DELETE ON incident_search BEGIN "
    f"INSERT INTO incident_fts(incident_fts, rowid, {FTS_COLUMNS}) "
    f"VALUES ('delete', old.incident_id, old.title, old.summary, old.causes, old.notes); END",
    f"CREATE TRIGGER incident_search_au AFTER UPDATE ON incident_search BEGIN "
    f"INSERT INTO incident_fts(incident_fts, rowid, {FTS_COLUMNS}) "
    f"VALUES ('delete', old.incident_id, old.title, old.summary, old.causes, old.notes); "
    f"INSERT INTO incident_fts(rowid, {FTS_COLUMNS}) "
    f"VALUES (new.incident_id, new.title, new.summary, new.causes, new.notes); END",
]
PG_DOCUMENT = (
    "ALTER TABLE incident_search ADD COLUMN document tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english'::regconfig, title), 'A') || "
    "setweight(to_tsvector('english'::regconfig, causes), 'B') || "
    "setweight(to_tsvector('english'::regconfig, summary), 'C') || "
    "setweight(to_tsvector('english'::regconfig, notes), 'D')) STORED"
)
PG_INDEX = "CREATE INDEX ix_incident_search_document ON incident_search USING gin (document)"


def upgrade() -> None:
    op.create_table('incidents',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('mitigated_at', sa.Float(), nullable=True),
    sa.Column('resolved_at', sa.Float(), nullable=True),
    sa.Column('acked_at', sa.Float(), nullable=True),
    sa.Column('acked_by', sa.String(length=200), nullable=True),
    sa.Column('services', sa.Text(), nullable=False),
    sa.Column('root_causes', sa.Text(), nullable=False),
    sa.Column('confidence', sa.String(length=16), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=True),
    sa.Column('signal_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('ix_incidents_opened', ['opened_at'], unique=False)
        batch_op.create_index('ix_incidents_status_opened', ['status', 'opened_at'], unique=False)

    op.create_table('incident_signals',
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('service', sa.String(length=255), nullable=True),
    sa.Column('metric', sa.String(length=255), nullable=True),
    sa.Column('first_time', sa.Float(), nullable=False),
    sa.Column('last_time', sa.Float(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('labels', sa.Text(), nullable=False),
    sa.Column('resolved', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('incident_id', 'fingerprint')
    )

    op.create_table('incident_timeline',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('time', sa.Float(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('incident_timeline', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_timeline_incident_id'), ['incident_id'], unique=False)

    op.create_table('incident_search',
    sa.Column('incident_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('causes', sa.Text(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('incident_id')
    )

    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for statement in SQLITE_FTS:
            op.execute(statement)
    elif dialect == 'postgresql':
        op.execute(PG_DOCUMENT)
        op.execute(PG_INDEX)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for trigger in ('incident_search_ai', 'incident_search_ad', 'incident_search_au'):
            op.execute(f'DROP TRIGGER IF EXISTS {trigger}')
        op.execute('DROP TABLE IF EXISTS incident_fts')
    op.drop_table('incident_search')
    with op.batch_alter_table('incident_timeline', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_timeline_incident_id'))

    op.drop_table('incident_timeline')
    op.drop_table('incident_signals')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_status_opened')
        batch_op.drop_index('ix_incidents_opened')

    op.drop_table('incidents')
