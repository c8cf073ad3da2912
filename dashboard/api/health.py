"""/healthz: Redis, the database, the feed consumer (lag, pending, rate, dead letters), and this web
process (its pid and open live pages: with several web workers each answers for itself)."""
from __future__ import annotations

from flask import jsonify
from sqlalchemy import text


def check(services) -> tuple[dict, bool]:
    out: dict = {}
    ok = True
    try:
        services.redis.ping()
        out["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a health check reports any failure
        out["redis"] = f"error: {exc.__class__.__name__}: {exc}"
        ok = False
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        out["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        out["database"] = f"error: {exc.__class__.__name__}: {exc}"
        ok = False
    import os

    from ..push import hub
    from .live import OPEN_PAGES

    # this process's open live pages: the push hub's (ASGI server) and the Flask route's (WSGI)
    push = hub.stats()
    out["live_pages"] = push["pages"] + len(OPEN_PAGES.snapshot())
    out["web"] = {"pid": os.getpid(), "push_readers": push["readers"], "push_dropped": push["dropped"]}
    from datetime import datetime, timezone

    from ..cases.workcalendar import calendar_for, unknown_years_warning

    # a warning, not a failure: deadlines still come out, marked provisional
    out["calendar"] = unknown_years_warning(calendar_for(services), datetime.now(timezone.utc)) or "ok"
    if out["redis"] == "ok":
        from ..feed.health import read_health

        try:
            feed = read_health(services.redis)
            out["feed"] = feed
            out["consumer_lag"] = feed["lag"]
            # consumers that stopped writing health while messages wait: the feed is stalled
            if not feed["consumers"] and ((feed["lag"] or 0) > 0 or (feed["pending"] or 0) > 0):
                out["consumer"] = "no consumer is running"
                ok = False
            else:
                out["consumer"] = "ok" if feed["consumers"] else "idle"
        except Exception as exc:  # noqa: BLE001
            out["feed"] = f"error: {exc.__class__.__name__}: {exc}"
            ok = False
    return out, ok


def register(server, services) -> None:
    from ..cases.workcalendar import calendar_for

    calendar_for(services)  # reads and checks the holiday file now: a bad one stops the start

    @server.get("/healthz")
    def healthz():
        body, ok = check(services)
        body["status"] = "ok" if ok else "degraded"
        return jsonify(body), (200 if ok else 503)
