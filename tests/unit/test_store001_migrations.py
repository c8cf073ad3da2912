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


def test_store003_sqlite_connections_write_ahead_and_checkpoint_rarely(tmp_path):
    """Every SQLite connection make_engine opens: WAL (the wall reads while the consumer writes),
    and a checkpoint at most every 10,000 pages, not SQLite's 1,000 (the consumer's commits)."""
    from dashboard.store.engine import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 10000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
