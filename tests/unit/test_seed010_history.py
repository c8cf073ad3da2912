"""The demo's history, its stream part: the last days fed through the real stream and consumer,
once each (the older part, written directly, and the year: test_seed020_year_history)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from dashboard import kpi
from dashboard.demo.history import backfill
from dashboard.domain import OPEN_STATES
from dashboard.feed.contract import DEAD_LETTER, GROUP, STREAM
from dashboard.store.schema import event, feed_message, patrol, position
from tests.unit.tiling_small import upsert_small_district

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _counts(engine):
    with engine.connect() as conn:
        return {
            "events": conn.execute(select(func.count()).select_from(event)).scalar_one(),
            "open": conn.execute(select(func.count()).select_from(event)
                                 .where(event.c.state.in_(list(OPEN_STATES)))).scalar_one(),
            "ledger": conn.execute(select(func.count()).select_from(feed_message)).scalar_one(),
            "patrols": conn.execute(select(func.count()).select_from(patrol)).scalar_one(),
            "positions": conn.execute(select(func.count()).select_from(position)).scalar_one(),
        }


def test_seed010_history_fills_the_trend_through_the_feed_once(stack, make_services):
    svc = make_services(*stack, sim_rate=0.005)
    upsert_small_district(svc.engine)
    stats = backfill(svc, 7, now=NOW, stream_days=7)  # all through the stream
    assert stats["published"] == stats["streamed"] > 0 and stats["direct"] == 0 and stats["dead_letters"] == 0
    assert svc.redis.xlen(DEAD_LETTER) == 0
    group = next(g for g in svc.redis.xinfo_groups(STREAM) if g["name"] in (GROUP, GROUP.encode()))
    assert group["pending"] == 0  # everything read was acknowledged

    c = _counts(svc.engine)
    assert c["ledger"] == stats["published"]  # every message applied, through the ledger
    assert c["events"] == stats["event.reported"]
    assert c["patrols"] > 0 and c["positions"] == 0  # patrols happened; nobody's old walk was kept

    trend = kpi.daily_trend(svc.engine, None, NOW, svc.settings.timezone, 7)
    assert sum(d["reported"] > 0 for d in trend[:-1]) >= 5  # the past days are not empty
    assert sum(d["closed"] for d in trend) > 0
    assert 0 < c["open"] < c["events"]  # old cases closed, the newest still in hand

    # A second run over the same window is the same messages: the ledger applies none twice.
    again = backfill(svc, 7, now=NOW, stream_days=7)
    assert again["published"] == stats["published"]
    assert _counts(svc.engine) == c


def test_seed011_no_history_days_means_nothing_is_fed(stack, make_services):
    svc = make_services(*stack)
    upsert_small_district(svc.engine)
    assert backfill(svc, 0, now=NOW)["published"] == 0
    assert svc.redis.exists(STREAM) == 0
    assert _counts(svc.engine)["events"] == 0


def test_seed012_history_cases_carry_real_times_not_the_seed_time(stack, make_services):
    svc = make_services(*stack, sim_rate=0.005)
    upsert_small_district(svc.engine)
    backfill(svc, 3, now=NOW)
    with svc.engine.connect() as conn:
        lo, hi = conn.execute(select(func.min(event.c.reported_at), func.max(event.c.reported_at))).one()
    lo = lo if lo.tzinfo else lo.replace(tzinfo=timezone.utc)
    hi = hi if hi.tzinfo else hi.replace(tzinfo=timezone.utc)
    assert NOW - timedelta(days=3, hours=2) <= lo < NOW - timedelta(days=2)
    assert NOW - timedelta(days=1) < hi <= NOW


def test_seed013_first_start_stores_the_history_unpushed_then_starts_the_live_feed(stack, make_services):
    import threading
    import time

    from dashboard.feed.contract import DELTAS
    from dashboard.feed.deltas import decode
    from dashboard.server import start_background

    svc = make_services(*stack, sim_rate=0.005)
    svc.settings = svc.settings.replace(demo=True)  # the simulator follows the history, as in a demo
    upsert_small_district(svc.engine)
    stop = threading.Event()
    threads = start_background(svc, stop, history_days=2)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _counts(svc.engine)["positions"]:
            time.sleep(0.2)  # positions come only from the live simulator, after the history
        c = _counts(svc.engine)
        assert c["positions"] > 0 and c["events"] > 50
        pushed = [d for _sid, f in svc.redis.xrange(DELTAS) for d in decode(f[b"d"])]
        assert any(d["k"] == "position" for d in pushed)  # the live feed is pushed ...
        # ... the history is not: unpushed, it would be a delta per report and per step (the live
        # simulator may move an old case on by now, a few deltas at most)
        assert len([d for d in pushed if d["k"] == "event"]) < c["events"] / 4
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not any(t.is_alive() for t in threads)


def test_seed014_acknowledged_history_is_trimmed_from_the_stream(stack, make_services, monkeypatch):
    from dashboard.demo import history

    monkeypatch.setattr(history, "KEEP_IN_STREAM", 1000)
    svc = make_services(*stack, sim_rate=0.005)
    upsert_small_district(svc.engine)
    stats = backfill(svc, 3, now=NOW)  # shorter than STREAM_DAYS: all through the stream
    assert stats["published"] > 3000
    assert svc.redis.xlen(STREAM) <= 1000  # the store holds it all; the stream only carried it
    assert _counts(svc.engine)["ledger"] == stats["published"]


def test_seed015_every_screen_is_told_the_history_is_loading(stack, make_services, monkeypatch):
    from dashboard.demo import history
    from dashboard.feed.health import read_health

    svc = make_services(*stack, sim_rate=0.005)
    upsert_small_district(svc.engine)
    seen = []
    feed_day = history._feed_day

    def spy(*args):
        seen.append(read_health(svc.redis)["history"])  # what the SSE ping carries to the header
        return feed_day(*args)
    monkeypatch.setattr(history, "_feed_day", spy)
    backfill(svc, 3, now=NOW)
    assert seen == ["0/3", "1/3", "2/3"]
    assert read_health(svc.redis)["history"] is None  # done: the header says nothing more


def test_seed016_progress_left_by_a_dead_process_is_not_shown(stack, make_services):
    import time

    from dashboard.feed.contract import HEALTH
    from dashboard.feed.health import read_health

    svc = make_services(*stack)
    svc.redis.hset(HEALTH, mapping={"history": "7/30", "history_at": time.time()})
    assert read_health(svc.redis)["history"] == "7/30"
    svc.redis.hset(HEALTH, "history_at", time.time() - 600)  # killed mid-way ten minutes ago
    assert read_health(svc.redis)["history"] is None
