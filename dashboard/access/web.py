"""Sign-in on the Flask side: ``register(server, services)`` (listed in ``dashboard.app.SERVER_MODULES``).

- Flask-Login keeps the principal in Flask's signed session cookie: HttpOnly, SameSite=Lax, and
  Secure when the request came over https (``SESSION_COOKIE_SECURE=auto``; uvicorn takes a local
  proxy's X-Forwarded-Proto) or always/never as the setting says, so http://127.0.0.1 still works
  in the demo. No "remember me" cookie: a session ends with ``ACCESS_IDLE_MINUTES`` without a request.
- ``/signin`` is a plain Flask page (not a Dash page) with a Flask-WTF form: its POST carries a CSRF
  token bound to the session; ``/signout`` the same. Attempts are rate-limited per client address
  (``SIGNIN_RATE_LIMIT``) by the app's one Flask-Limiter (``dashboard.api.auth.limiter``, Redis as
  its store): past it, the page with 429 and Retry-After.
- A wall display signs in by opening a page with ``?token=…``: its session then acts as the token,
  and is refused from the first request after the token is revoked.
- ``ACCESS_REQUIRED`` (off until every callback and API checks scope): anonymous page requests are
  sent to /signin, anonymous data requests get 401; a page asked for with a ``?scope=`` wider than the
  principal's is refused (403, audited), and a page without one gets the principal's scope.
- ``request_scope(services, requested)``: the scope a Flask request may be served, for the callbacks
  and APIs that enforce it next (audits and raises ``Forbidden`` on a refusal).

Requests without the session cookie do not touch the session at all, so with ACCESS_REQUIRED off the
app's answers to anonymous viewers are what they were (no Vary: Cookie, no Set-Cookie).
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import flask
from flask import g, jsonify, redirect, render_template_string, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.exceptions import Forbidden
from wtforms import HiddenField, PasswordField, StringField

from ..api.auth import limiter, retry_after
from ..i18n import pick_lang, t
from . import audit
from .roles import LABEL, STREET_SECRETARY
from .scope import UNKNOWN, ScopeRefused, effective_scope
from .signin import SignInFailed, authenticate
from .users import load_principal, region_exists, token_principal

log = logging.getLogger(__name__)

SIGNIN_PATH = "/signin"
SIGNOUT_PATH = "/signout"
ME_PATH = "/api/v1/me"
STATIC_PATH = "/access-static"
SEEN_KEY = "seen"           # epoch seconds of the session's last request (idle expiry)
SEEN_REFRESH_S = 60         # rewrite the cookie at most this often for the idle clock
# reachable without a principal under ACCESS_REQUIRED: sign-in itself, static code and styles (no
# data), the health check, and the ingest / Open311 APIs, which authenticate with API keys
OPEN_PREFIXES = (SIGNIN_PATH, SIGNOUT_PATH, STATIC_PATH + "/", "/assets/", "/_dash-component-suites/",
                 "/_favicon.ico", "/healthz", "/api/v1/reports", "/open311/")
DATA_PREFIXES = ("/api/", "/_dash-", "/_reload", "/briefing/files/")


class SignInForm(FlaskForm):
    username = StringField()
    password = PasswordField()
    next = HiddenField()


class SignOutForm(FlaskForm):
    pass


class SecureWhenHttps(SecureCookieSessionInterface):
    """Flask's cookie session with the Secure flag decided per request: ``auto`` sets it when the
    request came over https, so the demo on http://127.0.0.1 keeps its session."""

    def __init__(self, mode: str, access_required: bool):
        self.mode = mode
        self.access_required = access_required

    def get_cookie_secure(self, app) -> bool:
        if self.mode == "auto":
            return flask.has_request_context() and request.is_secure
        return self.mode == "true"

    def save_session(self, app, session, response) -> None:
        # Flask-Login looks into the session after every request, which would mark every answer
        # "Vary: Cookie"; while access is not required, an answer to a request that brought no
        # cookie and set none does not depend on one
        if (not self.access_required and not session and not session.modified
                and app.config["SESSION_COOKIE_NAME"] not in request.cookies):
            return
        super().save_session(app, session, response)


def client_ip() -> str:
    return request.remote_addr or ""


