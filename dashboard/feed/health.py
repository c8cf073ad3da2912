"""Feed health, kept in the Redis hash HEALTH where every screen can read it.

Each consumer writes its own ``rate:<name>`` / ``seen:<name>`` fields and the
shared figures after a batch (at most twice a second); ``read_health`` adds
the group's live lag and pending count from XINFO, so a dead consumer shows
as growing lag rather than as a frozen hash.
"""
from __future__ import annotations

import time
from collections import deque
from datetime import datetime, timezone

import redis

from .contract import DEAD_LETTER, GROUP, HEALTH, STREAM

ACTIVE_S = 30.0  # a consumer not heard from for this long is not counted
LAG_SCAN = 1_000  # Redis 6: count at most this many undelivered entries
# Counted inside Redis: an XRANGE reply would carry every entry's message across (600 kB for a
# full scan, each half-second from each consumer and web process while there is a backlog).
_COUNT_AFTER = "return #redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])"


def count_after(r, after: str):
    """Entries of the feed after ``after`` (exclusive), at most LAG_SCAN: an int, or its awaitable
    on a redis.asyncio client."""
    return r.eval(_COUNT_AFTER, 1, STREAM, "(" + after, LAG_SCAN)


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _group_info(raw) -> dict | None:
    if isinstance(raw, Exception) or not raw:
        return None
    for g in raw:
        if _s(g.get("name", g.get(b"name", ""))) == GROUP:
            return {_s(k): v for k, v in g.items()}
    return None


HISTORY_STALE_S = 120.0  # a day of history takes a few seconds to feed


def read_health(r: redis.Redis) -> dict:
    """Lag, pending, rate (msgs/s over the last minute), dead letters, last message time, consumers."""
    pipe = r.pipeline(transaction=False)
    queue_health(pipe)
    results = pipe.execute(raise_on_error=False)
    after = lag_scan_start(results)
    scanned = int(count_after(r, after)) if after else None
    return health_from(results, scanned)


def queue_health(pipe) -> None:
    """Queue read_health's commands on a pipeline (sync or redis.asyncio: the web process's push
    reader reads the health on its one connection)."""
    pipe.hgetall(HEALTH)
    pipe.xinfo_groups(STREAM)
    pipe.xlen(DEAD_LETTER)
    pipe.xlen(STREAM)
    pipe.xinfo_stream(STREAM)


def lag_scan_start(results) -> str | None:
    """Redis < 7 has no XINFO lag: the id after which undelivered entries must be counted, if any."""
    _, groups, _, length, sinfo = results
    g = _group_info(groups)
    if not g or g.get("lag") is not None:
        return None
    delivered = _s(g.get("last-delivered-id", "0-0"))
    newest = None if isinstance(sinfo, Exception) else _s(sinfo.get("last-generated-id", "0-0"))
    if newest == delivered or delivered == "0-0":
        return None
    return delivered


def health_from(results, scanned: int | None = None) -> dict:
    """read_health's answer from queue_health's results (and the lag_scan_start count)."""
    raw, groups, dead, length, sinfo = results
    h = {} if isinstance(raw, Exception) else {_s(k): _s(v) for k, v in raw.items()}
    now = time.time()
    rate = 0.0
    consumers = []
    for k, v in h.items():
        if k.startswith("seen:") and now - float(v) <= ACTIVE_S:
            name = k[5:]
            consumers.append(name)
            rate += float(h.get("rate:" + name, 0) or 0)
    g = _group_info(groups)
    lag = g.get("lag") if g else None
    if g and lag is None:  # Redis < 7 has no XINFO lag: count what was not delivered (capped)
        delivered = _s(g.get("last-delivered-id", "0-0"))
        newest = None if isinstance(sinfo, Exception) else _s(sinfo.get("last-generated-id", "0-0"))
        if newest == delivered:
            lag = 0
        elif delivered == "0-0":
            lag = 0 if isinstance(length, Exception) else int(length)
        else:
            lag = scanned
    last = h.get("last_message_at") or None
    age = None
    if last:
        age = round(now - datetime.fromisoformat(last).timestamp(), 1)
    out = {
        "lag": int(lag) if lag is not None else None,
        "pending": int(g["pending"]) if g else None,
        "rate": round(rate, 2),
        "dead_letters": 0 if isinstance(dead, Exception) else int(dead),
        "stream_length": 0 if isinstance(length, Exception) else int(length),
        "last_message_at": last,
        "last_message_age_s": age,
        "consumers": sorted(consumers),
        "group": g is not None,
        "history": _history_progress(h, now),
    }
    down = store_down_errors(h, now)
    if down:  # the screens' banner: a ping with an error says the feed is not reaching the store
        out["error"] = "store unavailable: " + down[0]
    return out


