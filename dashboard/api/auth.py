"""API keys of the ingest APIs (setting INGEST_API_KEYS).

A key arrives in the ``X-API-Key`` header or as the ``api_key`` parameter
(query string or form body: Open311 clients put it in either place).
"""
from __future__ import annotations

import hmac

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
