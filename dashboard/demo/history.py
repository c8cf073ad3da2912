"""The demo district's past: weeks of reports and their case cycles, fed through the real feed.

A command center never starts from an empty day: its trends, rates, street
ranking and 三零 communities read weeks of history, and so will the weekly
briefing. The backfill runs the simulator's ``Generator`` from ``days`` ago up
to now, without position pings (nobody needs last month's walk), and pushes
its messages through the same path as the live feed: XADD to the stream, the
consumer group validates and applies them once each. Cases still open at the
end are what the live simulator then carries on (``Recovered``).

It goes a day at a time, consuming each day and trimming what was acknowledged
before generating the next, so the stream never holds much more than a day of
history (the store is the record; the stream only carries it there).
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from ..domain import OPEN_STATES

import redis
from tqdm import tqdm

from ..feed.apply import Item, apply_batch
from ..feed.consumer import Consumer
from ..feed.contract import HEALTH, dump
from ..feed.publish import publish_all
from ..feed.simulate import Generator, World

log = logging.getLogger(__name__)

SEED_OFFSET = 1  # the history's random stream differs from the live simulator's of the same seed
KEEP_IN_STREAM = 20_000  # acknowledged history left in the stream after each day


def backfill(services, days: int, *, seed: int | None = None, rate: float | None = None,
             now: datetime | None = None, progress: bool = False, stop_event=None,
             year_ago_days: int | None = None) -> dict:
    """Publish and consume ``days`` days of past reports and steps; then write the same season a
    year earlier (the last ``year_ago_days`` of them, default YEAR_AGO_DAYS: ``backfill_year_ago``)
    so 同比 has a figure; returns counts.

    The history is stored, not pushed: open screens are not sent a month of deltas (the panels
    read it from the store on their next tick).
    """
    s = services.settings
    if days <= 0:
        return {"days": 0, "published": 0}
    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    start = now - timedelta(days=days)
    gen = Generator(World.load(services.engine), seed=(s.demo_seed if seed is None else seed) + SEED_OFFSET,
                    start=start, rate=s.sim_rate if rate is None else rate, speed=1.0, tz=s.timezone,
                    positions=False)
    consumer = Consumer(_without_sweep(services), name="history-backfill", batch=2000, push=False, stop_event=stop_event,
                        stream_maxlen=KEEP_IN_STREAM)
    published = 0
    bar = tqdm(total=days, unit="day", disable=not progress, desc="history")
    t = start
    done = 0
    yoy: dict = {}
    try:
        while t < now and not (stop_event is not None and stop_event.is_set()):
            # the wall's header says why its figures are still moving (feed health, read by every screen)
            services.redis.hset(HEALTH, mapping={"history": f"{done}/{days}", "history_at": time.time()})
            t = min(t + timedelta(days=1), now)
            published += _feed_day(services, gen, consumer, t)
            done += 1
            bar.update(1)
        yoy_days = min(days, YEAR_AGO_DAYS if year_ago_days is None else year_ago_days)
        if yoy_days > 0 and not (stop_event is not None and stop_event.is_set()):
            services.redis.hset(HEALTH, mapping={"history": f"{done}/{days}", "history_at": time.time()})
            yoy = backfill_year_ago(services, yoy_days, seed=seed, rate=rate, now=now, progress=progress,
                                    stop_event=stop_event)
    finally:
        bar.close()
        try:
            services.redis.hdel(HEALTH, "history", "history_at")
        except redis.RedisError:  # Redis went away: read_health ignores progress not renewed for a while
            log.warning("could not clear the history progress from the feed health")
    stats = {"days": days, "published": published, "stopped": t < now, **dict(gen.counts),
             "dead_letters": consumer.stats.get("dead", 0), **yoy, "s": round(time.perf_counter() - started, 1)}
    log.info("history backfilled", extra=stats)
    return stats


class _without_sweep:
    """The services with the escalation sweep off for the backfill's consumer: it applies the past
    a day at a time, and a sweep at today's clock would escalate every case of that day whose
    deadline passed before the rest of its history (its feedback) had been fed."""

    def __init__(self, services):
        self._services = services
        settings = services.settings
        self.settings = settings.replace(escalation_sweep_s=0) if hasattr(settings, "escalation_sweep_s") else settings

    def __getattr__(self, name):
        return getattr(self._services, name)


# 同比 compares a period with the same dates a year earlier: the history holds, besides the recent
# DEMO_HISTORY_DAYS, the two weeks a year before the last two (today, this week, last week and
# the weekly briefing's). Not the whole year between: at the demo's ~1,800 reports a day a year is
# ~650,000 cases and ~5 million steps, far past the first start's two minutes (README).
YEAR_AGO_DAYS = 14
YEAR_AGO_SEED_OFFSET = 2  # the year-ago window's own random stream
YEAR_AGO_MARGIN = timedelta(days=1)
DIRECT_BATCH = 2000


def year_before(at: datetime) -> datetime:
    """The same moment a year earlier (29 February -> 28 February), as the standard rates' 同比."""
    try:
        return at.replace(year=at.year - 1)
    except ValueError:
        return at.replace(year=at.year - 1, day=28)


