"""GET /api/v1/live?scope=CODE: server-sent events carrying the feed's deltas.

Each connection reads the DELTAS stream on its own Redis connection (XREAD
BLOCK, at most 2 s, so a heartbeat goes out every 2 s even when the feed is
quiet) and forwards each entry's deltas that fall inside the viewer's scope
(a region-code prefix, filtered here on the server). The stream id is the SSE
``id``, so a browser that reconnects sends ``Last-Event-ID`` and resumes
exactly where it stopped; ``?since=`` does the same for clients that cannot
set the header. Events:

* ``hello``: first, ``{"last": id, "scope": ...}``; its id is the resume point
* (default message): ``data: [delta, ...]`` with ``id: <stream id>``
* ``ping``: every 2 s, the feed health (lag, rate, dead letters, last message)
* ``gap``: the resume point is older than the replay buffer; reload the page's data

This is the Flask route, kept for WSGI servers (``dashboard.wsgi``): each open page holds one
server thread and one Redis connection until it goes away. The production server
(``dashboard.asgi``, and ``python -m dashboard``) answers ``/api/v1/live`` before Flask sees it,
from one reader per process (``dashboard.push``), with the same events.
"""
from __future__ import annotations

import logging
import threading
import time

from flask import Response, jsonify, request

from ..feed.contract import DELTAS
from ..feed.deltas import decode
from ..feed.health import read_health
from ..push.protocol import PING_S, BadRequest, filter_scope, is_gap, parse_request, sse
from ..push.protocol import s as s_

log = logging.getLogger(__name__)

CLIENT_NAME = "grid-sse"  # CLIENT LIST shows one per open page
BLOCK_MS = 2000
RECHECK_S = 1.0  # how often an open page's principal is re-checked (a revoked token ends its stream)


class OpenPages:
    """The Redis client id (of its first connection) and scope of every open page in this process.

    /healthz reports the count, and tests ask Redis about these exact ids
    (CLIENT LIST ID), rather than guessing which of a shared server's clients is ours.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._pages: dict[int, str] = {}

    def add(self, client_id: int, scope: str | None) -> None:
        with self._lock:
            self._pages[client_id] = scope or ""

    def discard(self, client_id: int | None) -> None:
        with self._lock:
            self._pages.pop(client_id, None)

    def snapshot(self) -> dict[int, str]:
        with self._lock:
            return dict(self._pages)


OPEN_PAGES = OpenPages()


_s = s_


def last_id(r) -> str:
    newest = r.xrevrange(DELTAS, "+", "-", count=1)
    return _s(newest[0][0]) if newest else "0-0"


def resume_gap(r, since: str) -> bool:
    """Has the replay buffer dropped entries after ``since``?"""
    oldest = r.xrange(DELTAS, "-", "+", count=1)
    first = _s(oldest[0][0]) if oldest else None
    try:
        info = r.xinfo_stream(DELTAS) if first else None
    except Exception as exc:  # noqa: BLE001 - is_gap assumes the worst
        info = exc
    return is_gap(since, first, info)


def stream(services, scope: str | None, since: str | None, *, max_seconds: float | None = None,
           principal_id: str | None = None):
    """The generator behind the endpoint (also used by tests without HTTP). ``principal_id``:
    the signed-in principal's id; the stream ends once it is no longer valid (checked at least
    every BLOCK_MS: a revoked wall token's stream ends within ~2 s)."""
    r = services.new_redis(socket_timeout=BLOCK_MS / 1000 + 10, socket_connect_timeout=5,
                           client_name=CLIENT_NAME)
    started = time.monotonic()
    client_id = None
    try:
        client_id = int(r.client_id())
        OPEN_PAGES.add(client_id, scope)
        cursor = since if since else last_id(r)
        yield "retry: 1000\n\n"
        yield sse("hello", {"last": cursor, "scope": scope or ""}, id=cursor)
        if since and resume_gap(r, since):
            yield sse("gap", {"since": since})
        next_ping = 0.0
        next_check = time.monotonic() + RECHECK_S
        while True:
            now = time.monotonic()
            if principal_id is not None and now >= next_check:
                from ..access.identity import still_valid

                next_check = now + RECHECK_S
                if principal_id not in still_valid(services, {principal_id}):
                    log.info("live page ended: principal no longer valid")
                    return
            if now >= next_ping:
                try:
                    health = read_health(r)
                except Exception as exc:  # noqa: BLE001 - the page shows the feed as down
                    health = {"error": f"{exc.__class__.__name__}"}
                yield sse("ping", health)
                next_ping = now + PING_S
            if max_seconds is not None and now - started > max_seconds:
                return
            block = max(1, min(BLOCK_MS, int((next_ping - time.monotonic()) * 1000)))
            try:
                resp = r.xread({DELTAS: cursor}, count=200, block=block)
            except Exception as exc:  # noqa: BLE001 - Redis restarting: tell the page, keep trying
                yield sse("ping", {"error": f"{exc.__class__.__name__}"})
                time.sleep(1.0)
                continue
            if not resp:
                continue
            skipped = None
            for sid, fields in resp[0][1]:
                sid = _s(sid)
                cursor = sid
                raw = fields.get(b"d") or fields.get("d")
                try:
                    mine = filter_scope(decode(raw), scope) if raw else []
                except Exception:  # noqa: BLE001
                    mine = []
                if mine:
                    yield sse(data=mine, id=sid)
                    skipped = None
                else:
                    skipped = sid
            if skipped is not None:  # nothing in scope: still move the browser's resume point
                yield sse(comment="skip", id=skipped)
    finally:
        OPEN_PAGES.discard(client_id)
        r.close()


def register(server, services) -> None:
    @server.get("/api/v1/live")
    def live():
        try:
            scope, since = parse_request(request.args.get("scope"),
                                         request.headers.get("Last-Event-ID") or request.args.get("since"))
        except BadRequest as exc:
            return jsonify(exc.body), 400
        from ..access.web import current_principal, scope_or_refusal

        scope, refused = scope_or_refusal(services, scope, where="/api/v1/live")  # 403, audited
        if refused is not None:
            return refused
        p = current_principal()
        resp = Response(stream(services, scope or None, since, principal_id=p.get_id() if p is not None else None),
                        mimetype="text/event-stream")
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers["X-Accel-Buffering"] = "no"
        return resp
