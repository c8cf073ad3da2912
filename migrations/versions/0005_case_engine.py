"""case engine: handling units, automatic escalation claims, the case and hazard cycles' columns

``event`` gains what the case cycle needs (dashboard/cases/machine.py): the handling unit, the
clock (basis, allowance, the 即将到期 moment, a running suspension and the allowance it left, a
provisional deadline in a year neither calendar knows), the counts of system steps (negative seq), the standard rates read
(returns, extensions, supervisions), the first feedback, merge and likely-duplicate links, and an
index on (deadline_at, grid_code) for 应结案数. ``event_step`` keeps what a step carried.
``hazard`` follows its own cycle: the old states are renamed (open -> ordered when it has a
deadline, else found; verified -> closed).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 21:40:00
"""
from alembic import op
import sqlalchemy as sa
import dashboard.store.types


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

UTC = dashboard.store.types.UTCDateTime


def upgrade() -> None:
    op.create_table('handling_unit',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name_zh', sa.String(length=128), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=False),
    sa.Column('tier', sa.Integer(), nullable=False),
    sa.Column('unit_type', sa.String(length=32), nullable=False),
    sa.Column('region_code', sa.String(length=32), nullable=False),
    sa.Column('parent_code', sa.String(length=32), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_handling_unit'))
    )
    with op.batch_alter_table('handling_unit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handling_unit_region_code'), ['region_code'], unique=False)
    op.create_table('case_escalation',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('deadline_at', UTC(), nullable=False),
    sa.Column('from_level', sa.Integer(), nullable=False),
    sa.Column('to_level', sa.Integer(), nullable=False),
    sa.Column('claimed_at', UTC(), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('published_at', UTC(), nullable=True),
    sa.PrimaryKeyConstraint('event_id', 'deadline_at', name=op.f('pk_case_escalation')),
    sa.UniqueConstraint('message_id', name=op.f('uq_case_escalation_message_id'))
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unit_code', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('feedback_at', UTC(), nullable=True))
        batch_op.add_column(sa.Column('returns', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('extensions', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('supervisions', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('suspended_at', UTC(), nullable=True))
        batch_op.add_column(sa.Column('resume_state', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('remaining_s', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('deadline_basis', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('allowance_s', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('due_soon_at', UTC(), nullable=True))
        batch_op.add_column(sa.Column('deadline_provisional', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('merged_into', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('duplicate_of', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('system_steps', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index('ix_event_deadline_grid', ['deadline_at', 'grid_code'], unique=False)
    with op.batch_alter_table('event_step', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload', sa.Text(), nullable=True))
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ordered_at', UTC(), nullable=True))
        batch_op.add_column(sa.Column('closed_at', UTC(), nullable=True))
        batch_op.add_column(sa.Column('failures', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('deadline_provisional', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.execute("UPDATE hazard SET state = 'ordered', ordered_at = found_at "
               "WHERE state = 'open' AND deadline_at IS NOT NULL")
    op.execute("UPDATE hazard SET state = 'found' WHERE state = 'open'")
    op.execute("UPDATE hazard SET state = 'closed', closed_at = reinspected_at WHERE state = 'verified'")


def downgrade() -> None:
    op.execute("UPDATE hazard SET state = 'verified' WHERE state IN ('closed', 'passed')")
    op.execute("UPDATE hazard SET state = 'open' WHERE state IN ('found', 'ordered')")
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        for name in ('deadline_provisional', 'failures', 'closed_at', 'ordered_at'):
            batch_op.drop_column(name)
    with op.batch_alter_table('event_step', schema=None) as batch_op:
        batch_op.drop_column('payload')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_deadline_grid')
        for name in ('system_steps', 'duplicate_of', 'merged_into', 'deadline_provisional', 'due_soon_at', 'allowance_s',
                     'deadline_basis', 'remaining_s', 'resume_state', 'suspended_at', 'supervisions',
                     'extensions', 'returns', 'feedback_at', 'unit_code'):
            batch_op.drop_column(name)
    op.drop_table('case_escalation')
    with op.batch_alter_table('handling_unit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handling_unit_region_code'))
    op.drop_table('handling_unit')
