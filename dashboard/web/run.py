"""How ``python -m dashboard serve`` runs the web server: uvicorn, in this process or as N workers.

One worker (``WEB_WORKERS=1``, the default) serves from the process that runs the consumer and
the simulator, like the demo always did. With N workers, uvicorn's supervisor (this process)
binds the port once and starts N worker processes sharing it; each builds its own app from the
settings this process hands down in the environment (the same REDIS_URL, so the embedded Redis
started here, the same store, the same VAR_DIR and so the same session key), and each has its own
push hub. Nothing a page sees depends on which worker answers: the push is read from Redis by
every worker, sessions are signed with the shared key, and the shared figures
(``Services.shared``) are recomputed per worker from the store's fingerprint.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..settings import SETTINGS, Settings

GRACE_S = 2  # on shutdown open live pages are ended after this; their browsers reconnect and resume


def uvicorn_options(settings: Settings) -> dict:
    return {
        "host": settings.host, "port": settings.port, "lifespan": "on",
        # the client's address and scheme from these proxies' X-Forwarded-* headers (uvicorn's
        # proxy-headers middleware): what the rate limits count, the audit log keeps, and the
        # session cookie's Secure flag follows
        "proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips,
        "log_config": None,      # our JSON logs (dashboard.logs), not uvicorn's
        "access_log": False,     # a line per request is noise at hundreds of pages
        "timeout_graceful_shutdown": GRACE_S,
        "backlog": 4096,         # hundreds of pages reconnect at once after a restart
    }


def run_here(asgi_app, settings: Settings) -> None:
    import uvicorn

    uvicorn.Server(uvicorn.Config(asgi_app, **uvicorn_options(settings))).run()


def run_workers(settings: Settings, redis_url: str, workers: int) -> None:
    import uvicorn

    os.environ.update(worker_env(settings, redis_url))
    uvicorn.run("dashboard.web.run:worker_app", factory=True, workers=workers, **uvicorn_options(settings))


def worker_env(settings: Settings, redis_url: str) -> dict[str, str]:
    """Every setting as an environment variable, with the resolved store and Redis."""
    settings = settings.replace(redis_url=redis_url, database_url=settings.effective_database_url,
                                var_dir=str(Path(settings.var_dir).resolve()))
    return {s.name: str(getattr(settings, s.name.lower())) for s in SETTINGS}


def worker_app():
    """One uvicorn worker's app (``factory=True``): the parent migrated the store already."""
    from ..app import create_app
    from ..logs import setup_logging
    from ..services import Services
    from .asgi import make_asgi

    settings = Settings.from_env()
    setup_logging(settings.log_level)
    services = Services.open(settings, migrate_db=False)
    return make_asgi(create_app(settings, services), services)
