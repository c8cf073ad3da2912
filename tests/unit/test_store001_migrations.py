"""The migrations build exactly the schema the code declares (dashboard.store.schema)."""
from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dashboard.store.schema import metadata


def test_store001_migrated_database_matches_the_declared_schema(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_store002_event_indexes_are_the_ones_the_feed_appends_to(engine):
    indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(engine).get_indexes("event")}
    assert indexes == {
        "ix_event_state_reported": ["state", "reported_at", "grid_code", "deadline_at"],
        "ix_event_reported_grid": ["reported_at", "grid_code"],
        "ix_event_updated_at": ["updated_at"],
        "ix_event_closed_at": ["closed_at"],
        "ix_event_deadline_grid": ["deadline_at", "grid_code"],  # 应结案数 (0005)
    }
