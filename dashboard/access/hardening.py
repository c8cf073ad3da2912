"""Security headers, the Content Security Policy and CSRF for cookie-authorised requests
(issue 18, item 5): ``register(server, services)``, listed in ``dashboard.app.SERVER_MODULES``
after ``dashboard.access.web`` (its checks need the request's principal).

- **Headers** by Flask-Talisman: a CSP, X-Content-Type-Options, X-Frame-Options, Referrer-Policy,
  Permissions-Policy, and HSTS on https requests. Talisman never redirects to https here: TLS ends
  at the reverse proxy (docs/deploy.md), and the demo runs on http://127.0.0.1.
- **CSP**: scripts only from this origin or carrying the request's nonce. Dash's index has inline
  scripts (the renderer's start, the wall's prefetch, clientside callbacks given as text): the
  app's index (``dashboard.app.CommandCenter``) stamps each with the nonce Talisman made for the
  request, so no ``'unsafe-inline'`` for scripts. Styles keep ``'unsafe-inline'``: dash-leaflet and
  AG Grid inject ``<style>`` elements at run time and Leaflet positions every marker with inline
  styles; CSS cannot run code. Images may come from TILE_URL's host (the basemap).
- **CSRF**: a state-changing request (POST, PUT, PATCH, DELETE) that a session cookie authorises
  (Dash's callbacks, ``/_dash-update-component``, and any later form or API) must come from a page
  of this origin, as the browser itself says: ``Sec-Fetch-Site`` must be ``same-origin`` (or
  ``none``: typed or bookmarked); a browser that sends no fetch metadata is judged by ``Origin``,
  whose host must be this request's host. A request with neither header is not a browser's request
  made by another site (every browser that supports SameSite cookies sends ``Origin`` on a
  cross-origin POST), and the session cookie is SameSite=Lax besides. Chosen over a token that
  Dash's renderer sends back from a cookie (``csrf_token_name``) because it needs nothing on the
  page, cannot go stale on a wall left open for weeks, and covers every route at once, including
  ones added later; a sibling subdomain, which SameSite counts as the same site, is refused too
  (it is ``same-site``, not ``same-origin``). Refusals are 403 and audited (``csrf_refused``).
  Requests without a principal are not checked (their cookie authorises nothing), nor the
  ingest and Open311 APIs (API keys, never a cookie); the sign-in and sign-out forms carry
  Flask-WTF tokens as well.
- **The audit page** (``/audit``) answers 403 to everyone but an administrator, before Dash's index.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

import flask
from flask import request
from flask_talisman import Talisman

from ..i18n import pick_lang, t
from . import audit
from .roles import ADMINISTRATOR

log = logging.getLogger(__name__)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_EXEMPT = ("/signin", "/signout", "/api/v1/reports", "/open311/")
ADMIN_PAGES = ("/audit",)


def tile_source(tile_url: str) -> str | None:
    """The CSP source of an XYZ tile template: its scheme and host, ``{s}`` subdomains as ``*``."""
    if not tile_url:
        return None
    parts = urlsplit(tile_url.replace("{s}", "a"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.netloc
    if "{s}" in tile_url.split("//", 1)[-1].split("/", 1)[0]:
        host = "*." + host.split(".", 1)[1]
    return f"{parts.scheme}://{host}"


def policy(settings) -> dict:
    img = ["'self'", "data:", "blob:"]
    tiles = tile_source(getattr(settings, "tile_url", ""))
    if tiles:
        img.append(tiles)
    return {
        "default-src": "'self'",
        "script-src": "'self'",          # + the request's nonce (content_security_policy_nonce_in)
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": img,
        "font-src": ["'self'", "data:"],
        "connect-src": "'self'",
        "worker-src": ["'self'", "blob:"],
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'self'",
    }


def nonce() -> str:
    """The nonce of this request's CSP ('' outside a request, or when none was made)."""
    if not flask.has_request_context():
        return ""
    return getattr(request, "csp_nonce", "") or ""


def cross_site(req) -> str | None:
    """Why ``req`` looks made by another site's page, or None (the CSRF rule above)."""
    site = req.headers.get("Sec-Fetch-Site")
    if site is not None:
        return None if site in ("same-origin", "none") else f"sec-fetch-site={site[:32]}"
    origin = req.headers.get("Origin")
    if origin is None:
        return None
    # the host only: behind a TLS proxy the scheme this process sees may not be the browser's
    if origin == "null" or urlsplit(origin).netloc != req.host:
        return f"origin={origin[:80]}"
    return None


def register(server, services) -> None:
    from .web import client_ip, current_principal, render_page

    settings = services.settings
    Talisman(server, force_https=False, strict_transport_security=True, session_cookie_secure=False,
             session_cookie_http_only=True, session_cookie_samesite="Lax", frame_options="SAMEORIGIN",
             referrer_policy="strict-origin-when-cross-origin", content_security_policy=policy(settings),
             content_security_policy_nonce_in=["script-src"],
             permissions_policy={"geolocation": "()", "camera": "()", "microphone": "()", "payment": "()"})

    @server.before_request
    def _csrf_check():
        if request.method not in STATE_CHANGING or request.path.startswith(CSRF_EXEMPT):
            return None
        if server.config["SESSION_COOKIE_NAME"] not in request.cookies or current_principal() is None:
            return None
        reason = cross_site(request)
        if reason is None:
            return None
        p = current_principal()
        audit.record(services.engine, audit.CSRF_REFUSED, actor=p.actor, ip=client_ip(), where=request.path,
                     reason=reason)
        resp = flask.jsonify({"error": "csrf", "message": "cross-site request refused"})
        resp.status_code = 403
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @server.before_request
    def _admin_pages():
        if request.method != "GET" or request.path not in ADMIN_PAGES:
            return None
        p = current_principal()
        if p is None and settings.access_required:
            return None  # the sign-in gate (web.py) has sent it to /signin already
        if p is not None and p.role == ADMINISTRATOR and p.kind == "user":
            return None
        audit.record(services.engine, audit.PAGE_REFUSED, actor=getattr(p, "actor", audit.ANONYMOUS),
                     ip=client_ip(), where=request.path, role=getattr(p, "role", ""))
        lang = pick_lang(request.args.get("lang"), settings.ui_lang)
        return render_page(lang, status=403, message=t("audit_refused", lang))
