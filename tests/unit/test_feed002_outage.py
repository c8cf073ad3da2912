"""The consumer survives Redis going away and a database that is busy, and resumes without loss.

feed031 and feed032 run on every database (``engine``: SQLite, and PostgreSQL when
TEST_DATABASE_URL is set) with a private redis-server: they stop and restart it, which is never
done to the shared external Redis. feed033 is about SQLite's own lock (another connection holding
BEGIN EXCLUSIVE), so it runs on SQLite only.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time


from dashboard.feed.consumer import Backoff, Consumer
from dashboard.feed.contract import GROUP, STREAM
from dashboard.redis_server import EmbeddedRedis, connect
from dashboard.store.engine import make_engine, migrate
from dashboard.store.schema import event, feed_message

from . import feed_support as F


def wait_for(cond, timeout=30.0, step=0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return False


def test_feed030_backoff_is_capped_exponential():
    b = Backoff(0.1, 5.0)
    waits = [b.next() for _ in range(10)]
    assert waits[:4] == [0.1, 0.2, 0.4, 0.8]
    assert max(waits) == 5.0 and waits[-1] == 5.0
    b.reset()
    assert b.next() == 0.1


def test_feed031_consumer_survives_redis_down_and_resumes(engine, tmp_path, caplog):
    server = EmbeddedRedis(tmp_path / "r", appendonly=True).start()
    F.seed_regions(engine)
    from dashboard.geo.locate import Locator

    r = connect(server.url, socket_timeout=5)
    stop = threading.Event()
    consumer = Consumer(engine, r, Locator.from_engine(engine), name="survivor", block_ms=200, stop_event=stop)
    thread = threading.Thread(target=consumer.run)
    try:
        with caplog.at_level(logging.WARNING, logger="dashboard.feed.consumer"):
            thread.start()
            producer = connect(server.url)
            F.xadd_all(producer, [F.reported(f"A{i}") for i in range(10)])
            assert wait_for(lambda: F.count(engine, event) == 10)
            producer.close()
            server.stop()                       # Redis goes away
            # the loop notices and backs off (instead of a fixed sleep, wait for that state) ...
            assert wait_for(lambda: consumer.backoff.cur > 0 and any(
                rec.getMessage() == "redis unavailable; retrying" for rec in caplog.records))
            assert thread.is_alive()            # ... and waits it out
            server.start()                      # same data dir: stream and group come back
            producer = connect(server.url)
            F.xadd_all(producer, [F.reported(f"B{i}") for i in range(10)])
            assert wait_for(lambda: F.count(engine, event) == 20)
            # the ack follows the commit, so the rows can be seen a moment before it
            assert wait_for(lambda: producer.xpending(STREAM, GROUP)["pending"] == 0)
            producer.close()
        assert any(rec.getMessage() == "redis unavailable; retrying" for rec in caplog.records)
    finally:
        stop.set()
        thread.join(10)
        server.stop()
        engine.dispose()
    assert not thread.is_alive()
    assert F.count(engine, feed_message) == 20


def test_feed032_consumer_recreates_its_group_when_redis_restarts_empty(engine, tmp_path):
    server = EmbeddedRedis(tmp_path / "r", appendonly=False).start()
    F.seed_regions(engine)
    from dashboard.geo.locate import Locator

    r = connect(server.url, socket_timeout=5)
    stop = threading.Event()
    consumer = Consumer(engine, r, Locator.from_engine(engine), name="c", block_ms=200, stop_event=stop)
    thread = threading.Thread(target=consumer.run)
    thread.start()
    try:
        p = connect(server.url)
        F.xadd_all(p, [F.reported("X1")])
        assert wait_for(lambda: F.count(engine, event) == 1)
        p.close()
        server.stop()
        for f in (tmp_path / "r").glob("*.rdb"):
            f.unlink()  # the new server starts with nothing: no stream, no group
        server.start()
        p = connect(server.url)
        F.xadd_all(p, [F.reported("X1"), F.reported("X2")])  # X1 again: a producer's retry
        assert wait_for(lambda: F.count(engine, event) == 2)
        assert wait_for(lambda: p.xpending(STREAM, GROUP)["pending"] == 0)
        p.close()
    finally:
        stop.set()
        thread.join(10)
        server.stop()
        engine.dispose()


def test_feed033_busy_database_is_retried_not_dead_lettered(tmp_path, caplog):
    """SQLite held by another writer: the batch waits (back-off) and then commits."""
    server = EmbeddedRedis(tmp_path / "r", appendonly=False).start()
    path = tmp_path / "db.sqlite"
    engine = make_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 0.05})
    migrate(engine)
    F.seed_regions(engine)
    from dashboard.geo.locate import Locator

    r = connect(server.url)
    F.xadd_all(r, [F.reported(f"D{i}") for i in range(5)])
    locker = sqlite3.connect(path, timeout=5, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    # the lock goes when the consumer has met it (not after a fixed 1.5 s, which a slow start
    # could outlast: the consumer would then never see the database busy)
    busy = threading.Event()

    class Busy(logging.Handler):
        def emit(self, record):
            if "database busy or unavailable" in record.getMessage():
                busy.set()

    def release():
        busy.wait(60)
        locker.rollback()
    releaser = threading.Thread(target=release)
    watcher = Busy()
    logging.getLogger("dashboard.feed.consumer").addHandler(watcher)
    releaser.start()
    try:
        with caplog.at_level(logging.WARNING, logger="dashboard.feed.consumer"):
            stats = Consumer(engine, r, Locator.from_engine(engine), name="c").run(burst=True)
    finally:
        busy.set()
        releaser.join()
        locker.close()
        logging.getLogger("dashboard.feed.consumer").removeHandler(watcher)
    try:
        assert stats["applied"] == 5 and stats["dead"] == 0
        assert F.count(engine, event) == 5
        assert any("database busy or unavailable" in rec.getMessage() for rec in caplog.records)
    finally:
        server.stop()
        engine.dispose()
