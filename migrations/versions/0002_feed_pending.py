"""feed_pending: messages held until their turn (out-of-order steps, unknown targets)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:40:00
"""
from alembic import op
import sqlalchemy as sa
import dashboard.store.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feed_pending',
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=True),
    sa.Column('stream_id', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('received_at', dashboard.store.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_feed_pending'))
    )
    with op.batch_alter_table('feed_pending', schema=None) as batch_op:
        batch_op.create_index('ix_feed_pending_target_seq', ['target', 'seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_feed_pending_received_at'), ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('feed_pending', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feed_pending_received_at'))
        batch_op.drop_index('ix_feed_pending_target_seq')
    op.drop_table('feed_pending')
