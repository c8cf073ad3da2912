"""/healthz: Redis, the database and the feed consumer (lag, pending, rate, dead letters)."""
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
    from .live import OPEN_PAGES

    out["live_pages"] = len(OPEN_PAGES.snapshot())  # this process's open SSE streams
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
    @server.get("/healthz")
    def healthz():
        body, ok = check(services)
        body["status"] = "ok" if ok else "degraded"
        return jsonify(body), (200 if ok else 503)
