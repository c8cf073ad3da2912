"""hazard clock: what a counted rectification deadline came from, and its 即将到期

``hazard`` gains ``deadline_from`` (the instant a deadline counted on the working calendar started:
the order or the failed re-inspection) and ``allowance_s`` (its working seconds), both NULL when
the message gave the deadline as an instant. With them a provisional deadline (a year neither
calendar knew) is counted again once the holiday file knows the year (dashboard.cases.recount).
Rows stored before this migration have no basis: a provisional one among them stays provisional.
``due_soon_at`` is the start of the last share (DUE_SOON_SHARE) of the working time from the
latest order to the deadline, as a case's; the consumer gives rows stored before it theirs at its
next start (dashboard.cases.recount.fill_hazard_due_soon), outside the migration because it needs
the working calendar and the settings.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 23:00:00
"""
from alembic import op
import sqlalchemy as sa
import dashboard.store.types


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline_from', dashboard.store.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('allowance_s', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('due_soon_at', dashboard.store.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.drop_column('due_soon_at')
        batch_op.drop_column('allowance_s')
        batch_op.drop_column('deadline_from')