def year_ago_window(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The window a year before the recent ``days``: what 同比 compares any period inside them with."""
    return year_before(now - timedelta(days=days)) - YEAR_AGO_MARGIN, year_before(now) + YEAR_AGO_MARGIN


def write_direct(services, msgs: list, consumer: Consumer, *, tag: str = "h") -> dict:
    """Apply ``msgs`` to the store with the consumer's own code (placing by dashboard.feed.resolve,
    dashboard.feed.apply.apply_batch with its case context: the rules, the calendar, the units,
    the duplicates), in batches, without the stream: the same rows the consumer would write
    (test_cases410 compares them), minus the Redis round trips. Nothing is pushed to screens.
    The ledger's stream id is ``0-<n>``: these messages never had a stream entry."""
    counts = {"applied": 0, "dead": 0}
    n = 0
    for i in range(0, len(msgs), DIRECT_BATCH):
        items = []
        for m in msgs[i:i + DIRECT_BATCH]:
            n += 1
            items.append(Item(f"0-{n}", dump(m), m))
        placed, misplaced = consumer.resolver.resolve(items)
        with services.engine.begin() as conn:
            out = apply_batch(conn, placed, tz=consumer.tz, ctx=consumer.cases)
        consumer.cases.duplicates.follow(out.deltas, OPEN_STATES)
        if placed:  # forget cases past the duplicate window by the history's clock, not today's
            consumer.cases.duplicates.prune(max(it.msg.occurred_at for it in placed))
        counts["applied"] += out.applied
        counts["dead"] += len(out.dead) + len(misplaced)
        for _sid, _raw, reason, mid in list(out.dead)[:3]:
            log.warning("history: message refused", extra={"message_id": mid, "reason": reason})
    return counts


def backfill_year_ago(services, days: int, *, seed: int | None = None, rate: float | None = None,
                      now: datetime | None = None, progress: bool = False, stop_event=None) -> dict:
    """The weeks a year before the recent ``days`` (``year_ago_window``), at the demo's rate, written
    with ``write_direct``; every case of the window is carried to its end (no new reports after
    the window), so none stays open a year later."""
    s = services.settings
    if days <= 0:
        return {"days": 0, "published": 0}
    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    start, end = year_ago_window(now, days)
    gen = Generator(World.load(services.engine), seed=(s.demo_seed if seed is None else seed) + YEAR_AGO_SEED_OFFSET,
                    start=start, rate=s.sim_rate if rate is None else rate, speed=1.0, tz=s.timezone,
                    positions=False)
    consumer = Consumer(_without_sweep(services), name="history-year-ago", batch=DIRECT_BATCH, push=False,
                        stop_event=stop_event)
    total = {"applied": 0, "dead": 0}
    published = 0
    window_days = max(1, int((end - start) / timedelta(days=1) + 0.999))
    bar = tqdm(total=window_days, unit="day", disable=not progress, desc="history a year ago")
    t = start
    try:
        while not (stop_event is not None and stop_event.is_set()):
            if t >= end and not gen.intake_closed:
                gen.close_intake()  # the window is over: no new reports or rounds, the open cases go on
            if gen.intake_closed and gen.next_time() is None:
                break
            t = t + timedelta(days=1)
            msgs = gen.advance(t)
            published += len(msgs)
            got = write_direct(services, msgs, consumer)
            for k in total:
                total[k] += got[k]
            if t <= end:
                bar.update(1)
            if t > end + timedelta(days=120):  # a case that never ends: stop (say so in the stats)
                break
    finally:
        bar.close()
    stats = {"year_ago_days": window_days, "year_ago_published": published,
             "year_ago_applied": total["applied"], "year_ago_dead": total["dead"],
             "year_ago_left": len(gen._queue), "year_ago_s": round(time.perf_counter() - started, 1)}
    log.info("history a year ago written", extra=stats)
    return stats


def _feed_day(services, gen: Generator, consumer: Consumer, until: datetime) -> int:
    msgs = gen.advance(until)
    for i in range(0, len(msgs), 1000):
        publish_all(services.redis, msgs[i:i + 1000])
    consumer.run(burst=True)
    while consumer.trim():  # never past what a group has not acknowledged
        pass
    return len(msgs)
