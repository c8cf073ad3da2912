"""C4 (issue 17 item 8): the demo's history a year back, written without the stream by the
consumer's own code, gives exactly the consumer's rows, ends every case it starts, and gives
the standard rates a 同比."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from dashboard.cases import rates
from dashboard.demo import history
from dashboard.domain import OPEN_STATES
from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import DEAD_LETTER
from dashboard.feed.publish import publish_all
from dashboard.feed.simulate import Generator, World
from dashboard.store.engine import make_engine, migrate
from dashboard.store.schema import event, event_step, feed_message, hazard, patrol
from tests.unit.tiling_small import upsert_small_district

START = datetime(2026, 6, 1, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)


def _rows(engine):
    """Every row the feed writes, as comparable tuples: the stored columns but the write clock."""
    out = {}
    with engine.connect() as conn:
        for table, key, skip in ((event, "id", {"updated_at"}), (hazard, "id", {"updated_at"}),
                                 (event_step, "message_id", {"id"}), (patrol, "id", set())):
            cols = [c for c in table.c if c.name not in skip]
            out[table.name] = sorted(tuple(r) for r in conn.execute(select(*cols).order_by(table.c[key])))
    return out


def test_cases410_direct_writer_gives_the_consumers_rows(stack, make_services, tmp_path):
    a = make_services(*stack, escalation_sweep_s=0)
    b_url = f"sqlite:///{tmp_path / 'direct.db'}"
    eng = make_engine(b_url)
    migrate(eng)
    eng.dispose()
    b = make_services(b_url, stack[1], escalation_sweep_s=0)
    for svc in (a, b):
        upsert_small_district(svc.engine)
    g = Generator(World.load(a.engine), seed=410, start=START, rate=0.2, speed=20, max_walkers=20)
    msgs = g.advance(START + timedelta(hours=10))
    kinds = {m.type for m in msgs} | {m.step for m in msgs if m.type == "event.step"}
    assert {"event.reported", "patrol.checkin", "hazard.found", "merged", "rejected", "extended",
            "suspended", "returned", "reopened", "evaluated"} <= kinds

    for i in range(0, len(msgs), 2000):  # A: the stream and the consumer
        publish_all(a.redis, msgs[i:i + 2000])
    Consumer(a, batch=2000, push=False).run(burst=True)
    assert a.redis.xlen(DEAD_LETTER) == 0
    a.redis.delete(DEAD_LETTER)

    consumer = Consumer(b, name="direct", batch=2000, push=False)  # B: the direct writer, no stream
    got = history.write_direct(b, msgs, consumer)
    assert got == {"applied": len(msgs), "dead": 0}
    assert b.redis.xlen(DEAD_LETTER) == 0

    ra, rb = _rows(a.engine), _rows(b.engine)
    assert len(ra["event"]) > 500 and len(ra["event_step"]) > 3000
    dup = [c.name for c in event.c].index("duplicate_of")
    assert any(r[dup] is not None for r in ra["event"])
    for name in ra:
        assert len(ra[name]) == len(rb[name]), name
        cols = [c.name for c in {"event": event, "hazard": hazard, "event_step": event_step, "patrol": patrol}[name].c
                if c.name not in ("updated_at", "id") or name == "event" and c.name == "id"
                or name in ("hazard", "patrol") and c.name == "id"]
        diffs = [(x[0], col, vx, vy) for x, y in zip(ra[name], rb[name]) if x != y
                 for col, vx, vy in zip(cols, x, y) if vx != vy]
        # One known difference, duplicate_of: the stream consumer's duplicate index misses some
        # earlier reports across its batches on old history (reported to C1: /tmp/coord/C4-NOTES.md);
        # below, both flag every repeat the simulator merged. Every other column is the same.
        assert not [d for d in diffs if d[1] != "duplicate_of"], (name, diffs[:5])
    merged = [r[0] for r in rb["event"] if r[[c.name for c in event.c].index("state")] == "merged"]
    for rows in (ra, rb):  # every merged repeat was flagged on arrival, by both
        flagged = {r[0]: r[dup] for r in rows["event"]}
        assert merged and all(flagged[e] is not None for e in merged)
    with b.engine.connect() as conn:  # the ledger too: a replay of the same messages changes nothing
        assert len(conn.execute(select(feed_message.c.message_id)).all()) == len(msgs)
    assert history.write_direct(b, msgs[:500], consumer)["applied"] == 0
    assert _rows(b.engine) == rb


def test_cases411_the_year_ago_window_ends_its_cases_and_gives_yoy(stack, make_services):
    svc = make_services(*stack, sim_rate=0.01, escalation_sweep_s=0)
    upsert_small_district(svc.engine)
    stats = history.backfill_year_ago(svc, 7, now=NOW)
    assert stats["year_ago_dead"] == 0 and stats["year_ago_left"] == 0
    assert stats["year_ago_applied"] == stats["year_ago_published"] > 1000
    lo, hi = history.year_ago_window(NOW, 7)
    assert hi - lo == timedelta(days=9)
    with svc.engine.connect() as conn:
        reported = [r[0].replace(tzinfo=timezone.utc) if r[0].tzinfo is None else r[0]
                    for r in conn.execute(select(event.c.reported_at))]
        states = [r[0] for r in conn.execute(select(event.c.state))]
    assert reported and lo - timedelta(hours=2) <= min(reported) and max(reported) <= hi
    assert min(reported) < lo + timedelta(days=1) and max(reported) > hi - timedelta(days=1)  # the whole window
    assert not set(states) & set(OPEN_STATES)  # nothing stays open a year on
    assert {"evaluated", "rejected"} <= set(states)
    # 同比 of last week now has a year-ago figure
    roll = rates.kpi_rollup(svc.engine, None, NOW - timedelta(days=7), NOW, now=NOW)
    first = next(iter(roll["yoy"].values()))
    assert any(v["den"] > 0 for v in roll["yoy"].values() if isinstance(v, dict) and "den" in v), first
