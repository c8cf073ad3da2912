"""One reader of the deltas stream per web process; every open page is a small buffer it fills.

The reader is one asyncio task on one Redis connection (redis.asyncio, client name
``grid-push``). Its loop:

1. pages that resume (``Last-Event-ID`` / ``?since=``) get their missed range: one pipelined
   XRANGE per page, in chunks of ``REPLAY_COUNT``, then they join the live fan-out;
2. every ``PING_S``, the feed health, read once for the whole process;
3. XREAD BLOCK from the newest id it has seen (at most ``BLOCK_MS``, so 1 and 2 wait little);
4. each entry read is decoded once, filtered once per scope that has open pages, and the same
   bytes are appended to every page of that scope.

Everything that moves a page's resume point happens in that one task, so a resuming page joins
the fan-out exactly where its replay ended: no gap, no duplicate, and no lock. A page whose
scope had nothing in an entry still has its resume point moved, by the id its next ``ping``
carries (a replay that ends on such entries ends with a ``: skip`` comment). Pings go out every
``PING_S`` per page, each page at its own phase, so a thousand pages are not written in one burst.

Each page's own coroutine (``endpoint.py``) writes its buffer to its socket; the reader never
waits for a page. A page that stops reading (a frozen tab, a dead network) grows its buffer; past
``PUSH_BUFFER_KB`` while taking nothing for a second, or with data unsent for ``PUSH_STALL_S``,
it is dropped and its connection cut. Its browser reconnects with its last id and resumes, so nothing is lost.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import weakref

import orjson
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..feed.contract import DELTAS
from ..feed.deltas import decode
from ..feed.health import count_after, health_from, lag_scan_start, queue_health
from .protocol import PING_S, filter_scope, is_gap, key, s, sse

log = logging.getLogger(__name__)

CLIENT_NAME = "grid-push"  # CLIENT LIST shows one per web process, however many pages are open
BLOCK_MS = 500             # longest wait of a resume or a health read behind the blocking read
READ_COUNT = 500
REPLAY_COUNT = 1000        # entries one resuming page reads per round, so a long replay cannot stall the rest
BUFFER_GRACE_S = 1.0       # a page over its buffer whose writes have not moved for this long is dropped
TICK_S = 0.25
HEALTH_STALE_S = 4.0       # no health read for this long: the pages are told Redis does not answer
RETRY_S = 1.0

HUBS: "weakref.WeakSet[Hub]" = weakref.WeakSet()


def open_pages() -> int:
    """This process's open live pages (for /healthz)."""
    return sum(len(h.pages) for h in list(HUBS))


def stats() -> dict:
    hubs = list(HUBS)
    return {"pages": sum(len(h.pages) for h in hubs), "dropped": sum(h.dropped for h in hubs),
            "readers": len(hubs), "reader_error": next((h.error for h in hubs if h.error), None)}


class Page:
    """One open live page: what it has been given (``cursor``) and the bytes still to write."""

    __slots__ = ("scope", "since", "cursor", "sent_id", "after", "chunks", "size", "wake", "closed",
                 "reason", "oldest_at", "sending_since", "last_put", "gap_checked", "abort", "joined",
                 "next_ping", "__weakref__")

    def __init__(self, scope: str | None, since: str | None):
        self.scope = scope or ""
        self.since = since
        self.cursor: str | None = None   # the resume point this page has been brought to
        self.sent_id: str | None = None  # the last id written into its buffer
        self.after: str | None = None    # a resume point ahead of the reader: skip entries up to it
        self.chunks: list[bytes] = []
        self.size = 0
        self.wake = asyncio.Event()
        self.closed = False
        self.reason: str | None = None
        self.oldest_at: float | None = None
        self.sending_since: float | None = None
        self.last_put = 0.0
        self.gap_checked = False
        self.joined = False  # in the live fan-out
        self.next_ping = time.monotonic() + PING_S
        self.abort = None  # cuts the connection (set by the endpoint)

    def put(self, data: bytes, now: float, id: str | None = None) -> None:
        if self.closed:
            return
        if not self.chunks:
            self.oldest_at = now
        self.chunks.append(data)
        self.size += len(data)
        self.last_put = now
        if id is not None:
            self.sent_id = id
        self.wake.set()

    async def take(self) -> bytes | None:
        """The buffered bytes, once there are some; None when the page is closed."""
        while not self.chunks and not self.closed:
            self.wake.clear()
            await self.wake.wait()
        if self.closed:
            return None
        data = b"".join(self.chunks)
        self.chunks, self.size, self.oldest_at = [], 0, None
        return data


