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

import redis
from tqdm import tqdm

from ..feed.consumer import Consumer
from ..feed.contract import HEALTH
from ..feed.publish import publish_all
from ..feed.simulate import Generator, World

log = logging.getLogger(__name__)

SEED_OFFSET = 1  # the history's random stream differs from the live simulator's of the same seed
KEEP_IN_STREAM = 20_000  # acknowledged history left in the stream after each day


def backfill(services, days: int, *, seed: int | None = None, rate: float | None = None,
             now: datetime | None = None, progress: bool = False, stop_event=None) -> dict:
    """Publish and consume ``days`` days of past reports and steps; returns counts.

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
    try:
        while t < now and not (stop_event is not None and stop_event.is_set()):
            # the wall's header says why its figures are still moving (feed health, read by every screen)
            services.redis.hset(HEALTH, mapping={"history": f"{done}/{days}", "history_at": time.time()})
            t = min(t + timedelta(days=1), now)
            published += _feed_day(services, gen, consumer, t)
            done += 1
            bar.update(1)
    finally:
        bar.close()
        try:
            services.redis.hdel(HEALTH, "history", "history_at")
        except redis.RedisError:  # Redis went away: read_health ignores progress not renewed for a while
            log.warning("could not clear the history progress from the feed health")
    stats = {"days": days, "published": published, "stopped": t < now, **dict(gen.counts),
             "dead_letters": consumer.stats.get("dead", 0), "s": round(time.perf_counter() - started, 1)}
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


def _feed_day(services, gen: Generator, consumer: Consumer, until: datetime) -> int:
    msgs = gen.advance(until)
    for i in range(0, len(msgs), 1000):
        publish_all(services.redis, msgs[i:i + 1000])
    consumer.run(burst=True)
    while consumer.trim():  # never past what a group has not acknowledged
        pass
    return len(msgs)
