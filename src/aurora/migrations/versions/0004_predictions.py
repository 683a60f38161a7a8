"""predictions

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('predictions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('service', sa.String(length=255), nullable=True),
    sa.Column('metric', sa.String(length=255), nullable=False),
    sa.Column('labels', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('direction', sa.Integer(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('limit_source', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('closed_at', sa.Float(), nullable=True),
    sa.Column('close_reason', sa.Text(), nullable=True),
    sa.Column('eta', sa.Float(), nullable=False),
    sa.Column('eta_low', sa.Float(), nullable=True),
    sa.Column('eta_high', sa.Float(), nullable=True),
    sa.Column('first_eta', sa.Float(), nullable=False),
    sa.Column('breach_at', sa.Float(), nullable=True),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('probabilities', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('updates', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index('ix_predictions_state', ['state'], unique=False)
        batch_op.create_index('ix_predictions_service_created', ['service', 'created_at'], unique=False)
        batch_op.create_index('ix_predictions_series', ['series_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index('ix_predictions_series')
        batch_op.drop_index('ix_predictions_service_created')
        batch_op.drop_index('ix_predictions_state')
    op.drop_table('predictions')
