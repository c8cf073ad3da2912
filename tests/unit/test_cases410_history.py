"""C4 (issue 17 item 8): the demo's history, written without the stream by the consumer's own
code, gives exactly the consumer's rows; a year of it follows the case rules, ends its old cases,
and gives the standard rates and the weekly briefing a 同比."""
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


def test_cases411_a_year_of_history_follows_the_rules_and_gives_yoy(stack, make_services):
    # The demo's default history (DEMO_HISTORY_DAYS: a year and the two weeks last week's 同比
    # reaches) at a small rate: every message applied (the cases follow the rules: no dead letter),
    # the old cases ended, and this week's and last week's 同比 have a year-ago figure, in the
    # standard rates and in the weekly briefing.
    from dashboard.briefing import figures
    from dashboard.briefing.week import of_day
    from dashboard.kpi import local_date, week_bounds
    from dashboard.settings import Settings

    days = Settings.from_env({}).demo_history_days
    svc = make_services(*stack, sim_rate=0.0002, escalation_sweep_s=0)
    upsert_small_district(svc.engine)
    stats = history.backfill(svc, days, now=NOW, stream_days=2)
    assert stats["dead_letters"] == 0 and svc.redis.xlen(DEAD_LETTER) == 0 and not stats["stopped"]
    assert stats["direct"] > 10_000 and stats["streamed"] > 0
    tz = svc.settings.timezone
    with svc.engine.connect() as conn:
        assert len(conn.execute(select(feed_message.c.message_id)).all()) == stats["published"]
        rows = conn.execute(select(event.c.reported_at, event.c.state)).all()
    at = [r[0].replace(tzinfo=timezone.utc) if r[0].tzinfo is None else r[0] for r in rows]
    assert len(rows) == stats["event.reported"] and min(at) < NOW - timedelta(days=days - 1)
    assert not [a for a, (_r, state) in zip(at, rows) if state in OPEN_STATES and a < NOW - timedelta(days=60)]
    assert {"evaluated", "rejected"} <= {state for _r, state in rows}
    for back in (0, 1):  # this week (to now) and last week
        start, end = week_bounds(NOW, tz, back)
        roll = rates.kpi_rollup(svc.engine, None, start, min(end, NOW), now=NOW)
        assert any(v["den"] > 0 for v in roll["yoy"].values() if isinstance(v, dict) and "den" in v), back
    week = of_day(local_date(NOW, tz) - timedelta(days=7))
    brief = figures.compute(svc.engine, "370202", week, NOW, tz)
    assert brief["year_ago"]["reaches"] and brief["year_ago"]["values"]["reported"] > 0
