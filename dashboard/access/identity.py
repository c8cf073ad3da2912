"""Who an ASGI request is, for the live push (``/api/v1/live``), which Flask does not serve.

``identify_from_cookie(services, cookie_header)`` reads the same Flask session cookie the sign-in set:
the same key (``dashboard.web.secret``), and Flask's own serializer (``SecureCookieSessionInterface``:
itsdangerous' URLSafeTimedSerializer, salt ``cookie-session``, HMAC-SHA1, tagged JSON), so it
accepts exactly the cookies Flask accepts. It applies the same rules as the Flask side: the session
must be younger than ``ACCESS_IDLE_MINUTES`` since its last request, and its principal must still be
valid (user enabled and password unchanged, or wall token not revoked); otherwise None.
``identify_token(services, token)`` is the wall's ``?token=``; ``identify_asgi(services, scope)``
tries the cookie, then ``?token=``.

The push (``dashboard.push.guard``) calls ``identify_asgi`` in a thread when a page opens (with
``ACCESS_REQUIRED`` and None: 401), then ``effective_scope`` decides the page's scope (a
ScopeRefused: 403 and ``audit.scope_refused``); every second ``still_valid`` re-checks all open
pages' principals in two queries, and the pages of one no longer valid are ended.
"""
from __future__ import annotations

import time
from http.cookies import CookieError, SimpleCookie
from types import SimpleNamespace
from urllib.parse import parse_qs

from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature

from ..web.secret import secret_key
from .users import Principal, load_principal, token_principal

COOKIE_NAME = "session"  # Flask's SESSION_COOKIE_NAME, which the app does not change
USER_KEY = "_user_id"    # where Flask-Login keeps the principal's id
SEEN_KEY = "seen"        # dashboard.access.web's idle clock


def _serializer(services):
    """Flask's session serializer for the app's key (cached per Services)."""
    s = services.cache.get("access_session_serializer")
    if s is None:
        key = secret_key(services.settings)
        stand_in = SimpleNamespace(secret_key=key, config={"SECRET_KEY_FALLBACKS": []})  # what Flask reads
        s = SecureCookieSessionInterface().get_signing_serializer(stand_in)
        services.cache["access_session_serializer"] = s = (s, key)
    return s


def read_session(services, cookie_header: str | None) -> dict | None:
    """The session's contents if the cookie is there, signed with our key and not older than the
    idle limit; else None."""
    if not cookie_header:
        return None
    try:
        jar = SimpleCookie()
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE_NAME)
    if morsel is None or not morsel.value:
        return None
    serializer, _ = _serializer(services)
    idle_s = services.settings.access_idle_minutes * 60
    try:
        # the cookie is re-signed at least every minute while in use (web.SEEN_REFRESH_S)
        data = serializer.loads(morsel.value, max_age=idle_s + 120)
    except (BadSignature, ValueError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    seen = data.get(SEEN_KEY)
    if not isinstance(seen, (int, float)) or time.time() - seen > idle_s:
        return None
    return data


def identify_from_cookie(services, cookie_header: str | None) -> Principal | None:
    data = read_session(services, cookie_header)
    if not data or not isinstance(data.get(USER_KEY), str):
        return None
    _, key = _serializer(services)
    return load_principal(services.engine, data[USER_KEY], key)


def identify_token(services, token: str | None) -> Principal | None:
    return token_principal(services.engine, token)


def identify_asgi(services, scope) -> Principal | None:
    """An ASGI request's principal: its session cookie, else its ``?token=``."""
    cookie = b"; ".join(v for k, v in scope.get("headers", []) if k.lower() == b"cookie").decode("latin-1")
    p = identify_from_cookie(services, cookie)
    if p is None:
        token = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [None])[0]
        p = identify_token(services, token)
    return p


def still_valid(services, idents) -> set[str]:
    """Which of these principal ids (``Principal.get_id``) are still valid: enabled users whose
    password is unchanged, unrevoked tokens. Two queries however many ids (the push re-checks
    every open page's principal every second)."""
    from sqlalchemy import select

    from ..store.schema import access_token, access_user
    from .users import session_stamp

    users: dict[int, list[str]] = {}
    tokens: dict[int, list[str]] = {}
    for ident in idents:
        kind, _, rest = (ident or "").partition(":")
        num, _, _stamp = rest.partition(":")
        if num.isdigit() and kind in ("u", "t"):
            (users if kind == "u" else tokens).setdefault(int(num), []).append(ident)
    ok: set[str] = set()
    _, key = _serializer(services)
    with services.engine.connect() as conn:
        if users:
            rows = conn.execute(select(access_user.c.id, access_user.c.password_hash, access_user.c.disabled)
                                .where(access_user.c.id.in_(list(users)))).all()
            for uid, hashed, disabled in rows:
                if disabled:
                    continue
                stamp = session_stamp(key, hashed)
                ok.update(i for i in users[uid] if i.rsplit(":", 1)[-1] == stamp)
        if tokens:
            rows = conn.execute(select(access_token.c.id).where(access_token.c.id.in_(list(tokens)))
                                .where(access_token.c.revoked_at.is_(None))).scalars().all()
            for tid in rows:
                ok.update(tokens[tid])
    return ok
