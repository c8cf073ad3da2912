"""``python -m dashboard serve``: the web server (uvicorn, dashboard.web), the consumer and (demo) the simulator."""
from __future__ import annotations

import logging
import signal
import threading

from .services import Services
from .settings import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings, debug: bool = False) -> int:
    """Serve through uvicorn (dashboard.web): in this process, or as WEB_WORKERS worker processes
    behind the one port while this process keeps the embedded Redis, the consumer, the simulator
    and the history backfill, which run exactly once whatever the number of workers."""
    from .access.startup import require_secret_key

    require_secret_key(settings)  # outside demo mode, before anything starts
    services = Services.open(settings)
    stop = threading.Event()
    workers: list = []
    web_workers = max(1, settings.web_workers)
    try:
        seeded = None
        if settings.demo:
            from .demo.seed import seed_if_empty

            seeded = seed_if_empty(services)
            from .access.demo import ensure_demo_users

            ensure_demo_users(services)  # one user of each role, printed once, var/demo-users.txt
        workers = start_background(services, stop, history_days=settings.demo_history_days if seeded else 0)
        from .web import run
        from .web.secret import secret_key

        secret_key(settings)  # created once here, before the workers race for it
        log.info("serving", extra={"url": f"http://{settings.host}:{settings.port}/", "web_workers": web_workers})
        print(f"网格化治理指挥中心 · http://{settings.host}:{settings.port}/", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        if web_workers == 1:
            from .app import create_app
            from .web.asgi import make_asgi

            app = create_app(settings, services)
            if debug:
                app.enable_dev_tools(debug=True)
            run.run_here(make_asgi(app, services), settings)
        else:
            run.run_workers(settings, services.redis_url, web_workers)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=10)
        services.close()
    return 0


def _interrupt(signum, frame):  # SIGTERM ends the server like Ctrl-C: workers stop, Redis saves
    raise KeyboardInterrupt


def start_background(services: Services, stop: threading.Event, history_days: int = 0) -> list[threading.Thread]:
    """The consumer (always) and the simulator (demo mode), as daemon threads.

    With ``history_days`` (a first start of the demo) the wall is served at once while the
    district's past weeks are fed through the stream; the live consumer and the simulator
    start when that is done, so the simulator carries on the cases the history left open.
    """
    if history_days > 0:
        thread = threading.Thread(target=_history_then_live, args=(services, stop, history_days),
                                  name="demo-history", daemon=True)
        thread.start()
        return [thread]
    from .feed.consumer import start_in_thread as start_consumer

    threads = [start_consumer(services, stop)]
    if services.settings.demo:
        from .feed.simulate import start_in_thread as start_simulator

        threads.append(start_simulator(services, stop))
    return threads


def _history_then_live(services: Services, stop: threading.Event, days: int) -> None:
    from .demo.history import backfill

    try:
        backfill(services, days, stop_event=stop)
    except Exception:  # noqa: BLE001 - a failed history must not keep the live feed from starting
        log.exception("history backfill failed; starting the live feed without it")
    if stop.is_set():
        return
    for t in start_background(services, stop):
        t.join()
