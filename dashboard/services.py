"""Services: the long-lived parts the app, the consumer and the CLI share."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy.engine import Engine

from .redis_server import EmbeddedRedis, connect_settings, connect_settings_async
from .settings import Settings
from .store.engine import make_engine, migrate

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    redis_url: str
    embedded_redis: EmbeddedRedis | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, *, migrate_db: bool = True) -> "Services":
        engine = make_engine(settings.effective_database_url)
        if migrate_db:
            migrate(engine)
        embedded = None
        url = settings.redis_url
        if settings.redis_sentinels:  # the sentinels name the server; REDIS_URL only db/password
            url = url or "redis://"
        elif not url:
            embedded = EmbeddedRedis(settings.var_path / "redis").start()
            url = embedded.url
            log.info("embedded redis-server on %s", url)
        return cls(settings=settings, engine=engine, redis=connect_settings(settings, url), redis_url=url,
                   embedded_redis=embedded)

    def new_redis(self, **kwargs) -> redis.Redis:
        """A separate connection (blocking reads must not share the app's)."""
        return connect_settings(self.settings, self.redis_url, **kwargs)

    def new_async_redis(self, **kwargs):
        """An asyncio client (redis.asyncio) of the same server, through the sentinels if set."""
        return connect_settings_async(self.settings, self.redis_url, **kwargs)

    @property
    def locator(self):
        from .geo.locate import Locator

        loc = self.cache.get("locator")
        if loc is None:
            loc = self.cache["locator"] = Locator.from_engine(self.engine)
        return loc

    def shared(self, name: str, key, compute, *, ttl_s: float, fresh_after_ms: float | None = None,
               reuse: bool = True, version=None):
        """``compute()``, shared per ``key`` by every viewer for ``ttl_s`` seconds (one computation
        at a time per ``name``) while ``version`` (a fingerprint of the data it reads) is unchanged.
        A result started before ``fresh_after_ms`` (epoch ms: the commit a page announces it has
        heard) is recomputed, not served; ``reuse=False`` always recomputes. One entry per key:
        a new version replaces the old one."""
        cache = self.cache.setdefault(name, {"lock": threading.Lock(), "entries": {}})
        with cache["lock"]:
            mono = time.monotonic()
            hit = cache["entries"].get(key)
            if (reuse and hit and mono - hit[0] < ttl_s and hit[3] == version
                    and (fresh_after_ms is None or hit[2] >= fresh_after_ms)):
                return hit[1]
            started_ms = time.time() * 1000.0
            data = compute()
            cache["entries"][key] = (mono, data, started_ms, version)
            return data

    def reset_caches(self) -> None:
        self.cache.clear()

    def close(self) -> None:
        try:
            self.redis.close()
        finally:
            self.engine.dispose()
            if self.embedded_redis is not None:
                self.embedded_redis.stop()
