"""The demo's year of history (issue 17 point 8): one generator over the whole span, the older part
written by the consumer's code directly (no check-ins), the last days through the stream; a
generating process beside the writer gives the same rows as generating in place; the default
length reaches every 同比 the wall and the weekly briefing show. (The year itself, its rules and
its 同比 on the store: test_cases411.)"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from dashboard.briefing.week import of_day
from dashboard.demo import history
from dashboard.feed.contract import DEAD_LETTER
from dashboard.settings import Settings
from dashboard.store.engine import make_engine, migrate
from dashboard.store.schema import event, event_step, feed_message, hazard, patrol
from tests.unit.tiling_small import upsert_small_district

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)


def _aware(v: datetime) -> datetime:
    return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v


def test_seed020_older_part_written_directly_last_days_through_the_stream(stack, make_services):
    svc = make_services(*stack, sim_rate=0.005)
    upsert_small_district(svc.engine)
    stats = history.backfill(svc, 12, now=NOW, stream_days=3)
    split = NOW - timedelta(days=3)
    assert stats["direct"] > 5000 and stats["streamed"] > 1000
    assert stats["direct"] + stats["streamed"] == stats["published"]
    assert stats["dead_letters"] == 0 and svc.redis.xlen(DEAD_LETTER) == 0
    with svc.engine.connect() as conn:
        ledger = dict(conn.execute(select(feed_message.c.message_id, feed_message.c.stream_id)).all())
        patrols = [_aware(r[0]) for r in conn.execute(select(patrol.c.at))]
        found = [_aware(r[0]) for r in conn.execute(select(hazard.c.found_at))]
        reported = conn.execute(select(func.count()).select_from(event)).scalar_one()
        steps = conn.execute(select(event_step.c.event_id, event_step.c.message_id)).all()
    assert len(ledger) == stats["published"] and reported == stats["event.reported"]
    # the older part had no stream entry ("0-n"), the last days did
    assert sum(s.startswith("0-") for s in ledger.values()) == stats["direct"]
    # check-ins only in the stream part (the older part's are drawn, not sent); hazards all along
    assert patrols and len(patrols) == stats["patrol.checkin"] and min(patrols) >= split - timedelta(minutes=1)
    assert min(found) < NOW - timedelta(days=11) and max(found) > split
    # one generator across the split: cases begun in the older part go on through the stream
    ways: dict = {}
    for eid, mid in steps:
        if mid in ledger:
            ways.setdefault(eid, set()).add(ledger[mid].startswith("0-"))
    assert sum(w == {True, False} for w in ways.values()) > 20


def test_seed021_generating_beside_the_writer_gives_the_same_rows(stack, make_services, tmp_path):
    from tests.unit.test_cases410_history import _rows

    a = make_services(*stack, sim_rate=0.005)
    upsert_small_district(a.engine)
    got_a = history.backfill(a, 5, now=NOW, stream_days=2, parallel=True)
    a.redis.flushdb()  # B's stream and consumer group start from nothing, as A's did
    b_url = f"sqlite:///{tmp_path / 'inplace.db'}"
    eng = make_engine(b_url)
    migrate(eng)
    eng.dispose()
    b = make_services(b_url, stack[1], sim_rate=0.005)
    upsert_small_district(b.engine)
    got_b = history.backfill(b, 5, now=NOW, stream_days=2, parallel=False)
    assert "generator_cpu_s" in got_a and "generator_cpu_s" not in got_b  # A did generate in a child process
    for k in ("published", "direct", "streamed", "event.reported", "event.step", "hazard.found", "patrol.checkin"):
        assert got_a[k] == got_b[k] > 0, k
    ra, rb = _rows(a.engine), _rows(b.engine)
    assert ra == rb


def test_seed022_default_history_reaches_every_yoy_the_screens_show():
    # DEMO_HISTORY_DAYS covers, from any moment: the standard rates' 同比 of this week and last week
    # (the same dates a year earlier) and the weekly briefing's of this week and last week (the same
    # ISO week number a year earlier: 53 weeks back when the year before had 53), with a day to spare
    # for the first reports. 2027-01-10 is the furthest: last week 2026-W53 compares with 2025-W52.
    tz = ZoneInfo("Asia/Shanghai")
    days = Settings.from_env({}).demo_history_days
    worst = timedelta(0)
    d = date(2025, 1, 1)
    while d < date(2033, 1, 1):
        now = datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=tz)
        for week in (of_day(d), of_day(d - timedelta(days=7))):
            start = week.bounds(tz)[0]
            for then in (week.year_before().bounds(tz)[0], history_year_before(start)):
                worst = max(worst, now - then)
        d += timedelta(days=1)
    assert timedelta(days=384) < worst <= timedelta(days=days - 1)


def history_year_before(at: datetime) -> datetime:
    from dashboard.cases.rates import year_before

    return year_before(at)