class Hub:
    def __init__(self, redis_url: str, *, buffer_bytes: int = 512 * 1024, stall_s: float = 20.0,
                 ping_s: float = PING_S, client=None):
        self.redis_url = redis_url
        self.buffer_bytes = buffer_bytes
        self.stall_s = stall_s
        self.ping_s = ping_s
        self._client = client
        self.pages: set[Page] = set()
        self.scopes: dict[str, set[Page]] = {}
        self.waiting: list[Page] = []   # opened before the reader knew the newest id
        self.joining: list[Page] = []   # resuming: replayed by the reader, then joined
        self.cursor: str | None = None
        self.health: dict | None = None
        self.health_at = 0.0
        self.error: str | None = None
        self.dropped = 0
        self.redis = None
        self._tasks: list[asyncio.Task] = []
        self._stale_told = False
        HUBS.add(self)

    # --- life ---------------------------------------------------------------------------------
    def start(self) -> "Hub":
        if not self._tasks:
            self.redis = self._client or connect_async(self.redis_url)
            self._tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._tick())]
        return self

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing
                pass
        self._tasks = []
        for p in list(self.pages):
            self.drop(p, "shutdown", abort=False)
        if self.redis is not None and self._client is None:
            await self.redis.aclose()
            await self.redis.connection_pool.disconnect()
        self.redis = None

    # --- pages --------------------------------------------------------------------------------
    def open(self, scope: str | None, since: str | None) -> Page:
        page = Page(scope, since)
        self.pages.add(page)
        if self.cursor is None:
            self.waiting.append(page)
        else:
            self._admit(page)
        return page

    def _admit(self, page: Page) -> None:
        now = time.monotonic()
        page.next_ping = now + random.random() * self.ping_s  # its own phase
        if page.since is None:
            page.cursor = self.cursor
            page.put(sse("hello", {"last": self.cursor, "scope": page.scope}, id=self.cursor).encode(), now,
                     id=self.cursor)
            self._join(page)
        else:
            page.cursor = page.since
            page.put(sse("hello", {"last": page.since, "scope": page.scope}, id=page.since).encode(), now,
                     id=page.since)
            self.joining.append(page)
        if self.health_at:  # the feed's state at once, not at the next heartbeat
            body = json.dumps(self.health_now(now), ensure_ascii=False, separators=(",", ":"))
            page.put(f"event: ping\ndata: {body}\n\n".encode(), now)

    def _join(self, page: Page) -> None:
        if page.closed:
            return
        if page.cursor is not None and key(page.cursor) > key(self.cursor):
            page.after = page.cursor  # it has seen further than this reader: skip up to there
        self.scopes.setdefault(page.scope, set()).add(page)
        page.joined = True

    def drop(self, page: Page, reason: str, *, abort: bool = True) -> None:
        if page.closed:
            return
        page.closed = True
        page.reason = reason
        self.pages.discard(page)
        group = self.scopes.get(page.scope)
        if group is not None:
            group.discard(page)
            if not group:
                del self.scopes[page.scope]
        page.chunks, page.size = [], 0
        page.wake.set()
        if reason in ("buffer", "stalled"):
            self.dropped += 1
            log.info("live page dropped", extra={"reason": reason, "scope": page.scope})
        if abort and page.abort is not None and reason != "gone":
            try:
                page.abort()
            except Exception:  # noqa: BLE001 - the connection is going anyway
                pass

    # --- the reader ---------------------------------------------------------------------------
    async def _read(self) -> None:
        r = self.redis
        next_health = 0.0
        while True:
            try:
                if self.cursor is None:
                    newest = await r.xrevrange(DELTAS, "+", "-", count=1)
                    self.cursor = s(newest[0][0]) if newest else "0-0"
                    waiting, self.waiting = self.waiting, []
                    for p in waiting:
                        if not p.closed:
                            self._admit(p)
                if self.joining:
                    await self._replay(r)
                now = time.monotonic()
                if now >= next_health:
                    self.health = await read_health_async(r)
                    self.health_at = time.monotonic()
                    next_health = now + self.ping_s
                    if self.error or self._stale_told:
                        self.error, self._stale_told = None, False
                        self._ping(time.monotonic())  # the pages see the feed back at once
                block = max(1, min(BLOCK_MS, int((next_health - time.monotonic()) * 1000)))
                if self.joining:
                    block = 10  # replays waiting for their pages to take the previous round
                resp = await r.xread({DELTAS: self.cursor}, count=READ_COUNT, block=block)
                if resp:
                    entries = resp[0][1]
                    self._fanout(entries)
                    self.cursor = s(entries[-1][0])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: tell the pages, keep trying
                first = self.error is None
                self.error = exc.__class__.__name__
                if first:
                    log.warning("live push: Redis read failed", extra={"error": repr(exc)})
                    self._ping(time.monotonic())
                next_health = 0.0
                await asyncio.sleep(RETRY_S)

    async def _replay(self, r) -> None:
        # a page gets its next round once its writer has taken the last one: a long replay
        # cannot pile up in memory, and a page that does not read is dropped by _tick
        pages = [p for p in self.joining if not p.closed and not p.size and p.sending_since is None]
        self.joining = [p for p in self.joining if not p.closed and p not in pages]
        if not pages:
            return
        check = any(not p.gap_checked for p in pages)
        pipe = r.pipeline(transaction=False)
        if check:
            pipe.xrange(DELTAS, "-", "+", count=1)
            pipe.xinfo_stream(DELTAS)
        for p in pages:
            pipe.xrange(DELTAS, "(" + p.cursor, self.cursor, count=REPLAY_COUNT)
        try:
            res = await pipe.execute(raise_on_error=False)
        except Exception:
            self.joining = pages + self.joining  # Redis away: they resume once it is back
            raise
        oldest = info = None
        if check:
            first, info = res[0], res[1]
            oldest = s(first[0][0]) if first and not isinstance(first, Exception) else None
            res = res[2:]
        now = time.monotonic()
        for n, (p, entries) in enumerate(zip(pages, res)):
            if p.closed:
                continue
            if isinstance(entries, Exception):
                if _is_connection_error(entries):
                    self.joining = pages[n:] + self.joining
                    raise entries
                self.drop(p, "bad resume point")
                continue
            if not p.gap_checked:
                p.gap_checked = True
                if is_gap(p.cursor, oldest, info):
                    p.put(sse("gap", {"since": p.cursor}).encode(), now)
            parts = []
            last_data = None
            for sid, fields in entries:
                sid = s(sid)
                mine = filter_scope(_deltas(fields), p.scope)
                if mine:
                    parts.append(_message(sid, mine))
                    last_data = sid
            if entries:
                p.cursor = s(entries[-1][0])
            if parts:
                p.put(b"".join(parts), now, id=last_data)
            if len(entries) >= REPLAY_COUNT:
                self.joining.append(p)  # more to read: the next round, after everyone else's
                continue
            if p.sent_id != p.cursor and key(p.cursor) <= key(self.cursor):
                p.put(sse(comment="skip", id=p.cursor).encode(), now, id=p.cursor)
            if key(p.cursor) < key(self.cursor):
                p.cursor = self.cursor
            self._join(p)

    def _fanout(self, entries) -> None:
        decoded = [(s(sid), _deltas(fields)) for sid, fields in entries]
        last = decoded[-1][0]
        now = time.monotonic()
        for scope, group in list(self.scopes.items()):
            parts, last_data = [], None
            for sid, deltas in decoded:
                mine = filter_scope(deltas, scope)
                if mine:
                    parts.append(_message(sid, mine))
                    last_data = sid
            data = b"".join(parts) if parts else None
            for p in list(group):
                if p.after is not None:
                    self._fanout_after(p, decoded, now)
                    continue
                if data is not None:
                    p.put(data, now, id=last_data)
                # with nothing in scope the page is written nothing now: its next ping carries the
                # moved resume point (a write per page per entry would be most of the process's work)
                p.cursor = last

    def _fanout_after(self, p: Page, decoded, now: float) -> None:
        after = key(p.after)
        parts, last_data = [], None
        for sid, deltas in decoded:
            if key(sid) <= after:
                continue
            mine = filter_scope(deltas, p.scope)
            if mine:
                parts.append(_message(sid, mine))
                last_data = sid
        last = decoded[-1][0]
        if key(last) >= after:
            p.after = None
            p.cursor = last
        if parts:
            p.put(b"".join(parts), now, id=last_data)

    # --- heartbeat and reaping ----------------------------------------------------------------
    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            for p in list(self.pages):
                # how long its oldest unwritten data has waited: a write blocked since sending_since
                # (the socket is full), or data queued since oldest_at that its writer has not taken
                since = p.sending_since if p.sending_since is not None else p.oldest_at
                if since is None:
                    continue
                if p.size > self.buffer_bytes and now - since > BUFFER_GRACE_S:
                    self.drop(p, "buffer")
                elif now - since > self.stall_s:
                    self.drop(p, "stalled")
            stale = self.error is None and self.health_at and now - self.health_at > HEALTH_STALE_S
            if stale and not self._stale_told:
                self._stale_told = True
                self._ping(now)  # everyone, now: Redis stopped answering
            else:
                self._ping(now, due_only=True)

    def health_now(self, now: float) -> dict:
        if self.error:
            return {"error": self.error}
        if not self.health_at or now - self.health_at > HEALTH_STALE_S:
            return {"error": "TimeoutError" if self.health_at else "ConnectionError"}
        return self.health or {}

    def _ping(self, now: float, due_only: bool = False) -> None:
        body = None
        for p in list(self.pages):
            if due_only and p.next_ping > now:
                continue
            p.next_ping = now + self.ping_s
            if body is None:
                body = json.dumps(self.health_now(now), ensure_ascii=False, separators=(",", ":"))
                plain = f"event: ping\ndata: {body}\n\n".encode()
            if p.joined and p.cursor is not None and p.after is None:
                # the ping carries the resume point: entries with nothing in scope moved it
                p.put(f"id: {p.cursor}\nevent: ping\ndata: {body}\n\n".encode(), now, id=p.cursor)
            else:
                p.put(plain, now)


