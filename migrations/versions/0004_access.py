"""access: users, wall display tokens, and the append-only audit log (dashboard/access)

The audit table refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL) with triggers, so the log
is append-only for every client of the database, not only for the app's code.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 19:00:00
"""
from alembic import op
import sqlalchemy as sa
import dashboard.store.types


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

APPEND_ONLY = "access_audit is append-only"


def upgrade() -> None:
    op.create_table('access_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('failed_count', sa.Integer(), nullable=False),
    sa.Column('locked_until', dashboard.store.types.UTCDateTime(), nullable=True),
    sa.Column('created_at', dashboard.store.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', dashboard.store.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_user')),
    sa.UniqueConstraint('username', name=op.f('uq_access_user_username'))
    )
    op.create_table('access_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', dashboard.store.types.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', dashboard.store.types.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_access_token_token_hash'))
    )
    op.create_table('access_audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', dashboard.store.types.UTCDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_audit'))
    )
    with op.batch_alter_table('access_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_audit_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_audit_action'), ['action'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION access_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$")
        op.execute("CREATE TRIGGER access_audit_no_change BEFORE UPDATE OR DELETE ON access_audit "
                   "FOR EACH ROW EXECUTE FUNCTION access_audit_append_only()")
        op.execute("CREATE TRIGGER access_audit_no_truncate BEFORE TRUNCATE ON access_audit "
                   "FOR EACH STATEMENT EXECUTE FUNCTION access_audit_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER access_audit_no_{verb.lower()} BEFORE {verb} ON access_audit "
                       f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE access_audit")
        op.execute("DROP FUNCTION access_audit_append_only()")
    else:
        op.drop_table('access_audit')
    op.drop_table('access_token')
    op.drop_table('access_user')