STORE_DOWN = "store_down:"  # + consumer name -> "<epoch s> <error>" while the store refuses its batch


def store_down_errors(h: dict, now: float) -> list[str]:
    """Errors of consumers whose store is unreachable now (a mark older than ACTIVE_S is a dead
    consumer's leftover and says nothing)."""
    out = []
    for k, v in h.items():
        if k.startswith(STORE_DOWN):
            at, _, error = v.partition(" ")
            try:
                if now - float(at) <= ACTIVE_S:
                    out.append(error)
            except ValueError:
                continue
    return out


def mark_store_down(r: redis.Redis, name: str, error: str | None) -> None:
    """The consumer ``name`` cannot reach the store (``error``), or can again (None)."""
    if error:
        r.hset(HEALTH, STORE_DOWN + name, f"{time.time():.3f} {error}")
    else:
        r.hdel(HEALTH, STORE_DOWN + name)


def _history_progress(h: dict, now: float) -> str | None:
    """"done/days" while the demo's history is fed; a value not renewed for HISTORY_STALE_S is left
    by a process that died mid-way and says nothing (the next start does not resume it)."""
    try:
        fresh = now - float(h.get("history_at") or 0) < HISTORY_STALE_S
    except ValueError:
        fresh = False
    return h.get("history") if fresh and h.get("history") else None


class RateMeter:
    """Messages per second over a sliding minute, in one-second buckets."""

    def __init__(self, window_s: int = 60):
        self.window = window_s
        self.buckets: deque[list] = deque()
        self.started = time.monotonic()

    def add(self, n: int, now: float | None = None) -> None:
        sec = int(now if now is not None else time.monotonic())
        if self.buckets and self.buckets[-1][0] == sec:
            self.buckets[-1][1] += n
        else:
            self.buckets.append([sec, n])
        self._drop(sec)

    def _drop(self, sec: int) -> None:
        while self.buckets and self.buckets[0][0] <= sec - self.window:
            self.buckets.popleft()

    def rate(self, now: float | None = None) -> float:
        now = now if now is not None else time.monotonic()
        self._drop(int(now))
        span = min(self.window, max(1.0, now - self.started))
        return sum(n for _, n in self.buckets) / span


def write_health(r: redis.Redis, name: str, rate: float, *, last_message_at: datetime | None,
                 lag: int | None, pending: int | None) -> None:
    fields = {
        f"rate:{name}": f"{rate:.3f}", f"seen:{name}": f"{time.time():.3f}",
        "updated_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "lag": "" if lag is None else str(lag), "pending": "" if pending is None else str(pending),
    }
    if last_message_at is not None:
        fields["last_message_at"] = last_message_at.isoformat(timespec="milliseconds")
    r.hset(HEALTH, mapping=fields)


def prune_health(r: redis.Redis, older_than_s: float = 3600.0) -> None:
    """Forget consumers not heard from for an hour (names are host-pid by default)."""
    h = r.hgetall(HEALTH)
    now = time.time()
    stale = []
    for k, v in h.items():
        k = _s(k)
        if k.startswith("seen:") and now - float(_s(v)) > older_than_s:
            stale += [k, "rate:" + k[5:]]
    if stale:
        r.hdel(HEALTH, *stale)
