"""The ASGI front of the web process.

``/api/v1/live`` is answered here, on the event loop, by the process's push hub
(``dashboard.push``): an open page costs a small buffer and two coroutines, not a thread and not
a Redis connection. Every other request goes to the Dash/Flask app (WSGI) through a2wsgi's thread
pool of ``WEB_THREADS`` threads: Dash callbacks and the APIs are plain blocking Flask code, and
their CPU work shares the GIL anyway, so more threads than that buy queueing, not speed.
"""
from __future__ import annotations

import asyncio
import logging

from a2wsgi import WSGIMiddleware

from ..push.endpoint import live
from ..push.hub import Hub

log = logging.getLogger(__name__)

LIVE_PATH = "/api/v1/live"


class CommandCenterASGI:
    def __init__(self, dash_app, services, *, threads: int | None = None):
        settings = services.settings
        self.dash_app = dash_app
        self.services = services
        self.wsgi = WSGIMiddleware(dash_app.server, workers=threads or settings.web_threads)
        self.hub: Hub | None = None
        self._hub_loop = None
        from ..push.guard import Guard

        self.guard = Guard(services)  # who may open a live page, and the end of a revoked one

    def get_hub(self) -> Hub:
        """The hub of the running loop (made on the first page if the server ran no lifespan)."""
        loop = asyncio.get_running_loop()
        if self.hub is None or self._hub_loop is not loop:
            s = self.services.settings
            self.hub = Hub(self.services.redis_url, buffer_bytes=s.push_buffer_kb * 1024,
                           stall_s=s.push_stall_s, client=_sentinel_client(self.services)).start()
            self._hub_loop = loop
        return self.hub

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"] == LIVE_PATH and scope["method"] in ("GET", "HEAD"):
            await live(scope, receive, send, self.get_hub(), self.guard)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.wsgi(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.get_hub()
                except Exception as exc:  # noqa: BLE001 - the server reports it and stops
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.guard.close()
                if self.hub is not None:
                    await self.hub.close()
                    self.hub = None
                await send({"type": "lifespan.shutdown.complete"})
                return


def make_asgi(dash_app, services=None, **kw) -> CommandCenterASGI:
    return CommandCenterASGI(dash_app, services or dash_app.services, **kw)


def _sentinel_client(services):
    """With REDIS_SENTINELS, the hub's one connection goes to the primary the sentinels name
    (redis_server.connect_async), like every other Redis connection; else the hub makes its own."""
    if not services.settings.redis_sentinels:
        return None
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from ..push.hub import BLOCK_MS, CLIENT_NAME

    return services.new_async_redis(max_connections=1, client_name=CLIENT_NAME, retry=Retry(NoBackoff(), 0),
                                    socket_timeout=BLOCK_MS / 1000 + 3, socket_connect_timeout=3)
