"""event: indexes that the feed can append to

Every report the consumer stores updated six B-trees of ``event``; two of
them (``grid_code`` and ``(state, grid_code)``) take each new row at a random
place among the grids, which dirties one page per row per batch and was a
third of the ingest cost. The screens' queries need: open events (by state,
in a scope) and events by a time (reported, closed) in a scope.
``(state, reported_at, grid_code, deadline_at)`` serves the first and grows
at its end; ``(reported_at, grid_code)`` answers "reported since, per grid"
from the index alone (the wall's 30-day measure read 50,000 rows for it at
city scale: 140 ms, now 20); ``updated_at`` finds what changed since a
moment (a wall catching up, the point layers' cache key) without reading
every event; ``state`` alone repeated a prefix;
``event_step.event_id`` repeated the prefix of its (event_id, seq) unique
constraint.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:40:00
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_event_state_reported', 'event', ['state', 'reported_at', 'grid_code', 'deadline_at'],
                    unique=False)
    op.create_index('ix_event_reported_grid', 'event', ['reported_at', 'grid_code'], unique=False)
    op.create_index('ix_event_updated_at', 'event', ['updated_at'], unique=False)
    op.drop_index('ix_event_reported_at', table_name='event')
    op.drop_index('ix_event_state_grid', table_name='event')
    op.drop_index('ix_event_state', table_name='event')
    op.drop_index('ix_event_grid_code', table_name='event')
    op.drop_index('ix_event_step_event_id', table_name='event_step')


def downgrade() -> None:
    op.create_index('ix_event_step_event_id', 'event_step', ['event_id'], unique=False)
    op.create_index('ix_event_grid_code', 'event', ['grid_code'], unique=False)
    op.create_index('ix_event_state', 'event', ['state'], unique=False)
    op.create_index('ix_event_state_grid', 'event', ['state', 'grid_code'], unique=False)
    op.create_index('ix_event_reported_at', 'event', ['reported_at'], unique=False)
    op.drop_index('ix_event_updated_at', table_name='event')
    op.drop_index('ix_event_reported_grid', table_name='event')
    op.drop_index('ix_event_state_reported', table_name='event')
