"""API keys of the ingest APIs (setting INGEST_API_KEYS).

A key arrives in the ``X-API-Key`` header or as the ``api_key`` parameter
(query string or form body: Open311 clients put it in either place). Rate limits
count per key (per client address without one), shared by every web process.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import time

from flask import Request

HEADER = "X-API-Key"
PARAM = "api_key"


def presented_key(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key:
        return key.strip()
    key = request.args.get(PARAM)
    if key is None and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        key = request.form.get(PARAM)
    return key.strip() if key else None


def key_ok(key: str | None, keys) -> bool:
    """True when ``key`` is one of ``keys``; compared in constant time."""
    if not key:
        return False
    given = key.encode()
    ok = False
    for k in keys:  # no early exit: timing does not tell which prefix matched
        ok |= hmac.compare_digest(given, k.encode())
    return ok


def check(request: Request, settings) -> tuple[bool, str | None]:
    """(ok, the key presented)."""
    key = presented_key(request)
    return key_ok(key, settings.api_keys), key


# --- rate limits (settings API_RATE_LIMIT, API_READ_RATE_LIMIT) ----------------------------------
# Flask-Limiter, counting in the feed's Redis (REDIS_URL, or the sentinels' primary), so every
# web process and machine shares one count per key. Past a limit: 429 with Retry-After.

def client_key() -> str:
    """Whose requests a limit counts: the API key presented (hashed: keys are not written into
    Redis key names), else the client's address."""
    from flask import request
    from flask_limiter.util import get_remote_address

    key = presented_key(request)
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:20]
    return "addr:" + (get_remote_address() or "?")


def limiter(server, services):
    """The app's one Flask-Limiter (made by the first module that asks; dashboard.access reuses
    it), counting on the app's Redis connection pool: the configured server, the embedded one,
    or whichever primary the sentinels name."""
    existing = server.extensions.get("limiter")
    if existing:
        return next(iter(existing))
    from flask_limiter import Limiter

    return Limiter(client_key, app=server, storage_uri="redis://",
                   storage_options={"connection_pool": services.redis.connection_pool},
                   strategy="moving-window", key_prefix="grid:ratelimit", headers_enabled=True,
                   # Redis down: requests pass the limiter and the API itself answers 503
                   swallow_errors=True)


def retry_after(request_limit) -> int:
    """Whole seconds until the breached limit lets a request through again (at least 1)."""
    return max(1, math.ceil(request_limit.reset_at - time.time()))