def current_principal():
    """The request's principal, or None (without loading anything when there is no session cookie)."""
    if getattr(g, "access_principal_checked", False):
        return g.access_principal
    p = None
    if flask.current_app.config["SESSION_COOKIE_NAME"] in request.cookies:
        user = current_user._get_current_object()
        p = user if getattr(user, "is_authenticated", False) else None
    g.access_principal_checked, g.access_principal = True, p
    return p


def request_scope(services, requested: str | None, *, where: str = "", unknown_ok: bool = False) -> str | None:
    """The scope to serve this request: the principal's, or narrower as asked. Anonymous with
    ACCESS_REQUIRED off: what was asked (today's behaviour). A refusal is audited and raises 403
    (once per request and asked scope: a callback that checks twice writes one row).
    ``unknown_ok``: a code inside the principal's scope that no region has is audited but handed
    back, for a page that says so in its own words ("no region with this code") and shows no data."""
    p = current_principal()
    if p is None:
        if services.settings.access_required:  # the gate answered 401 before: only an open path gets here
            raise Forbidden("sign-in required")
        return requested
    try:
        return effective_scope(p, requested, _exists(services))
    except ScopeRefused as exc:
        done = g.setdefault("access_refusals", set())
        if (exc.requested, where) not in done:
            done.add((exc.requested, where))
            audit.scope_refused(services.engine, p, exc, ip=client_ip(), where=where or request.path)
        if unknown_ok and exc.reason == UNKNOWN:
            return requested
        raise Forbidden(str(exc)) from None


def scope_or_refusal(services, requested: str | None, *, where: str = ""):
    """(scope, None) when the request may be served ``requested`` (its principal's scope, or
    narrower), else (None, a JSON 403 response); the refusal is audited. For the data APIs."""
    try:
        return request_scope(services, requested, where=where), None
    except Forbidden as exc:
        resp = jsonify({"error": "forbidden", "message": exc.description})
        resp.status_code = 403
        resp.headers["Cache-Control"] = "no-store"
        return None, resp


EXISTS_KEEP = 4096  # region codes known to exist, per process (a city has ~6,000 grids; most walls ask for streets)


def _exists(services):
    """region_exists, remembering codes that exist: a wall's every tick asks for its own narrower
    scope, and the answer does not change while the regions do not (a code that stops existing
    is only ever served empty data)."""
    fn = services.cache.get("access_region_exists")
    if fn is None:
        check = region_exists(services.engine)
        known: set[str] = set()

        def fn(code: str) -> bool:
            if code in known:
                return True
            ok = check(code)
            if ok and len(known) < EXISTS_KEEP:
                known.add(code)
            return ok
        services.cache["access_region_exists"] = fn
    return fn


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: not //host, not a scheme, not a backslash trick."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def landing(p, lang: str = "zh") -> str:
    """Where a principal goes after signing in, in the language it signed in with (the street
    secretary's own view, /street, comes with its page)."""
    q = {"scope": p.scope} if p.role == STREET_SECRETARY or p.scope else {}
    if lang == "en":
        q["lang"] = "en"
    path = "/street" if p.role == STREET_SECRETARY else "/wall"  # A2: the street secretary's own view
    return path + ("?" + urlencode(q) if q else "")


PAGE = """<!doctype html>
<html lang="{{ html_lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ heading }} · {{ app_title }}</title>
<link rel="stylesheet" href="{{ css }}">
<link rel="icon" href="/assets/favicon.ico">
</head>
<body>
<main>
<h1>{{ app_title }}</h1>
<h2>{{ heading }}</h2>
{% if message %}<p class="message" role="alert">{{ message }}</p>{% endif %}
{% if note %}<p class="note" role="status">{{ note }}</p>{% endif %}
{% if signout %}
<form method="post" action="{{ action }}">
{{ form.csrf_token }}
<p>{{ who }}</p>
<button type="submit">{{ t('signout_submit') }}</button>
</form>
{% else %}
<form method="post" action="{{ action }}">
{{ form.csrf_token }}
<input type="hidden" name="next" value="{{ next or '' }}">
<label for="username">{{ t('signin_username') }}</label>
<input id="username" name="username" autocomplete="username" required autofocus value="{{ username or '' }}">
<label for="password">{{ t('signin_password') }}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{{ t('signin_submit') }}</button>
</form>
{% endif %}
<p class="lang"><a href="{{ other_lang_url }}" lang="{{ other_html_lang }}">{{ t('access_other_lang') }}</a></p>
</main>
</body>
</html>
"""


