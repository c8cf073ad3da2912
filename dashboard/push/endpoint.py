"""GET /api/v1/live?scope=CODE as an ASGI handler: a page's SSE stream, fed by the process's hub.

The handler validates the request like the Flask route did (a JSON 400 naming the field), asks the
guard who is asking and for which scope (``guard.py``: 401 without a principal when access is
required, 403 and an audit row for a scope outside the principal's; the principal's own scope when
none is asked), opens a page on the hub, and writes whatever the hub buffered for it; a second small
coroutine waits for the client to go away. No thread and no Redis connection per page. The guard
ends the page when its principal stops being valid (a revoked wall token: within about a second).
"""
from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import parse_qs

from .hub import Hub
from .protocol import RETRY_MS, BadRequest, parse_request

HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
           (b"x-accel-buffering", b"no")]


async def json_response(send, status: int, body: dict) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]})
    await send({"type": "http.response.body", "body": raw})


def request_args(scope) -> tuple[str | None, str | None]:
    qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    since = None
    for name, value in scope.get("headers", []):
        if name.lower() == b"last-event-id":
            since = value.decode("latin-1")
    if not since:
        since = (qs.get("since") or [None])[0]
    return (qs.get("scope") or [None])[0], since


def _cutter(send):
    """How to cut this connection when its page is dropped: abort the socket (uvicorn's send is a
    method of its request cycle, which holds the transport). A plain close would wait for the
    never-read buffer to drain."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        return transport.abort
    task = asyncio.current_task()
    return task.cancel if task is not None else None


async def _watch(receive, hub: Hub, page) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            hub.drop(page, "gone")
            return


async def live(scope, receive, send, hub: Hub, guard=None) -> None:
    try:
        code, since = parse_request(*request_args(scope))
    except BadRequest as exc:
        await json_response(send, 400, exc.body)
        return
    principal = None
    if guard is not None:
        from .guard import admit

        admitted = await asyncio.to_thread(admit, guard.services, scope, code)
        if admitted.status != 200:
            await json_response(send, admitted.status, admitted.body)
            return
        code, principal = admitted.scope, admitted.principal
    page = hub.open(code, since)
    page.abort = _cutter(send)
    if guard is not None:
        guard.watch(principal, page, hub)
    watcher = asyncio.ensure_future(_watch(receive, hub, page))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": f"retry: {RETRY_MS}\n\n".encode(), "more_body": True})
        while True:
            data = await page.take()
            if data is None:
                break
            page.sending_since = time.monotonic()
            await send({"type": "http.response.body", "body": data, "more_body": True})
            page.sending_since = None
        if page.reason in ("shutdown", "revoked"):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        # the server is stopping (its graceful timeout): end the response rather than leave it cut
        hub.drop(page, "shutdown", abort=False)
        try:
            await asyncio.wait_for(send({"type": "http.response.body", "body": b"", "more_body": False}), 1.0)
        except (asyncio.TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001
            pass
    finally:
        watcher.cancel()
        hub.drop(page, "gone")
        if guard is not None:
            guard.forget(principal, page)
