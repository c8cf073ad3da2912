"""The feed consumer: stream -> store -> screens (shaped like rq's worker).

One loop per consumer in the consumer group GROUP on STREAM:

1. read a batch (XREADGROUP, blocking; after a restart first its own pending
   entries, then claimed entries of dead consumers via XAUTOCLAIM);
2. parse each message against the contract and place it against the store;
   anything invalid becomes a dead letter with its reason;
3. apply the batch in ONE transaction (``apply.apply_batch``), idempotent by
   message id; a database error retries the batch with back-off, and a
   message that keeps failing is isolated by applying one at a time and
   dead-lettered with the database's error;
4. after commit: XADD the dead letters, XACK the batch, XADD the deltas for
   the screens, update the feed health; trim the stream (never below what the
   group has not acknowledged).

Redis or the database being down is waited out with capped exponential
back-off; ``stop()`` (SIGTERM in ``cli_consume``) finishes the batch, acks it
and returns. docs/feed.md describes the semantics.
"""
from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import redis
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from . import deltas as D
from .apply import OPEN_STATES, Conflict, Item, MaybeReplay, apply_batch, expire_pending, has_pending, ready_targets
from .casework import CaseContext
from .contract import DEAD_LETTER, DELTAS, GROUP, STREAM, InvalidMessage, parse
from .health import RateMeter, count_after, mark_store_down, prune_health, write_health
from .resolve import Resolver
from .signals import stop_on_signals

log = logging.getLogger(__name__)

DEAD_MAXLEN = 100_000       # dead letters kept for operators (each is also logged)
PENDING_MAX_AGE_S = 300.0   # a held step waits this long for its predecessor or its event
TRIM_SCAN = 10_000          # at most this many entries trimmed per pass
OWN_DELTAS_MAX = 10_000     # own grid:deltas entries remembered until read back (one per batch)
RECOUNT_RETRY_S = 30.0      # a failed recount of provisional deadlines is tried again after this
BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0


GC_YOUNG_THRESHOLD = 20_000
_gc_tuned = False