def render_page(lang: str, *, status: int = 200, signout: bool = False, **kw):
    """The sign-in (or sign-out) page. Jinja escapes every value: names typed by users are text."""
    args = request.args.to_dict()
    args.pop("token", None)  # a wall's token is not repeated into links
    args["lang"] = "zh" if lang == "en" else "en"
    form = kw.pop("form", None) or (SignOutForm() if signout else SignInForm())
    heading = t("signout_title" if signout else "signin_title", lang)
    action = (SIGNOUT_PATH if signout else SIGNIN_PATH) + ("?lang=en" if lang == "en" else "")
    html = render_template_string(
        PAGE, html_lang="en" if lang == "en" else "zh-CN", other_html_lang="zh-CN" if lang == "en" else "en",
        t=lambda key, **f: t(key, lang, **f), app_title=t("app_title", lang), heading=heading, form=form,
        action=action, css=flask.url_for("access.static", filename="signin.css"), signout=signout,
        other_lang_url=request.path + "?" + urlencode(args), **kw)
    resp = flask.make_response(html, status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def register(server, services) -> None:
    settings = services.settings
    idle_s = settings.access_idle_minutes * 60
    server.session_interface = SecureWhenHttps(settings.session_cookie_secure, settings.access_required)
    # the cookie is re-sent when the idle clock moves (at most once a minute), not on every
    # callback: its expiry follows use all the same
    server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         PERMANENT_SESSION_LIFETIME=timedelta(seconds=idle_s), SESSION_REFRESH_EACH_REQUEST=False)

    manager = LoginManager()
    manager.init_app(server)

    def secret() -> str:
        return server.secret_key

    @manager.user_loader
    def _load(ident: str):
        p = load_principal(services.engine, ident, secret())
        if p is None:  # disabled user, new password, revoked token: once, then the session is empty
            audit.record(services.engine, audit.SESSION_REFUSED, ip=client_ip(), session=ident.split(":")[0])
            session.clear()
        return p

    @manager.unauthorized_handler
    def _unauthorized():
        return unauthorized()

    def unauthorized():
        path = request.path
        if request.method == "GET" and not path.startswith(DATA_PREFIXES):
            lang = pick_lang(request.args.get("lang"), settings.ui_lang)
            q = {"next": request.full_path.rstrip("?")}
            if lang == "en":
                q["lang"] = "en"
            return redirect(SIGNIN_PATH + "?" + urlencode(q))
        return jsonify({"error": "unauthorized", "message": "sign-in required"}), 401

    @server.before_request
    def _access():
        cookie = server.config["SESSION_COOKIE_NAME"] in request.cookies
        if cookie:
            p = current_principal()
            if p is not None:
                now = time.time()
                seen = session.get(SEEN_KEY, 0)
                if now - seen > idle_s:
                    audit.record(services.engine, audit.SESSION_EXPIRED, actor=p.actor, ip=client_ip())
                    logout_user()
                    session.clear()
                    g.access_principal, g.access_expired = None, True
                elif now - seen > SEEN_REFRESH_S:
                    session[SEEN_KEY] = now
        token = request.args.get("token")
        if token and request.method == "GET" and not request.path.startswith(DATA_PREFIXES):
            refused = _token_signin(token)
            if refused is not None:
                return refused
        if settings.access_required:
            if request.path.startswith(OPEN_PREFIXES):
                return None
            p = current_principal() if cookie or token else None
            if p is None:
                if getattr(g, "access_expired", False) and not request.path.startswith(DATA_PREFIXES):
                    return redirect(SIGNIN_PATH + "?" + urlencode({"idle": "1", "next": request.full_path.rstrip("?")}))
                return unauthorized()
            if request.method == "GET" and not request.path.startswith(DATA_PREFIXES):
                return _page_scope(p)
        return None

    def _token_signin(token: str):
        p = token_principal(services.engine, token)
        lang = pick_lang(request.args.get("lang"), settings.ui_lang)
        if p is None:
            audit.record(services.engine, audit.TOKEN_REFUSED, ip=client_ip(), path=request.path)
            return render_page(lang, status=403, message=t("access_token_refused", lang))
        mine = current_principal()
        if mine is None or mine.get_id() != p.get_id():
            session.clear()
            login_user(p)
            session.permanent = True
            session[SEEN_KEY] = time.time()
            g.access_principal_checked, g.access_principal = True, p
            audit.record(services.engine, audit.TOKEN_SIGNIN, actor=p.actor, ip=client_ip(), scope=p.scope)
        return None

    def _page_scope(p):
        requested = request.args.get("scope")
        if not requested:
            if p.scope:
                args = request.args.to_dict()
                args.pop("token", None)
                args["scope"] = p.scope
                return redirect(request.path + "?" + urlencode(args))
            return None
        try:
            effective_scope(p, requested, _exists(services))
        except ScopeRefused as exc:
            audit.scope_refused(services.engine, p, exc, ip=client_ip(), where=request.path)
            if exc.reason == UNKNOWN:  # inside the principal's scope, but no region: the page says so
                return None
            lang = pick_lang(request.args.get("lang"), settings.ui_lang)
            return render_page(lang, status=403, message=t("access_scope_refused", lang, scope=requested[:32]))
        return None

    bp = flask.Blueprint("access", __name__, static_folder=str(Path(__file__).parent / "static"),
                         static_url_path=STATIC_PATH)
    def too_many(request_limit):
        lang = pick_lang(request.args.get("lang"), settings.ui_lang)
        audit.record(services.engine, audit.SIGNIN_FAILED, ip=client_ip(), reason="rate_limited")
        resp = render_page(lang, status=429, message=t("signin_too_many", lang))
        resp.headers["Retry-After"] = str(retry_after(request_limit))
        return resp

    # the app's one Flask-Limiter (dashboard.api.auth: Redis as its store), counting per address
    limit = limiter(server, services).limit(lambda: settings.signin_rate_limit, methods=["POST"],
                                            key_func=lambda: "signin:" + client_ip(), on_breach=too_many)

    @bp.route(SIGNIN_PATH, methods=["GET", "POST"])
    @limit
    def signin():
        lang = pick_lang(request.args.get("lang"), settings.ui_lang)
        if request.method == "GET":
            note = t("signin_idle", lang) if request.args.get("idle") else None
            if request.args.get("out"):
                note = t("signin_signed_out", lang)
            return render_page(lang, note=note, next=_safe_next(request.args.get("next")))
        form = SignInForm()
        target = _safe_next(form.next.data)
        if not form.validate_on_submit():  # the CSRF token is missing, forged or expired
            log.warning("sign-in form refused", extra={"errors": form.errors, "ip": client_ip()})
            return render_page(lang, status=400, message=t("signin_expired_form", lang), next=target)
        try:
            p = authenticate(services.engine, settings, secret(), form.username.data, form.password.data,
                             ip=client_ip())
        except SignInFailed:
            return render_page(lang, status=401, message=t("signin_failed", lang), next=target,
                               username=form.username.data)
        session.clear()  # nothing of the anonymous session carries over
        login_user(p)
        session.permanent = True
        session[SEEN_KEY] = time.time()
        return redirect(target or landing(p, lang))

    @bp.route(SIGNOUT_PATH, methods=["GET", "POST"])
    def signout():
        lang = pick_lang(request.args.get("lang"), settings.ui_lang)
        p = current_principal()
        if request.method == "GET":
            if p is None:
                return redirect(SIGNIN_PATH + ("?lang=en" if lang == "en" else ""))
            role = LABEL.get(p.role, (p.role, p.role))[1 if lang == "en" else 0]
            return render_page(lang, signout=True, who=t("signout_as", lang, name=p.name, role=role))
        form = SignOutForm()
        if not form.validate_on_submit():
            return render_page(lang, status=400, signout=True, message=t("signin_expired_form", lang))
        if p is not None:
            audit.record(services.engine, audit.SIGNOUT, actor=p.actor, ip=client_ip())
        logout_user()
        session.clear()
        return redirect(SIGNIN_PATH + "?" + urlencode({"out": "1", **({"lang": "en"} if lang == "en" else {})}))

    @bp.route(ME_PATH)
    def me():
        """Who this session is and the scope it would be served for ``?scope=``."""
        p = current_principal()
        if p is None:
            return jsonify({"error": "unauthorized", "message": "sign-in required"}), 401
        try:
            scope = request_scope(services, request.args.get("scope"), where=ME_PATH)
        except Forbidden:
            return jsonify({"error": "forbidden", "message": "scope outside yours",
                            "scope": p.scope}), 403
        return jsonify({"name": p.name, "kind": p.kind, "role": p.role, "scope": p.scope, "effective_scope": scope})

    server.register_blueprint(bp)