def _message(sid: str, deltas: list[dict]) -> bytes:
    """One data message (protocol.sse's format; orjson writes no newline, so one data line)."""
    return b"id: " + sid.encode() + b"\ndata: " + orjson.dumps(deltas) + b"\n\n"


def _deltas(fields) -> list[dict]:
    raw = fields.get(b"d") or fields.get("d")
    try:
        return decode(raw) if raw else []
    except Exception:  # noqa: BLE001 - a bad entry is no one's delta
        return []


def _is_connection_error(exc: Exception) -> bool:
    import redis

    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError))


def connect_async(url: str):
    """The process's one connection for the push: a pool of one, so the reader's pipelines and
    blocking reads share it (they run one after another in the reader task)."""
    pool = aredis.BlockingConnectionPool.from_url(
        url, max_connections=1, timeout=10, client_name=CLIENT_NAME,
        socket_timeout=BLOCK_MS / 1000 + 3, socket_connect_timeout=3, health_check_interval=15)
    return aredis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))


async def read_health_async(r) -> dict:
    pipe = r.pipeline(transaction=False)
    queue_health(pipe)
    results = await pipe.execute(raise_on_error=False)
    after = lag_scan_start(results)
    scanned = int(await count_after(r, after)) if after else None
    return health_from(results, scanned)