def tune_gc() -> None:
    """Once per process: keep the collector off the long-lived heap.

    A batch allocates tens of thousands of short-lived objects (models, rows,
    deltas). With Python's default young-generation threshold (700) that meant a
    collection every few messages, and the older generations' passes walked
    everything loaded at start (regions, the locator's index, the app) each
    time: 10-15% of ingest time. Objects alive now are moved out of the
    collector's view (``gc.freeze``); young collections run every 20,000
    allocations instead of 700.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), *older)


class StopRequested(Exception):
    pass


class Backoff:
    def __init__(self, lo: float = BACKOFF_MIN, hi: float = BACKOFF_MAX):
        self.lo, self.hi, self.cur = lo, hi, 0.0

    def next(self) -> float:
        self.cur = self.lo if self.cur == 0 else min(self.hi, self.cur * 2)
        return self.cur

    def reset(self) -> None:
        self.cur = 0.0


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _key(stream_id: str) -> tuple[int, int]:
    ms, _, n = stream_id.partition("-")
    return int(ms), int(n or 0)


def _transient_db(exc: BaseException) -> bool:
    """The database is unreachable or busy (wait), as opposed to rejecting the data (isolate)."""
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(getattr(exc, "connection_invalidated", False))


def default_name(settings=None) -> str:
    if settings is not None and settings.consumer_name:
        return settings.consumer_name
    return f"{socket.gethostname()}-{os.getpid()}"


class Consumer:
    """``Consumer(services)`` or ``Consumer(engine, redis, locator)``; then ``run()``."""

    def __init__(self, services_or_engine, redis_client: redis.Redis | None = None, locator=None, *,
                 name: str | None = None, batch: int = 500, block_ms: int = 1000,
                 claim_idle_ms: int | None = None, stream_maxlen: int | None = None,
                 timezone_name: str | None = None, pending_max_age_s: float = PENDING_MAX_AGE_S,
                 stop_event: threading.Event | None = None, push: bool = True, sweep: bool = True,
                 settings=None):
        """``settings`` (with an engine): what the services' settings give a consumer built from
        services (the working calendar and HOLIDAYS_FILE, 即将到期, duplicates, timeouts), for a
        pool worker, which has no services of its own."""
        self._own_redis = False
        self.push = push  # False: store only, no deltas to open screens (the demo's history backfill)
        self.sweep = sweep  # False: no escalation sweep in this loop (a test feeding its own timeline)
        if isinstance(services_or_engine, Engine):
            self.services = None
            self.engine = services_or_engine
            if redis_client is None:
                raise TypeError("Consumer(engine, redis, locator) needs a Redis client")
            self.redis = redis_client
            loc = locator
            if loc is None:
                from ..geo.locate import Locator

                def factory():
                    return Locator.from_engine(self.engine)
            else:
                def factory():
                    # a locator built from the store is rebuilt when regions change
                    if hasattr(type(loc), "from_engine") and self.resolver.stamp is not None:
                        return type(loc).from_engine(self.engine)
                    return loc
        else:
            svc = services_or_engine
            self.services = svc
            self.engine = svc.engine
            settings = svc.settings
            # blocking reads get their own connection, with a timeout longer than the block
            self.redis = redis_client or svc.new_redis(socket_timeout=block_ms / 1000 + 10,
                                                       socket_connect_timeout=5)
            self._own_redis = redis_client is None

            def factory():
                if self.resolver.stamp is not None:  # regions changed since: rebuild the shared one
                    svc.cache.pop("locator", None)
                return svc.locator
        self.resolver = Resolver(self.engine, factory)
        self.name = name or default_name(settings)
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms if claim_idle_ms is not None else (
            settings.claim_idle_ms if settings else 30_000)
        self.stream_maxlen = stream_maxlen if stream_maxlen is not None else (
            settings.stream_maxlen if settings else 1_000_000)
        self.tz = D.zone(timezone_name or (settings.timezone if settings else None))
        if self.services is not None:
            from ..cases.workcalendar import calendar_for

            self.cases = CaseContext.from_settings(settings, calendar_for(svc))
        elif settings is not None:
            self.cases = CaseContext.from_settings(settings)
        else:
            self.cases = CaseContext()
        self.pending_max_age_s = pending_max_age_s
        self._stop = stop_event or threading.Event()
        self.backoff = Backoff()
        self.rate = RateMeter()
        self._own_deltas: set[str] = set()  # grid:deltas entries this consumer published
        self.stats = {"batches": 0, "applied": 0, "duplicates": 0, "dead": 0, "parked": 0, "released": 0,
                      "stale": 0}
        self._post: list | None = None  # Redis work left after a commit (Redis went away)
        self._last_message_at: datetime | None = None
        self._due: dict[str, float] = {}
        self._store_down = False
        self._recounted = False

    # --- control ----------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _every(self, what: str, seconds: float) -> bool:
        now = time.monotonic()
        if now >= self._due.get(what, 0.0):
            self._due[what] = now + seconds
            return True
        return False

    # --- the loop ---------------------------------------------------------------
    def prepare(self) -> None:
        """Load the regions and the locator now, then tune the collector: ``tune_gc`` freezes what
        is alive, so the locator's index is out of its view for good. ``run`` does not need it (the
        first batch loads them, and a store that is down is waited out there)."""
        self.resolver.refresh(force=True)
        tune_gc()

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self, burst: bool = False) -> dict:
        """Consume until ``stop()`` (or, with ``burst``, until nothing is left); returns stats."""
        tune_gc()
        own_pending = True   # after a (re)start, our own unacknowledged entries come first
        group_ok = False
        log.log(logging.DEBUG if burst else logging.INFO, "consumer started",
                extra={"consumer": self.name, "batch": self.batch, "burst": burst})
        while not self.stopping:
            try:
                if not group_ok:
                    self.ensure_group()
                    group_ok = True
                    self._deltas_start()
                    self._health(force=True)  # counted as running before the first batch
                if self._post is not None:
                    self._finish(*self._post)
                entries = []
                if self._every("claim", max(0.5, self.claim_idle_ms / 2000)):
                    entries = self._claim()
                if not entries and own_pending:
                    entries = self._read("0", block=None)
                    own_pending = bool(entries)
                if not entries:
                    entries = self._read(">", block=None if burst else self.block_ms)
                if not entries and burst:
                    entries = self._claim()  # before deciding that nothing is left
                if entries:
                    self._process(entries)
                elif burst:
                    if not self._claim_peek():
                        self._housekeeping(force=True)
                        break
                self._housekeeping()
                self.backoff.reset()
            except StopRequested:
                break
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                wait = self.backoff.next()
                log.warning("redis unavailable; retrying", extra={"error": f"{exc.__class__.__name__}: {exc}",
                                                                  "retry_in_s": wait, "consumer": self.name})
                own_pending = True
                self._sleep(wait)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis restarted empty: the group is recreated at 0
                    group_ok = False
                    own_pending = True
                    continue
                wait = self.backoff.next()
                log.error("redis error", extra={"error": str(exc), "consumer": self.name, "retry_in_s": wait})
                self._sleep(wait)
            except Exception as exc:  # noqa: BLE001 - the loop never dies on one bad turn
                if _transient_db(exc):
                    self._store(exc)
                own_pending = True  # what this turn read is retried first
                wait = self.backoff.next()
                log.exception("consumer turn failed", extra={"consumer": self.name, "retry_in_s": wait})
                self._sleep(wait)
        if self._post is not None:  # stopping: still try to ack what is committed
            try:
                self._finish(*self._post)
            except Exception:  # noqa: BLE001
                log.warning("could not ack the last batch; it will be redelivered and skipped as duplicate",
                            extra={"consumer": self.name})
        log.log(logging.DEBUG if burst else logging.INFO, "consumer stopped", extra={"consumer": self.name, **self.stats})
        if self._own_redis:
            self.redis.close()
        return dict(self.stats)

    def _read(self, start: str, block: int | None) -> list:
        resp = self.redis.xreadgroup(GROUP, self.name, {STREAM: start}, count=self.batch, block=block)
        if not resp:
            return []
        return resp[0][1]

    def _claim(self) -> list:
        out = self.redis.xautoclaim(STREAM, GROUP, self.name, min_idle_time=self.claim_idle_ms,
                                    start_id="0-0", count=self.batch)
        entries = out[1] if out and len(out) > 1 else []
        if len(out) > 2 and out[2]:  # Redis 7: entries deleted from the stream while pending
            self._ack([_s(i) for i in out[2]])
        entries = [e for e in entries if e is not None and e[0] is not None]
        if entries:
            log.info("claimed pending entries of a dead consumer",
                     extra={"consumer": self.name, "count": len(entries), "stream_id": _s(entries[0][0])})
        return entries

    def _claim_peek(self) -> bool:
        """Is anything in the group still unacknowledged (burst mode's stop test)?"""
        info = self.redis.xpending(STREAM, GROUP)
        if not info or not info.get("pending"):
            return False
        own = self.redis.xpending_range(STREAM, GROUP, min="-", max="+", count=1, consumername=self.name)
        if own:
            return True
        idle = self.redis.xpending_range(STREAM, GROUP, min="-", max="+", count=1, idle=self.claim_idle_ms)
        return bool(idle)

    def _ack(self, ids: list[str]) -> None:
        if ids:
            self.redis.xack(STREAM, GROUP, *ids)

    # --- one batch -----------------------------------------------------------------
    def _process(self, entries: list) -> None:
        dead: list[tuple[str, object, str, str | None]] = []
        items: list[Item] = []
        ids: list[str] = []
        for sid, fields in entries:
            sid = _s(sid)
            ids.append(sid)
            if not fields:  # trimmed or deleted while pending: nothing to apply
                continue
            raw = fields.get(b"m", fields.get("m"))
            if raw is None:
                dead.append((sid, repr(fields)[:2000], "entry has no field m", None))
                continue
            try:
                items.append(Item(stream_id=sid, raw=raw, msg=parse(raw)))
            except InvalidMessage as exc:
                dead.append((sid, raw, exc.reason, None))
            except Exception as exc:  # noqa: BLE001 - never crash on data
                dead.append((sid, raw, f"unreadable message: {exc.__class__.__name__}: {exc}", None))
        try:
            placed, misplaced = self.resolver.resolve(items)
        except Exception:  # noqa: BLE001 - one odd message must not stall the batch: place one by one
            log.exception("placing the batch failed; placing one message at a time", extra={"consumer": self.name})
            placed, misplaced = [], []
            for it in items:
                try:
                    ok, bad = self.resolver.resolve([it])
                except Exception as exc:  # noqa: BLE001
                    ok, bad = [], [(it, f"could not be placed: {exc.__class__.__name__}: {exc}")]
                placed += ok
                misplaced += bad
        dead += [(it.stream_id, it.raw, reason, it.msg.id) for it, reason in misplaced]
        self._follow_deltas()  # what the other consumers applied, for the duplicates check
        outcome = self._commit(placed)
        self.cases.duplicates.merge(outcome.reports)  # before following the deltas: it then skips them
        dead += outcome.dead
        self.stats["batches"] += 1
        for k in ("applied", "duplicates", "parked", "released", "stale"):
            self.stats[k] += getattr(outcome, k)
        self.stats["dead"] += len(dead)
        if placed:
            self._last_message_at = datetime.now(timezone.utc)
        self.rate.add(len(entries))
        self._after_commit(dead, ids, outcome.deltas)

    def _after_commit(self, dead: list, ids: list[str], deltas: list[dict]) -> None:
        """Our own duplicate index follows the committed deltas (_follow_deltas skips the entries
        we publish), then ``_finish`` sends them out (again after a Redis outage: ``_post``)."""
        digest = self.cases.duplicates.digest(deltas, OPEN_STATES)
        self.cases.duplicates.follow_digest(digest)
        self._post = (dead, ids, deltas, digest)
        self._finish(dead, ids, deltas, digest)

    def _finish(self, dead: list, ids: list[str], deltas: list[dict], digest: list | None = None) -> None:
        """After commit: dead letters, ack, deltas and their digest for the other consumers' duplicate
        indexes (one round trip)."""
        at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        pipe = self.redis.pipeline(transaction=False)
        for sid, payload, reason, mid in dead:
            pipe.xadd(DEAD_LETTER, {"reason": reason, "payload": payload if isinstance(payload, (bytes, str))
                                    else str(payload), "stream_id": sid, "consumer": self.name, "at": at},
                      maxlen=DEAD_MAXLEN, approximate=True)
        if ids:
            pipe.xack(STREAM, GROUP, *ids)
        if self.push:
            if digest is None:
                digest = self.cases.duplicates.digest(deltas, OPEN_STATES)
            D.publish_command(pipe, deltas, digest)
        res = pipe.execute()
        idx = self.cases.duplicates
        if self.push and deltas and idx.seeded and idx.deltas_from != "$":
            # _follow_deltas skips this entry unread: its cases are in the index already (following
            # them again is harmless, so a set that somehow grows is simply forgotten)
            if len(self._own_deltas) > OWN_DELTAS_MAX:
                self._own_deltas.clear()
            self._own_deltas.add(_s(res[-1]))
        self._post = None
        for sid, _payload, reason, mid in dead:
            log.warning("dead letter", extra={"message_id": mid, "stream_id": sid, "reason": reason,
                                              "consumer": self.name})
        self._health()

    def _commit(self, items: list[Item]):
        """Apply in one transaction; retry on a busy/unreachable database; isolate a poison message."""
        from .apply import Outcome

        if not items:
            return Outcome()
        failures = 0
        wait = Backoff(0.05, BACKOFF_MAX)
        optimistic = True  # first try: no replays in the batch (see apply_batch)
        while True:
            try:
                with self.engine.begin() as conn:
                    out = apply_batch(conn, items, tz=self.tz, optimistic=optimistic, ctx=self.cases,
                                      defer_deltas=True)
                self._store(None)
                return out.finish()
            except Exception as exc:  # noqa: BLE001
                if optimistic and isinstance(exc, (sa_exc.IntegrityError, MaybeReplay)):
                    optimistic = False  # a replay or a clash: apply again, looking everything up
                    log.debug("batch holds a replay or a clash; applying it with lookups",
                              extra={"consumer": self.name, "stream_id": items[0].stream_id})
                    continue
                optimistic = False
                if _transient_db(exc) or isinstance(exc, Conflict):
                    if not isinstance(exc, Conflict):
                        self._store(exc)
                    delay = wait.next()
                    log.warning("database busy or unavailable; retrying the batch",
                                extra={"error": f"{exc.__class__.__name__}: {str(exc)[:300]}",
                                       "retry_in_s": delay, "consumer": self.name,
                                       "stream_id": items[0].stream_id})
                    if self.stopping and not isinstance(exc, Conflict):
                        raise StopRequested() from exc  # unacked: redelivered after restart
                    self._sleep(delay)
                    continue
                failures += 1
                if failures < 3 and len(items) > 1 or failures < 2:
                    self._sleep(wait.next())  # a race with another consumer passes on retry
                    continue
                if len(items) == 1:
                    out = Outcome()
                    reason = f"database rejected it: {exc.__class__.__name__}: {str(exc).splitlines()[0][:300]}"
                    out.dead.append((items[0].stream_id, items[0].raw, reason, items[0].msg.id))
                    return out
                log.warning("batch failed; applying one message at a time to find the poison",
                            extra={"error": f"{exc.__class__.__name__}: {str(exc)[:300]}",
                                   "consumer": self.name, "stream_id": items[0].stream_id})
                return self._isolate(items)

    def _store(self, exc: BaseException | None) -> None:
        """Tell the screens (the feed health their pings carry) that the store is unreachable, or
        is back: without it an outage of the database looks like a quiet feed."""
        down = exc is not None
        if down == self._store_down and not down:
            return
        try:
            mark_store_down(self.redis, self.name, f"{exc.__class__.__name__}" if down else None)
            self._store_down = down
        except (redis.RedisError, OSError):
            pass

    def _isolate(self, items: list[Item]):
        from .apply import Outcome

        total = Outcome()
        for it in items:
            out = self._commit([it])
            total.deltas += out.deltas
            total.dead += out.dead
            for k in ("applied", "duplicates", "parked", "released", "stale"):
                setattr(total, k, getattr(total, k) + getattr(out, k))
        return total

    # --- the duplicate index: other consumers' reports ------------------------------------
    def _deltas_start(self) -> None:
        """Follow grid:deltas from its end now: the store seeds the index with what came before
        (once: a loop that starts again goes on from where it was)."""
        if self.cases.duplicates.deltas_from != "$":
            return
        last = self.redis.xrevrange(DELTAS, "+", "-", count=1)
        self.cases.duplicates.deltas_from = _s(last[0][0]) if last else "0-0"

    def _follow_deltas(self) -> None:
        """Event deltas published since the last look (the other consumers' batches; this one's
        are known already): new open cases join the duplicate index, closed ones leave it. Read
        every batch once the index exists, so the backlog is one batch's worth of entries."""
        idx = self.cases.duplicates
        if not idx.seeded or idx.deltas_from == "$":
            return  # the first batch seeds the index from the store
        try:
            while True:
                resp = self.redis.xread({DELTAS: idx.deltas_from}, count=200)
                if not resp:
                    return
                entries = resp[0][1]
                for sid, fields in entries:
                    if self._own_deltas and _s(sid) in self._own_deltas:
                        self._own_deltas.discard(_s(sid))
                        continue
                    digest = fields.get(b"o", fields.get("o"))
                    if digest is not None:
                        idx.follow_digest(D.decode(digest))
                        continue
                    payload = fields.get(b"d", fields.get("d"))
                    # no digest (another publisher): most entries are position pings' only, skip
                    # them without decoding
                    if payload and b'"k":"event"' in (payload if isinstance(payload, bytes) else payload.encode()):
                        idx.follow(D.decode(payload), OPEN_STATES)
                idx.deltas_from = _s(entries[-1][0])
                if len(entries) < 200:
                    return
        except redis.ResponseError:
            return

    # --- housekeeping -----------------------------------------------------------------
    def _housekeeping(self, force: bool = False) -> None:
        if force or self._every("held", 2.0):
            self._release_and_expire()
        if force or self._every("trim", 1.0):
            self.trim()
        if self._every("prune", 600.0):
            prune_health(self.redis)
            self.cases.duplicates.prune(datetime.now(timezone.utc))
            self._drop_idle_consumers()
        if force or self._every("health", 1.0):
            self._health(force=True)
        if not self._recounted and (force or self._every("recount", RECOUNT_RETRY_S)):
            self._recount()
        from ..cases.escalation import consumer_tick  # C2: breached deadlines, at most every ESCALATION_SWEEP_S
        if self.sweep:
            consumer_tick(self)  # C2

    def _recount(self) -> None:
        """Once per start: the provisional deadlines the calendar can now count, because the
        operators filled in their year, and the 即将到期 of hazards stored without one
        (dashboard/cases/recount.py); retried while it fails."""
        from ..cases.recount import fill_hazard_due_soon, recount, recount_hazards

        try:
            r = self.redis if self.push else None
            recount(self.engine, self.cases, tz=self.tz, redis=r)
            recount_hazards(self.engine, self.cases, tz=self.tz, redis=r)
            fill_hazard_due_soon(self.engine, self.cases)
            self._recounted = True
        except Exception as exc:  # noqa: BLE001 - the deadlines stay provisional, as they were, until it works
            log.warning("could not recount the provisional deadlines; retrying",
                        extra={"error": f"{exc.__class__.__name__}: {str(exc)[:300]}", "consumer": self.name,
                               "retry_in_s": RECOUNT_RETRY_S})

    def _release_and_expire(self) -> None:
        """Apply held steps whose gap another consumer filled; dead-letter those that waited too long."""
        try:
            with self.engine.connect() as conn:
                if not has_pending(conn):
                    return
                evs, hzs = ready_targets(conn)
            if evs or hzs:
                with self.engine.begin() as conn:
                    out = apply_batch(conn, [], tz=self.tz, recheck_events=evs, recheck_hazards=hzs, ctx=self.cases)
                self.stats["released"] += out.released
                self._after_commit(out.dead, [], out.deltas)
            cutoff = datetime.now(timezone.utc) - timedelta(seconds=self.pending_max_age_s)
            with self.engine.begin() as conn:
                expired = expire_pending(conn, cutoff)
                if expired:  # dead letters first: a crash now repeats them rather than losing them
                    self._finish([(sid, payload, reason, mid) for sid, payload, reason, mid in expired], [], [])
                    self.stats["dead"] += len(expired)
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
                raise
            if _transient_db(exc):
                self._store(exc)
            log.warning("held-message pass failed", extra={"error": f"{exc.__class__.__name__}: {exc}",
                                                           "consumer": self.name})

    def trim(self) -> int:
        """XTRIM MINID: keep at most STREAM_MAXLEN entries, never dropping one not yet acknowledged.

        The cut is the older of (the entry STREAM_MAXLEN from the end) and (the
        oldest entry any group still needs: its lowest pending id, else its
        last-delivered id). Returns the number of entries removed.
        """
        r = self.redis
        length = r.xlen(STREAM)
        excess = length - self.stream_maxlen
        if excess <= 0:
            return 0
        safe = None
        for g in r.xinfo_groups(STREAM):
            name = _s(g["name"])
            need = _s(g["last-delivered-id"])
            if int(g.get("pending") or 0):
                summary = r.xpending(STREAM, name)
                need = min(need, _s(summary["min"]), key=_key)
            safe = need if safe is None else min(safe, need, key=_key)
        if safe is None or safe == "0-0":
            return 0
        n = min(excess, TRIM_SCAN)
        first = r.xrange(STREAM, "-", "+", count=n + 1)
        if len(first) <= n:
            return 0
        cut = min(_s(first[n][0]), safe, key=_key)
        removed = r.xtrim(STREAM, minid=cut, approximate=False)
        if removed:
            log.info("stream trimmed", extra={"removed": removed, "min_id": cut, "consumer": self.name})
        return removed

    def _drop_idle_consumers(self) -> None:
        """Forget group members idle for an hour with nothing pending (names are host-pid)."""
        try:
            for c in self.redis.xinfo_consumers(STREAM, GROUP):
                if int(c.get("pending", 0)) == 0 and int(c.get("idle", 0)) > 3_600_000 \
                        and _s(c["name"]) != self.name:
                    self.redis.xgroup_delconsumer(STREAM, GROUP, _s(c["name"]))
        except redis.ResponseError:
            pass

    def _health(self, force: bool = False) -> None:
        if not force and not self._every("health", 0.5):
            return
        lag = pending = None
        try:
            for g in self.redis.xinfo_groups(STREAM):
                if _s(g["name"]) == GROUP:
                    pending = int(g.get("pending") or 0)
                    lag = g.get("lag")
                    if lag is None:  # Redis < 7: count what was not delivered yet (capped, cheap)
                        last = _s(g["last-delivered-id"])
                        lag = count_after(self.redis, last) if last != "0-0" else self.redis.xlen(STREAM)
            write_health(self.redis, self.name, self.rate.rate(), last_message_at=self._last_message_at,
                         lag=None if lag is None else int(lag), pending=pending)
        except redis.ResponseError:
            pass


# --- entry points ------------------------------------------------------------------------
def start_in_thread(services, stop_event: threading.Event) -> threading.Thread:
    """The consumer inside ``python -m dashboard serve``: a daemon thread stopped by ``stop_event``."""
    consumer = Consumer(services, name=default_name(services.settings), stop_event=stop_event)
    thread = threading.Thread(target=consumer.run, name="feed-consumer", daemon=True)
    thread.consumer = consumer  # type: ignore[attr-defined]
    thread.start()
    return thread


def cli_consume(settings, name: str | None = None, burst: bool = False) -> int:
    """``python -m dashboard consume``: SIGTERM/SIGINT finish the batch, ack it and exit 0."""
    from ..services import Services

    name = name or default_name(settings)
    stop = stop_on_signals()  # before anything slow: a stop while starting is kept
    services = Services.open(settings)
    consumer = Consumer(services, name=name, stop_event=stop)
    try:
        stats = consumer.run(burst=burst)
        print(" ".join(f"{k}={v}" for k, v in stats.items()), flush=True)
    finally:
        services.close()
    return 0
